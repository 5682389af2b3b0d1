"""`neuralcomp bench-plugin`: the cost of a model's plugin beside the bare native engine.

Both run the same stereo noise buffer by buffer at the model's rate, one thread. From Python: the engine
through its module `_native`, the VST3 plugin through pedalboard (which adds its own per-call work); the
difference per buffer is the overhead a pedalboard user sees. With --clap and --clap-host, also in C++:
the CLAP plugin in nc-clap-host against the engine's C API in the same program, without Python.
"""

from __future__ import annotations

import re
import subprocess
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

from neuralcomp.errors import NeuralcompError

__all__ = ["bench_clap", "bench_plugin"]


def _time_buffers(process: Callable[[np.ndarray], Any], audio: np.ndarray, buffer: int, repeats: int) -> float:
    """Best over `repeats` of the mean seconds per buffer over the whole signal."""
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        for i in range(0, audio.shape[1] - buffer + 1, buffer):
            process(audio[:, i:i + buffer])
        best = min(best, (time.perf_counter() - started) / (audio.shape[1] // buffer))
    return best


def bench_plugin(model: Path, vst3: Path, buffers: list[int], seconds: float = 2.0,
                 repeats: int = 3) -> list[dict[str, float]]:
    """Per buffer size: engine and plugin microseconds per buffer, real-time factors and the overhead."""
    import pedalboard

    from neuralcomp.host._native import Host

    engine = Host(str(model), 2, 4096)
    rate = int(engine.sample_rate)
    plugin = pedalboard.load_plugin(str(vst3))
    rng = np.random.default_rng(0)
    audio = (0.2 * rng.standard_normal((2, int(seconds * rate)))).astype(np.float32)
    rows = []
    for buffer in buffers:
        if buffer > audio.shape[1]:
            raise NeuralcompError(f"buffer {buffer} is longer than the {seconds} s of test audio")
        engine.reset()
        engine_s = _time_buffers(engine.process, audio, buffer, repeats)
        plugin.reset()
        plugin_s = _time_buffers(lambda x: plugin.process(x, rate, reset=False), audio, buffer, repeats)
        budget = buffer / rate
        rows.append({"buffer": buffer, "engine_us": engine_s * 1e6, "plugin_us": plugin_s * 1e6,
                     "engine_rtf": engine_s / budget, "plugin_rtf": plugin_s / budget,
                     "overhead_us": (plugin_s - engine_s) * 1e6})
    return rows


def _clap_host_bench(clap_host: Path, target: list[str], buffer: int, seconds: float) -> float:
    run = subprocess.run([str(clap_host), *target, "--bench", str(buffer), "--seconds", str(seconds)],
                         capture_output=True, text=True, timeout=600)
    found = re.search(r"mean_us ([0-9.]+)", run.stdout)
    if run.returncode != 0 or not found:
        raise NeuralcompError(f"nc-clap-host failed: {run.stderr.strip() or run.stdout.strip()}")
    return float(found.group(1))


def bench_clap(model: Path, clap: Path, clap_host: Path, buffers: list[int], seconds: float = 2.0,
               repeats: int = 3) -> list[dict[str, float]]:
    """The same comparison in C++: the CLAP plugin in nc-clap-host vs the engine's C API (best of `repeats`)."""
    from neuralcomp.host._native import Host

    rate = int(Host(str(model), 1, 64).sample_rate)
    rows = []
    for buffer in buffers:
        engine_us = min(_clap_host_bench(clap_host, ["--engine", str(model)], buffer, seconds) for _ in range(repeats))
        plugin_us = min(_clap_host_bench(clap_host, [str(clap), "--rate", str(rate)], buffer, seconds)
                        for _ in range(repeats))
        budget_us = buffer / rate * 1e6
        rows.append({"buffer": buffer, "engine_us": engine_us, "plugin_us": plugin_us,
                     "engine_rtf": engine_us / budget_us, "plugin_rtf": plugin_us / budget_us,
                     "overhead_us": plugin_us - engine_us})
    return rows
