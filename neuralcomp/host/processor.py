"""`neuralcomp.load(path)`: a pedalboard-style processor for an exported model.

Backends, all running the same `.ts` file:
  * "native": the native C++ engine (`neuralcomp.host._native`, no libtorch; the default);
  * "torchscript": the libtorch C++ host (`neuralcomp.host._cpp_host`), the reference ("cpp" is an alias);
  * "python": the TorchScript module from Python.
The TorchScript backends are bitwise identical to each other; the native engine is bitwise
partition-invariant itself and within 1e-5 of them. "auto" picks the first one that is built.
Only the TorchScript backends import torch.
"""

from __future__ import annotations

import difflib
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from neuralcomp.errors import AudioInputError, ControlError, ModelFileError, StateError
from neuralcomp.host.resample import RateAdaptedStream
from neuralcomp.metadata import parse_metadata

BACKENDS = ("auto", "native", "torchscript", "python")
_ALIASES = {"cpp": "torchscript"}  # the libtorch host's name before the native engine existed
_MAX_CHANNELS = 64  # more "channels" than this almost surely means (samples, channels) was passed


class NonFiniteAudioWarning(UserWarning):
    """Input held NaN or Inf: those buffers were muted and the model went back to its start state."""


def native_engine_available() -> bool:
    try:
        from neuralcomp.host import _native  # noqa: F401
    except ImportError:
        return False
    return True


def cpp_host_available() -> bool:
    """Whether the libtorch C++ host (backend "torchscript") is built."""
    try:
        from neuralcomp.host import _cpp_host  # noqa: F401
    except ImportError:
        return False
    return True


def _open_native(path: Path) -> Any:
    from neuralcomp.host import _native

    return _native.Host(str(path), 1)


def _open_torchscript_cpp(path: Path) -> Any:
    from neuralcomp.host import _cpp_host

    if not path.is_file():
        raise ModelFileError(f"model file {path} does not exist")
    try:
        return _cpp_host.Host(str(path), 1)
    except _cpp_host.ModelLoadError as exc:
        raise ModelFileError(str(exc)) from exc


def _open_backend(path: Path, backend: str) -> tuple[Any, str]:
    backend = _ALIASES.get(backend, backend)
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if backend == "native" or (backend == "auto" and native_engine_available()):
        if not native_engine_available():
            raise ImportError("the native engine is not built (neuralcomp/host/_native*.so missing): run `make build`")
        return _open_native(path), "native"
    if backend == "torchscript" or (backend == "auto" and cpp_host_available()):
        if not cpp_host_available():
            raise ImportError("the libtorch C++ host is not built (neuralcomp/host/_cpp_host*.so missing): "
                              "run `make build`")
        return _open_torchscript_cpp(path), "torchscript"
    if backend == "auto":
        warnings.warn("no C++ backend built; running TorchScript from Python (same output, more overhead). "
                      "Run `make build` for the native engine.", RuntimeWarning, stacklevel=3)
    from neuralcomp.host.torchscript_host import TorchScriptHost

    return TorchScriptHost(path, 1), "python"


class Processor:
    """An exported SPTMod as an effect: `process(audio, sample_rate, reset=True)`.

    Controls are read and set in their user units, by name: `p.set_control("threshold", -20)`,
    `p.controls`, or as attributes (`p.threshold = -20`) like pedalboard's plugins. A change takes
    effect from the next pooling frame that finishes after it.
    """

    def __init__(self, path: str | Path, backend: str = "auto") -> None:
        path = Path(path)
        host, opened = _open_backend(path, backend)
        object.__setattr__(self, "_host", host)
        object.__setattr__(self, "path", path)
        object.__setattr__(self, "backend", opened)
        object.__setattr__(self, "metadata", parse_metadata(host.metadata_json, str(path)))
        object.__setattr__(self, "_stream_rate", int(host.sample_rate))  # the host rate of the stream
        object.__setattr__(self, "_adapter", None)  # RateAdaptedStream when the stream runs at another rate
        object.__setattr__(self, "_input_level_db", 0.0)
        object.__setattr__(self, "_output_level_db", 0.0)

    # ---- properties -------------------------------------------------------------------------
    @property
    def sample_rate(self) -> int:
        return int(self._host.sample_rate)

    @property
    def latency_samples(self) -> int:
        """Algorithmic latency at the model's rate: output sample t + latency answers input sample t
        (0 when causal, P - 1 in paper mode). At another host rate see `latency_at`."""
        return int(self._host.latency_samples)

    def latency_at(self, sample_rate: float) -> int:
        """Latency in samples at host rate `sample_rate`: the model's, plus the resamplers' delays."""
        rate = self._check_rate(sample_rate)
        if rate == self.sample_rate:
            return self.latency_samples
        adapter = RateAdaptedStream(lambda x: x, rate, self.sample_rate, 1)
        return adapter.total_latency_samples(self.latency_samples)

    @property
    def control_names(self) -> list[str]:
        return list(self._host.control_names)

    @property
    def controls(self) -> dict[str, float]:
        return {name: self._host.get_control(name) for name in self.control_names}

    @property
    def num_channels(self) -> int:
        return int(self._host.num_channels)

    @property
    def sidechain_channels(self) -> int:
        """Sidechain (key) channels the model takes per audio channel; 0: it keys from its input."""
        return int(getattr(self._host, "sidechain_channels", 0))

    @property
    def nonfinite_buffers(self) -> int:
        """Buffers since loading that held NaN/Inf input (muted, state restored to the start state)."""
        return int(self._host.nonfinite_buffers)

    @property
    def linked(self) -> bool:
        """Stereo link: all channels share one modulation path (one gain computation), driven per
        sample by the channel of largest magnitude. Off: each channel has its own state."""
        return bool(self._host.linked)

    @linked.setter
    def linked(self, linked: bool) -> None:
        self._host.linked = bool(linked)  # resets the stream

    @property
    def state_names(self) -> list[str]:
        return list(self._host.state_names)

    # ---- level calibration ------------------------------------------------------------------
    @property
    def input_level_db(self) -> float:
        """Gain in dB applied to the audio before the model (0: as given)."""
        return self._input_level_db

    @input_level_db.setter
    def input_level_db(self, value: float) -> None:
        object.__setattr__(self, "_input_level_db", self._check_level("input_level_db", value))

    @property
    def output_level_db(self) -> float:
        """Gain in dB applied to the model's output (0: as the model gives it)."""
        return self._output_level_db

    @output_level_db.setter
    def output_level_db(self, value: float) -> None:
        object.__setattr__(self, "_output_level_db", self._check_level("output_level_db", value))

    @property
    def calibration(self) -> dict[str, float] | None:
        """The capture's converter levels (input_dbu_at_0dbfs, output_dbu_at_0dbfs) when the model has them."""
        return self.metadata.get("calibration") or None

    def match_calibration(self, input_dbu_at_0dbfs: float, output_dbu_at_0dbfs: float) -> tuple[float, float]:
        """Set the trims so that a user's interface, whose 0 dBFS is `input_dbu_at_0dbfs` dBu at its
        input and `output_dbu_at_0dbfs` dBu at its output, drives the model at the levels of the capture:
        input trim = user input - capture input, output trim = capture output - user output. Returns them."""
        capture = self.calibration
        if not capture or not {"input_dbu_at_0dbfs", "output_dbu_at_0dbfs"} <= set(capture):
            raise ModelFileError(f"{self.path} records no level calibration (import the captures with "
                                 "--input-dbu-at-0dbfs and --output-dbu-at-0dbfs); set input_level_db and "
                                 "output_level_db by hand instead")
        self.input_level_db = float(input_dbu_at_0dbfs) - float(capture["input_dbu_at_0dbfs"])
        self.output_level_db = float(capture["output_dbu_at_0dbfs"]) - float(output_dbu_at_0dbfs)
        return self.input_level_db, self.output_level_db

    @staticmethod
    def _check_level(name: str, value: Any) -> float:
        try:
            level = float(value)
        except (TypeError, ValueError) as exc:
            raise ControlError(f"{name} needs a number of dB, got {value!r}") from exc
        if not -60.0 <= level <= 60.0:
            raise ControlError(f"{name} = {level} dB is outside [-60, 60] dB")
        return level

    # ---- controls ---------------------------------------------------------------------------
    def set_control(self, name: str, value: float) -> None:
        names = self.control_names
        if name not in names:
            raise self._unknown_control(name)
        i = names.index(name)
        lo, hi = self._host.control_minimum[i], self._host.control_maximum[i]
        try:
            value = float(value)
        except (TypeError, ValueError) as exc:
            raise ControlError(f"control {name!r} needs a number, got {value!r}") from exc
        if not (lo <= value <= hi):  # also rejects NaN
            raise ControlError(f"control {name!r} = {value} is outside its range [{lo}, {hi}]")
        self._host.set_control(name, value)

    def get_control(self, name: str) -> float:
        if name not in self.control_names:
            raise self._unknown_control(name)
        return float(self._host.get_control(name))

    def _unknown_control(self, name: str) -> ControlError:
        """The error for a name that is no control of this model, suggesting the closest one."""
        names = self.control_names
        close = difflib.get_close_matches(name, names, n=1, cutoff=0.6)
        hint = f"did you mean {close[0]!r}? " if close else ""
        return ControlError(f"unknown control {name!r}; {hint}this model has {names or 'no controls'}")

    def __getattr__(self, name: str) -> Any:
        host = self.__dict__.get("_host")
        if host is not None and name in host.control_names:
            return float(host.get_control(name))
        raise AttributeError(f"{type(self).__name__} has no attribute {name!r}")

    def __setattr__(self, name: str, value: Any) -> None:
        """Controls by name; a name that is neither a control nor an attribute of the processor raises
        ControlError rather than silently creating an attribute (a misspelt control would do nothing)."""
        if name in ("linked", "input_level_db", "output_level_db"):
            getattr(type(self), name).fset(self, value)
        elif name in self._host.control_names:
            self.set_control(name, value)
        elif name in self.__dict__ or hasattr(type(self), name):
            object.__setattr__(self, name, value)
        else:
            raise self._unknown_control(name)

    # ---- processing -------------------------------------------------------------------------
    def reset(self) -> None:
        """Back to the start state (silence warm-up at the current controls)."""
        self._host.reset()

    def process(
        self, audio: np.ndarray, sample_rate: float, buffer_size: int | None = None, reset: bool = True,
        sidechain: np.ndarray | None = None,
    ) -> np.ndarray:
        """Process mono `(samples,)` or `(channels, samples)` audio; returns float32 of the same shape.

        `sidechain`: the key of a model with `sidechain_channels` S > 0, `(samples,)` or
        `(channels * S, samples)` (rows c * S ... c * S + S - 1 key channel c); it feeds the model's
        detector only. When `linked`, the channels key from the loudest sidechain channel.

        `reset=True` starts from the start state (channels and sample rate may change);
        `reset=False` continues the stream, so calling it buffer by buffer equals one call.
        `buffer_size` splits the call into buffers of that many samples (the output is identical).
        At a sample rate other than the model's, audio is resampled in streaming fashion on the way
        in and out (`latency_at(rate)` includes the resamplers' delay). float64 input is converted
        to float32. NaN/Inf in a buffer mutes it and resets the state (NonFiniteAudioWarning).
        """
        frames = self._as_channels_first(audio)
        rate = self._check_rate(sample_rate)
        key = self._checked_sidechain(sidechain, frames, rate)
        if buffer_size is not None and (int(buffer_size) != buffer_size or buffer_size < 1):
            raise AudioInputError(f"buffer_size must be a positive integer, got {buffer_size!r}")
        channels = frames.shape[0]
        if reset:
            self._host.reset(channels)
            adapter = None if rate == self.sample_rate else RateAdaptedStream(
                self._host.process, rate, self.sample_rate, channels,
                key_channels=0 if key is None else key.shape[0])
            object.__setattr__(self, "_adapter", adapter)
            object.__setattr__(self, "_stream_rate", rate)
        elif channels != self.num_channels:
            raise AudioInputError(
                f"audio has {channels} channels but the stream has {self.num_channels}; "
                "use reset=True to change the channel count"
            )
        elif rate != self._stream_rate:
            raise AudioInputError(
                f"the stream runs at {self._stream_rate} Hz, this audio is at {rate} Hz; "
                "use reset=True to change the sample rate"
            )
        run = self._host.process if self._adapter is None else self._process_resampled
        if self._input_level_db or self._output_level_db:  # trims: per-sample gains, so chunking stays exact
            run = self._with_trims(run)
        if key is not None:
            keyed_run = run
            run = lambda block, start: keyed_run(
                block, sidechain=np.ascontiguousarray(key[:, start:start + block.shape[1]]))
        else:
            unkeyed_run = run
            run = lambda block, start: unkeyed_run(block)
        before = self.nonfinite_buffers
        step = frames.shape[1] if buffer_size is None else int(buffer_size)
        if frames.shape[1] == 0 or step >= frames.shape[1]:
            out = run(frames, 0)
        else:
            out = np.concatenate(
                [run(np.ascontiguousarray(frames[:, i : i + step]), i) for i in range(0, frames.shape[1], step)],
                axis=1,
            )
        muted = self.nonfinite_buffers - before
        if muted:
            warnings.warn(
                f"{muted} buffer(s) held NaN/Inf input: muted, state reset to the start state",
                NonFiniteAudioWarning,
                stacklevel=2,
            )
        return out[0] if np.ndim(audio) == 1 else out

    __call__ = process

    def _with_trims(self, run: Any) -> Any:
        """`run` with the input trim on the audio (and on the sidechain: the same converter) and the output trim."""
        gain_in = np.float32(10.0 ** (self._input_level_db / 20.0))
        gain_out = np.float32(10.0 ** (self._output_level_db / 20.0))

        def trimmed(block: np.ndarray, sidechain: np.ndarray | None = None) -> np.ndarray:
            key = {}
            if sidechain is not None:
                key = {"sidechain": np.ascontiguousarray(sidechain * gain_in, dtype=np.float32)}
            return run(np.ascontiguousarray(block * gain_in, dtype=np.float32), **key) * gain_out

        return trimmed

    def _checked_sidechain(self, sidechain: Any, frames: np.ndarray, rate: int) -> np.ndarray | None:
        """The sidechain as float32 (channels * S, samples), or AudioInputError naming both shapes."""
        keys = self.sidechain_channels
        if sidechain is None:
            if keys:
                raise AudioInputError(
                    f"this model is keyed by {keys} sidechain channel(s) per audio channel: pass "
                    f"sidechain= of shape ({frames.shape[0] * keys}, {frames.shape[1]}) with the audio {frames.shape}")
            return None
        if not keys:
            raise AudioInputError("this model has no sidechain input; leave sidechain out")
        if not isinstance(sidechain, np.ndarray) or sidechain.dtype not in (np.float32, np.float64):
            raise AudioInputError(f"sidechain must be a float32 (or float64) numpy array, got {type(sidechain).__name__}"
                                  + (f" of {sidechain.dtype}" if isinstance(sidechain, np.ndarray) else ""))
        key = sidechain[None, :] if sidechain.ndim == 1 else sidechain
        expected = (frames.shape[0] * keys, frames.shape[1])
        if key.shape != expected:
            raise AudioInputError(
                f"sidechain of shape {sidechain.shape} does not match the audio {frames.shape}: expected "
                f"{expected} ({keys} sidechain channel(s) per audio channel, as many samples)")
        return np.ascontiguousarray(key, dtype=np.float32)

    def _process_resampled(self, frames: np.ndarray, sidechain: np.ndarray | None = None) -> np.ndarray:
        """One host buffer at a rate other than the model's (the key, if any, resampled with it). A buffer
        holding NaN/Inf (audio or key) is output as zeros and sends the resamplers and the model back to
        their start state, so the next buffer comes out as after a fresh reset: nothing of the NaN spreads
        through the filters' memory."""
        if np.isfinite(frames).all() and (sidechain is None or np.isfinite(sidechain).all()):
            return self._adapter.process(frames, sidechain)
        self._adapter.reset()
        # The model's own non-finite path: it restores its start state and counts the buffer.
        nan = np.full((frames.shape[0], 1), np.nan, np.float32)
        if sidechain is None:
            self._host.process(nan)
        else:
            self._host.process(nan, sidechain=np.zeros((sidechain.shape[0], 1), np.float32))
        return np.zeros_like(frames)

    @staticmethod
    def _check_rate(sample_rate: Any) -> int:
        try:
            rate = float(sample_rate)
        except (TypeError, ValueError) as exc:
            raise AudioInputError(f"sample rate must be a number of Hz, got {sample_rate!r}") from exc
        if not rate.is_integer() or not 8000 <= rate <= 384000:
            raise AudioInputError(f"sample rate must be a whole number of Hz in [8000, 384000], got {sample_rate!r}")
        return int(rate)

    def _as_channels_first(self, audio: Any) -> np.ndarray:
        if not isinstance(audio, np.ndarray):
            raise AudioInputError(f"audio must be a numpy array, got {type(audio).__name__}")
        if audio.dtype not in (np.float32, np.float64):
            raise AudioInputError(f"audio must be float32 (or float64), got {audio.dtype}")
        if audio.ndim == 1:
            audio = audio[None, :]
        elif audio.ndim != 2:
            raise AudioInputError(f"audio must be (samples,) or (channels, samples), got shape {audio.shape}")
        if audio.shape[0] == 0:
            raise AudioInputError("audio has zero channels")
        if audio.shape[0] > _MAX_CHANNELS:
            raise AudioInputError(
                f"audio of shape {audio.shape} has {audio.shape[0]} channels; pass (channels, samples), "
                "e.g. audio.T for a (samples, channels) array"
            )
        return np.ascontiguousarray(audio, dtype=np.float32)

    # ---- state ------------------------------------------------------------------------------
    def get_state(self) -> dict[str, np.ndarray]:
        """Snapshot of the stream state (copies), restorable with set_state."""
        return dict(zip(self.state_names, self._host.get_state()))

    def set_state(self, state: dict[str, np.ndarray]) -> None:
        """Restore a `get_state` snapshot. It must come from a stream with the same channel count and
        the same `linked` setting (with one channel, linked makes no difference); else StateError."""
        names = self.state_names
        if set(state) != set(names):
            raise StateError(f"state has entries {sorted(state)}, this model needs {names}")
        self._check_snapshot_layout(state)
        try:
            self._host.set_state([np.ascontiguousarray(state[n]) for n in names])
        except StateError:
            raise
        except (ValueError, RuntimeError) as exc:  # the libtorch host's std::invalid_argument
            from neuralcomp.host.torchscript_host import script_error_message

            raise StateError(script_error_message(exc)) from exc

    def _check_snapshot_layout(self, state: dict[str, np.ndarray]) -> None:
        """StateError unless the snapshot's channel count and link setting are the stream's."""
        queue, detector = np.asarray(state["output_queue"]), np.asarray(state["block0.conv_cache"])
        if queue.ndim != 2 or detector.ndim < 1:
            return  # the backend names the malformed entry
        channels = int(queue.shape[0])
        linked = channels > 1 and detector.shape[0] == 1
        stream_channels, stream_linked = self.num_channels, self.linked and self.num_channels > 1
        if channels == stream_channels and (channels == 1 or linked == stream_linked):
            return
        steps = []
        if channels > 1 and linked != self.linked:
            steps.append(f"set linked = {linked}")
        if channels != stream_channels:
            steps.append(f"call process(..., reset=True) with {channels}-channel audio")
        raise StateError(f"snapshot has {_layout(channels, linked)}, the stream has "
                         f"{_layout(stream_channels, stream_linked)}; {' and '.join(steps)} first")


def _layout(channels: int, linked: bool) -> str:
    """'1 channel', '2 channels (linked)', '2 channels (unlinked)'."""
    link = f" ({'linked' if linked else 'unlinked'})" if channels > 1 else ""
    return f"{channels} channel{'s' if channels != 1 else ''}{link}"


def load(path: str | Path, backend: str = "auto") -> Processor:
    """Open an exported model file; backend "auto" (native when built), "native", "torchscript" or "python"."""
    return Processor(path, backend)
