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


PRIME_SAMPLES = 8192  # pedalboard 0.9.26 is chunk-invariant after a first call of at least this many samples


def _readme_chain(model, x, sizes, rate, prime):
    """The README's chain with fresh boards, as a user builds them: [Gain] -> model -> [Compressor].
    prime: the README's pattern, each board first called once on PRIME_SAMPLES of silence."""
    pre = pedalboard.Pedalboard([pedalboard.Gain(gain_db=6)])
    post = pedalboard.Pedalboard([pedalboard.Compressor(threshold_db=-18, ratio=4)])
    if prime:
        silence = np.zeros((x.shape[0], PRIME_SAMPLES), np.float32)
        pre(silence, rate, reset=True)
        post(silence, rate, reset=True)
    out, position = [], 0
    for i, size in enumerate(sizes):
        block = x[:, position: position + size]
        position += size
        first = i == 0
        board_reset = first and not prime
        out.append(post(model.process(pre(block, rate, reset=board_reset), rate, reset=first), rate, reset=board_reset))
    return np.concatenate(out, axis=1)


def _issue_chunks(total: int, seed: int) -> list[int]:
    """Chunks of 145 to 27,135 samples, the first one small."""
    rng = np.random.default_rng(seed)
    sizes = [145]
    while sum(sizes) < total:
        sizes.append(int(rng.integers(145, 27136)))
    sizes[-1] -= sum(sizes) - total
    return sizes


@pytest.mark.parametrize("channels", [1, 2])
def test_readme_chain_with_fresh_boards_streams_bitwise(model_files, channels):
    """Fresh boards for every render, at 48 kHz: the README's pattern equals one call, bit for bit; without
    the priming call, a first buffer under 8192 samples followed by a larger one does not (pedalboard)."""
    model = neuralcomp.load(model_files("sptmod25", "causal", 7)[0])
    rate = 48000
    x = noise(60000, channels=channels, seed=2)
    one_shot = _readme_chain(model, x, [x.shape[1]], rate, prime=False)
    for seed in range(2):
        sizes = _issue_chunks(x.shape[1], seed)
        streamed = _readme_chain(model, x, sizes, rate, prime=True)
        assert streamed.shape == x.shape
        assert np.array_equal(streamed, one_shot), f"sizes {sizes}"
    unprimed = _readme_chain(model, x, _issue_chunks(x.shape[1], 0), rate, prime=False)
    assert np.abs(unprimed - one_shot).max() > 1e-3  # the pedalboard behaviour the README describes


def test_pedalboard_plugins_lose_state_when_a_later_buffer_outgrows_a_small_first_one():
    """The minimal reproduction in the README: a fresh Compressor, 64 samples then 8128, differs from one
    call of 8192; from a first call of 8192 samples or more, any later sizes are exact."""
    x = noise(20000, seed=3, level=0.8)

    def render(sizes):
        compressor, out, position = pedalboard.Compressor(threshold_db=-18, ratio=4), [], 0
        for i, size in enumerate(sizes):
            out.append(compressor(x[:, position: position + size], 48000, reset=i == 0))
            position += size
        return np.concatenate(out, axis=1)

    whole = render([20000])
    assert np.abs(render([64, 19936]) - whole).max() > 0.01
    assert np.abs(render([8191, 11809]) - whole).max() > 0.01  # 8192 is the line
    assert np.array_equal(render([64] * 312 + [32]), whole)  # never larger than the first: exact
    assert np.array_equal(render([8192, 11808]), whole)
    assert np.array_equal(render([8192, 1, 63, 11744]), whole)


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
