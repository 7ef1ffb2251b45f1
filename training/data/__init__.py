"""Datasets: YAML specs -> manifest labels and masks -> one HDF5 pack -> a torch Dataset; CV splits."""
