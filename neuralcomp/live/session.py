"""A live session: an exported model on a duplex audio stream, with counters, timing and recording.

`LiveSession(processor, ...)` opens a duplex `sounddevice.Stream`; its callback sends every input
block through `processor.process(block, rate, reset=False)` and plays the result. A model keyed by a
sidechain takes its key from `sidechain_inputs` extra capture channels after the audio ones. The session
counts callbacks, xruns (by kind), per-callback processing time (in a preallocated ring), deadline
misses and NaN/Inf input buffers (which the processor mutes), applies control changes from any
thread at the next callback boundary, can record exactly what it received and produced (so the
run can be re-rendered offline and compared bit for bit), and always closes the stream.
"""

from __future__ import annotations

import collections
import sys
import threading
import time
import traceback
import warnings
from typing import Any, TextIO

import numpy as np

from neuralcomp.errors import AudioInputError, ControlError, LiveAudioError
from neuralcomp.live.devices import check_settings, resolve_device, sounddevice_module
from neuralcomp.live.report import XRUN_KINDS, ControlChange, LiveRecording, LiveSummary
from neuralcomp.live.terminal import TerminalControls, terminal_source

DEFAULT_BLOCKSIZE = 256
WARMUP_BLOCKS = 8
TIMING_RING = 1 << 16  # callback times kept for percentiles (~6 min at 256 samples / 44.1 kHz)


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
    e.g. to connect them on a JACK server). sidechain_inputs: capture channels after the `channels`
    audio ones that carry the key of a keyed model (channels x its sidechain channels; 0 otherwise).
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
        sidechain_inputs: int = 0,
    ) -> None:
        if int(blocksize) != blocksize or blocksize < 0:
            raise LiveAudioError(f"blocksize must be a non-negative integer (0: variable), got {blocksize!r}")
        if channels is not None and (int(channels) != channels or channels < 1):
            raise LiveAudioError(f"channels must be a positive integer, got {channels!r}")
        if int(sidechain_inputs) != sidechain_inputs or sidechain_inputs < 0:
            raise LiveAudioError(f"sidechain_inputs must be a non-negative integer, got {sidechain_inputs!r}")
        keys = int(getattr(processor, "sidechain_channels", 0))
        if keys == 0 and sidechain_inputs:
            raise LiveAudioError("this model has no sidechain input; leave the sidechain inputs "
                                 "(--sidechain-inputs) out")
        if keys and not sidechain_inputs:
            raise LiveAudioError(f"this model is keyed by {keys} sidechain channel(s) per audio channel: give its "
                                 f"key on extra capture channels (--sidechain-inputs N: channels x {keys}, after the "
                                 "audio ones)")
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
        self.sidechain_inputs = int(sidechain_inputs)
        self._channels = 0  # audio channels of the running stream
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

    def _quit(self) -> None:
        self._stop_reason = self._stop_reason or "quit"
        self._stop.set()

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
        channels = self._rec_out.shape[1]
        return LiveRecording(
            input=np.ascontiguousarray(self._rec_in[:n, :channels].T),
            output=np.ascontiguousarray(self._rec_out[:n].T),
            sample_rate=self._rate,
            blocksize=self.blocksize,
            initial_controls=dict(self._initial_controls),
            control_changes=list(self._changes),
            truncated=self._rec_truncated,
            sidechain=np.ascontiguousarray(self._rec_in[:n, channels:].T) if self.sidechain_inputs else None,
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
            channels = self._channels
            if self.sidechain_inputs:  # the last capture channels are the key
                y = self.processor.process(indata[:, :channels].T, self._rate, reset=False,
                                           sidechain=indata[:, channels:].T)
            else:
                y = self.processor.process(indata.T, self._rate, reset=False)
            if y.shape != (channels, frames):
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

    # ---- run ----------------------------------------------------------------------------------
    def _prepare(self, sd: Any) -> tuple[dict, dict, float, int]:
        in_dev = resolve_device(self.input_device if self.input_device is not None else self.device, "input", sd)
        out_dev = resolve_device(self.output_device if self.output_device is not None else self.device, "output", sd)
        channels = self.requested_channels
        keys = int(getattr(self.processor, "sidechain_channels", 0))
        if channels is None and keys:  # as many audio channels as the sidechain inputs key
            channels = max(1, self.sidechain_inputs // keys)
        if channels is None:
            channels = max(1, min(2, in_dev["max_input_channels"], out_dev["max_output_channels"]))
        if keys and self.sidechain_inputs != channels * keys:
            raise LiveAudioError(
                f"this model is keyed by {keys} sidechain channel(s) per audio channel: {channels} audio channel(s) "
                f"need {channels * keys} sidechain input(s), got {self.sidechain_inputs}")
        # Default: the output device's own rate (a server such as JACK runs at one rate); the processor
        # resamples when it is not the model's.
        rate = float(self.requested_samplerate or out_dev["default_samplerate"] or self.processor.sample_rate)
        check_settings(sd, in_dev, "input", channels + self.sidechain_inputs, rate)
        check_settings(sd, out_dev, "output", channels, rate)
        return in_dev, out_dev, rate, int(channels)

    def _warm_up(self, rate: float, channels: int) -> None:
        silence = np.zeros((channels, self.blocksize or DEFAULT_BLOCKSIZE), dtype=np.float32)
        key = {}
        if self.sidechain_inputs:
            key = {"sidechain": np.zeros((self.sidechain_inputs, silence.shape[1]), np.float32)}
        try:
            for i in range(WARMUP_BLOCKS):
                self.processor.process(silence, rate, reset=(i == 0), **key)
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
        sd = sounddevice_module()
        in_dev, out_dev, rate, channels = self._prepare(sd)
        self._warm_up(rate, channels)

        self._reset_counters()
        self._stop.clear()
        self._pending.clear()
        self._rate = rate
        self._channels = channels
        self._nonfinite_start = self.processor.nonfinite_buffers
        self._initial_controls = self.processor.controls
        if self.record:
            frames = int(np.ceil(self.record_seconds * rate))
            self._rec_in = np.zeros((frames, channels + self.sidechain_inputs), dtype=np.float32)
            self._rec_out = np.zeros((frames, channels), dtype=np.float32)

        summary = LiveSummary(
            sample_rate=rate, blocksize=self.blocksize, channels=channels,
            model_latency_samples=int(self.processor.latency_at(rate)),
            model_sample_rate=float(self.processor.sample_rate), buffering_samples=self.blocksize,
            backend=getattr(self.processor, "backend", ""),
            level_trims_db=(float(getattr(self.processor, "input_level_db", 0.0)),
                            float(getattr(self.processor, "output_level_db", 0.0))),
            sidechain_inputs=self.sidechain_inputs,
        )
        try:
            stream = sd.Stream(
                device=(in_dev["index"], out_dev["index"]), samplerate=rate, blocksize=self.blocksize,
                channels=(channels + self.sidechain_inputs, channels), dtype="float32", latency=self.latency,
                callback=self._callback,
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
                source = terminal_source(self.control_input, self.terminal_controls)
                if source is not None:
                    reader = TerminalControls(source, self.processor.control_names, self.set_control,
                                              self._quit, self._print)
                    reader.start()
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
                reader.stop()
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
