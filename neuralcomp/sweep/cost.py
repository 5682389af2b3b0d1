"""A trained model's real-time cost: multiply-adds per output sample and measured microseconds per
64-sample buffer through the fastest host available (native engine, else C++ libtorch host), one thread."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from neuralcomp.config import SPTModConfig

COST_BUFFER = 64  # samples per host call, the paper's real-time question


def cost_backend() -> str:
    """The host a cost is measured on: "native" when that backend exists, else "cpp" when built, else "python"."""
    from neuralcomp.host import processor

    if "native" in processor.BACKENDS:
        return "native"
    return "cpp" if processor.cpp_host_available() else "python"


def model_cost(config: SPTModConfig, model_path: Path, seconds: float = 1.0) -> dict[str, Any]:
    """Multiply-adds per sample (streaming form) and µs per 64-sample buffer (p50 and mean, one thread)."""
    from neuralcomp.bench import bench_case
    from neuralcomp.model.complexity import complexity

    backend = cost_backend()
    row = bench_case(model_path, backend, config.sample_rate, COST_BUFFER, seconds)
    counts = complexity(config)
    return {"macs_per_sample": counts.macs_streaming, "parameters": counts.processor_parameters,
            "backend": backend, "buffer": COST_BUFFER, "us_per_buffer_p50": row.p50_us,
            "us_per_buffer_mean": row.real_time_factor * COST_BUFFER / config.sample_rate * 1e6,
            "real_time_factor": row.real_time_factor}
