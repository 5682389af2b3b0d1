"""neuralcomp next to pedalboard: chains before and after the model stream exactly like one call,
and stereo runs with per-channel state or linked."""

import numpy as np
import pedalboard
import pytest

import neuralcomp
from tests.conftest import noise

RATE = 44100


def _chunks(total: int, seed: int) -> list[int]:
    rng = np.random.default_rng(seed)
    sizes = []
    while sum(sizes) < total:
        sizes.append(int(rng.choice([1, 7, 63, 64, 65, 256, 511, 1024, 3000])))
    sizes[-1] -= sum(sizes) - total
    return [s for s in sizes if s > 0]


def _run_chain(pre, model, post, x, sizes):
    out, position, first = [], 0, True
    for size in sizes:
        block = x[:, position: position + size]
        block = pre(block, RATE, reset=first)
        block = model.process(block, RATE, reset=first)
        out.append(post(block, RATE, reset=first))
        position += size
        first = False
    return np.concatenate(out, axis=1)


@pytest.mark.parametrize("channels", [1, 2])
def test_gain_model_compressor_chain_streams_bitwise(model_files, channels):
    model = neuralcomp.load(model_files("sptmod25", "causal", 7)[0])
    pre = pedalboard.Pedalboard([pedalboard.Gain(gain_db=6.0)])
    post = pedalboard.Pedalboard([pedalboard.Compressor(threshold_db=-18, ratio=4, attack_ms=2, release_ms=80)])
    x = noise(30000, channels=channels, seed=2)
    one_shot = _run_chain(pre, model, post, x, [x.shape[1]])
    streamed = _run_chain(pre, model, post, x, _chunks(x.shape[1], seed=channels))
    assert streamed.shape == x.shape
    assert np.array_equal(streamed, one_shot)


def test_chain_with_a_filter_stays_within_pedalboards_own_deviation(model_files):
    """pedalboard's IIR filters are not chunk-invariant (~1e-8); the model must not blow that up."""
    model = neuralcomp.load(model_files("sptmod25", "causal", 7)[0])
    x = noise(30000, seed=4)
    sizes = _chunks(x.shape[1], seed=9)
    hpf = pedalboard.Pedalboard([pedalboard.HighpassFilter(cutoff_frequency_hz=80)])
    # A fresh pedalboard filter's first call sets it up for that call's size, and a stream that
    # starts with a small buffer then differs from one call by up to ~3e-2 (measured): warm it up.
    hpf(x, RATE, reset=True)
    filter_only = np.abs(_run_chain(hpf, _Identity(), _identity_board(), x, sizes)
                         - _run_chain(hpf, _Identity(), _identity_board(), x, [x.shape[1]])).max()
    with_model = np.abs(_run_chain(hpf, model, _identity_board(), x, sizes)
                        - _run_chain(hpf, model, _identity_board(), x, [x.shape[1]])).max()
    assert filter_only < 1e-6
    assert with_model <= 100 * filter_only, (with_model, filter_only)  # exact if the filter is


class _Identity:
    def process(self, block, rate, reset=True):
        return block


def _identity_board():
    return pedalboard.Pedalboard([])


@pytest.mark.parametrize("backend", ["python", "cpp"])
def test_linked_stereo_shares_one_gain_computation(model_files, backend):
    if backend == "cpp":
        from tests.conftest import cpp_host_or_skip

        cpp_host_or_skip()
    model = neuralcomp.load(model_files("sptmod24", "causal", 7)[0], backend=backend)
    left = noise(8000, seed=6)
    mono = model.process(left, RATE)
    model.linked = True
    assert model.linked
    same = model.process(np.concatenate([left, left]), RATE)
    assert np.array_equal(same[0], mono[0]) and np.array_equal(same[1], mono[0])
    stereo = np.concatenate([left, 0.1 * noise(8000, seed=7)])
    linked = model.process(stereo, RATE)
    streamed = model.process(stereo, RATE, buffer_size=97)
    assert np.array_equal(linked, streamed)
    # one modulation path: the channel difference is the input difference times one shared gain
    model.linked = False
    independent = model.process(stereo, RATE)
    assert not np.array_equal(independent[1], linked[1])
    # unlinked, the left channel ignores the right (to float rounding: the batch of 2 uses other kernels)
    np.testing.assert_allclose(independent[0], mono[0], rtol=0, atol=1e-6)


def _off_shared_affine(x: np.ndarray, y: np.ndarray) -> float:
    """How far channel 2 is from y = scale * x + offset with the per-sample scale and offset that
    channels 0 and 1 give (relative to the output's peak), where channels 0 and 1 differ enough."""
    usable = np.abs(x[0] - x[1]) > 0.05
    scale = (y[0] - y[1])[usable] / (x[0] - x[1])[usable]
    offset = y[0][usable] - scale * x[0][usable]
    return float(np.abs(y[2][usable] - (scale * x[2][usable] + offset)).max() / np.abs(y).max())


@pytest.mark.parametrize("backend", ["python", "cpp"])
def test_linked_channels_get_the_same_scale_and_offset(model_files, backend):
    """Linked, every channel's output is one shared per-sample scale and offset applied to its own input:
    three channels of different content fit one affine map; unlinked they do not."""
    if backend == "cpp":
        from tests.conftest import cpp_host_or_skip

        cpp_host_or_skip()
    model = neuralcomp.load(model_files("sptmod24", "causal", 7)[0], backend=backend)
    a, b = noise(8000, seed=8), noise(8000, seed=9)
    x = np.concatenate([a, 0.1 * b, 0.3 * b - 0.5 * a])
    model.linked = True
    linked = _off_shared_affine(x, model.process(x, RATE, buffer_size=64))
    model.linked = False
    unlinked = _off_shared_affine(x, model.process(x, RATE, buffer_size=64))
    assert linked < 1e-4, linked
    assert unlinked > 100 * max(linked, 1e-7), (unlinked, linked)
