"""TBPTT: batching, the training loop, exact resumption and ST validation = the exported model."""

import numpy as np
import pytest
import torch

from neuralcomp.config import generic_controls, load_preset
from neuralcomp.errors import ConfigError
from neuralcomp.model import SPTMod
from neuralcomp.training.loss import LossConfig
from neuralcomp.training.sequences import TBPTTSequences, TrainingItem
from neuralcomp.training.config import TrainingConfig
from neuralcomp.training.trainer import Trainer

LENGTH = 2048


def _items(count: int = 3, samples: int = 40000, seed: int = 0) -> list[TrainingItem]:
    rng = np.random.default_rng(seed)
    items = []
    for i in range(count):
        x = (0.3 * rng.standard_normal(samples) * np.repeat(rng.uniform(0.05, 1, samples // 1000 + 1), 1000)[:samples])
        gain = 1 / (1 + 4 * np.convolve(np.abs(x), np.ones(256) / 256, mode="same"))  # a crude compressor
        items.append(TrainingItem(x.astype(np.float32), (x * gain).astype(np.float32),
                                  np.array([i / count, 0.5], np.float32)))
    return items


def _model(seed: int = 0) -> SPTMod:
    torch.manual_seed(seed)
    return SPTMod(load_preset("tiny", controls=generic_controls(2)))


def test_sequences_follow_the_paper():
    model = _model()
    seq = TBPTTSequences(_items(), model, subsequences=3, batch_size=2, length=LENGTH, use_spn=True, seed=1)
    lookback = model.spn.lookback_samples
    assert seq.first_length == LENGTH + max(model.plan.extra_input_samples, lookback)
    assert seq.sequence_length == seq.first_length + 2 * LENGTH
    starts = [s for i, s in seq.index if i == 0]
    assert starts == list(range(0, 40000 - seq.sequence_length + 1, 3 * LENGTH))
    assert [seq.piece_bounds(k) for k in range(3)] == [
        (0, seq.first_length), (seq.first_length, seq.first_length + LENGTH),
        (seq.first_length + LENGTH, seq.sequence_length)]
    a, b = seq.batch(0, 0), seq.batch(0, 0)
    assert torch.equal(a.input, b.input) and a.input.shape == (2, 1, seq.sequence_length)
    assert not torch.equal(seq.batch(1, 0).input, a.input)  # shuffled anew each epoch
    with pytest.raises(ConfigError, match="batch size"):
        TBPTTSequences(_items(1), model, 3, 64, LENGTH, True, 0)


def _config(**changes) -> TrainingConfig:
    base = dict(subsequences=2, batch_size=2, length=LENGTH, learning_rate=1e-3, max_iterations=7,
                validate_every=10_000, checkpoint_every=10_000, grad_clip=1.0, seed=3)
    return TrainingConfig(**{**base, **changes})


def test_training_changes_weights_and_logs(tmp_path):
    model = _model()
    before = [p.detach().clone() for p in model.parameters()]
    spn_before = model.spn.to_state.weight.detach().clone()
    result = Trainer(model, _config(max_iterations=4), _items(), [], tmp_path, log=lambda s: None).run()
    assert result["iterations"] == 4
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters()))
    assert not torch.equal(spn_before, model.spn.to_state.weight)  # the SPN is trained through iteration 1
    lines = (tmp_path / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == 4 and "train_mr_eesr" in lines[0] and "grad_norm" in lines[0]


PRACTICE = dict(optimizer="adamw", weight_decay=1e-4, schedule="cosine", warmup_iterations=2, min_lr_ratio=0.1,
                grad_accumulation=2, ema_decay=0.9)


@pytest.mark.parametrize("settings", [{}, PRACTICE], ids=["paper", "practice"])
def test_interrupted_training_resumes_to_the_same_weights(tmp_path, settings):
    """Stop after 3 iterations (inside a TBPTT group, with carried state; mid gradient accumulation),
    resume in a new trainer with a differently initialised model: after 7 iterations the weights
    (and the EMA) equal an uninterrupted run."""
    torch.set_num_threads(1)
    items = _items()
    uninterrupted_trainer = Trainer(_model(), _config(**settings), items, [], tmp_path / "a", log=lambda s: None)
    uninterrupted_trainer.run()
    uninterrupted = uninterrupted_trainer.evaluation_model

    first = _model()
    Trainer(first, _config(**settings), items, [], tmp_path / "b", log=lambda s: None).run(until=3)
    resumed = Trainer(_model(seed=99), _config(**settings), items, [], tmp_path / "b", log=lambda s: None)
    resumed.load_checkpoint(tmp_path / "b" / "last.ckpt")
    assert resumed.progress.iteration == 3 and resumed.progress.piece == 1 and resumed._carried is not None
    resumed.run()
    for a, b in zip(uninterrupted.state_dict().values(), resumed.evaluation_model.state_dict().values()):
        assert torch.equal(a, b)
    assert resumed.optimizer.param_groups[0]["lr"] == uninterrupted_trainer.optimizer.param_groups[0]["lr"]
    with pytest.raises(ConfigError, match="other training settings"):
        Trainer(_model(), _config(learning_rate=0.1, **settings), items, [], tmp_path / "c").load_checkpoint(
            tmp_path / "b" / "last.ckpt")


def test_st_validation_is_what_the_exported_model_produces(tmp_path):
    from export import build_streaming_module
    from neuralcomp.training.loss import CompressorLoss

    model = _model()
    item = _items(1, samples=20000)[0]
    trainer = Trainer(model, _config(), _items(), [item], tmp_path, log=lambda s: None)
    scores = trainer.validate()
    st = scores["st"]
    exported = build_streaming_module(model)
    usable = len(item.input) // 64 * 64
    with torch.inference_mode():
        exported.reset(1, torch.from_numpy(item.controls))
        y = exported(torch.from_numpy(item.input[None, :usable]), torch.from_numpy(item.controls))
    loss, _ = CompressorLoss()(y[None], torch.from_numpy(item.target[None, None, :usable]))
    assert abs(float(loss) - st) <= 1e-5 * max(1.0, abs(st))
    assert np.isfinite(scores["st"]) and np.isfinite(scores["wt"])


@pytest.mark.parametrize("preset", ["paper", "practice", "demo", "cpu_long", "demo_adaptive", "demo_gain", "demo_level"])
def test_training_presets_run_as_files(tmp_path, preset):
    """Each preset file loads as it is and trains (at a test-sized N, B, L): optimizer, schedule and EMA."""
    config = TrainingConfig.from_preset(preset)
    if preset in ("practice", "cpu_long"):
        assert config.optimizer == "adamw" and config.schedule == "cosine" and config.ema_decay is not None
    small = TrainingConfig.from_preset(preset, subsequences=1, batch_size=2, length=LENGTH, max_iterations=2,
                                       validate_every=10_000, checkpoint_every=10_000, warmup_iterations=1)
    result = Trainer(_model(), small, _items(), [], tmp_path, log=lambda s: None).run()
    assert result["iterations"] == 2


def test_early_stopping_on_st_patience_keeps_the_first_best(tmp_path):
    """With a zero learning rate the ST loss never improves after its first validation: training stops
    `patience` iterations later, and best.ckpt holds the first validated weights."""
    from neuralcomp.model.checkpoint import load_model

    config = _config(learning_rate=0.0, max_iterations=50, validate_every=1, patience_iterations=3)
    result = Trainer(_model(), config, _items(), _items(1, seed=5), tmp_path, log=lambda s: None).run()
    assert result["stopped_early"] and result["iterations"] == 4 and result["best_iteration"] == 1
    _, extra = load_model(tmp_path / "best.ckpt")
    assert extra["iteration"] == 1


def test_best_checkpoint_is_the_lowest_st_validation(tmp_path):
    import json

    from neuralcomp.model.checkpoint import load_model

    config = _config(max_iterations=6, validate_every=1, learning_rate=3e-3)
    Trainer(_model(), config, _items(), _items(1, seed=5), tmp_path, log=lambda s: None).run()
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    validations = [(r["valid_st"], r["iteration"]) for r in rows if "valid_st" in r]
    assert len(validations) == 6 and len({v for v, _ in validations}) > 1
    best_st, best_iteration = min(validations)
    _, extra = load_model(tmp_path / "best.ckpt")
    assert (extra["valid_st"], extra["iteration"]) == (best_st, best_iteration)


def test_checkpoint_writes_are_atomic(tmp_path):
    """A save that fails half-way (here: an object torch cannot pickle after a large tensor) leaves the
    previous file whole and no partial file in its place."""
    from neuralcomp.model.checkpoint import save_atomically

    path = tmp_path / "last.ckpt"
    save_atomically({"format": "x", "weights": torch.ones(10)}, path)
    with pytest.raises(Exception):
        save_atomically({"format": "x", "weights": torch.zeros(1_000_000), "bad": lambda: None}, path)
    assert torch.equal(torch.load(path, weights_only=True)["weights"], torch.ones(10))


def test_bf16_autocast_path_trains_on_the_cpu(tmp_path):
    """The bf16 autocast branch (CUDA in practice) run on the CPU: it trains, finite, and differs from fp32."""
    results = {}
    for autocast in (False, True):
        trainer = Trainer(_model(), _config(max_iterations=2), _items(), [], tmp_path / str(autocast),
                          log=lambda s: None)
        trainer.autocast = autocast
        trainer.run()
        results[autocast] = [p.detach().clone() for p in trainer.model.parameters()]
    assert all(torch.isfinite(p).all() for p in results[True])
    assert any(not torch.equal(a, b) for a, b in zip(results[False], results[True]))


def test_the_preset_loss_settings_reach_the_trainer(tmp_path):
    """A "loss" object in the training preset adds the gain-domain term; without it the paper's loss runs."""
    items = _items()
    paper = Trainer(_model(), _config(), items, [], tmp_path / "paper", log=lambda s: None)
    terms, _ = paper.train_iteration()
    assert "gain_db" not in terms and paper.loss.config == LossConfig()
    keyed = Trainer(_model(), _config(loss={"gain_weight": 0.5}), items, [], tmp_path / "gain", log=lambda s: None)
    gain_terms, _ = keyed.train_iteration()
    assert gain_terms["gain_db"] > 0
    paper_part = sum(w * gain_terms[k] for w, k in ((100, "mae"), (1, "esr"), (1, "mr_stft"), (1, "mr_eesr")))
    assert gain_terms["total"] == pytest.approx(paper_part + 0.5 * gain_terms["gain_db"], rel=1e-5)
