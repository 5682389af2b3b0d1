"""Latency report: what a model costs per buffer, per backend, buffer size and sample rate.

A command that prints and writes figures (JSON, Markdown, PNG), not a test. Every case streams
noise through a fresh stream, single thread, after a warm-up, and times each buffer: p50 / p99 /
p99.9 / max, the real-time factor (processing time / audio duration), deadline misses (buffers that
took longer than their own duration) and the latency a user hears: algorithmic (model plus
resampling) plus buffering (one buffer).

Backends: "native" (the native C++ engine), "torchscript" (the libtorch C++ host; "cpp" is an alias),
"python" (the same TorchScript file from Python) and "eager" (the training-time PyTorch module, fed
whole pooling frames, as research code would run it). The C++ backends are timed in C++ around each
call at the model's rate (no Python in the measurement); at other rates the Python resamplers run
between calls and are timed with them. A keyed (sidechain) model gets a noise key of its own, at every
rate (the processor resamples the key beside the audio); the C++ backends time it in C++ too.
"""

from __future__ import annotations

import json
import platform
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

DEFAULT_BUFFER_SIZES = (16, 32, 64, 128, 256, 512, 1024, 2048, 4096)
DEFAULT_SAMPLE_RATES = (44100, 48000, 96000)
BACKENDS = ("native", "torchscript", "python", "eager")
_ALIASES = {"cpp": "torchscript"}


@dataclass(frozen=True)
class BenchRow:
    backend: str
    sample_rate: int
    buffer_size: int
    calls: int
    p50_us: float
    p99_us: float
    p999_us: float
    max_us: float
    real_time_factor: float  # total processing time / total audio duration
    deadline_misses: int
    algorithmic_latency_samples: int
    buffering_latency_samples: int
    gflops: float = 0.0  # the model's arithmetic (2 x multiply-adds per sample) per second of p50 time

    @property
    def latency_ms(self) -> float:
        return 1000.0 * (self.algorithmic_latency_samples + self.buffering_latency_samples) / self.sample_rate


@dataclass
class LatencyReport:
    model: str
    model_name: str
    mode: str
    machine: dict[str, Any]
    rows: list[BenchRow] = field(default_factory=list)
    multiply_adds_per_sample: float = 0.0

    def to_json(self) -> str:
        rows = [dict(asdict(r), latency_ms=r.latency_ms) for r in self.rows]
        return json.dumps({"model": self.model, "model_name": self.model_name, "mode": self.mode,
                           "machine": self.machine, "multiply_adds_per_sample": self.multiply_adds_per_sample,
                           "rows": rows}, indent=2)

    def to_markdown(self) -> str:
        m = self.machine
        lines = [
            f"{self.model_name} ({self.mode}); {m['cpu']}, {m['cores']} cores; torch {m['torch']}; "
            f"C++ built with {m['cpp_compiler']}; one thread; {self.multiply_adds_per_sample:.0f} multiply-adds "
            f"per sample; single-core peak {m.get('peak_gflops', 0):.1f} GFLOP/s (float32 matmul)",
            "",
            "| backend | rate | buffer | p50 µs | p99 µs | p99.9 µs | max µs | RTF | deadline misses | "
            "latency samples (algorithmic + buffer) | latency ms | GFLOP/s at p50 |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for r in self.rows:
            lines.append(
                f"| {r.backend} | {r.sample_rate} | {r.buffer_size} | {r.p50_us:.1f} | {r.p99_us:.1f} | "
                f"{r.p999_us:.1f} | {r.max_us:.1f} | {r.real_time_factor:.4f} | {r.deadline_misses}/{r.calls} | "
                f"{r.algorithmic_latency_samples} + {r.buffering_latency_samples} | {r.latency_ms:.2f} | "
                f"{r.gflops:.2f} |"
            )
        return "\n".join(lines)

    def plot(self, path: Path) -> None:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(8, 5))
        for backend in sorted({r.backend for r in self.rows}):
            for rate in sorted({r.sample_rate for r in self.rows}):
                rows = [r for r in self.rows if r.backend == backend and r.sample_rate == rate]
                if rows:
                    ax.plot([r.buffer_size for r in rows], [r.real_time_factor for r in rows], marker="o",
                            label=f"{backend} @ {rate / 1000:g} kHz")
        ax.axhline(1.0, color="red", linestyle="--", linewidth=1, label="real time")
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("buffer size (samples)")
        ax.set_ylabel("real-time factor (processing time / audio duration)")
        ax.set_title(f"{self.model_name} ({self.mode}), one thread")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(path, dpi=120)
        plt.close(fig)


def machine_info() -> dict[str, Any]:
    import os

    import torch

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    compiler, arch = "not built", ""
    for module in ("_native", "_cpp_host"):
        try:
            host_module = __import__(f"neuralcomp.host.{module}", fromlist=["COMPILER"])
        except ImportError:
            continue
        compiler = getattr(host_module, "COMPILER", "unknown")
        arch = getattr(host_module, "TARGET_ARCH", arch)
        break
    return {"cpu": cpu, "cores": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
            "torch": torch.__version__, "cpp_compiler": compiler, "engine_arch": arch,
            "torch_build": _torch_compiler(), "peak_gflops": peak_gflops()}


def peak_gflops(size: int = 512, repeats: int = 20) -> float:
    """Single-core float32 matmul throughput (torch, one thread): the arithmetic ceiling of this core."""
    import torch

    torch.set_num_threads(1)
    a = torch.randn(size, size)
    b = torch.randn(size, size)
    torch.mm(a, b)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        torch.mm(a, b)
        times.append(time.perf_counter() - t0)
    return 2 * size ** 3 / float(np.median(times)) / 1e9


def _torch_compiler() -> str:
    import torch

    for line in torch.__config__.show().splitlines():
        if "GCC" in line or "clang" in line.lower():
            return line.strip().lstrip("- ")
    return "unknown"


class _EagerHost:
    """The training module (SPTMod or TCN) streamed the way research code runs it: whole pooling frames
    only, so output is delayed by P - 1 samples (none for a TCN, whose frame is one sample). Same
    interface as the hosts (process with an optional sidechain, reset, ...)."""

    def __init__(self, path: Path) -> None:
        import torch

        from export.reexport import model_from_exported
        from neuralcomp.host.torchscript_host import load_torchscript
        from neuralcomp.metadata import parse_metadata

        meta = parse_metadata(str(load_torchscript(path).metadata_json), str(path))
        self._torch = torch
        self.model = model_from_exported(path)[0].eval()
        self.sample_rate = int(meta["sample_rate"])
        self.pool = int(meta["pool_size"])
        # whole frames only: P - 1 samples of buffering, which also covers paper mode's look-ahead
        self.latency_samples = self.pool - 1
        self.sidechain_channels = int(getattr(self.model.config, "sidechain", 0))
        self._controls = torch.tensor([[c.normalise(c.default) for c in self.model.config.controls]],
                                      dtype=torch.float32)
        self.reset(1)

    def reset(self, channels: int | None = None) -> None:
        torch = self._torch
        self.channels = channels or self.channels
        with torch.inference_mode():
            self.state = self.model.start_state(self._controls.expand(self.channels, -1))
        self.pending = np.zeros((self.channels, 0), np.float32)
        self.pending_key = np.zeros((self.channels * self.sidechain_channels, 0), np.float32)
        self.queue = np.zeros((self.channels, self.pool - 1), np.float32)

    def process(self, x: np.ndarray, sidechain: np.ndarray | None = None) -> np.ndarray:
        """x (C, T) -> (C, T); `sidechain` (C·S, T) for a keyed model, rows c·S … c·S + S − 1 keying
        channel c."""
        torch = self._torch
        buffered = np.concatenate([self.pending, x], axis=1)
        whole = buffered.shape[1] // self.pool * self.pool
        self.pending = buffered[:, whole:]
        keyed = {}
        if self.sidechain_channels:
            keys = np.concatenate([self.pending_key, sidechain], axis=1)
            self.pending_key = keys[:, whole:]
            keyed = {"sidechain": torch.from_numpy(np.ascontiguousarray(keys[:, :whole])).view(
                self.channels, self.sidechain_channels, whole)}
        if whole:
            with torch.inference_mode():
                y, self.state = self.model(torch.from_numpy(buffered[:, None, :whole]),
                                           self._controls.expand(self.channels, -1), self.state, **keyed)
            self.queue = np.concatenate([self.queue, y[:, 0].numpy()], axis=1)
        out, self.queue = self.queue[:, : x.shape[1]], self.queue[:, x.shape[1]:]
        return out


def _open(path: Path, backend: str) -> Any:
    """The object a bench case drives: the eager host, or a Processor on the cpp / python backend."""
    from neuralcomp.host.processor import load

    if backend == "eager":
        return _EagerHost(path)
    return load(path, backend=backend)


def bench_case(path: Path, backend: str, sample_rate: int, buffer_size: int, seconds: float = 1.0,
               warmup_calls: int = 20, seed: int = 0, multiply_adds_per_sample: float = 0.0) -> BenchRow:
    """Stream `seconds` of noise at `sample_rate` in buffers of `buffer_size` and time each call; a keyed
    model gets a noise key of its own, streamed alongside (the C++ timers take it too)."""
    import torch

    torch.set_num_threads(1)
    backend = _ALIASES.get(backend, backend)
    target = _open(path, backend)
    keys = target.sidechain_channels
    if backend == "eager":
        if sample_rate != target.sample_rate:
            raise ValueError("the eager backend runs at the model's rate only")
        target.reset(1)
        call, latency = target.process, target.latency_samples
    elif sample_rate == target.sample_rate:
        host = target._host  # the host call itself, without the Processor's input checks
        host.reset(1)
        call, latency = host.process, target.latency_samples
    else:
        target.process(np.zeros((1, 0), np.float32), sample_rate,  # reset at this rate
                       **({"sidechain": np.zeros((keys, 0), np.float32)} if keys else {}))
        call = lambda block, **key: target.process(block, sample_rate, reset=False, **key)  # noqa: E731
        latency = target.latency_at(sample_rate)
    calls = max(30, int(seconds * sample_rate / buffer_size))
    rng = np.random.default_rng(seed)
    total = buffer_size * (calls + warmup_calls)
    audio = (0.25 * rng.standard_normal((1, total))).astype(np.float32)
    key = (0.25 * rng.standard_normal((keys, total))).astype(np.float32) if keys else None

    def arguments(start: int) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        block = np.ascontiguousarray(audio[:, start:start + buffer_size])
        return block, ({} if key is None else {"sidechain": np.ascontiguousarray(key[:, start:start + buffer_size])})

    if backend != "eager" and sample_rate == target.sample_rate and hasattr(target._host, "time_buffers"):
        keyed = {} if key is None else {"sidechain": key}
        times = np.asarray(target._host.time_buffers(audio, buffer_size, warmup_calls, **keyed))  # timed in C++
    else:
        for i in range(warmup_calls):
            block, keyed = arguments(i * buffer_size)
            call(block, **keyed)
        times = np.empty(calls)
        for i in range(calls):
            block, keyed = arguments((warmup_calls + i) * buffer_size)
            t0 = time.perf_counter()
            call(block, **keyed)
            times[i] = time.perf_counter() - t0
    duration = buffer_size / sample_rate
    p50, p99, p999 = np.percentile(times, [50, 99, 99.9])
    # real-time factor = processing time / audio duration, over all timed calls (a median would hide
    # backends that work on every P-th call only)
    return BenchRow(backend, sample_rate, buffer_size, calls, p50 * 1e6, p99 * 1e6, p999 * 1e6, times.max() * 1e6,
                    times.mean() / duration, int((times > duration).sum()), int(latency), buffer_size,
                    2 * multiply_adds_per_sample * buffer_size / p50 / 1e9)


def latency_report(path: Path, backends=("native", "torchscript", "python", "eager"),
                   buffer_sizes=DEFAULT_BUFFER_SIZES, sample_rates=DEFAULT_SAMPLE_RATES, seconds: float = 1.0,
                   progress=None) -> LatencyReport:
    from neuralcomp.host.torchscript_host import load_torchscript
    from neuralcomp.metadata import parse_metadata
    from neuralcomp.config import model_config_from_dict
    from neuralcomp.model.complexity import complexity

    meta = parse_metadata(str(load_torchscript(path).metadata_json), str(path))
    report = LatencyReport(str(path), meta["model_config"]["name"], meta["mode"], machine_info())
    config = model_config_from_dict(meta["model_config"])
    report.multiply_adds_per_sample = complexity(config).macs_streaming
    for backend in backends:
        for rate in sample_rates:
            if backend == "eager" and rate != meta["sample_rate"]:  # the training module has no resampler
                continue
            for size in buffer_sizes:
                row = bench_case(path, backend, rate, size, seconds,
                                 multiply_adds_per_sample=report.multiply_adds_per_sample)
                report.rows.append(row)
                if progress:
                    progress(row)
    return report


def write_report(report: LatencyReport, out_dir: Path) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [out_dir / "latency.json", out_dir / "latency.md", out_dir / "latency.png"]
    paths[0].write_text(report.to_json())
    paths[1].write_text(report.to_markdown() + "\n")
    report.plot(paths[2])
    return paths


__all__ = ["BenchRow", "LatencyReport", "bench_case", "latency_report", "machine_info", "write_report"]
