"""What a live session measured (`LiveSummary`, printed at the end) and what it recorded (`LiveRecording`)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

XRUN_KINDS = ("input_underflow", "input_overflow", "output_underflow", "output_overflow")


@dataclass
class ControlChange:
    """A control change as applied: before processing callback `callback` (input frame `frame`)."""

    callback: int
    frame: int
    name: str
    value: float


@dataclass
class LiveRecording:
    """What a session received and produced, (channels, frames) float32, and the control history."""

    input: np.ndarray
    output: np.ndarray
    sample_rate: float
    blocksize: int
    initial_controls: dict[str, float]
    control_changes: list[ControlChange]
    truncated: bool  # the recording buffer filled before the stream ended
    sidechain: np.ndarray | None = None  # the key received on the sidechain inputs (keyed models), else None


@dataclass
class LiveSummary:
    """Counts, callback timing, latency and settings of one run; `format()` is the end-of-run report."""

    callbacks: int = 0
    frames: int = 0
    seconds: float = 0.0
    sample_rate: float = 0.0
    blocksize: int = 0
    channels: int = 0
    xruns: dict[str, int] = field(default_factory=lambda: dict.fromkeys(XRUN_KINDS, 0))
    callback_us_p50: float = 0.0
    callback_us_p99: float = 0.0
    callback_us_max: float = 0.0
    deadline_misses: int = 0
    errors: list[str] = field(default_factory=list)
    nonfinite_buffers: int = 0
    control_changes: int = 0
    model_latency_samples: int = 0  # at the stream's rate, resamplers included (Processor.latency_at)
    model_sample_rate: float = 0.0  # the model's own rate: the host resamples when it differs
    buffering_samples: int = 0
    stream_latency_s: tuple[float, float] = (0.0, 0.0)  # (input, output) as reported by PortAudio
    stopped_by: str = ""
    backend: str = ""
    level_trims_db: tuple[float, float] = (0.0, 0.0)  # the processor's (input_level_db, output_level_db)
    sidechain_inputs: int = 0  # capture channels after the audio ones that key the model

    @property
    def xrun_count(self) -> int:
        return sum(self.xruns.values())

    @property
    def latency_samples(self) -> int:
        """Model latency (resampling included) plus one block of buffering (not the device's own buffers)."""
        return self.model_latency_samples + self.buffering_samples

    @property
    def latency_ms(self) -> float:
        return 1000.0 * self.latency_samples / self.sample_rate if self.sample_rate else 0.0

    @property
    def round_trip_ms(self) -> float:
        """latency_ms plus the input and output latency the stream reported."""
        return self.latency_ms + 1000.0 * sum(self.stream_latency_s)

    @property
    def cpu_load_p50(self) -> float:
        block = self.blocksize / self.sample_rate if self.sample_rate and self.blocksize else 0.0
        return self.callback_us_p50 * 1e-6 / block if block else 0.0

    @property
    def cpu_load_max(self) -> float:
        block = self.blocksize / self.sample_rate if self.sample_rate and self.blocksize else 0.0
        return self.callback_us_max * 1e-6 / block if block else 0.0

    def _model_part(self) -> str:
        resampled = self.model_sample_rate and self.model_sample_rate != self.sample_rate
        return f"model at {self.model_sample_rate:g} Hz with resampling" if resampled else "model"

    def format(self) -> str:
        xr = ", ".join(f"{k} {v}" for k, v in self.xruns.items())
        lines = [
            f"live summary ({self.backend} backend, stopped by {self.stopped_by or '?'})",
            f"  ran         {self.seconds:.2f} s: {self.callbacks} callbacks, {self.frames} frames, "
            f"{self.channels} ch at {self.sample_rate:g} Hz, blocksize {self.blocksize}"
            + (f", {self.sidechain_inputs} sidechain input(s)" if self.sidechain_inputs else ""),
            f"  xruns       {self.xrun_count} ({xr})",
            f"  callback    p50 {self.callback_us_p50:.0f} us, p99 {self.callback_us_p99:.0f} us, "
            f"max {self.callback_us_max:.0f} us; CPU load p50 {100 * self.cpu_load_p50:.1f}%, "
            f"max {100 * self.cpu_load_max:.1f}%",
            f"  deadlines   {self.deadline_misses} callback(s) took longer than a block",
            f"  nonfinite   {self.nonfinite_buffers} input buffer(s) held NaN/Inf (muted)",
            f"  controls    {self.control_changes} change(s) while running",
            f"  level trims input {self.level_trims_db[0]:+.2f} dB, output {self.level_trims_db[1]:+.2f} dB",
            f"  latency     {self.latency_samples} samples = {self.latency_ms:.2f} ms ({self._model_part()} "
            f"{self.model_latency_samples} + buffering {self.buffering_samples}); stream reports "
            f"in {1000 * self.stream_latency_s[0]:.2f} ms + out {1000 * self.stream_latency_s[1]:.2f} ms; "
            f"round trip ~{self.round_trip_ms:.2f} ms",
        ]
        lines.append(f"  errors      {len(self.errors)}" + "".join(f"\n    {e}" for e in self.errors))
        return "\n".join(lines)
