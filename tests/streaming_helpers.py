"""Random partitions, control schedules and their per-sample tracks, shared by the exactness tests."""

from __future__ import annotations

import os
import random

import numpy as np
from hypothesis import strategies as st

# 1, primes, P - 1, P, P + 1 and multiples, the largest host buffers, and anything in between
BUFFER_SIZES = st.one_of(
    st.sampled_from([1, 2, 3, 5, 7, 13, 31, 63, 64, 65, 127, 128, 129, 251, 509, 1021, 4093, 4096, 8192]),
    st.integers(1, 8192),
)
MAX_TOTAL = 16384


def partitions(max_buffers: int = 40):
    """Lists of buffer sizes whose total stays under MAX_TOTAL samples."""
    return st.lists(BUFFER_SIZES, min_size=1, max_size=max_buffers).map(_cap_total)


def _cap_total(sizes: list[int]) -> list[int]:
    out, total = [], 0
    for s in sizes:
        s = min(s, MAX_TOTAL - total)
        if s <= 0:
            break
        out.append(s)
        total += s
    return out


def control_schedule(num_buffers: int, num_controls: int, seed: int, change_probability: float = 0.5) -> np.ndarray:
    """(num_buffers, num_controls) normalised controls; each buffer keeps or changes them."""
    rng = np.random.default_rng(seed)
    rows, current = [], rng.uniform(0, 1, num_controls)
    for _ in range(num_buffers):
        if rng.uniform() < change_probability:
            current = rng.uniform(0, 1, num_controls)
        rows.append(current.copy())
    return np.asarray(rows, dtype=np.float32).reshape(num_buffers, num_controls)


def control_track(sizes: list[int], schedule: np.ndarray) -> np.ndarray:
    """Per-sample controls (n, T) equal to each buffer's controls."""
    return np.repeat(schedule, sizes, axis=0).T.copy()


def run_seed() -> int:
    """A fresh random seed per run (NEURALCOMP_TEST_SEED=N repeats one); tests put it in their failure message."""
    fixed = os.environ.get("NEURALCOMP_TEST_SEED")
    return int(fixed) if fixed else random.SystemRandom().randrange(2**32)


def random_partition(rng: np.random.Generator, total: int) -> list[int]:
    """Buffer sizes summing to `total`: runs of single samples, sizes around
    the pooling frame (63, 64, 65 and multiples), any size up to 130, and large buffers up to 4096."""
    sizes: list[int] = []
    left = total
    while left > 0:
        kind = rng.uniform()
        if kind < 0.35:  # a run of single samples
            run = min(int(rng.integers(1, 17)), left)
            sizes.extend([1] * run)
            left -= run
            continue
        if kind < 0.55:
            size = int(rng.choice([63, 64, 65, 127, 128, 129, 191, 192, 193]))
        elif kind < 0.85:
            size = int(rng.integers(2, 131))
        else:
            size = int(rng.integers(131, 4097))
        size = min(size, left)
        sizes.append(size)
        left -= size
    return sizes
