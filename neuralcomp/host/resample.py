"""Streaming sample-rate conversion, so a model fixed at one rate runs in a host at another.

`StreamingResampler` converts by the reduced ratio L/M (up L, down M; 48000 -> 44100 is 147/160) with a
polyphase, linear-phase, Kaiser-windowed-sinc FIR designed here with numpy. Output sample j is computed
as soon as input sample floor(j*M/L) has arrived, from the K input samples ending there, with one fixed
float32 multiply and a reduction over the same K-long row whatever the call size, so any partition of
the input gives bitwise the same output. After N input samples in total it has produced exactly
ceil(N*L/M) output samples.

`RateAdaptedStream` puts a model between two of them (host -> model -> host) and a small FIFO, so every
host call of T samples returns exactly T samples at a constant delay: the two filters' group delays,
which are aligned to make the total a whole number of host samples.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from fractions import Fraction
from typing import Final

import numpy as np

from neuralcomp.errors import AudioInputError

__all__ = ["QUALITIES", "RateAdaptedStream", "StreamingResampler"]

# quality -> (stopband attenuation in dB, passband edge as a fraction of the lower Nyquist frequency).
# The stopband starts at the lower Nyquist frequency (no aliasing into the band below it); the
# passband edge of "high" is 18.08 kHz when 44.1 kHz is the lower rate.
QUALITIES: Final[dict[str, tuple[float, float]]] = {
    "fast": (80.0, 0.75),
    "high": (100.0, 0.82),
    "best": (120.0, 0.90),
}
_MARGIN_DB: Final = 1.0  # Kaiser's formulas fall ~0.5 dB short: design for A + 1 dB so A is met
_BLOCK: Final = 4096  # outputs gathered at once; bounds memory, does not change any value


def _check_int(name: str, value: object, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise AudioInputError(f"{name} must be an int, got {type(value).__name__} {value!r}")
    if value < minimum:
        raise AudioInputError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


def _check_audio(x: object, channels: int) -> np.ndarray:
    if not isinstance(x, np.ndarray):
        raise AudioInputError(f"x must be a numpy array of shape (channels, samples), got {type(x).__name__}")
    if x.ndim != 2:
        raise AudioInputError(f"x must be 2-D (channels, samples), got shape {x.shape}")
    if x.dtype != np.float32:
        raise AudioInputError(f"x must be float32, got {x.dtype}")
    if x.shape[0] != channels:
        raise AudioInputError(f"x has {x.shape[0]} channels, expected {channels} (shape is (channels, samples))")
    return x


def _kaiser_beta(atten_db: float) -> float:
    """Kaiser's beta for a stopband attenuation in dB."""
    if atten_db > 50.0:
        return 0.1102 * (atten_db - 8.7)
    if atten_db >= 21.0:
        return 0.5842 * (atten_db - 21.0) ** 0.4 + 0.07886 * (atten_db - 21.0)
    return 0.0


class StreamingResampler:
    """Streaming rational resampler `from_rate -> to_rate` for (channels, n) float32 buffers.

    Counts: after N input samples in total (any partition), exactly `output_count(N)` = ceil(N*L/M)
    output samples have come out. Delay: output sample j (time j/to_rate) reproduces the input signal at
    time (j - delay)/to_rate; `delay` is in output samples and is a whole number of samples at
    `whole_delay_at` (default: the higher of the two rates), so it may be fractional at the other one.
    """

    def __init__(self, from_rate: int, to_rate: int, channels: int, quality: str = "high", *,
                 whole_delay_at: int | None = None) -> None:
        self.from_rate = _check_int("from_rate", from_rate, 1)
        self.to_rate = _check_int("to_rate", to_rate, 1)
        self.channels = _check_int("channels", channels, 1)
        if quality not in QUALITIES:
            raise AudioInputError(f"quality must be one of {tuple(QUALITIES)}, got {quality!r}")
        self.quality = quality
        g = math.gcd(self.from_rate, self.to_rate)
        self.up, self.down = self.to_rate // g, self.from_rate // g  # L, M
        if whole_delay_at is None:
            whole_delay_at = max(self.from_rate, self.to_rate)
        if whole_delay_at not in (self.from_rate, self.to_rate):
            raise AudioInputError(f"whole_delay_at must be from_rate or to_rate, got {whole_delay_at!r}")
        self.identity = self.up == self.down
        if self.identity:
            self.taps_per_phase, self.beta, self.atten_db = 1, 0.0, math.inf
            self.passband_hz = self.cutoff_hz = self.stopband_hz = self.from_rate / 2
            self._center = 0
            self._prototype = np.ones(1)
            self._taps = np.ones((1, 1), np.float32)
        else:
            self._design(whole_delay_at)
        self.reset()

    def _design(self, whole_delay_at: int) -> None:
        """Prototype lowpass at R = from_rate*L, symmetric about `_center`, split into L phases."""
        up = self.up
        rate_hi = self.from_rate * up  # = to_rate * down
        self.atten_db, pass_frac = QUALITIES[self.quality]
        design_db = self.atten_db + _MARGIN_DB
        f_stop = min(self.from_rate, self.to_rate) / 2
        f_pass = pass_frac * f_stop
        self.passband_hz, self.stopband_hz = f_pass, f_stop
        self.cutoff_hz = (f_pass + f_stop) / 2
        self.beta = _kaiser_beta(design_db)
        # Kaiser's length estimate: N - 1 = (A - 7.95) / (2.285 * transition width in rad/sample at R).
        half = math.ceil((design_db - 7.95) / (2.285 * 2 * math.pi * (f_stop - f_pass) / rate_hi) / 2)
        unit = rate_hi // whole_delay_at  # one sample at that rate, in samples at R
        center = -(-half // unit) * unit  # smallest multiple of `unit` keeping the filter causal
        self.taps_per_phase = (center + half) // up + 1
        t = np.arange(self.taps_per_phase * up, dtype=np.float64) - center
        inside = np.abs(t) <= half
        window = np.zeros_like(t)
        window[inside] = np.i0(self.beta * np.sqrt(1.0 - (t[inside] / half) ** 2)) / np.i0(self.beta)
        fc = self.cutoff_hz / rate_hi
        self._prototype = 2 * fc * np.sinc(2 * fc * t) * window * up  # gain L makes up for zero-stuffing
        self._center = center
        # y[j] = sum_k h[k*L + phase] * x[a - k], a = floor(j*M/L), phase = j*M mod L. Store each phase's
        # taps oldest-first so they line up with the window x[a-K+1 .. a].
        self._taps = np.ascontiguousarray(
            self._prototype.reshape(self.taps_per_phase, up).T[:, ::-1]).astype(np.float32)

    @property
    def ratio(self) -> Fraction:
        """to_rate / from_rate, reduced (L/M)."""
        return Fraction(self.up, self.down)

    @property
    def prototype_filter(self) -> np.ndarray:
        """The lowpass before polyphase splitting, at rate from_rate*L, unit DC gain (float64 copy)."""
        return self._prototype / self.up

    @property
    def delay(self) -> float:
        """Group delay in output samples (may be fractional; 0 when the rates are equal)."""
        return float(self.delay_exact)

    @property
    def delay_exact(self) -> Fraction:
        """`delay` as an exact fraction of output samples."""
        return Fraction(self._center, self.down)

    def output_count(self, total_in: int) -> int:
        """Output samples produced after `total_in` input samples in total: ceil(total_in * L / M)."""
        return -((-total_in * self.up) // self.down)

    def reset(self) -> None:
        """Back to silence: zero history, counters at the start."""
        self._hist = np.zeros((self.channels, self.taps_per_phase - 1), np.float32)
        self._n_in = 0  # input samples so far, minus a multiple of M
        self._n_out = 0  # = output_count(self._n_in)

    def process(self, x: np.ndarray) -> np.ndarray:
        """Consume x (channels, n) float32; return the output samples that became available."""
        x = _check_audio(x, self.channels)
        if self.identity:
            return x.copy()
        up, down, k = self.up, self.down, self.taps_per_phase
        n0 = self._n_in
        n1 = n0 + x.shape[1]
        j0, j1 = self._n_out, self.output_count(n1)
        buf = np.concatenate((self._hist, x), axis=1)  # buf[:, i] is input sample n0 - (k-1) + i
        out = np.empty((self.channels, j1 - j0), np.float32)
        # windows[c, i] = buf[c, i : i + k], a view; output j reads the one at i = floor(j*M/L) - n0.
        step = buf.strides[1]
        windows = np.ndarray((self.channels, buf.shape[1] - k + 1, k), np.float32, buf,
                             strides=(buf.strides[0], step, step))
        for s in range(j0, j1, _BLOCK):
            e = min(s + _BLOCK, j1)
            jm = np.arange(s, e, dtype=np.int64) * down
            prod = windows[:, jm // up - n0]  # a copy, (C, b, k)
            if prod.strides[-1] != prod.itemsize:
                prod = np.ascontiguousarray(prod)
            # Every output is the same k float32 products summed by numpy's pairwise reduction over one
            # contiguous length-k row, whatever b and the call sizes: bitwise chunk invariance.
            prod *= self._taps[jm % up]
            out[:, s - j0:e - j0] = prod.sum(axis=-1)
        self._hist = buf[:, buf.shape[1] - (k - 1):].copy()
        q = n1 // down  # M inputs give exactly L outputs: drop whole periods to keep the counters small
        self._n_in, self._n_out = n1 - q * down, j1 - q * up
        return out


class RateAdaptedStream:
    """Run a fixed-rate streaming model from a host at another rate: T samples in, exactly T out.

    `process_fn(x (channels, n) float32) -> (channels, n)` runs at `model_rate`; it is called only with
    n >= 1 and never reset here. When host_rate == model_rate it is called with the host's own buffers.
    With `key_channels` > 0 a sidechain key (key_channels, T) goes down with the audio through its own
    resampler of the same design, so both arrive with the same delay and as many samples, and
    `process_fn(x, sidechain=key)` gets it at the model's rate.
    """

    def __init__(self, process_fn: Callable[..., np.ndarray], host_rate: int, model_rate: int,
                 channels: int, quality: str = "high", key_channels: int = 0) -> None:
        if not callable(process_fn):
            raise AudioInputError(f"process_fn must be callable, got {type(process_fn).__name__}")
        self.process_fn = process_fn
        self.host_rate = _check_int("host_rate", host_rate, 1)
        self.model_rate = _check_int("model_rate", model_rate, 1)
        self.channels = _check_int("channels", channels, 1)
        self.passthrough = self.host_rate == self.model_rate
        # Both delays are whole host samples, so their sum, the adapter's latency, is an integer.
        self._down = StreamingResampler(self.host_rate, self.model_rate, self.channels, quality,
                                        whole_delay_at=self.host_rate)
        self._up = StreamingResampler(self.model_rate, self.host_rate, self.channels, quality,
                                      whole_delay_at=self.host_rate)
        self.key_channels = _check_int("key_channels", key_channels, 0)
        self._key_down = StreamingResampler(self.host_rate, self.model_rate, self.key_channels, quality,
                                            whole_delay_at=self.host_rate) if self.key_channels else None
        # Pre-fill, with L/M = model_rate/host_rate reduced. After N host samples in total the down stage
        # has made c = ceil(N*L/M) model samples, the model c, the up stage ceil(c*M/L) >= ceil(N*L/M*M/L)
        # = N host samples: the host has asked for N, so the FIFO never underruns with no pre-fill, and
        # no pre-fill is the minimum. Output sample i is sample i of the resampled stream whatever the
        # partition, so the delay is constant: the filters' group delays, no buffering delay. Between
        # calls the FIFO holds ceil(c*M/L) - N < M/L + 1 samples (at most 2 at 48 kHz, 3 at 96 kHz).
        self._prefill = 0
        self._latency_exact = self._down.delay_exact / self._down.ratio + self._up.delay_exact
        self.reset()

    @property
    def latency_samples(self) -> int:
        """Delay from host input to host output of this adapter (model latency excluded), host samples."""
        return _round_half_up(self._latency_exact) + self._prefill

    def total_latency_samples(self, model_latency_at_model_rate: int) -> int:
        """Adapter latency plus the model's own latency (given in model samples), in host samples."""
        d = _check_int("model_latency_at_model_rate", model_latency_at_model_rate, 0)
        return _round_half_up(self._latency_exact + Fraction(d * self.host_rate, self.model_rate)) + self._prefill

    def reset(self) -> None:
        """Reset both resamplers and the FIFO (not the model: its owner resets it)."""
        self._down.reset()
        self._up.reset()
        if self._key_down is not None:
            self._key_down.reset()
        self._fifo = np.zeros((self.channels, self._prefill), np.float32)

    def _run_model(self, x: np.ndarray, key: np.ndarray | None = None) -> np.ndarray:
        y = self.process_fn(x) if key is None else self.process_fn(x, sidechain=key)
        if not isinstance(y, np.ndarray) or y.shape != x.shape:
            raise AudioInputError(f"process_fn must return an array of shape {x.shape}, got "
                                  f"{getattr(y, 'shape', type(y).__name__)}")
        return y if y.dtype == np.float32 else y.astype(np.float32)

    def process(self, x: np.ndarray, sidechain: np.ndarray | None = None) -> np.ndarray:
        """x (channels, T) float32 at host_rate -> (channels, T) float32, for any T >= 0; `sidechain`
        (key_channels, T) is required when key_channels > 0 and refused otherwise."""
        x = _check_audio(x, self.channels)
        if (sidechain is None) != (self.key_channels == 0):
            raise AudioInputError(f"this stream takes a sidechain of {self.key_channels} channel(s); got "
                                  + ("none" if sidechain is None else f"one of shape {sidechain.shape}"))
        if sidechain is not None:
            sidechain = _check_audio(sidechain, self.key_channels)
            if sidechain.shape[1] != x.shape[1]:
                raise AudioInputError(f"sidechain of {sidechain.shape[1]} samples with {x.shape[1]} of audio")
        if self.passthrough:
            return self._run_model(x, sidechain)
        mid = self._down.process(x)
        mid_key = None if sidechain is None else self._key_down.process(sidechain)
        if mid.shape[1]:
            back = self._up.process(self._run_model(mid, mid_key))
            self._fifo = np.concatenate((self._fifo, back), axis=1) if self._fifo.shape[1] else back
        t = x.shape[1]
        if self._fifo.shape[1] < t:  # impossible by the derivation above
            raise RuntimeError(f"resampling FIFO underran ({self._fifo.shape[1]} < {t})")
        out = np.ascontiguousarray(self._fifo[:, :t])
        self._fifo = self._fifo[:, t:].copy()
        return out


def _round_half_up(v: Fraction) -> int:
    return math.floor(v + Fraction(1, 2))
