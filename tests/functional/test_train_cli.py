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


def _train_process(dataset, out, *extra):
    return subprocess.Popen([sys.executable, "-m", "neuralcomp.cli", "train", str(dataset), "--out", str(out),
                             *TRAIN, "--max-iterations", "40", "--validate-every", "10", "--checkpoint-every", "3",
                             "--no-progress", *extra],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env={**os.environ, "OMP_NUM_THREADS": "1"})


def test_a_killed_run_resumes_to_the_same_weights(tmp_path, dataset):
    """SIGKILL (no clean-up at all) mid-run, then --resume: the final weights and the logged losses
    equal those of an uninterrupted run, bit for bit."""
    whole = _train_process(dataset, tmp_path / "whole")
    killed = _train_process(dataset, tmp_path / "killed")
    checkpoint, deadline = tmp_path / "killed" / "last.ckpt", time.monotonic() + 120
    while not checkpoint.exists() and killed.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    killed.send_signal(signal.SIGKILL)
    assert killed.wait() == -signal.SIGKILL, "the run ended before it could be killed"
    assert whole.wait() == 0
    resumed = _train_process(dataset, tmp_path / "killed", "--resume")
    assert resumed.wait() == 0

    def weights(run):
        return torch.load(run / "last.ckpt", weights_only=False)["model"]

    a, b = weights(tmp_path / "whole"), weights(tmp_path / "killed")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)

    def losses(run):
        return [(r["iteration"], r.get("train_total"), r.get("valid_st"))
                for r in map(json.loads, (run / "metrics.jsonl").read_text().splitlines())]

    assert losses(tmp_path / "whole") == losses(tmp_path / "killed")
