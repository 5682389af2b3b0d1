"""Streaming resampling (neuralcomp/host/resample.py): bitwise chunk invariance, output counts, filter
response, round-trip accuracy, the rate-adapted stream's exact lengths and latency, input errors."""

from __future__ import annotations

import math
from fractions import Fraction
from functools import cache

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from neuralcomp.host.resample import QUALITIES, RateAdaptedStream, StreamingResampler

MODEL_RATE = 44100
PAIRS = [(44100, 48000), (48000, 44100), (44100, 96000), (96000, 44100), (44100, 88200), (88200, 44100)]
SIZES = st.one_of(st.integers(1, 5000), st.sampled_from([1, 2, 3, 5, 7, 13, 127, 509, 1021, 2039, 4093, 4999]))
# Round trip host -> 44.1k -> host, error RMS relative to the signal RMS. Measured (quality "high"):
# 48k tone -119.3 dB, music -118.3 dB; 96k tone -118.4 dB, music -117.7 dB. Bound with ~8 dB margin.
ROUND_TRIP_DB = -110.0
# Same through RateAdaptedStream with noise band-limited to 15 kHz (more energy near the band edge):
# measured -113.2 dB (48k), -113.0 dB (96k), -112.1 dB (88.2k) on 50k samples.
ADAPTER_DB = -105.0


def _db(err: np.ndarray, ref: np.ndarray) -> float:
    return 20 * math.log10(np.sqrt(np.mean(np.square(err, dtype=np.float64))) / np.sqrt(np.mean(np.square(ref))))


def _fade(x: np.ndarray, rate: int, ms: float = 20.0) -> np.ndarray:
    n = int(rate * ms / 1000)
    w = 0.5 - 0.5 * np.cos(np.pi * np.arange(n) / n)
    x = x.copy()
    x[..., :n] *= w
    x[..., -n:] *= w[::-1]
    return x


def _lowpass(x: np.ndarray, rate: int, cutoff: float) -> np.ndarray:
    spec = np.fft.rfft(x)
    spec[..., np.fft.rfftfreq(x.shape[-1], 1 / rate) > cutoff] = 0
    return np.fft.irfft(spec, x.shape[-1])


@cache
def _tone(rate: int, seconds: float = 2.0) -> np.ndarray:
    """1 kHz sine at -6 dBFS, 20 ms fades, float32 (1, n)."""
    t = np.arange(int(seconds * rate)) / rate
    return _fade(0.5 * np.sin(2 * np.pi * 1000 * t), rate).astype(np.float32)[None]


@cache
def _music(rate: int, seconds: float = 2.0) -> np.ndarray:
    """Decaying harmonic notes plus noise, band-limited below 15 kHz, peak -6 dBFS, float32 (1, n)."""
    n = int(seconds * rate)
    t = np.arange(n) / rate
    x = np.zeros(n)
    for onset, f0 in [(0.0, 110.0), (0.3, 277.18), (0.7, 330.0), (1.1, 659.26), (1.4, 196.0)]:
        env = np.clip((t - onset) / 0.005, 0, 1) * np.exp(-3.0 * np.maximum(t - onset, 0))
        for h in range(1, int(15000 // f0) + 1):
            x += 0.3 / h * env * np.sin(2 * np.pi * h * f0 * (t - onset) + h)
    x += 0.05 * np.random.default_rng(1).standard_normal(n)
    x = _fade(_lowpass(x, rate, 15000.0), rate)
    return (0.5 * x / np.abs(x).max()).astype(np.float32)[None]


@cache
def _noise(rate: int, n: int = 50_000, channels: int = 2) -> np.ndarray:
    """Independent noise per channel band-limited below 15 kHz (0.7 x Nyquist if lower), faded in, float32."""
    x = _lowpass(np.random.default_rng(rate).standard_normal((channels, n)), rate, min(15000.0, 0.35 * rate))
    n_fade = rate // 50
    x[:, :n_fade] *= 0.5 - 0.5 * np.cos(np.pi * np.arange(n_fade) / n_fade)
    return (0.3 * x / x.std()).astype(np.float32)


def _run(proc, x: np.ndarray, sizes: list[int]) -> list[np.ndarray]:
    bounds = np.cumsum([0] + sizes)
    return [proc.process(np.ascontiguousarray(x[:, a:b])) for a, b in zip(bounds[:-1], bounds[1:])]


def _lag(y: np.ndarray, x: np.ndarray) -> int:
    """Lag (samples) of y relative to x at the cross-correlation peak."""
    n = len(x) + len(y)
    xc = np.fft.irfft(np.fft.rfft(y, n) * np.conj(np.fft.rfft(x, n)), n)
    lag = int(np.argmax(xc))
    return lag if lag < n // 2 else lag - n


def _delay_line(d: int, channels: int):
    state = np.zeros((channels, d), np.float32)

    def process(x: np.ndarray) -> np.ndarray:
        nonlocal state
        both = np.concatenate((state, x), axis=1)
        state = both[:, both.shape[1] - d:]
        return both[:, :x.shape[1]]

    return process


# --- StreamingResampler -------------------------------------------------------------------------------------

@pytest.mark.parametrize("rates, quality", [(r, "high") for r in PAIRS] + [((96000, 44100), "best"),
                                                                         ((44100, 48000), "fast")],
                         ids=lambda v: f"{v[0]}-{v[1]}" if isinstance(v, tuple) else v)
@settings(max_examples=25)
@given(sizes=st.lists(SIZES, min_size=1, max_size=8))
def test_chunk_invariance_is_bitwise(rates, quality, sizes):
    rng = np.random.default_rng(len(sizes))
    x = rng.standard_normal((2, sum(sizes))).astype(np.float32)
    whole = StreamingResampler(*rates, channels=2, quality=quality).process(x)
    r = StreamingResampler(*rates, channels=2, quality=quality)
    parts = _run(r, x, sizes)
    total = 0
    for size, part in zip(sizes, parts):
        assert part.dtype == np.float32 and part.shape[0] == 2
        assert part.shape[1] == r.output_count(total + size) - r.output_count(total)
        total += size
    assert np.array_equal(np.concatenate(parts, axis=1), whole)
    r.reset()  # back to the start state
    assert np.array_equal(r.process(x), whole)


@pytest.mark.parametrize("rates", PAIRS, ids=lambda r: f"{r[0]}-{r[1]}")
@settings(max_examples=20)
@given(sizes=st.lists(st.one_of(st.integers(0, 3000), SIZES), min_size=1, max_size=12))
def test_output_count_formula(rates, sizes):
    r = StreamingResampler(*rates, channels=1)
    n_in = n_out = 0
    for size in sizes:
        n_in += size
        n_out += r.process(np.zeros((1, size), np.float32)).shape[1]
        assert n_out == math.ceil(Fraction(n_in * rates[1], rates[0])) == r.output_count(n_in)


@pytest.mark.parametrize("rates", [(48000, 44100), (44100, 48000)])
def test_output_count_one_sample_at_a_time(rates):
    r = StreamingResampler(*rates, channels=1)
    n_out = 0
    for n_in in range(1, 2 * 160 + 7):
        n_out += r.process(np.ones((1, 1), np.float32)).shape[1]
        assert n_out == -((-n_in * rates[1]) // rates[0])


def test_ratio_is_reduced():
    r = StreamingResampler(48000, 44100, 1)
    assert (r.up, r.down) == (147, 160) and r.ratio == Fraction(147, 160)
    r = StreamingResampler(44100, 88200, 1)
    assert (r.up, r.down) == (2, 1)


@pytest.mark.parametrize("rates", [(48000, 44100), (44100, 96000), (88200, 44100)], ids=lambda r: f"{r[0]}-{r[1]}")
@pytest.mark.parametrize("quality", list(QUALITIES))
def test_filter_response(rates, quality):
    r = StreamingResampler(*rates, channels=1, quality=quality)
    h = r.prototype_filter
    rate_hi = rates[0] * r.up
    n_fft = 1 << 20
    mag = np.abs(np.fft.rfft(h, n_fft))
    f = np.fft.rfftfreq(n_fft, 1 / rate_hi)
    atten, _ = QUALITIES[quality]
    assert 20 * np.log10(mag[f >= r.stopband_hz].max()) <= -atten
    passband = mag[f <= r.passband_hz]
    assert np.abs(passband - 1).max() <= 10 ** (-atten / 20) * 2  # ripple ~ stopband level
    assert min(rates) / 2 * 0.74 < r.passband_hz < r.cutoff_hz < r.stopband_hz == min(rates) / 2


def test_filter_is_symmetric_about_its_delay():
    r = StreamingResampler(48000, 44100, 1)
    h = r.prototype_filter
    c = r._center
    nz = np.flatnonzero(h)
    assert nz[0] + nz[-1] == 2 * c  # linear phase about c: group delay c samples at the high rate
    assert np.allclose(h[nz], h[2 * c - nz], rtol=0, atol=1e-15)
    assert r.delay_exact == Fraction(c, r.down)


@pytest.mark.parametrize("host", [48000, 96000])
def test_aliases_are_rejected(host):
    # A tone above 22.05 kHz must not fold back into the 44.1 kHz output.
    t = np.arange(host // 4) / host
    x = _fade(0.5 * np.sin(2 * np.pi * 23000 * t), host).astype(np.float32)[None]
    y = StreamingResampler(host, MODEL_RATE, 1).process(x)
    assert _db(y, x) < -100.0


@pytest.mark.parametrize("host", [48000, 96000])
@pytest.mark.parametrize("signal", ["tone", "music"])
def test_round_trip(host, signal):
    x = (_tone if signal == "tone" else _music)(host)
    down = StreamingResampler(host, MODEL_RATE, 1)
    up = StreamingResampler(MODEL_RATE, host, 1)
    y = up.process(down.process(x))
    assert y.shape == x.shape
    predicted = down.delay_exact * Fraction(host, MODEL_RATE) + up.delay_exact
    assert predicted.denominator == 1  # both delays are whole samples at the higher rate
    # Measured with noise (a tone's correlation peak is ambiguous by a period).
    noise = _noise(host)[:1, :20000]
    measured = _lag(StreamingResampler(MODEL_RATE, host, 1).process(StreamingResampler(host, MODEL_RATE, 1).process(
        noise))[0].astype(np.float64), noise[0].astype(np.float64))
    assert measured == predicted
    d = int(predicted)
    assert _db(y[:, d:] - x[:, :-d], x) < ROUND_TRIP_DB


def test_equal_rates_are_identity():
    r = StreamingResampler(44100, 44100, 2)
    x = np.random.default_rng(0).standard_normal((2, 100)).astype(np.float32)
    y = r.process(x)
    assert np.array_equal(y, x) and y is not x and r.delay == 0.0 and r.output_count(100) == 100


def test_zero_length_calls():
    r = StreamingResampler(48000, 44100, 3)
    assert r.process(np.zeros((3, 0), np.float32)).shape == (3, 0)


# --- RateAdaptedStream --------------------------------------------------------------------------------------

@pytest.mark.parametrize("host", [48000, 96000, 88200, 32000])
@settings(max_examples=15)
@given(sizes=st.lists(st.one_of(st.just(0), SIZES), min_size=1, max_size=10))
def test_adapter_exact_lengths_delay_and_partition_invariance(host, sizes):
    x = _noise(host)[:, : sum(sizes)]
    whole = RateAdaptedStream(lambda v: v, host, MODEL_RATE, channels=2).process(x)
    s = RateAdaptedStream(lambda v: v, host, MODEL_RATE, channels=2)
    parts = _run(s, x, sizes)
    for size, part in zip(sizes, parts):
        assert part.shape == (2, size) and part.dtype == np.float32
    assert np.array_equal(np.concatenate(parts, axis=1), whole)
    lat = s.latency_samples
    if x.shape[1] > lat + 1000:
        assert _db(whole[:, lat:] - x[:, :-lat], x[:, :-lat]) < ADAPTER_DB


def test_adapter_latency_figures():
    assert RateAdaptedStream(lambda v: v, 48000, MODEL_RATE, 2).latency_samples == 80
    assert RateAdaptedStream(lambda v: v, 96000, MODEL_RATE, 2).latency_samples == 158
    assert RateAdaptedStream(lambda v: v, 88200, MODEL_RATE, 2).latency_samples == 146


@pytest.mark.parametrize("host", [48000, 96000])
@pytest.mark.parametrize("d", [0, 1, 3, 100, 441, 1000])
def test_model_delay_lands_where_predicted(host, d):
    s = RateAdaptedStream(_delay_line(d, 1), host, MODEL_RATE, channels=1)
    x = _noise(host)[:1, :20000]
    y = np.concatenate(_run(s, x, [256] * (x.shape[1] // 256)), axis=1)
    measured = _lag(y[0].astype(np.float64), x[0, : y.shape[1]].astype(np.float64))
    assert abs(measured - s.total_latency_samples(d)) <= 1
    assert s.total_latency_samples(0) == s.latency_samples


def test_adapter_one_sample_calls():
    s = RateAdaptedStream(lambda v: v, 48000, MODEL_RATE, 1)
    x = _noise(48000)[:1, :1000]
    ones = np.concatenate(_run(s, x, [1] * 1000), axis=1)
    assert np.array_equal(ones, RateAdaptedStream(lambda v: v, 48000, MODEL_RATE, 1).process(x))


def test_adapter_reset_does_not_reset_model():
    class Model:
        resets = 0

        def __call__(self, v: np.ndarray) -> np.ndarray:
            return v

        def reset(self) -> None:
            self.resets += 1

    model = Model()
    s = RateAdaptedStream(model, 48000, MODEL_RATE, 2)
    x = _noise(48000)[:, :3000]
    first = s.process(x)
    s.process(x[:, :77])
    s.reset()
    assert np.array_equal(s.process(x), first) and model.resets == 0


def test_adapter_skips_model_when_no_sample_is_ready():
    calls: list[int] = []
    s = RateAdaptedStream(lambda v: calls.append(v.shape[1]) or v, 48000, MODEL_RATE, 1)
    for _ in range(50):
        assert s.process(np.zeros((1, 1), np.float32)).shape == (1, 1)
    assert s.process(np.zeros((1, 0), np.float32)).shape == (1, 0)
    assert 0 not in calls and sum(calls) == math.ceil(50 * 147 / 160)


def test_adapter_pass_through():
    seen: list[np.ndarray] = []
    s = RateAdaptedStream(lambda v: seen.append(v) or v * 2, 44100, 44100, 2)
    x = np.ones((2, 5), np.float32)
    y = s.process(x)
    assert seen[0] is x and np.array_equal(y, 2 * x)
    assert s.latency_samples == 0 and s.total_latency_samples(37) == 37


# --- errors -------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("bad", [0, -48000, 48000.0, "48000", True, None])
def test_bad_rates(bad):
    with pytest.raises(ValueError, match="rate"):
        StreamingResampler(bad, 44100, 1)
    with pytest.raises(ValueError, match="rate"):
        StreamingResampler(44100, bad, 1)
    with pytest.raises(ValueError, match="rate"):
        RateAdaptedStream(lambda v: v, bad, 44100, 1)


@pytest.mark.parametrize("bad", [0, -1, 2.0])
def test_bad_channels(bad):
    with pytest.raises(ValueError, match="channels"):
        StreamingResampler(48000, 44100, bad)


def test_bad_quality_and_options():
    with pytest.raises(ValueError, match="quality"):
        StreamingResampler(48000, 44100, 1, quality="ultra")
    with pytest.raises(ValueError, match="whole_delay_at"):
        StreamingResampler(48000, 44100, 1, whole_delay_at=96000)
    with pytest.raises(ValueError, match="callable"):
        RateAdaptedStream(None, 48000, 44100, 1)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="model_latency"):
        RateAdaptedStream(lambda v: v, 48000, 44100, 1).total_latency_samples(-1)


@pytest.mark.parametrize("x, match", [
    (np.zeros((3, 10), np.float32), "channels"),
    (np.zeros((2, 10), np.float64), "float32"),
    (np.zeros(10, np.float32), "2-D"),
    (np.zeros((1, 2, 10), np.float32), "2-D"),
    ([[0.0] * 10] * 2, "numpy array"),
])
@pytest.mark.parametrize("make", [lambda: StreamingResampler(48000, 44100, 2),
                                  lambda: RateAdaptedStream(lambda v: v, 48000, 44100, 2),
                                  lambda: RateAdaptedStream(lambda v: v, 44100, 44100, 2)])
def test_bad_audio(x, match, make):
    with pytest.raises(ValueError, match=match):
        make().process(x)


def test_model_returning_wrong_length():
    s = RateAdaptedStream(lambda v: v[:, :-1], 48000, 44100, 1)
    with pytest.raises(ValueError, match="process_fn"):
        s.process(np.zeros((1, 100), np.float32))
