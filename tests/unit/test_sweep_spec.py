"""Sweep files are checked before any trial starts, naming the field; the shipped sweeps are the
paper's grid and a CPU-sized one; the report's statistics follow the paper's definitions."""

import json

import pytest

from neuralcomp.sweep.report import TrialRow, iterations_to_within, median_mad, paper_tables, pareto_front
from neuralcomp.sweep.spec import SweepError, check_sweep, load_sweep


def _write(tmp_path, **data):
    base = {"model": "tiny", "training": "paper", "grid": {"subsequences": [1], "length": [2048]}}
    base.update(data)
    path = tmp_path / "sweep.json"
    path.write_text(json.dumps(base))
    return path


def test_the_paper_grid_is_the_papers_study():
    spec = load_sweep("paper_grid")
    trials = check_sweep(spec, n_splits=10)
    assert len(trials) == 570  # 3 x 5 x 4 - 3 (B, L) = (128, 32768) points, x 10 splits
    settings = {(t.training["subsequences"], t.training["batch_size"], t.training["length"]) for t in trials}
    assert len(settings) == 57 and all((n, 128, 32768) not in settings for n in (1, 2, 3))
    assert {t.split for t in trials} == set(range(10))
    first = trials[0].training
    assert (first["optimizer"], first["learning_rate"], first["schedule"]) == ("adam", 5e-4, "none")
    assert (first["patience_iterations"], first["max_iterations"]) == (76_800, 1_000_000)
    assert len({t.trial_id for t in trials}) == 570


def test_the_cpu_sweep_is_small():
    trials = check_sweep(load_sweep("cpu_small"), n_splits=10)
    assert 4 <= len(trials) <= 6 and {t.split for t in trials} == {0, 1}
    assert all(t.training["max_iterations"] <= 300 and t.preset == "tiny" for t in trials)


def test_the_spn_dropout_study_crosses_dropout_with_n_over_splits():
    trials = check_sweep(load_sweep("spn_dropout"), n_splits=10)
    cells = {(t.training["spn_dropout"], t.training["subsequences"]) for t in trials}
    assert cells == {(d, n) for d in (0.0, 0.1, 0.3) for n in (1, 3)}
    assert len(trials) == 18 and {t.split for t in trials} == {0, 1, 2}
    assert all(t.training["spn_item_dropout"] == 0.0 for t in trials)
    assert len({t.trial_id for t in trials}) == 18  # the dropout is in the trial's hash: no collisions


def test_the_optuna_search_checks_its_space():
    spec = load_sweep("optuna_cost")
    assert spec.search == "optuna" and check_sweep(spec, n_splits=10) == []


@pytest.mark.parametrize("data, words", [
    ({"gird": {}}, ["unknown field", "gird"]),
    ({"grid": {"batch_sise": [8]}}, ["unknown field", "batch_sise"]),
    ({"fixed": {"lr": 1e-3}}, ["unknown field", "lr"]),
    ({"grid": {"length": [2048, 3000]}}, ["'length'", "3000", "multiple of the pool size P = 64"]),
    ({"grid": {"length": [1024]}}, ["'length'", "1024", "largest window"]),
    ({"grid": {"length": [2048], "pool_size": [48]}}, ["'length'", "P = 48"]),
    ({"grid": {"length": []}}, ["grid field 'length'", "non-empty"]),
    ({"grid": {"length": [2048]}, "exclude": [{"length": 2048}]}, ["'grid'", "empty"]),
    ({"grid": {"batch_size": [0]}}, ["batch_size must be >= 1"]),
    ({"grid": {"optimizer": ["sgd"]}}, ["optimizer"]),
    ({"splits": []}, ["'splits'"]),
    ({"search": "random"}, ["'search'", "random"]),
    ({"search": "optuna", "grid": {}, "space": {"length": {"int": [2048, 4096]}}}, ["'length'", "choice"]),
    ({"search": "optuna", "grid": {}, "space": {"width": {"between": [1, 2]}}}, ["'width'"]),
    ({"search": "optuna", "grid": {}, "space": {}}, ["'space'", "empty"]),
    ({"model": "no_such_model"}, ["no_such_model"]),
])
def test_a_bad_sweep_is_refused_naming_the_field(tmp_path, data, words):
    with pytest.raises(SweepError) as caught:
        check_sweep(load_sweep(_write(tmp_path, **data)), n_splits=10)
    for word in words:
        assert word in str(caught.value)


def test_a_split_the_dataset_lacks_is_refused(tmp_path):
    spec = load_sweep(_write(tmp_path, splits=[0, 3]))
    assert len(check_sweep(spec, n_splits=4)) == 2
    with pytest.raises(SweepError, match=r"'splits'.*\[3\].*3 splits"):
        check_sweep(spec, n_splits=3)


def test_architecture_shorthands_build_the_model(tmp_path):
    spec = load_sweep(_write(tmp_path, grid={"blocks": [2], "width": [12], "kernel": [7], "length": [2048]}))
    (trial,) = check_sweep(spec, n_splits=10)
    config = trial.model_config()
    assert config.channels == (12, 12) and config.kernel_sizes == (7, 7)


def test_median_and_mad_follow_the_paper():
    assert median_mad([1.0, 2.0, 4.0, 10.0, 3.0]) == (3.0, 1.0)  # deviations 2, 1, 1, 7, 0
    assert iterations_to_within([(100, 2.0), (200, 1.04), (300, 1.0), (400, 1.2)]) == 200
    assert iterations_to_within([(100, 2.0), (200, 1.06), (300, 1.0)]) == 300


def _row(trial_id, n, b, length, st, us):
    return TrialRow(trial_id, "all", n, b, length, 0, 0, st, st / 2, 100, 1000.0, us, "cpp", "m.ts")


def test_pareto_front_keeps_the_undominated():
    rows = [_row("a", 1, 8, 4096, 1.0, 50), _row("b", 1, 8, 4096, 0.5, 80), _row("c", 1, 8, 4096, 0.9, 90),
            _row("d", 1, 8, 4096, 0.4, 200)]
    assert [r.trial_id for r in pareto_front(rows)] == ["a", "b", "d"]


def test_tables_have_the_papers_layout():
    settings = [{"group": "all", "N": n, "B": b, "L": length, "q": n * 100 + b + length / 1000}
                for n in (1, 2) for b in (8, 16) for length in (4096, 8192) if (b, length) != (16, 8192)]
    tables = paper_tables(settings, "q", "{:.3f}")["all"]
    assert list(tables) == [1, 2]
    lines = tables[2].splitlines()
    assert lines[0] == "| B \\ L | 4096 | 8192 |"
    assert lines[2] == "| *Lc* | *8192* | *16384* |"
    assert lines[3] == "| 8 | 212.096 | 216.192 |"
    assert lines[4] == "| 16 | 220.096 |  |"  # the excluded (B, L) point stays empty
