"""The TCN baseline: the architecture field, lengths and causality, cached padding, the refusal of a
receptive field longer than the training window, checkpoints, and training/resuming with the TBPTT trainer."""

import json

import numpy as np
import pytest
import torch

from neuralcomp.config import SPTModConfig, TCNConfig, generic_controls, load_preset, model_config_from_dict
from neuralcomp.errors import AudioInputError, ConfigError
from neuralcomp.model import TCN, SPTMod, build_model
from neuralcomp.model.checkpoint import load_model, save_model
from neuralcomp.model.complexity import complexity
from neuralcomp.training.sequences import TBPTTSequences
from neuralcomp.training.config import TrainingConfig
from neuralcomp.training.trainer import Trainer
from tests.unit.test_tbptt import _items

SMALL = dict(channels=4, kernel_size=3, dilations=(1, 2, 4, 8), film_hidden=8)  # receptive field 31


def _tcn(controls: int = 2, seed: int = 0, **changes) -> TCN:
    torch.manual_seed(seed)
    return build_model(load_preset("tcn", controls=generic_controls(controls), **{**SMALL, **changes}))


def test_architecture_field_picks_the_model_and_defaults_to_sptmod():
    assert isinstance(load_preset("sptmod25"), SPTModConfig) and load_preset("sptmod25").architecture == "sptmod"
    config = load_preset("tcn")
    assert isinstance(config, TCNConfig) and config.receptive_field == 5461
    assert round(config.receptive_field_ms(), 1) == 123.8  # the preset's description says 124 ms
    assert isinstance(build_model(config), TCN) and isinstance(build_model(load_preset("tiny")), SPTMod)
    old = load_preset("tiny").to_dict()
    del old["architecture"]  # metadata of files exported before the field existed
    assert isinstance(model_config_from_dict(old), SPTModConfig)
    with pytest.raises(ConfigError, match="unknown model architecture 'wavenet'"):
        model_config_from_dict({**old, "architecture": "wavenet"})
    with pytest.raises(ConfigError, match="causal only"):
        load_preset("tcn", mode="paper")


def test_lengths_causality_and_unity_start():
    model = _tcn().eval()
    assert model.receptive_field == 31 and model.input_length(100) == 130
    x, controls = torch.randn(2, 1, 130), torch.rand(2, 2)
    with torch.no_grad():
        y, _ = model(x, controls)
        assert y.shape == (2, 1, 100)
        # untrained: unity gain (zero weights and a bias in the 1x1 to the gain), so y is x
        torch.testing.assert_close(y, x[..., 30:], rtol=1e-6, atol=0)
        for p in model.to_gain.parameters():  # from here on a trained-like model
            p.add_(torch.randn_like(p))
        y, _ = model(x, controls)
        late = x.clone()
        late[..., 80] += 1.0  # input sample 80 is output sample 50: outputs before it must not move
        y_late, _ = model(late, controls)
        assert torch.equal(y_late[..., :50], y[..., :50]) and not torch.equal(y_late[..., 50:], y[..., 50:])
    with pytest.raises(AudioInputError, match="receptive field"):
        model(x[..., :30], controls)


def test_cached_padding_continues_the_no_padding_call():
    model = _tcn().eval()
    x, controls = torch.randn(2, 1, 1000), torch.rand(2, 2)
    with torch.no_grad():
        whole, _ = model(x, controls)
        first, state = model(x[..., :530], controls)
        parts = [first]
        for start, stop in ((530, 531), (531, 700), (700, 1000)):
            y, state = model(x[..., start:stop], controls, state)
            parts.append(y)
    torch.testing.assert_close(torch.cat(parts, -1), whole, rtol=0, atol=1e-6)


def test_receptive_field_longer_than_the_training_window_is_refused_naming_both():
    model = _tcn(dilations=(1, 2, 4, 8, 16, 32, 64, 128))  # receptive field 511
    with pytest.raises(ConfigError, match=r"receptive field of 511 samples .* training window L = 256 samples"):
        TBPTTSequences(_items(), model, 1, 2, 256, True, 0)
    TBPTTSequences(_items(), model, 1, 2, 512, True, 0)  # fits


def test_complexity_counts_parameters_and_multiply_adds():
    config = load_preset("tcn", controls=generic_controls(7))
    c = complexity(config)
    assert c.processor_parameters == sum(p.numel() for p in build_model(config).parameters())
    assert c.spn_parameters == 0
    # convs 1*8*5 + 5*8*8*5, residual 1x1 (1 -> 8), FiLM affine 6*8, the 1x1 to the gain, gain * input
    assert c.macs_streaming == c.macs_published == 40 + 5 * 320 + 8 + 6 * 8 + 8 + 1


def test_checkpoint_round_trip(tmp_path):
    model = _tcn()
    loaded, extra = load_model(save_model(model, tmp_path / "tcn.ckpt", {"step": 3}))
    assert isinstance(loaded, TCN) and loaded.config == model.config and extra == {"step": 3}
    for a, b in zip(model.state_dict().values(), loaded.state_dict().values()):
        assert torch.equal(a, b)


def test_trains_and_resumes_with_the_tbptt_trainer(tmp_path):
    """N = 2 carries the conv caches; a run stopped inside a group resumes to the same weights; ST and WT
    validation both run (no SPN, no LSTM)."""
    torch.set_num_threads(1)
    config = TrainingConfig(subsequences=2, batch_size=2, length=2048, learning_rate=1e-3, max_iterations=5,
                            validate_every=10_000, checkpoint_every=10_000, seed=3)
    items = _items()
    whole = Trainer(_tcn(), config, items, items[:1], tmp_path / "a", log=lambda s: None)
    whole.run()
    first = Trainer(_tcn(), config, items, items[:1], tmp_path / "b", log=lambda s: None)
    first.run(until=3)
    resumed = Trainer(_tcn(seed=5), config, items, items[:1], tmp_path / "b", log=lambda s: None)
    resumed.load_checkpoint(tmp_path / "b" / "last.ckpt")
    assert resumed.progress.piece == 1 and resumed._carried is not None
    resumed.run()
    for a, b in zip(whole.model.state_dict().values(), resumed.model.state_dict().values()):
        assert torch.equal(a, b)
    rows = [json.loads(line) for line in (tmp_path / "a" / "metrics.jsonl").read_text().splitlines()]
    validation = [r for r in rows if "valid_st" in r][-1]
    assert np.isfinite(validation["valid_st"]) and np.isfinite(validation["valid_wt"])
    assert isinstance(load_model(tmp_path / "a" / "best.ckpt")[0], TCN)
