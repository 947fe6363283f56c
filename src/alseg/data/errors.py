"""The error raised for bad dataset input."""

from __future__ import annotations


class DatasetError(ValueError):
    """A dataset (source folder, spec or prepared file) is missing, malformed or inconsistent.

    The message names the offending file (or spec key) and says what is wrong with it.
    """
