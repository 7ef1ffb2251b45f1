"""Research mode, Qt-free: open a dataset, evaluate the loaded model on it, and ask why it fails.

One concept per module: dataset sources (:mod:`.dataset`, :mod:`.pack`, :mod:`.oof`), taxonomy mapping
(:mod:`.mapping`), the resumable evaluation (:mod:`.evaluation`) and its HDF5 cache (:mod:`.cache`),
metrics (:mod:`.metrics`), selections (:mod:`.selection`), subgroups (:mod:`.subgroups`), nearest
neighbours (:mod:`.neighbours`), model comparison (:mod:`.compare`), corruption sweeps
(:mod:`.robustness`), the embedding map (:mod:`.embedding_map`) and export (:mod:`.export`).
"""
