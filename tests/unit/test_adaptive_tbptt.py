"""Adaptive TBPTT (issue 12 part 1): the decay estimate, the choice of L or N, fallback, logging and resume.

The synthetic task with a known memory: every LSTM keeps its cell with a fixed forget gate f per frame
(no recurrent weights, input-independent forget gate), so the gradient with respect to the carried state
decays exactly as f per frame, a time constant of -1 / ln f frames; the target is a leaky integrator
with the same time constant."""

import json
import math

import numpy as np
import pytest
import torch

from neuralcomp.config import generic_controls, load_preset
from neuralcomp.errors import AudioInputError, ConfigError
from neuralcomp.model import SPTMod
from neuralcomp.training.loss import CompressorLoss
from neuralcomp.training.sequences import TrainingItem
from neuralcomp.training.config import TrainingConfig
from neuralcomp.training.trainer import Trainer
from neuralcomp.training.truncation import (TruncationEstimateWarning, choose_truncation, estimate_decay,
                                            fit_geometric_rate, relative_bias)

POOL = 64
RATE_FACTOR = 1.1  # the stated accuracy: the estimated memory is within 10 % of the true one


def _model_with_memory(frames: float, seed: int = 0, sidechain: int = 0) -> SPTMod:
    torch.manual_seed(seed)
    model = SPTMod(load_preset("tiny", controls=generic_controls(2), sidechain=sidechain))
    forget = math.exp(-1.0 / frames)
    hidden = model.config.lstm_hidden
    with torch.no_grad():
        for block in model.blocks:
            gates = slice(hidden, 2 * hidden)  # PyTorch's gate order: input, forget, cell, output
            block.lstm.weight_hh_l0.zero_()
            block.lstm.bias_hh_l0.zero_()
            block.lstm.weight_ih_l0[gates] = 0.0
            block.lstm.bias_ih_l0[gates] = math.log(forget / (1 - forget))
            block.projection.weight[2:] = 0.0  # the modulation path does not depend on the LSTM
    return model


def _leaky_items(frames: float, count: int = 2, samples: int = 40000, seed: int = 0,
                 keyed: bool = False) -> list[TrainingItem]:
    """Noise bursts and a target gain from a leaky integrator of |x| with the task's time constant;
    `keyed`: of |key|, other noise bursts carried as the items' sidechain (a keyed compressor)."""
    rng = np.random.default_rng(seed)
    alpha = math.exp(-1.0 / (frames * POOL))
    items = []

    def bursts() -> np.ndarray:
        return 0.3 * rng.standard_normal(samples) * np.repeat(rng.uniform(0.05, 1, samples // 2000 + 1), 2000)[:samples]

    for i in range(count):
        x = bursts()
        key = bursts() if keyed else x
        envelope, level = np.empty(samples), 0.0
        for t in range(samples):
            level = alpha * level + (1 - alpha) * abs(key[t])
            envelope[t] = level
        items.append(TrainingItem(x.astype(np.float32), (x / (1 + 4 * envelope)).astype(np.float32),
                                  np.array([i / count, 0.5], np.float32),
                                  key[None].astype(np.float32) if keyed else None))
    return items


def _window(items, samples: int):
    x = torch.from_numpy(np.stack([it.input[:samples] for it in items])[:, None])
    y = torch.from_numpy(np.stack([it.target[:samples] for it in items])[:, None])
    return x, y, torch.from_numpy(np.stack([it.controls for it in items]))


def test_the_rate_estimate_finds_the_known_memory_and_the_truncation_grows_with_it():
    torch.set_num_threads(1)
    candidates = list(range(2048, 131072 + 1, POOL))
    chosen = []
    for frames in (8, 32, 128):
        x, y, controls = _window(_leaky_items(frames), 16384)
        estimate = estimate_decay(_model_with_memory(frames), x, y, controls, 8 * POOL, 2048, CompressorLoss())
        memory_frames = estimate.memory_samples / POOL
        assert 1 / RATE_FACTOR < memory_frames / frames < RATE_FACTOR, (frames, memory_frames)
        assert all(a >= b for a, b in zip(estimate.norms[1:], estimate.norms[2:]))  # decays with the lag
        length, bias = choose_truncation(estimate.rate_per_sample, 0.1, candidates)
        assert bias <= 0.1 and relative_bias(estimate.rate_per_sample, length - POOL) > 0.1  # the smallest such L
        chosen.append(length)
    assert chosen[0] < chosen[1] < chosen[2]
    # the bias of a piece of L outputs is about memory / L once L is well past the memory
    assert chosen[2] == pytest.approx(10 * 128 * POOL, rel=0.02)


def test_relative_bias_is_the_mean_truncated_share():
    rate = 0.999
    for length in (1, 7, 640):
        assert relative_bias(rate, length) == pytest.approx(np.mean(rate ** np.arange(length)), rel=1e-9)
    assert fit_geometric_rate([5.0, 0.8 ** 1, 0.8 ** 2, 0.8 ** 3], lag_samples=10) == pytest.approx(0.8 ** 0.1)
    assert fit_geometric_rate([1.0, 0.0, 0.0], 10) is None  # nothing past lag 0
    assert fit_geometric_rate([1.0, 1.0, 2.0, 4.0], 10) is None  # growing: no geometric decay


def _config(**changes) -> TrainingConfig:
    base = dict(subsequences=1, batch_size=2, length=2048, learning_rate=1e-3, max_iterations=6,
                validate_every=10_000, checkpoint_every=10_000, grad_clip=1.0, seed=3, truncation="adaptive",
                adapt_every=2, adaptive_window=4, adaptive_items=2, adaptive_max_length=16384)
    return TrainingConfig(**{**base, **changes})


def _quiet(line: str) -> None:
    pass


def test_adaptive_training_applies_logs_and_resumes_its_choice(tmp_path):
    """A model with 16 frames of memory trained at L = 2048: the estimate picks a longer L, training goes on
    at that L, every figure is logged, and an interrupted run resumes to the same weights and L."""
    torch.set_num_threads(1)
    items = _leaky_items(16, count=3, samples=60000)
    whole = Trainer(_model_with_memory(16), _config(), items, [], tmp_path / "a", log=_quiet)
    whole.run()
    rows = [json.loads(line) for line in (tmp_path / "a" / "metrics.jsonl").read_text().splitlines()]
    estimates = [row for row in rows if "tbptt_length" in row]
    assert [row["iteration"] for row in estimates] == [3, 5]  # estimated before iterations 3 and 5
    assert estimates[-1]["tbptt_length"] == whole.length > 2048 and whole.train.length == whole.length
    assert estimates[-1]["tbptt_bias"] <= 0.1 and estimates[-1]["tbptt_fallback"] == 0
    assert 16 / RATE_FACTOR < estimates[0]["tbptt_memory_frames"] < 16 * RATE_FACTOR  # one training step later
    first = Trainer(_model_with_memory(16), _config(), items, [], tmp_path / "b", log=_quiet)
    first.run(until=4)
    resumed = Trainer(_model_with_memory(16, seed=7), _config(), items, [], tmp_path / "b", log=_quiet)
    resumed.load_checkpoint(tmp_path / "b" / "last.ckpt")
    assert resumed.length == first.length != 2048 and resumed.train.length == first.length
    resumed.run()
    assert resumed.length == whole.length
    for a, b in zip(whole.model.parameters(), resumed.model.parameters()):
        assert torch.equal(a, b)


def test_choosing_n_keeps_l_and_grows_the_group(tmp_path):
    torch.set_num_threads(1)
    items = _leaky_items(128, count=3, samples=60000)
    trainer = Trainer(_model_with_memory(128), _config(adaptive_choice="subsequences", max_iterations=3,
                                                       bias_tolerance=0.3, adaptive_max_subsequences=6),
                      items, [], tmp_path, log=_quiet)
    trainer.run()
    assert trainer.length == 2048 and trainer.subsequences > 1 and trainer.train.subsequences == trainer.subsequences


def test_all_zero_gradients_fall_back_to_the_configured_truncation_with_a_warning(tmp_path):
    """The last block's audio modulation is zero (scale and shift): the output ignores every state, the
    gradient per lag is all zeros, and training goes on at the configured L."""
    torch.set_num_threads(1)
    model = _model_with_memory(32)
    with torch.no_grad():
        model.blocks[-1].projection.weight.zero_()
        model.blocks[-1].projection.bias.zero_()
    lines = []
    trainer = Trainer(model, _config(learning_rate=0.0, max_iterations=3), _leaky_items(32), [], tmp_path,
                      log=lines.append)
    with pytest.warns(TruncationEstimateWarning, match="no geometric decay"):
        result = trainer.run()
    assert result["iterations"] == 3 and trainer.length == 2048 and trainer.subsequences == 1
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [row["tbptt_fallback"] for row in rows if "tbptt_fallback" in row] == [1.0]
    assert any("no estimate" in line for line in lines)


def test_items_shorter_than_the_estimate_window_fall_back_with_a_warning(tmp_path):
    torch.set_num_threads(1)
    trainer = Trainer(_model_with_memory(8), _config(adaptive_window=40, max_iterations=3), _leaky_items(8),
                      [], tmp_path, log=_quiet)
    with pytest.warns(TruncationEstimateWarning, match="adaptive_window"):
        trainer.run()
    assert trainer.length == 2048


@pytest.mark.parametrize("changes,words", [
    ({"truncation": "sometimes"}, "truncation"), ({"bias_tolerance": 0.0}, "bias_tolerance"),
    ({"adaptive_choice": "batch"}, "adaptive_choice"), ({"adapt_every": 0}, "adapt_every"),
    ({"adaptive_min_length": 8192, "adaptive_max_length": 4096}, "adaptive_max_length")])
def test_bad_adaptive_settings_are_refused_by_name(changes, words):
    with pytest.raises(ConfigError, match=words):
        TrainingConfig(**{"truncation": "adaptive", **changes})


def test_adaptive_bounds_must_fit_the_pool_and_the_loss(tmp_path):
    items = _leaky_items(8)
    with pytest.raises(ConfigError, match="multiple of the pool size"):
        Trainer(_model_with_memory(8), _config(adaptive_max_length=10000), items, [], tmp_path, log=_quiet)
    with pytest.raises(ConfigError, match="largest window"):
        Trainer(_model_with_memory(8), _config(adaptive_min_length=1024), items, [], tmp_path, log=_quiet)


@pytest.mark.parametrize("clock", ["wall", "cpu"])
def test_a_time_budget_stops_training_validates_and_is_kept_on_resume(tmp_path, clock):
    """Equal-time comparisons (adaptive against fixed truncation): max_seconds of training-loop time."""
    torch.set_num_threads(1)
    items = _leaky_items(8)
    config = _config(truncation="fixed", max_seconds=1e-6, time_clock=clock)
    result = Trainer(_model_with_memory(8), config, items, items[:1], tmp_path, log=_quiet).run()
    assert result["iterations"] == 1 and result["seconds"] > 0
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert rows[-1]["iteration"] == 1 and rows[-1]["seconds_trained"] == result["seconds"]  # the final validation
    resumed = Trainer(_model_with_memory(8), config, items, items[:1], tmp_path, log=_quiet)
    resumed.load_checkpoint(tmp_path / "last.ckpt")
    assert resumed.run()["iterations"] == 1  # the budget was spent before the interruption
    with pytest.raises(ConfigError, match="time_clock"):
        TrainingConfig(time_clock="gpu")


def test_adaptive_truncation_is_refused_for_a_model_without_recurrence(tmp_path):
    from neuralcomp.model import build_model

    tcn = build_model(load_preset("tcn", controls=generic_controls(2)))
    with pytest.raises(ConfigError, match="recurrent model"):
        Trainer(tcn, _config(length=8192), _leaky_items(8), [], tmp_path, log=_quiet)


def test_a_sidechain_model_estimates_with_its_key_picks_an_l_and_resumes_exactly(tmp_path):
    """The estimate streams the key with the input, as training does: the known memory is found, training
    goes on at the chosen L, and an interrupted run resumes to the same weights and L."""
    torch.set_num_threads(1)
    items = _leaky_items(16, count=3, samples=60000, keyed=True)
    x, y, controls = _window(items, 16384)
    key = torch.from_numpy(np.stack([it.sidechain[:, :16384] for it in items]))
    model = _model_with_memory(16, sidechain=1)
    estimate = estimate_decay(model, x, y, controls, 8 * POOL, 2048, CompressorLoss(), sidechain=key)
    assert 1 / RATE_FACTOR < estimate.memory_samples / POOL / 16 < RATE_FACTOR
    with pytest.raises(AudioInputError, match="needs a sidechain"):  # the estimate cannot leave the key out
        estimate_decay(model, x, y, controls, 8 * POOL, 2048, CompressorLoss())
    whole = Trainer(_model_with_memory(16, sidechain=1), _config(), items, [], tmp_path / "a", log=_quiet)
    whole.run()
    rows = [json.loads(line) for line in (tmp_path / "a" / "metrics.jsonl").read_text().splitlines()]
    estimates = [row for row in rows if "tbptt_length" in row]
    assert [row["iteration"] for row in estimates] == [3, 5] and estimates[-1]["tbptt_fallback"] == 0
    assert estimates[-1]["tbptt_length"] == whole.length > 2048 and whole.train.length == whole.length
    first = Trainer(_model_with_memory(16, sidechain=1), _config(), items, [], tmp_path / "b", log=_quiet)
    first.run(until=4)
    resumed = Trainer(_model_with_memory(16, seed=7, sidechain=1), _config(), items, [], tmp_path / "b", log=_quiet)
    resumed.load_checkpoint(tmp_path / "b" / "last.ckpt")
    assert resumed.length == first.length != 2048
    resumed.run()
    assert resumed.length == whole.length
    for a, b in zip(whole.model.parameters(), resumed.model.parameters()):
        assert torch.equal(a, b)
