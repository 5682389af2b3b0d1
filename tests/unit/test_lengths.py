"""Length arithmetic (DESIGN.md section 3): exact lengths, minimal windows, no zero padding."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from neuralcomp.config import SPTModConfig, generic_controls, load_preset
from neuralcomp.errors import ConfigError
from neuralcomp.model import SPTMod, plan_lengths, spn_lookback
from neuralcomp.model.lengths import first_iteration_input_length


@pytest.mark.parametrize("preset, mode, extra", [
    ("sptmod24", "paper", 328), ("sptmod25", "paper", 450),  # the SPTMod authors' figures
    ("sptmod24", "causal", 520), ("sptmod25", "causal", 706),
])
def test_input_padding_of_presets(preset, mode, extra):
    assert plan_lengths(load_preset(preset, mode=mode)).extra_input_samples == extra


def test_published_spn_lookback():
    assert spn_lookback(load_preset("sptmod24").spn) == 218_441


def test_first_iteration_length_takes_the_longer_window():
    c = load_preset("sptmod25")
    assert first_iteration_input_length(c, 4096) == 4096 + 218_441
    assert first_iteration_input_length(c, 4096, use_spn=False) == 4096 + 706


def test_output_length_must_be_a_multiple_of_the_pool_size():
    with pytest.raises(ConfigError, match="multiple"):
        plan_lengths(load_preset("sptmod25")).input_length(100)


small_configs = st.builds(
    lambda ch, ks, pool, mode: SPTModConfig(name="h", channels=tuple(ch[: len(ks)]), kernel_sizes=tuple(ks),
                                            pool_size=pool, lstm_hidden=4, film_hidden=4, mode=mode,
                                            controls=generic_controls(2), spn=None),
    st.lists(st.integers(1, 4), min_size=3, max_size=3),
    st.lists(st.integers(1, 40), min_size=1, max_size=3),
    st.sampled_from([2, 4, 16]),
    st.sampled_from(["paper", "causal"]),
)


def _conv_input_lengths(model: SPTMod, x: torch.Tensor, controls: torch.Tensor, state=None):
    seen: list[tuple[int, int]] = []
    hooks = [b.conv.register_forward_hook(lambda m, i, o: seen.append((i[0].shape[-1], o.shape[-1])))
             for b in model.blocks]
    y, new_state = model(x, controls, state)
    for h in hooks:
        h.remove()
    return y, new_state, seen


@settings(max_examples=25)
@given(config=small_configs, frames=st.integers(1, 5))
def test_exact_lengths_and_no_padding_read(config, frames):
    """Output is exactly L; each conv reads exactly its planned span (no zero padding: the convs
    have padding 0 and the pooling inputs are whole frames)."""
    torch.manual_seed(0)
    model = SPTMod(config).double()
    length = frames * config.pool_size
    x = torch.randn(1, 1, model.input_length(length), dtype=torch.float64)
    controls = torch.rand(1, 2, dtype=torch.float64)
    y, _, seen = _conv_input_lengths(model, x, controls)
    assert y.shape == (1, 1, length)
    plan = plan_lengths(config)
    for block, span, (conv_in, conv_out) in zip(model.blocks, plan.blocks, seen):
        assert block.conv.padding == (0,)
        assert conv_in == length - span.conv_input_start
        assert conv_out == length - span.pool_start and conv_out % config.pool_size == 0


@settings(max_examples=15)
@given(config=small_configs)
def test_window_is_minimal(config):
    """The first sample of the window influences the output, so no shorter window would do, and a
    window one sample short is refused rather than zero-padded."""
    torch.manual_seed(0)
    model = SPTMod(config).double()
    length = 2 * config.pool_size
    x = torch.randn(1, 1, model.input_length(length), dtype=torch.float64, requires_grad=True)
    controls = torch.rand(1, 2, dtype=torch.float64)
    y, _ = model(x, controls)
    (grad,) = torch.autograd.grad(y.sum(), x)
    assert grad[0, 0, 0] != 0
    with pytest.raises(ConfigError):
        model(x[..., 1:].detach(), controls)


@pytest.mark.parametrize("preset", ["sptmod24", "sptmod25"])
@pytest.mark.parametrize("mode", ["paper", "causal"])
def test_no_padding_then_cached_padding_equals_one_longer_call(preset, mode):
    torch.manual_seed(0)
    model = SPTMod(load_preset(preset, mode=mode, controls=generic_controls(3), spn=None)).double()
    controls = torch.rand(2, 3, dtype=torch.float64)
    first, rest = 4 * 64, [2 * 64, 64, 3 * 64]
    total = first + sum(rest)
    x = torch.randn(2, 1, model.input_length(total), dtype=torch.float64)
    with torch.no_grad():
        y_once, state_once = model(x, controls)
        start = x.shape[-1] - total
        y, state = model(x[..., : start + first], controls)
        outputs, position = [y], start + first
        for n in rest:
            y, state = model(x[..., position: position + n], controls, state)
            outputs.append(y)
            position += n
    torch.testing.assert_close(torch.cat(outputs, -1), y_once, rtol=0, atol=1e-12)
    for a, b in zip(state, state_once):
        for ta, tb in zip(a.tensors(), b.tensors()):
            torch.testing.assert_close(ta, tb, rtol=0, atol=1e-12)


@pytest.mark.parametrize("mode, lookahead", [("causal", 0), ("paper", 63)])
def test_causality_and_lookahead(mode, lookahead):
    """Changing input sample s changes no output before s - lookahead; paper mode really looks ahead."""
    torch.manual_seed(0)
    model = SPTMod(load_preset("sptmod25", mode=mode, controls=generic_controls(0), spn=None)).double()
    state = model.zero_state(1)
    length = 8 * 64
    x = torch.randn(1, 1, length, dtype=torch.float64)
    with torch.no_grad():
        y, _ = model(x, torch.zeros(1, 0, dtype=torch.float64), state)
        for s in [100, 256, 300]:  # 256 starts a frame: nothing before it can change
            x2 = x.clone()
            x2[..., s] += 1.0
            y2, _ = model(x2, torch.zeros(1, 0, dtype=torch.float64), state)
            changed = (y2 != y).nonzero()[:, -1]
            assert changed.min() >= s - lookahead
            if mode == "paper" and s % 64:
                assert changed.min() == s - s % 64  # the look-ahead is real: back to the frame start
