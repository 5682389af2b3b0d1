"""SPN regularisation (issue 12 part 2): dropout inside the SPN and whole-item SPN dropout.

Off by default and then bitwise plain TBPTT; on, it changes training, is drawn reproducibly (resume),
is logged, and never reaches the exported file."""

import json

import numpy as np
import pytest
import torch

from export import export_model
from neuralcomp.errors import ConfigError
from neuralcomp.model import SPTMod
from neuralcomp.training.loss import CompressorLoss
from neuralcomp.training.sequences import TBPTTSequences
from neuralcomp.training.config import TrainingConfig
from neuralcomp.training.trainer import Trainer
from tests.unit.test_tbptt import LENGTH, _config, _items, _model

REGULARISED = dict(spn_dropout=0.3, spn_item_dropout=0.5)


def _quiet(line: str) -> None:
    pass


def _plain_tbptt(model: SPTMod, config: TrainingConfig, items) -> None:
    """One TBPTT group written out by hand (paper section 2.4.3): SPN, no-padding piece, carried pieces,
    Adam with clipping. The trainer with SPN regularisation off must do exactly this."""
    sequences = TBPTTSequences(items, model, config.subsequences, config.batch_size, config.length, True, config.seed)
    batch = sequences.batch(0, 0)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.learning_rate)
    loss = CompressorLoss()
    state = None
    model.train()
    for piece in range(config.subsequences):
        start, end = sequences.piece_bounds(piece)
        x, y = batch.input[..., start:end], batch.target[..., start:end]
        optimizer.zero_grad(set_to_none=True)
        if piece == 0:
            lookback = model.spn.lookback_samples
            window = slice(x.shape[-1] - LENGTH - lookback, x.shape[-1] - LENGTH)
            initial = model.spn(x[..., window], y[..., window], batch.controls)
            prediction, state = model(x[..., x.shape[-1] - model.input_length(LENGTH):], batch.controls, None, initial)
        else:
            prediction, state = model(x, batch.controls, state)
        loss(prediction, y[..., -LENGTH:])[0].backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
        optimizer.step()
        state = [s.detached() for s in state]


def test_regularisation_is_off_by_default_and_then_bitwise_plain_tbptt(tmp_path):
    torch.set_num_threads(1)
    assert TrainingConfig().spn_dropout == 0.0 and TrainingConfig().spn_item_dropout == 0.0
    items = _items()
    config = _config(max_iterations=2)
    trained = _model()
    Trainer(trained, config, items, [], tmp_path, log=_quiet).run()
    reference = _model()
    _plain_tbptt(reference, config, items)
    for (name, a), b in zip(trained.named_parameters(), reference.parameters()):
        assert torch.equal(a, b), name
    regularised = _model()
    Trainer(regularised, _config(max_iterations=2, **REGULARISED), items, [], tmp_path / "r", log=_quiet).run()
    assert not torch.equal(regularised.spn.to_state.weight, trained.spn.to_state.weight)


def test_spn_dropout_acts_in_training_only():
    model = _model()
    x, y = torch.randn(2, 1, model.spn.lookback_samples), torch.randn(2, 1, model.spn.lookback_samples)
    controls = torch.rand(2, 2)
    plain = model.spn(x, y, controls)
    torch.manual_seed(0)
    dropped = model.spn(x, y, controls, 0.5)
    assert not torch.equal(dropped[0][0], plain[0][0])
    model.eval()
    evaluated = model.spn(x, y, controls, 0.5)
    assert all(torch.equal(a, b) for pair_a, pair_b in zip(evaluated, plain) for a, b in zip(pair_a, pair_b))


@pytest.mark.parametrize("state", ["start", "zero"])
def test_whole_item_dropout_starts_those_items_from_the_start_or_zero_state(tmp_path, state):
    """Items drawn for dropout get the start (or zero) LSTM state and no SPN gradient; the others keep the SPN's."""
    torch.set_num_threads(1)
    model = _model()
    trainer = Trainer(model, _config(spn_item_dropout=0.5, spn_item_state=state, batch_size=2), _items(), [],
                      tmp_path, log=_quiet)
    batch = trainer.train.batch(0, 0)
    restart = torch.tensor([True, False])
    prediction, _, _ = trainer._forward_piece(model, batch, trainer.train.piece_bounds(0), 0, None, restart)
    x = batch.input[..., :trainer.train.first_length]
    y = batch.target[..., :trainer.train.first_length]
    window = slice(x.shape[-1] - LENGTH - model.spn.lookback_samples, x.shape[-1] - LENGTH)
    spn_states = model.spn(x[..., window], y[..., window], batch.controls)
    processor_input = x[..., x.shape[-1] - model.input_length(LENGTH):]
    if state == "start":
        fresh = [(s.lstm_h, s.lstm_c) for s in model.start_state(batch.controls[:1])]
    else:
        fresh = None
    restarted, _ = model(processor_input[:1], batch.controls[:1], None, fresh)
    kept, _ = model(processor_input[1:], batch.controls[1:], None, [(h[:, 1:], c[:, 1:]) for h, c in spn_states])
    torch.testing.assert_close(prediction[:1], restarted, rtol=0, atol=1e-6)
    torch.testing.assert_close(prediction[1:], kept, rtol=0, atol=1e-6)
    prediction[:1].sum().backward()  # the restarted item sends no gradient into the SPN
    assert all(p.grad is None or not p.grad.any() for p in model.spn.parameters())


def test_item_dropout_draws_from_seed_and_iteration_and_is_logged(tmp_path):
    torch.set_num_threads(1)
    config = _config(max_iterations=4, spn_item_dropout=0.5, batch_size=2)
    Trainer(_model(), config, _items(), [], tmp_path, log=_quiet).run()
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    restarted = [row.get("train_spn_restarted") for row in rows]
    expected = [float((np.random.default_rng([config.seed, i, 0x5B1]).random(2) < 0.5).sum()) for i in (0, 2)]
    assert restarted == [expected[0], None, expected[1], None]  # first iteration of each group only


def test_interrupted_regularised_training_resumes_to_the_same_weights(tmp_path):
    torch.set_num_threads(1)
    items = _items()
    config = _config(**REGULARISED)
    whole = Trainer(_model(), config, items, [], tmp_path / "a", log=_quiet)
    whole.run()
    first = Trainer(_model(), config, items, [], tmp_path / "b", log=_quiet)
    first.run(until=3)
    resumed = Trainer(_model(seed=9), config, items, [], tmp_path / "b", log=_quiet)
    resumed.load_checkpoint(tmp_path / "b" / "last.ckpt")
    resumed.run()
    for a, b in zip(whole.model.parameters(), resumed.model.parameters()):
        assert torch.equal(a, b)
    with pytest.raises(ConfigError, match="spn_dropout"):
        Trainer(_model(), _config(spn_item_dropout=0.5), items, [], tmp_path / "c",
                log=_quiet).load_checkpoint(tmp_path / "b" / "last.ckpt")


def test_export_of_a_regularised_model_equals_one_without_the_option(tmp_path):
    """The SPN and its dropout stay in training: the exported file is byte for byte that of the same
    weights in a model that never had the option."""
    torch.set_num_threads(1)
    model = _model()
    Trainer(model, _config(max_iterations=2, **REGULARISED), _items(), [], tmp_path / "run", log=_quiet).run()
    fresh = _model(seed=5)
    fresh.load_state_dict(model.state_dict())
    a = export_model(model, tmp_path / "a" / "model.ts", {"run": "x"})  # the archive holds the file's name
    b = export_model(fresh, tmp_path / "b" / "model.ts", {"run": "x"})
    assert a.read_bytes() == b.read_bytes()


@pytest.mark.parametrize("field,value", [("spn_dropout", 1.0), ("spn_dropout", -0.1), ("spn_item_dropout", 1.5),
                                         ("spn_item_state", "spn")])
def test_bad_regularisation_settings_are_refused_by_name(field, value):
    with pytest.raises(ConfigError, match=field):
        TrainingConfig(**{field: value})
