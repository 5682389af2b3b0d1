"""Live audio: run an exported model on a sound card (or an audio server) in real time.

`LiveSession(processor, ...)` opens a duplex `sounddevice.Stream`; its callback sends every input
block through `processor.process(block, rate, reset=False)` and plays the result. The session
counts callbacks, xruns (by kind), per-callback processing time (in a preallocated ring), deadline
misses and NaN/Inf input buffers (which the processor mutes), applies control changes from any
thread at the next callback boundary, can record exactly what it received and produced (so the
run can be re-rendered offline and compared bit for bit), and always closes the stream.

sounddevice (and through it PortAudio) is imported only when a session or the command needs it:
PortAudio lists the audio devices when it is first imported, so an audio server (e.g. JACK) must
be running by then.
"""

from __future__ import annotations

import collections
import os
import select
import sys
import threading
import time
import traceback
import warnings
from dataclasses import dataclass, field
from typing import Any, TextIO

import numpy as np

from neuralcomp.errors import AudioInputError, ControlError, NeuralcompError

XRUN_KINDS = ("input_underflow", "input_overflow", "output_underflow", "output_overflow")
DEFAULT_BLOCKSIZE = 256
WARMUP_BLOCKS = 8
TIMING_RING = 1 << 16  # callback times kept for percentiles (~6 min at 256 samples / 44.1 kHz)


class LiveAudioError(NeuralcompError):
    """The live audio path cannot run: no devices, an unknown device, or settings a device refuses."""


def _sounddevice():
    """Import sounddevice lazily (PortAudio enumerates devices on import)."""
    try:
        import sounddevice
    except OSError as exc:  # sounddevice raises OSError when the PortAudio library is missing
        raise LiveAudioError(
            f"cannot load PortAudio ({exc}); install it (e.g. `apt-get install libportaudio2`)"
        ) from exc
    return sounddevice


def _single_threaded_here() -> None:
    """Make libtorch run single-threaded in the calling (audio) thread.

    The hosts call at::set_num_threads(1) when they load, but with libtorch's OpenMP backend that
    sets the OpenMP thread count of the loading thread only: the audio thread (created by the audio
    API, e.g. libjack) would otherwise start its own OpenMP team of one thread per core, whose
    spinning workers starve the audio server (measured: 0.3-0.9 s callbacks and dozens of xruns per
    second on 2 cores). Called once per audio thread, from its first callback.
    """
    torch = sys.modules.get("torch")
    if torch is None:
        try:
            import torch
        except ImportError:
            return
    torch.set_num_threads(1)


# ---- devices --------------------------------------------------------------------------------------
def format_devices(sd: Any = None) -> str:
    """One line per audio device: index, name, host API, channels and default rate."""
    sd = sd or _sounddevice()
    devices = sd.query_devices()
    if len(devices) == 0:
        return "  (none)"
    apis = sd.query_hostapis()
    lines = []
    for dev in devices:
        api = apis[dev["hostapi"]]["name"] if dev["hostapi"] < len(apis) else "?"
        lines.append(
            f"  {dev['index']:>3} {dev['name']!r} ({api}): {dev['max_input_channels']} in, "
            f"{dev['max_output_channels']} out, default {dev['default_samplerate']:g} Hz"
        )
    return "\n".join(lines)


def _device_spec(value: Any) -> Any:
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value)
    return value


def resolve_device(spec: Any, kind: str, sd: Any = None) -> dict:
    """The device dict (sounddevice.query_devices) for `spec` (index, name or name part, or None
    for the default) with channels of `kind` ("input" or "output"); LiveAudioError otherwise."""
    sd = sd or _sounddevice()
    devices = sd.query_devices()
    if len(devices) == 0:
        raise LiveAudioError(
            "no audio devices found: PortAudio sees none (is a sound card present, or an audio server "
            "such as JACK running before neuralcomp started?)"
        )
    key = "max_input_channels" if kind == "input" else "max_output_channels"
    spec = _device_spec(spec)
    if spec is None:
        default = sd.default.device[0 if kind == "input" else 1]
        if isinstance(default, str):
            return resolve_device(default, kind, sd)
        if default is None or int(default) < 0:
            candidates = [d for d in devices if d[key] > 0]
            if not candidates:
                raise LiveAudioError(f"no audio device has {kind} channels; devices:\n{format_devices(sd)}")
            return dict(candidates[0])
        spec = int(default)
    if isinstance(spec, int):
        if not 0 <= spec < len(devices):
            raise LiveAudioError(
                f"no audio device with index {spec}; available devices:\n{format_devices(sd)}"
            )
        dev = devices[spec]
    else:
        text = str(spec)
        matches = [d for d in devices if d[key] > 0 and d["name"] == text]
        if not matches:
            matches = [d for d in devices if d[key] > 0 and text.lower() in d["name"].lower()]
        if not matches:
            raise LiveAudioError(
                f"no {kind} device matches {text!r}; available devices:\n{format_devices(sd)}"
            )
        if len(matches) > 1:
            names = ", ".join(f"{d['index']} {d['name']!r}" for d in matches)
            raise LiveAudioError(f"{kind} device {text!r} is ambiguous ({names}); give its index")
        dev = matches[0]
    if dev[key] < 1:
        raise LiveAudioError(
            f"device {dev['index']} {dev['name']!r} has no {kind} channels; available devices:\n"
            f"{format_devices(sd)}"
        )
    return dict(dev)


def _check_settings(sd: Any, dev: dict, kind: str, channels: int, samplerate: float) -> None:
    check = sd.check_input_settings if kind == "input" else sd.check_output_settings
    try:
        check(device=dev["index"], channels=channels, dtype="float32", samplerate=samplerate)
    except (sd.PortAudioError, ValueError) as exc:
        key = "max_input_channels" if kind == "input" else "max_output_channels"
        raise LiveAudioError(
            f"{kind} device {dev['index']} {dev['name']!r} does not support {channels} channel(s) at "
            f"{samplerate:g} Hz ({exc}); the device has {dev[key]} {kind} channel(s) and runs at "
            f"{dev['default_samplerate']:g} Hz by default"
        ) from exc


# ---- results ----------------------------------------------------------------------------------------
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


@dataclass
class LiveSummary:
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
            f"{self.channels} ch at {self.sample_rate:g} Hz, blocksize {self.blocksize}",
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


# ---- the session -------------------------------------------------------------------------------------
class LiveSession:
    """A processor on a duplex audio stream. Use `run(duration)`; `set_control` and `stop` may be
    called from any thread while it runs.

    device: one device for both directions (index or name, None = default); input_device and
    output_device override it per direction. samplerate None: the output device's default rate (the
    processor resamples when it differs from the model's). channels None:
    up to 2, as many as both devices have. record=True keeps the first `record_seconds` of what was
    received and produced (preallocated) for `recording()`. status_interval: seconds between
    status lines (None: none). Controls are read from the terminal (`NAME=VALUE`, `q`) when stdin
    is a TTY, or always with terminal_controls=True, or from control_input (a file or fd).
    on_open(stream): called after the stream is opened and before it starts (its ports exist then,
    e.g. to connect them on a JACK server).
    """

    def __init__(
        self,
        processor: Any,
        *,
        device: Any = None,
        input_device: Any = None,
        output_device: Any = None,
        samplerate: float | None = None,
        blocksize: int = DEFAULT_BLOCKSIZE,
        channels: int | None = None,
        latency: Any = "low",
        record: bool = False,
        record_seconds: float = 60.0,
        status_interval: float | None = 1.0,
        out: TextIO | None = None,
        terminal_controls: bool | None = None,
        control_input: Any = None,
        on_open: Any = None,
    ) -> None:
        if int(blocksize) != blocksize or blocksize < 0:
            raise LiveAudioError(f"blocksize must be a non-negative integer (0: variable), got {blocksize!r}")
        if channels is not None and (int(channels) != channels or channels < 1):
            raise LiveAudioError(f"channels must be a positive integer, got {channels!r}")
        if samplerate is not None and not samplerate > 0:
            raise LiveAudioError(f"samplerate must be positive, got {samplerate!r}")
        self.processor = processor
        self.device = device
        self.input_device = input_device
        self.output_device = output_device
        self.requested_samplerate = samplerate
        self.blocksize = int(blocksize)
        self.requested_channels = channels
        self.latency = latency
        self.record = record
        self.record_seconds = float(record_seconds)
        self.status_interval = status_interval
        self.out = out
        self.terminal_controls = terminal_controls
        self.control_input = control_input
        self.on_open = on_open
        self._ranges = {
            c["name"]: (float(c["minimum"]), float(c["maximum"]))
            for c in getattr(processor, "metadata", {}).get("controls", [])
        }
        self._pending: collections.deque = collections.deque()
        self._stop = threading.Event()
        self._running = False
        self._times = np.zeros(TIMING_RING, dtype=np.float64)
        self._reset_counters()

    # ---- control from other threads ----------------------------------------------------------
    def set_control(self, name: str, value: float) -> None:
        """Change a control; while running it applies at the start of the next callback.

        Raises ControlError (in the caller's thread) for an unknown name or out-of-range value.
        """
        names = self.processor.control_names
        if name not in names:
            raise ControlError(f"unknown control {name!r}; this model has {names or 'no controls'}")
        try:
            value = float(value)
        except (TypeError, ValueError) as exc:
            raise ControlError(f"control {name!r} needs a number, got {value!r}") from exc
        lo, hi = self._ranges.get(name, (-np.inf, np.inf))
        if not (lo <= value <= hi):
            raise ControlError(f"control {name!r} = {value} is outside its range [{lo}, {hi}]")
        if self._running:
            self._pending.append((name, value))  # deque append/popleft are atomic
        else:
            self.processor.set_control(name, value)

    def stop(self) -> None:
        """Ask a running session to stop (thread-safe); run() then returns its summary."""
        self._stop_reason = self._stop_reason or "stop()"
        self._stop.set()

    @property
    def callbacks(self) -> int:
        return self._callbacks

    @property
    def running(self) -> bool:
        """True from the moment the stream is started until it is closed."""
        return self._running

    def wait_running(self, timeout: float = 10.0, callbacks: int = 1) -> bool:
        """Block until the stream is running and has made `callbacks` callbacks (or timeout)."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self._running and self._callbacks >= callbacks:
                return True
            if self._stop.is_set() and not self._running and self._callbacks:
                return False
            time.sleep(0.005)
        return False

    # ---- recording ----------------------------------------------------------------------------
    def recording(self) -> LiveRecording:
        """Copies of what the last run received and produced (needs record=True)."""
        if not self.record or self._rec_in is None:
            raise LiveAudioError("this session was not recording: create it with record=True and run it")
        n = self._rec_pos
        return LiveRecording(
            input=np.ascontiguousarray(self._rec_in[:n].T),
            output=np.ascontiguousarray(self._rec_out[:n].T),
            sample_rate=self._rate,
            blocksize=self.blocksize,
            initial_controls=dict(self._initial_controls),
            control_changes=list(self._changes),
            truncated=self._rec_truncated,
        )

    # ---- internals ----------------------------------------------------------------------------
    def _reset_counters(self) -> None:
        self._callbacks = 0
        self._frames = 0
        self._xruns = dict.fromkeys(XRUN_KINDS, 0)
        self._misses = 0
        self._max_time = 0.0
        self._errors: list[str] = []
        self._changes: list[ControlChange] = []
        self._nonfinite_start = 0
        self._rec_in: np.ndarray | None = None
        self._rec_out: np.ndarray | None = None
        self._rec_pos = 0
        self._rec_truncated = False
        self._rate = 0.0
        self._audio_thread: int | None = None
        self._initial_controls: dict[str, float] = {}
        self._stop_reason = ""

    def _print(self, text: str) -> None:
        print(text, file=self.out or sys.stdout, flush=True)

    def _callback(self, indata: np.ndarray, outdata: np.ndarray, frames: int, time_info: Any, status: Any) -> None:
        start = time.perf_counter()
        index = self._callbacks
        if self._audio_thread != threading.get_ident():
            self._audio_thread = threading.get_ident()
            _single_threaded_here()
        try:
            if status:
                for kind in XRUN_KINDS:
                    if getattr(status, kind):
                        self._xruns[kind] += 1
            while self._pending:
                name, value = self._pending.popleft()
                self.processor.set_control(name, value)
                self._changes.append(ControlChange(index, self._frames, name, value))
            y = self.processor.process(indata.T, self._rate, reset=False)
            if y.shape != (indata.shape[1], frames):
                raise RuntimeError(f"the processor returned shape {y.shape} for a block of {frames} frames")
            outdata[:] = y.T
        except Exception as exc:  # noqa: BLE001 - anything here must not kill the audio thread
            outdata.fill(0)
            self._errors.append(
                f"callback {index}: {type(exc).__name__}: {exc}".strip()
                + " [" + " <- ".join(f"{f.name}:{f.lineno}" for f in reversed(traceback.extract_tb(exc.__traceback__))) + "]"
            )
            self._stop_reason = "error"
            self._finish(frames, indata, outdata, start)
            self._stop.set()
            import sounddevice

            raise sounddevice.CallbackAbort from exc
        self._finish(frames, indata, outdata, start)

    def _finish(self, frames: int, indata: np.ndarray, outdata: np.ndarray, start: float) -> None:
        if self._rec_in is not None:
            pos = self._rec_pos
            n = min(frames, self._rec_in.shape[0] - pos)
            if n > 0:
                self._rec_in[pos : pos + n] = indata[:n]
                self._rec_out[pos : pos + n] = outdata[:n]
                self._rec_pos = pos + n
            if n < frames:
                self._rec_truncated = True
        elapsed = time.perf_counter() - start
        self._times[self._callbacks % TIMING_RING] = elapsed
        if elapsed > self._max_time:
            self._max_time = elapsed
        if elapsed * self._rate > frames:
            self._misses += 1
        self._frames += frames
        self._callbacks += 1

    def _times_between(self, first: int, last: int) -> np.ndarray:
        first = max(first, last - TIMING_RING)
        if last <= first:
            return np.zeros(0)
        idx = np.arange(first, last) % TIMING_RING
        return self._times[idx]

    def _status_line(self, since: int, elapsed: float) -> str:
        now = self._callbacks
        t = self._times_between(since, now)
        block = (self.blocksize or DEFAULT_BLOCKSIZE) / self._rate
        p50 = float(np.median(t)) if t.size else 0.0
        mx = float(t.max()) if t.size else 0.0
        return (
            f"[live {elapsed:6.1f} s] callbacks {now}  xruns {sum(self._xruns.values())}  "
            f"callback p50 {1e6 * p50:.0f} us max {1e6 * mx:.0f} us  CPU load {100 * p50 / block:.1f}% "
            f"(max {100 * mx / block:.1f}%)  nonfinite {self.processor.nonfinite_buffers - self._nonfinite_start}"
            f"  deadline misses {self._misses}"
        )

    def _control_reader(self, source: Any) -> None:
        """Read `NAME=VALUE` / `q` lines until the session stops; errors are printed, not raised."""
        try:
            fd = source if isinstance(source, int) else source.fileno()
        except (AttributeError, OSError, ValueError):
            return
        buffer = b""
        while not self._stop.is_set():
            try:
                ready, _, _ = select.select([fd], [], [], 0.1)
            except (OSError, ValueError):
                return
            if not ready:
                continue
            try:
                chunk = os.read(fd, 4096)
            except OSError:
                return
            if not chunk:
                return  # EOF
            buffer += chunk
            while b"\n" in buffer:
                line, buffer = buffer.split(b"\n", 1)
                self._handle_line(line.decode(errors="replace").strip())

    def _handle_line(self, line: str) -> None:
        if not line:
            return
        if line.lower() in ("q", "quit", "exit"):
            self._stop_reason = self._stop_reason or "quit"
            self._stop.set()
            return
        name, sep, value = line.partition("=")
        if not sep:
            self._print(f"type NAME=VALUE to set a control ({', '.join(self.processor.control_names) or 'none'}) or q to quit")
            return
        try:
            self.set_control(name.strip(), value.strip())
        except (NeuralcompError, ValueError) as exc:
            self._print(f"error: {exc}")
        else:
            self._print(f"{name.strip()} = {float(value)} (from the next callback)")

    def _want_terminal(self) -> Any:
        if self.control_input is not None:
            return self.control_input
        if self.terminal_controls is False:
            return None
        stdin = sys.stdin
        if stdin is None:
            return None
        if self.terminal_controls:
            return stdin
        try:
            return stdin if stdin.isatty() else None
        except (AttributeError, ValueError, OSError):
            return None

    # ---- run ----------------------------------------------------------------------------------
    def _prepare(self, sd: Any) -> tuple[dict, dict, float, int]:
        in_dev = resolve_device(self.input_device if self.input_device is not None else self.device, "input", sd)
        out_dev = resolve_device(self.output_device if self.output_device is not None else self.device, "output", sd)
        channels = self.requested_channels
        if channels is None:
            channels = max(1, min(2, in_dev["max_input_channels"], out_dev["max_output_channels"]))
        # Default: the output device's own rate (a server such as JACK runs at one rate); the processor
        # resamples when it is not the model's.
        rate = float(self.requested_samplerate or out_dev["default_samplerate"] or self.processor.sample_rate)
        _check_settings(sd, in_dev, "input", channels, rate)
        _check_settings(sd, out_dev, "output", channels, rate)
        return in_dev, out_dev, rate, int(channels)

    def _warm_up(self, rate: float, channels: int) -> None:
        silence = np.zeros((channels, self.blocksize or DEFAULT_BLOCKSIZE), dtype=np.float32)
        try:
            for i in range(WARMUP_BLOCKS):
                self.processor.process(silence, rate, reset=(i == 0))
        except AudioInputError as exc:
            raise LiveAudioError(f"the model cannot run on this stream ({channels} ch at {rate:g} Hz): {exc}") from exc
        self.processor.reset()

    def run(self, duration: float | None = None) -> LiveSummary:
        """Open the stream, process until `duration` seconds, Ctrl-C, `q`, stop() or a callback error;
        print a status line about once a second; return the summary. The stream is always closed."""
        if self._running:
            raise LiveAudioError("this session is already running")
        if duration is not None and not duration > 0:
            raise LiveAudioError(f"duration must be positive seconds, got {duration!r}")
        sd = _sounddevice()
        in_dev, out_dev, rate, channels = self._prepare(sd)
        self._warm_up(rate, channels)

        self._reset_counters()
        self._stop.clear()
        self._pending.clear()
        self._rate = rate
        self._nonfinite_start = self.processor.nonfinite_buffers
        self._initial_controls = self.processor.controls
        if self.record:
            frames = int(np.ceil(self.record_seconds * rate))
            self._rec_in = np.zeros((frames, channels), dtype=np.float32)
            self._rec_out = np.zeros((frames, channels), dtype=np.float32)

        summary = LiveSummary(
            sample_rate=rate, blocksize=self.blocksize, channels=channels,
            model_latency_samples=int(self.processor.latency_at(rate)),
            model_sample_rate=float(self.processor.sample_rate), buffering_samples=self.blocksize,
            backend=getattr(self.processor, "backend", ""),
            level_trims_db=(float(getattr(self.processor, "input_level_db", 0.0)),
                            float(getattr(self.processor, "output_level_db", 0.0))),
        )
        try:
            stream = sd.Stream(
                device=(in_dev["index"], out_dev["index"]), samplerate=rate, blocksize=self.blocksize,
                channels=channels, dtype="float32", latency=self.latency, callback=self._callback,
                finished_callback=self._stop.set,
            )
        except (sd.PortAudioError, ValueError) as exc:
            raise LiveAudioError(
                f"cannot open a {channels}-channel stream at {rate:g} Hz on input {in_dev['name']!r} / "
                f"output {out_dev['name']!r}: {exc}"
            ) from exc
        began = time.monotonic()
        reader = None
        try:
            self._rate = float(stream.samplerate)
            latency = stream.latency
            summary.stream_latency_s = (float(latency[0]), float(latency[1]))
            with warnings.catch_warnings():
                # The processor warns on every NaN/Inf buffer; here they are counted and reported instead.
                from neuralcomp.host import NonFiniteAudioWarning

                warnings.simplefilter("ignore", NonFiniteAudioWarning)
                self._running = True
                source = self._want_terminal()
                if source is not None:
                    reader = threading.Thread(target=self._control_reader, args=(source,), daemon=True,
                                              name="neuralcomp-live-controls")
                    reader.start()
                    self._print(f"type NAME=VALUE to set a control ({', '.join(self.processor.control_names) or 'none'}), q to quit")
                if self.on_open is not None:
                    self.on_open(stream)
                # numpy's first median/percentile call costs ~10 ms of lazy set-up under the GIL; pay it
                # now, not while the audio thread waits for the GIL after its first status line
                self._status_line(0, 0.0)
                np.percentile(self._times[:2], [50, 99])
                stream.start()
                began = time.monotonic()
                last_count, last_print = 0, began
                end = None if duration is None else began + duration
                try:
                    while True:
                        now = time.monotonic()
                        wait = 0.05 if self.status_interval is None else max(0.0, last_print + self.status_interval - now)
                        if end is not None:
                            wait = min(wait, max(0.0, end - now))
                        if self._stop.wait(wait):
                            break
                        now = time.monotonic()
                        if end is not None and now >= end:
                            self._stop_reason = self._stop_reason or "duration"
                            break
                        if self.status_interval is not None and now - last_print >= self.status_interval:
                            self._print(self._status_line(last_count, now - began))
                            last_count, last_print = self._callbacks, now
                except KeyboardInterrupt:
                    self._stop_reason = self._stop_reason or "ctrl-c"
                if not self._stop_reason:
                    self._stop_reason = "stream ended"
                self._stop.set()
        finally:
            self._running = False
            self._stop.set()
            try:
                stream.abort(ignore_errors=True)
            finally:
                stream.close(ignore_errors=True)
            if reader is not None:
                reader.join(timeout=0.5)
        return self._summarise(summary, time.monotonic() - began)

    def _summarise(self, summary: LiveSummary, seconds: float) -> LiveSummary:
        t = self._times_between(0, self._callbacks)
        summary.callbacks = self._callbacks
        summary.frames = self._frames
        summary.seconds = seconds
        summary.xruns = dict(self._xruns)
        if t.size:
            summary.callback_us_p50 = 1e6 * float(np.percentile(t, 50))
            summary.callback_us_p99 = 1e6 * float(np.percentile(t, 99))
        summary.callback_us_max = 1e6 * self._max_time
        summary.deadline_misses = self._misses
        summary.errors = list(self._errors)
        summary.nonfinite_buffers = self.processor.nonfinite_buffers - self._nonfinite_start
        summary.control_changes = len(self._changes)
        summary.stopped_by = self._stop_reason
        return summary
