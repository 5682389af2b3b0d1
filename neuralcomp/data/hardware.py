"""Capture a hardware compressor through an audio interface with sounddevice: play the source signal
out of one output channel into the unit, record its return on one input channel, measure the round
trip with a noise probe before each take and remove it.

Takes land in a folder of numbered pairs (``NN_inp.wav``, ``NN_tar_take.wav``) plus ``takes.json``
(each take's controls and measured latency), which :func:`import_captures` turns into a dataset: DC
removal, residual alignment (0 samples when the latency was removed exactly), report. A failed take
(xrun, no return signal) raises :class:`HardwareCaptureError` and leaves the takes already recorded.

One stream per take plays, on one clock: ``PRE_ROLL_SECONDS`` of silence (stream start-up; an xrun
there is harmless), the probe (``PROBE_NOISE_SECONDS`` of seeded white noise), ``max_latency`` of
silence, the take's audio, and ``max_latency`` of silence to catch its return. The latency is the lag
in [0, max_latency] that maximises |cross-correlation| between the probe played and the recording;
played sample n returns as recorded sample n + latency, for the probe and for the audio after it,
since both went through the same stream. An xrun after the pre-roll discards the take.

A keyed unit (``key_channel`` set) also gets each take's key on a second output channel, wired to its
sidechain input: silent during the probe, then the key sample for sample with the take's audio.
The key is written as ``NN_key.wav`` and imported as the take's sidechain (a keyed dataset).
"""

from __future__ import annotations

import dataclasses
import json
import threading
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

from neuralcomp.config import ControlSpec
from neuralcomp.data.captures import (ImportOptions, ImportReport, estimate_lag, import_pairs,
                                      normalised_correlation, pairs_from_layouts)
from neuralcomp.errors import NeuralcompError

PRE_ROLL_SECONDS = 0.25
PROBE_NOISE_SECONDS = 0.3
PROBE_LEVEL = 0.1  # noise RMS (-20 dBFS)
MIN_PROBE_CORRELATION = 0.5  # below this the return is not the probe: wiring, channels or levels


class HardwareCaptureError(NeuralcompError):
    """The audio interface could not play and record a take cleanly (device, wiring, xrun)."""


@dataclass(frozen=True)
class InterfaceConfig:
    """The audio interface and the channels (1-based) wired to and from the unit."""

    device: int | str | None = None  # sounddevice device; None: the default duplex device
    sample_rate: int = 44100
    output_channel: int = 1  # feeds the unit's input
    input_channel: int = 1  # records the unit's output
    blocksize: int = 512
    max_latency_seconds: float = 0.5  # recorded past the end of each take to catch the delayed return
    key_channel: int | None = None  # feeds the unit's sidechain input (a keyed unit); None: no key

    def __post_init__(self) -> None:
        if self.output_channel < 1 or self.input_channel < 1 or (self.key_channel is not None and self.key_channel < 1):
            raise HardwareCaptureError("channels are numbered from 1")
        if self.key_channel == self.output_channel:
            raise HardwareCaptureError(f"the key channel and the unit's input channel are both output "
                                       f"{self.key_channel}: the key needs an output of its own, wired to the unit's "
                                       "sidechain input")
        if self.max_latency_seconds <= 0 or self.blocksize < 0 or self.sample_rate <= 0:
            raise HardwareCaptureError("max_latency_seconds and sample_rate must be positive, blocksize >= 0")

    @property
    def max_latency_samples(self) -> int:
        return round(self.max_latency_seconds * self.sample_rate)


@dataclass(frozen=True)
class RoundTrip:
    latency_samples: int
    correlation: float  # normalised, of the aligned probe; sign = polarity of the return


def play_and_record(audio: np.ndarray, interface: InterfaceConfig,
                    on_open: Callable[[Any], None] | None = None,
                    key: np.ndarray | None = None) -> tuple[np.ndarray, list[tuple[int, str]]]:
    """Play `audio` (samples,) and record as many samples from the same clock; returns the recording and
    the xruns as (sample position, status). `on_open(stream)` runs after the stream opens and before
    it starts (e.g. to wire JACK ports). `key` (samples,) plays on the interface's key channel."""
    import sounddevice as sd

    total = len(audio)
    played = np.ascontiguousarray(audio, dtype=np.float32)
    keyed = key is not None and interface.key_channel is not None
    played_key = np.ascontiguousarray(key, dtype=np.float32) if keyed else None
    recorded = np.zeros(total, np.float32)
    position, xruns, done = [0], [], threading.Event()
    out_index, in_index = interface.output_channel - 1, interface.input_channel - 1
    key_index = interface.key_channel - 1 if keyed else -1
    outputs = max(interface.output_channel, interface.key_channel if keyed else 0)

    def callback(indata, outdata, frames, time_info, status) -> None:
        start = position[0]
        if status.input_overflow or status.output_underflow:
            xruns.append((start, str(status)))
        outdata.fill(0)
        count = min(frames, total - start)
        outdata[:count, out_index] = played[start:start + count]
        if played_key is not None:
            outdata[:count, key_index] = played_key[start:start + count]
        recorded[start:start + count] = indata[:count, in_index]
        position[0] = start + count
        if position[0] >= total:
            done.set()
            raise sd.CallbackStop

    try:
        stream = sd.Stream(device=interface.device, samplerate=interface.sample_rate, blocksize=interface.blocksize,
                           channels=(interface.input_channel, outputs), dtype="float32",
                           callback=callback)
    except (sd.PortAudioError, ValueError) as exc:
        raise HardwareCaptureError(f"cannot open a duplex stream on device {interface.device!r} with "
                                   f"{interface.input_channel} in / {outputs} out at "
                                   f"{interface.sample_rate} Hz: {exc}") from exc
    try:
        if on_open is not None:
            on_open(stream)
        stream.start()
        if not done.wait(timeout=total / interface.sample_rate + 10.0):
            raise HardwareCaptureError(f"the stream stopped after {position[0]} of {total} samples")
    finally:
        stream.close()
    return recorded, xruns


def _probe(interface: InterfaceConfig, seed: int) -> np.ndarray:
    samples = round(PROBE_NOISE_SECONDS * interface.sample_rate)
    return (np.random.default_rng(seed).standard_normal(samples) * PROBE_LEVEL).astype(np.float32)


def _find_latency(probe: np.ndarray, recorded: np.ndarray, interface: InterfaceConfig) -> RoundTrip:
    """`recorded` starts where the probe was played; see the module docstring."""
    lag, _ = estimate_lag(probe.astype(np.float64), recorded.astype(np.float64), interface.max_latency_samples)
    lag = max(lag, 0)
    correlation = normalised_correlation(probe, recorded[lag:lag + len(probe)])
    if abs(correlation) < MIN_PROBE_CORRELATION:
        raise HardwareCaptureError(
            f"no usable return on input channel {interface.input_channel}: the probe played on output channel "
            f"{interface.output_channel} came back with correlation {correlation:.2f} (needs "
            f"{MIN_PROBE_CORRELATION}); check the cabling, the channels and the unit's bypass and levels")
    return RoundTrip(int(lag), float(correlation))


def record_take(audio: np.ndarray, interface: InterfaceConfig, on_open: Callable[[Any], None] | None = None,
                seed: int = 0, retries: int = 2, key: np.ndarray | None = None) -> tuple[np.ndarray, RoundTrip]:
    """Play the probe and `audio` (with `key` on the key channel, aligned with it) through the unit in
    one stream; return the recording of `audio` with the round trip removed (same length as `audio`)
    and the round trip measured. A take hit by an xrun is played again, up to `retries` times."""
    for attempt in range(retries + 1):
        try:
            return _record_take_once(audio, interface, on_open, seed, key)
        except _Xrun as exc:
            if attempt == retries:
                raise HardwareCaptureError(f"{exc} (after {retries + 1} attempts)") from exc
    raise AssertionError("unreachable")


class _Xrun(HardwareCaptureError):
    pass


def _record_take_once(audio: np.ndarray, interface: InterfaceConfig, on_open: Callable[[Any], None] | None,
                      seed: int, key: np.ndarray | None = None) -> tuple[np.ndarray, RoundTrip]:
    pre_roll = round(PRE_ROLL_SECONDS * interface.sample_rate)
    gap = interface.max_latency_samples
    probe = _probe(interface, seed)
    audio_start = pre_roll + len(probe) + gap
    layout = np.zeros(audio_start + len(audio) + gap, np.float32)
    layout[pre_roll:pre_roll + len(probe)] = probe
    layout[audio_start:audio_start + len(audio)] = audio
    key_layout = None
    if key is not None:  # silent through the probe, then sample for sample with the audio
        key_layout = np.zeros_like(layout)
        key_layout[audio_start:audio_start + len(audio)] = key
    recorded, xruns = play_and_record(layout, interface, on_open, key_layout)
    late = [(position, status) for position, status in xruns if position >= pre_roll]
    if late:
        raise _Xrun(
            f"xrun {1000 * (late[0][0] - pre_roll) / interface.sample_rate:.0f} ms into the take ({late[0][1]}); "
            f"the take is discarded: try a larger blocksize or close other audio programs")
    round_trip = _find_latency(probe, recorded[pre_roll:audio_start], interface)
    start = audio_start + round_trip.latency_samples
    return recorded[start:start + len(audio)].copy(), round_trip


def measure_round_trip(interface: InterfaceConfig, on_open: Callable[[Any], None] | None = None) -> RoundTrip:
    """The round trip alone (a take of silence), to check the wiring before a session."""
    return record_take(np.zeros(1, np.float32), interface, on_open)[1]


def capture_dataset(out_dir: str | Path, sources: Sequence[np.ndarray], settings: Sequence[dict[str, float]],
                    controls: Sequence[ControlSpec], interface: InterfaceConfig,
                    ask_user: Callable[[str], None], on_open: Callable[[Any], None] | None = None,
                    log: Callable[[str], None] = print, overwrite: bool = False,
                    options: ImportOptions | None = None,
                    keys: Sequence[np.ndarray] | None = None) -> tuple[Path, ImportReport]:
    """One take per setting: `ask_user` tells the user how to set the unit's knobs and returns when
    ready; the take plays `sources[i]` (and `keys[i]` on the interface's key channel: a keyed dataset).
    Takes go to `<out_dir>.takes/`, the dataset to `out_dir`."""
    if len(sources) != len(settings):
        raise HardwareCaptureError(f"{len(sources)} source signals for {len(settings)} settings")
    if (keys is None) != (interface.key_channel is None):
        raise HardwareCaptureError("a keyed capture needs both a key channel on the interface and one key per take"
                                   if keys is None else "keys given but the interface has no key channel")
    if keys is not None and [len(k) for k in keys] != [len(s) for s in sources]:
        raise HardwareCaptureError(f"keys of {[len(k) for k in keys]} samples for sources of "
                                   f"{[len(s) for s in sources]}: one key per take, as long as its source")
    out_dir = Path(out_dir)
    takes_dir = out_dir.with_name(out_dir.name + ".takes")
    takes_dir.mkdir(parents=True, exist_ok=True)
    takes: dict[str, Any] = {}
    for i, (audio, setting) in enumerate(zip(sources, settings)):
        knobs = ", ".join(f"{c.name} {c.value_at(setting[c.name]):.4g} {c.unit}".rstrip() for c in controls)
        ask_user(f"take {i + 1}/{len(settings)}: set {knobs or 'the unit'}")
        key = None if keys is None else np.asarray(keys[i], np.float32)
        recorded, round_trip = record_take(audio, interface, on_open, seed=i, key=key)
        name = f"{i:02d}_tar_take"
        sf.write(takes_dir / f"{i:02d}_inp.wav", audio, interface.sample_rate, subtype="FLOAT")
        if key is not None:
            sf.write(takes_dir / f"{i:02d}_key.wav", key, interface.sample_rate, subtype="FLOAT")
        sf.write(takes_dir / f"{name}.wav", recorded, interface.sample_rate, subtype="FLOAT")
        takes[f"{name}.wav"] = {"controls": {c.name: float(setting[c.name]) for c in controls},
                                "round_trip": asdict(round_trip)}
        (takes_dir / "takes.json").write_text(json.dumps({"interface": asdict(interface), "takes": takes}, indent=2))
        log(f"  take {i + 1}: round trip {round_trip.latency_samples} samples "
            f"({1000 * round_trip.latency_samples / interface.sample_rate:.1f} ms), probe correlation "
            f"{round_trip.correlation:.3f}")
    pairs = pairs_from_layouts(takes_dir, "numbered", lambda file_name: takes[file_name]["controls"],
                               controls=list(controls))
    if keys is not None:  # each take's key, NN_key.wav beside NN_inp.wav
        pairs.pairs = [dataclasses.replace(p, sidechain=p.input.with_name(p.input.name.replace("_inp", "_key")))
                       for p in pairs.pairs]
        pairs.ignored = [name for name in pairs.ignored if not name.endswith("_key.wav")]
    return import_pairs(pairs, out_dir, options or ImportOptions(), overwrite=overwrite, source_folder=takes_dir)
