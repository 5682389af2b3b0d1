"""Any host sample rate: the processor resamples in streaming fashion, keeps exact lengths and
chunk invariance, and reports a latency that is where the signal really lands."""

import numpy as np
import pytest

import neuralcomp
from neuralcomp import NonFiniteAudioWarning
from neuralcomp.host.resample import StreamingResampler
from tests.conftest import cpp_host_or_skip, native_engine_or_skip

BACKENDS = ["python", "torchscript", "native"]


def _tone(rate: int, seconds: float, freq: float = 1000.0) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    envelope = np.where((t % 0.5) < 0.25, 0.5, 0.05)  # level steps: the model's gain moves
    return (envelope * np.sin(2 * np.pi * freq * t)).astype(np.float32)[None]


def _music(rate: int, seconds: float) -> np.ndarray:
    """Decaying harmonic notes: content up to ~10 kHz, deterministic at any rate."""
    t = np.arange(int(rate * seconds)) / rate
    out = np.zeros_like(t)
    for start, f0 in zip(np.arange(0, seconds, 0.3), [110, 165, 220, 147, 196, 262, 131]):
        active = t >= start
        decay = np.exp(-(t - start) * 6) * active
        for k in range(1, 8):
            out += decay * np.sin(2 * np.pi * f0 * k * (t - start)) / k
    return (0.3 * out / np.abs(out).max()).astype(np.float32)[None]


@pytest.mark.parametrize("rate", [48000, 88200, 96000])
def test_other_rates_stream_exactly_with_exact_lengths(model_files, rate):
    p = neuralcomp.load(model_files("sptmod25", "paper", 7)[0], backend="python")
    x = _music(rate, 0.5)
    whole = p.process(x, rate)
    assert whole.shape == x.shape
    assert np.array_equal(p.process(x, rate, buffer_size=61), whole)
    assert p.latency_at(rate) > p.latency_samples * rate / 44100  # resampling adds delay
    assert p.latency_at(44100) == p.latency_samples == 63


@pytest.mark.parametrize("signal", [_tone, _music])
@pytest.mark.parametrize("rate", [48000, 96000])
def test_round_trip_through_the_model_lands_at_the_reported_latency(model_files, signal, rate):
    """The model at `rate` (resampled around it) matches the model run at its own rate on the same
    sound, once aligned by the reported latencies: error well below the signal."""
    p = neuralcomp.load(model_files("sptmod25", "causal", 7)[0], backend="python")
    at_rate = p.process(signal(rate, 2.0), rate)
    native = p.process(signal(44100, 2.0), 44100)
    up = StreamingResampler(44100, rate, 1, whole_delay_at=rate)
    native_up = up.process(native)
    shift = p.latency_at(rate) - int(up.delay)  # both delays are whole samples at `rate`
    assert shift >= 0
    start, stop = rate // 10, min(at_rate.shape[1], native_up.shape[1] + shift) - rate // 10
    reference = native_up[0, start - shift: stop - shift]
    error = at_rate[0, start:stop] - reference
    ratio_db = 20 * np.log10(np.sqrt(np.mean(error ** 2)) / np.sqrt(np.mean(reference ** 2)))
    print(f"{signal.__name__} at {rate}: error {ratio_db:.1f} dB")
    assert ratio_db < -62, ratio_db  # the README claims -65 dB; 3 dB of margin
    for wrong in (shift - 2, shift + 2):  # one or two samples off is clearly worse: latency is exact
        off = at_rate[0, start:stop] - native_up[0, start - wrong: stop - wrong]
        assert np.mean(off ** 2) > 4 * np.mean(error ** 2)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("mode", ["causal", "paper"])
def test_nan_at_another_rate_mutes_exactly_its_own_buffer(model_files, mode, backend):
    """At 48 kHz a buffer holding NaN is all zeros, counted once; the resamplers and the model go back
    to their start state, so the following buffers equal a fresh reset's output."""
    if backend == "torchscript":
        cpp_host_or_skip()
    if backend == "native":
        native_engine_or_skip()
    p = neuralcomp.load(model_files("sptmod24", mode, 7)[0], backend=backend)
    rate, size = 48000, 256
    x = _music(rate, 0.25)
    poisoned = x.copy()
    poisoned[0, 3 * size + 17] = np.nan
    with pytest.warns(NonFiniteAudioWarning):
        out = p.process(poisoned, rate, buffer_size=size)
    assert p.nonfinite_buffers == 1
    assert np.array_equal(out[:, :3 * size], p.process(x[:, :3 * size], rate, buffer_size=size))
    assert not np.any(out[:, 3 * size: 4 * size])
    fresh = p.process(x[:, 4 * size:], rate, buffer_size=size)
    assert np.any(fresh[:, :size])
    assert np.array_equal(out[:, 4 * size:], fresh)
