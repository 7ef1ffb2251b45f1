"""Fixtures for the training tests (helpers live in trainhelp.py so tests can import them)."""

from trainhelp import _one_thread, tiny_pack

__all__ = ["_one_thread", "tiny_pack"]
