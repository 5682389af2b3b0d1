"""`neuralcomp sweep` on a local Ray instance, end to end on this CPU: the CPU-sized sweep file, a
restarted sweep that keeps finished trials and resumes a killed one, failed trials recorded with their
reason, `sweep-report`, an Optuna search, and the errors a user can cause."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

try:
    import ray  # noqa: F401
except ImportError:
    if os.environ.get("NEURALCOMP_REQUIRE_SWEEP") == "1":
        raise
    pytest.skip("the sweep extra is not installed (pip install -e '.[sweep]')", allow_module_level=True)

import neuralcomp  # noqa: E402
from neuralcomp.cli import main  # noqa: E402
from neuralcomp.data import dataset as ds  # noqa: E402
from neuralcomp.data.source import SourceConfig  # noqa: E402
from neuralcomp.data.targets import PluginTarget, load_target_preset  # noqa: E402
from neuralcomp.sweep.spec import check_sweep, load_sweep  # noqa: E402

SHORT = dict(tone_step_seconds=0.02, tone_separator_seconds=0.05, music_seconds=2.0, excerpt_seconds=1.0,
             procedural_seconds=0.5)


@pytest.fixture(scope="module")
def ray_instance():
    """One local Ray for the module (its start-up costs seconds): 2 CPUs, no dashboard."""
    import logging

    import ray

    ray.init(num_cpus=2, include_dashboard=False, logging_level=logging.WARNING, log_to_driver=False,
             object_store_memory=100 * 2**20)
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    target = PluginTarget(load_target_preset("pedalboard_compressor"))
    return ds.build_dataset(tmp_path_factory.mktemp("sweep_data"), target, ds.latin_hypercube(target, 16, seed=1),
                            SourceConfig(**SHORT), None, allow_synthetic_music=True, progress=False, overwrite=True)


def _statuses(out):
    return {p.name: json.loads((p / "status.json").read_text()) for p in sorted((out / "trials").iterdir())}


def _mtimes(out):
    return {p.name: (p / "status.json").stat().st_mtime_ns for p in (out / "trials").iterdir()}


def test_the_cpu_sweep_runs_end_to_end_and_reports(ray_instance, dataset, tmp_path, capsys):
    out = tmp_path / "sweep"
    assert main(["sweep", "cpu_small", "--dataset", str(dataset), "--out", str(out)]) == 0
    trials = check_sweep(load_sweep("cpu_small"), 10)
    statuses = _statuses(out)
    assert sorted(statuses) == sorted(t.trial_id for t in trials)
    for name, status in statuses.items():
        assert status["status"] == "done", status
        folder = out / "trials" / name
        rows = [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]
        assert [r["iteration"] for r in rows if "train_total" in r] == list(range(1, 201))
        assert list((folder / "tensorboard").glob("events.out.tfevents.*"))
        assert neuralcomp.load(folder / "model.ts", backend="python").metadata["provenance"]["split"] in (0, 1)
        assert status["cost"]["macs_per_sample"] > 0 and status["cost"]["us_per_buffer_p50"] > 0
    assert "running" in capsys.readouterr().err  # the live table
    # started again: nothing to do, nothing rewritten
    before = _mtimes(out)
    assert main(["sweep", "cpu_small", "--dataset", str(dataset), "--out", str(out)]) == 0
    assert "0 to run" in capsys.readouterr().err and _mtimes(out) == before

    assert main(["sweep-report", str(out)]) == 0
    report = json.loads((out / "report" / "report.json").read_text())
    assert len(report["settings"]) == 3 and all(s["runs"] == 2 for s in report["settings"])
    for s in report["settings"]:
        members = [t for t in report["trials"]
                   if (t["subsequences"], t["batch_size"], t["length"]) == (s["N"], s["B"], s["L"])]
        losses = [t["valid_st"] for t in members]
        assert s["median_valid_st"] == pytest.approx(np.median(losses))
        assert s["mad_valid_st"] == pytest.approx(np.median(np.abs(np.array(losses) - np.median(losses))))
        gaps = np.array([t["valid_st"] - t["valid_wt"] for t in members])
        assert s["median_wt_st_gap"] == pytest.approx(np.median(gaps))
        assert s["mad_wt_st_gap"] == pytest.approx(np.median(np.abs(gaps - np.median(gaps))))
        assert s["median_training_time_s"] > 0 and s["Lc"] == s["N"] * s["L"]
    markdown = (out / "report" / "report.md").read_text()
    assert "N = 1" in markdown and "N = 2" in markdown and "| *Lc* |" in markdown
    for name in ("heatmap_median_valid_st.png", "heatmap_mad_valid_st.png", "loss_vs_lc.png", "pareto.png",
                 "report.csv"):
        assert (out / "report" / name).stat().st_size > 0
    assert sorted(p.stem for p in (out / "report" / "pareto_models").glob("*.ts")) == sorted(report["pareto"])


def _sweep_file(tmp_path, **extra):
    data = {"model": "tiny", "training": "paper",
            "fixed": {"max_iterations": 6, "validate_every": 6, "checkpoint_every": 3},
            "grid": {"subsequences": [2], "batch_size": [2], "length": [2048], "learning_rate": [5e-4, 1e30]},
            "splits": [0, 1]}
    data.update(extra)
    path = tmp_path / "resume.json"
    path.write_text(json.dumps(data))
    return path


def test_a_restarted_sweep_keeps_finished_trials_resumes_killed_ones_and_records_failures(
        ray_instance, dataset, tmp_path, capsys):
    from neuralcomp.sweep.trial import run_trial

    sweep = _sweep_file(tmp_path)
    out = tmp_path / "sweep"
    finished, killed, *diverging = check_sweep(load_sweep(sweep), 10)
    assert finished.training["learning_rate"] == killed.training["learning_rate"] == 5e-4
    # the state a killed sweep leaves: one trial finished, one killed (SIGKILL) after a checkpoint
    assert run_trial(finished, dataset, out / "trials" / finished.trial_id)["status"] == "done"
    (tmp_path / "killed.json").write_text(json.dumps(killed.to_dict()))
    code = ("import json, sys; from neuralcomp.sweep.spec import TrialSpec; from neuralcomp.sweep.trial import "
            "run_trial; run_trial(TrialSpec.from_dict(json.load(open(sys.argv[1]))), sys.argv[2], sys.argv[3])")
    process = subprocess.Popen([sys.executable, "-c", code, str(tmp_path / "killed.json"), str(dataset),
                                str(out / "trials" / killed.trial_id)], env={**os.environ, "OMP_NUM_THREADS": "1"})
    checkpoint, deadline = out / "trials" / killed.trial_id / "last.ckpt", time.monotonic() + 300
    while not checkpoint.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    # the trainer writes a start checkpoint (iteration 0) first: kill after the next, periodic one
    start_write = checkpoint.stat().st_mtime_ns if checkpoint.exists() else 0
    while (process.poll() is None and time.monotonic() < deadline
           and checkpoint.exists() and checkpoint.stat().st_mtime_ns == start_write):
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    assert process.wait() == -signal.SIGKILL, "the trial ended before it could be killed"
    assert _statuses(out)[killed.trial_id]["status"] == "running"
    finished_mtime = _mtimes(out)[finished.trial_id]

    assert main(["sweep", str(sweep), "--dataset", str(dataset), "--out", str(out)]) == 1  # some failed
    assert "1 already finished or failed, 3 to run" in capsys.readouterr().err
    statuses = _statuses(out)
    assert _mtimes(out)[finished.trial_id] == finished_mtime  # not run again
    assert statuses[killed.trial_id]["status"] == "done"
    log = (out / "trials" / killed.trial_id / "train.log").read_text()
    assert "resumed at iteration " in log and "resumed at iteration 0" not in log
    rows = [json.loads(line) for line in (out / "trials" / killed.trial_id / "metrics.jsonl").read_text().splitlines()]
    assert [r["iteration"] for r in rows if "train_total" in r] == list(range(1, 7))  # each once
    for trial in diverging:
        assert statuses[trial.trial_id]["status"] == "failed"
        assert "NaN" in statuses[trial.trial_id]["reason"] or "nan" in statuses[trial.trial_id]["reason"]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["counts"] == {"done": 2, "failed": 2, "running": 0}
    # again: the failed trials stay recorded as failed, nothing runs
    before = _mtimes(out)
    assert main(["sweep", str(sweep), "--dataset", str(dataset), "--out", str(out)]) == 1
    assert "0 to run" in capsys.readouterr().err and _mtimes(out) == before


def test_an_optuna_search_explores_accuracy_against_cost(ray_instance, dataset, tmp_path):
    sweep = tmp_path / "search.json"
    sweep.write_text(json.dumps({
        "search": "optuna", "samples": 2, "model": "tiny", "training": "paper",
        "fixed": {"max_iterations": 4, "validate_every": 2, "checkpoint_every": 2, "subsequences": 2,
                  "batch_size": 2},
        "space": {"width": {"int": [4, 12]}, "blocks": {"int": [1, 3]}, "length": {"choice": [2048, 4096]}},
        "splits": [0], "seeds": [0]}))
    out = tmp_path / "sweep"
    assert main(["sweep", str(sweep), "--dataset", str(dataset), "--out", str(out)]) == 0
    statuses = _statuses(out)
    assert 1 <= len(statuses) <= 2 and all(s["status"] == "done" for s in statuses.values())
    assert main(["sweep-report", str(out)]) == 0
    report = json.loads((out / "report" / "report.json").read_text())
    assert report["pareto"] and set(report["pareto"]) <= set(statuses)
    assert report["settings"] == [] and not list((out / "report").glob("heatmap_*.png"))  # no grid tables
    assert "## Trials" in (out / "report" / "report.md").read_text()
    assert (out / "report" / "pareto.png").stat().st_size > 0


def test_without_ray_the_command_says_how_to_install_it(dataset, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` now raises ImportError
    assert main(["sweep", str(_sweep_file(tmp_path)), "--dataset", str(dataset), "--out", str(tmp_path / "o")]) == 2
    assert "pip install -e '.[sweep]'" in capsys.readouterr().err


def test_an_unreachable_ray_address_is_a_clear_error(dataset, tmp_path, capsys):
    started = time.monotonic()
    assert main(["sweep", str(_sweep_file(tmp_path)), "--dataset", str(dataset), "--out", str(tmp_path / "o"),
                 "--address", "127.0.0.1:9"]) == 2
    assert "cannot reach a Ray cluster at 127.0.0.1:9" in capsys.readouterr().err
    assert time.monotonic() - started < 30


def test_a_bad_sweep_file_stops_before_ray_starts(dataset, tmp_path, capsys):
    sweep = _sweep_file(tmp_path, splits=[0, 12])
    assert main(["sweep", str(sweep), "--dataset", str(dataset), "--out", str(tmp_path / "o")]) == 2
    assert "'splits'" in capsys.readouterr().err and not (tmp_path / "o").exists()
