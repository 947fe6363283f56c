"""Acquisition: which questions to ask next, per query unit (pixel now; superpixel and binary later)."""
