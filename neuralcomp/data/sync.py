"""The sync marker of the standard reamp source (`neuralcomp dataset source`), and finding it again.

A source file is: ``SYNC_PRE_SECONDS`` of silence, the marker (``SYNC_MARKER_SECONDS`` of seeded white
noise at ``SYNC_LEVEL`` RMS, the same noise for a given rate), ``SYNC_GAP_SECONDS`` of silence, the
program, and ``SYNC_TAIL_SECONDS`` of silence so that a recorder stopped with the playback still catches
the delayed return. A user plays it through a unit with any recorder and imports the recording against
the source file: the importer finds the marker in both (normalised cross-correlation) and aligns them,
whatever the round trip up to ``MAX_ROUND_TRIP_SECONDS``; then it drops everything before the program.
"""

from __future__ import annotations

import numpy as np

SYNC_PRE_SECONDS = 0.5
SYNC_MARKER_SECONDS = 0.3
SYNC_GAP_SECONDS = 1.2  # longer than the round trips searched, so the program never overlaps the marker
SYNC_TAIL_SECONDS = 1.0
SYNC_LEVEL = 0.1  # RMS of the marker noise (-20 dBFS)
SYNC_SEED = 0x5EC
MAX_ROUND_TRIP_SECONDS = 1.0
MIN_MARKER_CORRELATION = 0.5  # a return this unlike the marker is not the marker (wrong file or channel)
INPUT_MARKER_CORRELATION = 0.999  # an input file carries the marker if it starts with it this exactly


def sync_marker(sample_rate: int) -> np.ndarray:
    """The marker noise at `sample_rate` (float32, deterministic)."""
    n = round(SYNC_MARKER_SECONDS * sample_rate)
    return (SYNC_LEVEL * np.random.default_rng(SYNC_SEED).standard_normal(n)).astype(np.float32)


def program_start(sample_rate: int) -> int:
    """Index of the program's first sample in a source file."""
    return (round(SYNC_PRE_SECONDS * sample_rate) + round(SYNC_MARKER_SECONDS * sample_rate)
            + round(SYNC_GAP_SECONDS * sample_rate))


def with_sync_marker(program: np.ndarray, sample_rate: int) -> np.ndarray:
    """pre-roll silence + marker + gap + `program` + tail silence, float32."""
    silence = lambda seconds: np.zeros(round(seconds * sample_rate), np.float32)  # noqa: E731
    return np.concatenate([silence(SYNC_PRE_SECONDS), sync_marker(sample_rate), silence(SYNC_GAP_SECONDS),
                           np.asarray(program, np.float32), silence(SYNC_TAIL_SECONDS)])


def find_marker(audio: np.ndarray, sample_rate: int, search_seconds: float) -> tuple[int, float]:
    """(start, normalised correlation) of the marker's best match in the first `search_seconds` +
    marker length of `audio`; the correlation's absolute value (a polarity flip still finds it)."""
    marker = sync_marker(sample_rate).astype(np.float64)
    m = len(marker)
    window = np.asarray(audio[:round(search_seconds * sample_rate) + m], np.float64)
    if len(window) < m:
        return 0, 0.0
    size = 1 << (len(window) + m).bit_length()
    corr = np.fft.irfft(np.fft.rfft(window, size) * np.conj(np.fft.rfft(marker, size)), size)[:len(window) - m + 1]
    energy = np.concatenate([[0.0], np.cumsum(window ** 2)])
    local = energy[m:] - energy[:-m]
    normalised = np.abs(corr) / np.sqrt(np.maximum(local, 1e-20) * float(marker @ marker))
    normalised[local < 1e-12 * m] = 0.0  # digital silence is no match
    start = int(np.argmax(normalised))
    return start, float(normalised[start])


def starts_with_marker(audio: np.ndarray, sample_rate: int) -> bool:
    """True when `audio` is a source file: the marker sits exactly after the pre-roll."""
    pre = round(SYNC_PRE_SECONDS * sample_rate)
    marker = sync_marker(sample_rate).astype(np.float64)
    segment = np.asarray(audio[pre:pre + len(marker)], np.float64)
    if len(segment) < len(marker):
        return False
    denominator = np.sqrt(float(segment @ segment) * float(marker @ marker))
    return denominator > 0 and float(segment @ marker) / denominator >= INPUT_MARKER_CORRELATION
