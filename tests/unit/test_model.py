"""SPTMod and its SPN: shapes, parameter counts, the SPN feeding the first iteration, checkpoints."""

import pytest
import torch

from neuralcomp.config import generic_controls, load_preset
from neuralcomp.errors import AudioInputError, ModelFileError
from neuralcomp.model import SPTMod
from neuralcomp.model.checkpoint import load_model, save_model
from neuralcomp.model.complexity import complexity


@pytest.mark.parametrize("preset, processor, macs", [("sptmod24", 57_834, 30_075), ("sptmod25", 38_598, 5_612)])
def test_parameter_and_operation_counts(preset, processor, macs):
    c = complexity(load_preset(preset, controls=generic_controls(7)))
    assert c.processor_parameters == processor
    assert round(c.macs_published) == macs
    assert c.macs_streaming < c.macs_published  # the 1x1 runs at frame rate when streaming


def test_zero_controls_means_no_film():
    model = SPTMod(load_preset("tiny", controls=()))
    assert all(block.film is None for block in model.blocks)
    y, _ = model(torch.randn(2, 1, model.input_length(128)), torch.zeros(2, 0))
    assert y.shape == (2, 1, 128)


def test_spn_predicts_every_lstm_state_and_seeds_the_first_iteration():
    torch.manual_seed(0)
    model = SPTMod(load_preset("tiny", controls=generic_controls(2)))
    lookback = model.spn.lookback_samples
    assert lookback == 13_641
    controls = torch.rand(3, 2)
    x, target = torch.randn(3, 1, lookback), torch.randn(3, 1, lookback)
    states = model.spn(x, target, controls)
    assert len(states) == 3 and all(h.shape == (1, 3, 16) and c.shape == (1, 3, 16) for h, c in states)
    audio = torch.randn(3, 1, model.input_length(256))
    y_spn, _ = model(audio, controls, initial_lstm=states)
    y_zero, _ = model(audio, controls)
    assert y_spn.shape == (3, 1, 256) and not torch.equal(y_spn, y_zero)
    y_spn.sum().backward()  # gradients reach the SPN
    assert model.spn.to_state.weight.grad.abs().sum() > 0
    with pytest.raises(AudioInputError, match=str(lookback)):
        model.spn(x[..., 1:], target[..., 1:], controls)


@pytest.mark.parametrize("pooling", ["average", "max"])
def test_each_frame_is_pooled_as_configured(pooling):
    """The LSTM of each block sees one value per frame of P samples: their mean, or their maximum."""
    torch.manual_seed(0)
    model = SPTMod(load_preset("tiny", controls=(), pooling=pooling)).eval()
    block = model.blocks[0]
    seen = []
    block.lstm.register_forward_hook(lambda module, args, output: seen.append(args[0]))
    x = torch.randn(1, 1, model.input_length(8 * model.pool_size))
    with torch.no_grad():
        model(x, torch.zeros(1, 0))
        z = block.activation(block.conv(x[..., : seen[0].shape[1] * model.pool_size + block.kernel_size - 1]))
    frames = z.unflatten(-1, (-1, model.pool_size))
    expected = frames.amax(-1) if pooling == "max" else frames.mean(-1)
    torch.testing.assert_close(seen[0].transpose(1, 2), expected)


def test_bad_shapes_are_refused():
    model = SPTMod(load_preset("tiny", controls=generic_controls(2)))
    with pytest.raises(AudioInputError, match="batch, 1, samples"):
        model(torch.randn(2, model.input_length(64)), torch.rand(2, 2))
    with pytest.raises(AudioInputError, match="controls"):
        model(torch.randn(2, 1, model.input_length(64)), torch.rand(2, 3))


def test_checkpoint_round_trip_and_errors(tmp_path):
    torch.manual_seed(1)
    model = SPTMod(load_preset("tiny", mode="paper", controls=generic_controls(2)))
    path = save_model(model, tmp_path / "m.ckpt", {"step": 7})
    loaded, extra = load_model(path)
    assert extra == {"step": 7} and loaded.config == model.config
    for a, b in zip(model.state_dict().values(), loaded.state_dict().values()):
        assert torch.equal(a, b)
    (tmp_path / "junk.ckpt").write_bytes(b"\x00" * 100)
    with pytest.raises(ModelFileError, match="not a readable checkpoint"):
        load_model(tmp_path / "junk.ckpt")
    torch.save({"something": "else"}, tmp_path / "other.ckpt")
    with pytest.raises(ModelFileError, match="not a neuralcomp checkpoint"):
        load_model(tmp_path / "other.ckpt")
    with pytest.raises(ModelFileError, match="does not exist"):
        load_model(tmp_path / "missing.ckpt")
