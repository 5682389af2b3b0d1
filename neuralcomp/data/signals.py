"""Deterministic test signals that exercise a compressor: level steps, bursts, decays."""

from __future__ import annotations

import numpy as np


def compressor_test_signal(seconds: float = 4.0, sample_rate: int = 44100, seed: int = 0) -> np.ndarray:
    """Mono float32: 1 kHz tone steps from -40 to 0 dBFS, then noise bursts with fast attacks and
    slow decays at random levels, so gain reduction rises and releases many times."""
    rng = np.random.default_rng(seed)
    total = int(seconds * sample_rate)
    t = np.arange(total) / sample_rate
    half = total // 2
    levels_db = np.linspace(-40.0, 0.0, 9)
    step = max(1, half // len(levels_db))
    envelope = np.repeat(10.0 ** (levels_db / 20.0), step)
    tone = np.sin(2 * np.pi * 1000.0 * t[: len(envelope)]) * envelope
    bursts = np.zeros(total - len(tone))
    position = 0
    while position < len(bursts):
        length = int(rng.uniform(0.05, 0.4) * sample_rate)
        level = 10.0 ** (rng.uniform(-30.0, 0.0) / 20.0)
        decay = np.exp(-np.arange(length) / (rng.uniform(0.02, 0.2) * sample_rate))
        segment = rng.standard_normal(length) * decay * level
        bursts[position: position + length] = segment[: len(bursts) - position]
        position += length + int(rng.uniform(0.0, 0.1) * sample_rate)
    bursts = np.clip(bursts, -1.0, 1.0)
    return np.concatenate([tone, bursts]).astype(np.float32)
