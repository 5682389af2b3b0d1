"""Dataset to trained, exported model through the command line, on a tiny dataset; resume after a kill."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

import neuralcomp
from neuralcomp.cli import main
from neuralcomp.data import dataset as ds
from neuralcomp.data.source import SourceConfig
from neuralcomp.data.targets import PluginTarget, load_target_preset

SHORT = dict(tone_step_seconds=0.05, tone_separator_seconds=0.1, music_seconds=4.0, excerpt_seconds=1.0,
             procedural_seconds=0.5)
TRAIN = ["--preset", "tiny", "--length", "2048", "--batch-size", "2", "--subsequences", "2"]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    target = PluginTarget(load_target_preset("pedalboard_compressor"))
    return ds.build_dataset(tmp_path_factory.mktemp("data"), target, ds.latin_hypercube(target, 16, seed=1),
                            SourceConfig(**SHORT), None, allow_synthetic_music=True, progress=False, overwrite=True)


def test_dataset_train_export_round_trip(tmp_path, dataset):
    run = tmp_path / "run"
    assert main(["train", str(dataset), "--out", str(run), *TRAIN, "--max-iterations", "4",
                 "--validate-every", "2"]) == 0
    result = json.loads((run / "result.json").read_text())
    assert result["iterations"] == 4 and np.isfinite(result["test_st"]) and np.isfinite(result["valid_st"])
    assert list((run / "tensorboard").glob("events.out.tfevents.*"))
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["iteration"] for r in rows if "train_total" in r] == [1, 2, 3, 4]
    assert {"train_mae", "train_esr", "train_mr_stft", "train_mr_eesr", "lr", "grad_norm"} <= set(rows[0])
    model = neuralcomp.load(run / "model.ts", backend="python")
    assert model.control_names == ["threshold", "ratio", "attack", "release"]
    assert [(c["minimum"], c["maximum"], c["mapping"]) for c in model.metadata["controls"]][:2] == [
        (-60.0, 0.0, "linear"), (1.0, 20.0, "log")]  # the target's user ranges and mappings
    assert model.metadata["provenance"]["split"] == 0
    model.set_control("threshold", -40.0)
    model.set_control("ratio", 8.0)
    y = model.process(np.zeros(4410, np.float32), 44100)
    assert y.shape == (4410,) and np.all(np.isfinite(y))
    assert main(["evaluate", str(run / "model.ts"), str(dataset), "--out", str(tmp_path / "eval.json"),
                 "--plots", str(tmp_path / "plots")]) == 0
    figures = json.loads((tmp_path / "eval.json").read_text())
    assert len(figures["items"]) == 4 and np.isfinite(figures["st_esr"])
    plots = sorted(p.name for p in (tmp_path / "plots").glob("*.png"))  # per item: waveform + gain, static curve
    assert len(plots) == 8 and {f"static_curve_{i['item']}.png" for i in figures["items"]} <= set(plots)
    # resuming continues from the last checkpoint
    assert main(["train", str(dataset), "--out", str(run), *TRAIN, "--max-iterations", "6",
                 "--validate-every", "2", "--resume"]) == 0
    assert json.loads((run / "result.json").read_text())["iterations"] == 6


def _train_process(dataset, out, *extra, stderr=subprocess.DEVNULL):
    return subprocess.Popen([sys.executable, "-m", "neuralcomp.cli", "train", str(dataset), "--out", str(out),
                             *TRAIN, "--max-iterations", "40", "--validate-every", "10", "--checkpoint-every", "3",
                             "--no-progress", *extra],
                            stdout=subprocess.DEVNULL, stderr=stderr, text=True,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})


@pytest.fixture(scope="module")
def whole(dataset, tmp_path_factory):
    """An uninterrupted run (started once, in the background; tests wait for it when they compare)."""
    out = tmp_path_factory.mktemp("whole")
    return _train_process(dataset, out), out


def _wait_for_iteration(run, process, iteration: int, timeout: float = 180) -> None:
    """Until metrics.jsonl has a training row of `iteration` (or the process ended)."""
    deadline = time.monotonic() + timeout
    while process.poll() is None and time.monotonic() < deadline:
        path = run / "metrics.jsonl"
        if path.is_file() and any(json.loads(line).get("iteration", 0) >= iteration
                                   for line in path.read_text().splitlines() if line.endswith("}")):
            return
        time.sleep(0.005)


def _weights(run):
    return torch.load(run / "last.ckpt", weights_only=True)["model"]  # training state: plain data only


def _losses(run):
    return [(r["iteration"], r.get("train_total"), r.get("valid_st"))
            for r in map(json.loads, (run / "metrics.jsonl").read_text().splitlines())]


def _same_as_whole(whole, run):
    process, whole_dir = whole
    assert process.wait() == 0
    a, b = _weights(whole_dir), _weights(run)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert _losses(whole_dir) == _losses(run)


def test_a_killed_run_resumes_to_the_same_weights(tmp_path, dataset, whole):
    """SIGKILL (no clean-up at all) mid-run, after a checkpoint and past it, then --resume: the final weights
    and the logged losses equal those of an uninterrupted run, bit for bit; last.ckpt exports."""
    killed = _train_process(dataset, tmp_path / "killed")
    _wait_for_iteration(tmp_path / "killed", killed, 5)  # checkpoint at 3, rows 4 and 5 to forget
    killed.send_signal(signal.SIGKILL)
    assert killed.wait() == -signal.SIGKILL, "the run ended before it could be killed"
    assert torch.load(tmp_path / "killed" / "last.ckpt", weights_only=True)["progress"]["iteration"] >= 3
    resumed = _train_process(dataset, tmp_path / "killed", "--resume")
    assert resumed.wait() == 0
    _same_as_whole(whole, tmp_path / "killed")
    assert main(["export", "--checkpoint", str(tmp_path / "killed" / "last.ckpt"), "-o", str(tmp_path / "m.ts")]) == 0
    assert neuralcomp.load(tmp_path / "m.ts", backend="python").metadata["provenance"]["iteration"] == 40


def test_killed_before_the_first_periodic_checkpoint_resumes_from_the_start(tmp_path, dataset, whole):
    """A run killed before its first periodic checkpoint: --resume finds the start checkpoint, says where it
    resumes, leaves no duplicate rows, and ends as the uninterrupted run does."""
    run = tmp_path / "early"
    early = _train_process(dataset, run, "--checkpoint-every", "1000")
    _wait_for_iteration(run, early, 2)
    early.send_signal(signal.SIGKILL)
    assert early.wait() == -signal.SIGKILL, "the run ended before it could be killed"
    resumed = _train_process(dataset, run, "--checkpoint-every", "1000", "--resume", stderr=subprocess.PIPE)
    _, err = resumed.communicate(timeout=600)
    assert resumed.returncode == 0 and "resumed at iteration 0" in err
    _same_as_whole(whole, run)


def test_ctrl_c_saves_a_checkpoint_and_says_how_to_resume(tmp_path, dataset, whole):
    run = tmp_path / "interrupted"
    interrupted = _train_process(dataset, run, stderr=subprocess.PIPE)
    _wait_for_iteration(run, interrupted, 4)
    interrupted.send_signal(signal.SIGINT)
    _, err = interrupted.communicate(timeout=300)
    assert interrupted.returncode == 130, err
    assert "Traceback" not in err and "KeyboardInterrupt" not in err, err
    assert "interrupted at iteration" in err and "--resume" in err
    stopped_at = torch.load(run / "last.ckpt", weights_only=True)["progress"]["iteration"]
    assert 4 <= stopped_at < 40
    resumed = _train_process(dataset, run, "--resume")
    assert resumed.wait() == 0
    _same_as_whole(whole, run)


def test_resume_with_nothing_to_resume_says_so(tmp_path, dataset, capsys):
    assert main(["train", str(dataset), "--out", str(tmp_path / "new"), *TRAIN, "--max-iterations", "2",
                 "--validate-every", "2", "--no-progress", "--resume"]) == 0
    assert "nothing to resume" in capsys.readouterr().err
    # the same weight shapes with another pooling are another model: --resume refuses to mix them
    assert main(["train", str(dataset), "--out", str(tmp_path / "new"), *TRAIN, "--max-iterations", "4",
                 "--validate-every", "2", "--no-progress", "--resume", "--preset", "tiny_max"]) != 0
    assert "pooling average != max" in capsys.readouterr().err
    rows = [json.loads(line) for line in (tmp_path / "new" / "metrics.jsonl").read_text().splitlines()]
    assert [r["iteration"] for r in rows if "train_total" in r] == [1, 2]
