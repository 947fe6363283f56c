"""Seeds of the workflow's random steps.

Every random step of a round draws from its own generator, seeded from (experiment seed, round, step
name). A round is therefore reproducible on its own: rerunning round 3 does not depend on how many
random numbers rounds 0-2 drew, and two steps of one round never share a stream.
"""

from __future__ import annotations

import zlib

import numpy as np


def step_seed(seed: int, round_index: int, step: str) -> int:
    """Return a 32-bit seed for ``step`` of round ``round_index`` of an experiment seeded ``seed``."""
    if seed < 0 or round_index < 0:
        raise ValueError(f"seed and round must be >= 0, got seed={seed}, round={round_index}")
    sequence = np.random.SeedSequence([seed, round_index, zlib.crc32(step.encode("utf-8"))])
    return int(sequence.generate_state(1, dtype=np.uint32)[0])


def step_rng(seed: int, round_index: int, step: str) -> np.random.Generator:
    """Return a numpy generator for ``step`` of round ``round_index`` (see :func:`step_seed`)."""
    return np.random.default_rng(step_seed(seed, round_index, step))
