"""Latency benchmark: per-buffer processing time of an exported model, per backend and buffer size.

A command that prints figures, not a test. Figures are medians and percentiles of one run, single
thread, after a warm-up; the real-time factor is processing time / audio duration.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from neuralcomp.host.processor import Processor

DEFAULT_BUFFER_SIZES = (32, 64, 128, 256, 512, 1024, 2048, 4096)


@dataclass(frozen=True)
class BenchResult:
    backend: str
    buffer_size: int
    calls: int
    p50_us: float
    p99_us: float
    max_us: float
    real_time_factor: float  # median time per buffer / buffer duration


def bench_processor(processor: Processor, buffer_size: int, seconds: float = 2.0, warmup_calls: int = 20,
                    seed: int = 0) -> BenchResult:
    """Stream `seconds` of noise through `processor` in buffers of `buffer_size` and time each call."""
    rate = processor.sample_rate
    calls = max(20, int(seconds * rate / buffer_size))
    rng = np.random.default_rng(seed)
    audio = (0.25 * rng.standard_normal((1, buffer_size * (calls + warmup_calls)))).astype(np.float32)
    host = processor._host  # time the host call itself, without the Processor's input checks
    host.reset(1)
    times = np.empty(calls)
    for i in range(warmup_calls):
        host.process(audio[:, i * buffer_size:(i + 1) * buffer_size])
    for i in range(calls):
        start = (warmup_calls + i) * buffer_size
        block = np.ascontiguousarray(audio[:, start:start + buffer_size])
        t0 = time.perf_counter()
        host.process(block)
        times[i] = time.perf_counter() - t0
    p50, p99 = np.percentile(times, [50, 99])
    return BenchResult(processor.backend, buffer_size, calls, p50 * 1e6, p99 * 1e6, times.max() * 1e6,
                       p50 / (buffer_size / rate))


def format_table(results: list[BenchResult]) -> str:
    lines = ["| backend | buffer | calls | p50 µs | p99 µs | max µs | real-time factor |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for r in results:
        lines.append(f"| {r.backend} | {r.buffer_size} | {r.calls} | {r.p50_us:.0f} | {r.p99_us:.0f} | "
                     f"{r.max_us:.0f} | {r.real_time_factor:.3f} |")
    return "\n".join(lines)
