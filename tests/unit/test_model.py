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


def _frames_to_forget(block, frames: int = 600) -> int:
    """Frames after a loud burst (silence in) until the LSTM's cells have lost 1/e of their mean magnitude."""
    burst = torch.full((1, 20, block.lstm.input_size), 3.0)
    with torch.no_grad():
        _, state = block.lstm(burst)
        peak = state[1].abs().mean()
        for frame in range(frames):
            _, state = block.lstm(torch.zeros(1, 1, block.lstm.input_size), state)
            if state[1].abs().mean() < peak / torch.e:
                return frame + 1
    return frames


def test_chrono_initialisation_gives_the_lstm_a_long_memory_from_the_start():
    """With PyTorch's initialisation a block's LSTM forgets a burst within a few frames; chrono
    initialisation up to 1000 frames (1.45 s at P = 64, 44.1 kHz) keeps it for over a hundred, as a
    500 ms release needs, and the biases lie in the documented ranges."""
    torch.manual_seed(0)
    default = SPTMod(load_preset("tiny_max", controls=()))
    torch.manual_seed(0)
    chrono = SPTMod(load_preset("tiny_max", controls=(), chrono_init_frames=1000))
    hidden = chrono.config.lstm_hidden
    for block in chrono.blocks:
        forget = block.lstm.bias_ih_l0[hidden : 2 * hidden] + block.lstm.bias_hh_l0[hidden : 2 * hidden]
        assert 0 <= forget.min() and forget.max() <= torch.log(torch.tensor(999.0))
        torch.testing.assert_close(block.lstm.bias_ih_l0[:hidden], -forget)
    assert max(_frames_to_forget(b) for b in default.blocks) < 10
    assert min(_frames_to_forget(b) for b in chrono.blocks) > 100


def test_a_gain_only_audio_path_adds_nothing_of_its_own():
    """audio_modulation "gain" holds every block's audio shift at zero, whatever its parameters hold: silence
    in gives exact silence out, and frame_projection (what the exporter writes) holds the zero row. The
    paper's affine path, with the same weights and a learnt shift, puts out an offset on silence."""
    torch.manual_seed(0)
    gain = SPTMod(load_preset("tiny_max", controls=(), audio_modulation="gain")).eval()
    affine = SPTMod(load_preset("tiny_max", controls=())).eval()
    with torch.no_grad():
        for block in gain.blocks:
            block.projection.bias[1] = 0.3  # what an affine pre-trained file (or a drifting LSTM) would add
            block.projection.weight[1] = 0.1
        affine.load_state_dict(gain.state_dict())
        silence = torch.zeros(1, 1, gain.input_length(1024))
        assert torch.count_nonzero(gain(silence, torch.zeros(1, 0))[0]) == 0
        assert affine(silence, torch.zeros(1, 0))[0].abs().min() > 0.1
        x = torch.randn(1, 1, gain.input_length(1024))
        assert not torch.equal(gain(x, torch.zeros(1, 0))[0], affine(x, torch.zeros(1, 0))[0])
    for block in gain.blocks:
        weight, bias = block.frame_projection()
        assert torch.count_nonzero(weight[1]) == 0 and bias[1] == 0
        torch.testing.assert_close(weight[[0] + list(range(2, len(bias)))],
                                   block.projection.weight[[0] + list(range(2, len(bias)))], rtol=0, atol=0)


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
