"""`neuralcomp train --nproc N` (gloo on this CPU): N processes on slices of each batch train the
same weights as one process on the whole batch, and a resumed data-parallel run equals an
uninterrupted one, also after a Ctrl-C."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from neuralcomp.cli import main
from neuralcomp.data import dataset as ds
from neuralcomp.data.source import SourceConfig
from neuralcomp.data.targets import PluginTarget, load_target_preset
from neuralcomp.errors import ConfigError
from neuralcomp.training.distributed import ProcessGroup

SHORT = dict(tone_step_seconds=0.02, tone_separator_seconds=0.05, music_seconds=2.0, excerpt_seconds=1.0,
             procedural_seconds=0.5)
TRAIN = ["--preset", "tiny", "--length", "2048", "--batch-size", "8", "--subsequences", "2",
         "--validate-every", "1000", "--checkpoint-every", "5", "--no-progress"]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    target = PluginTarget(load_target_preset("pedalboard_compressor"))
    return ds.build_dataset(tmp_path_factory.mktemp("ddp_data"), target, ds.latin_hypercube(target, 16, seed=1),
                            SourceConfig(**SHORT), None, allow_synthetic_music=True, progress=False, overwrite=True)


def _weights(run):
    return torch.load(run / "last.ckpt", weights_only=False)["model"]


def test_two_processes_train_the_weights_of_one(dataset, tmp_path):
    one, two = tmp_path / "one", tmp_path / "two"
    assert main(["train", str(dataset), "--out", str(one), *TRAIN, "--max-iterations", "20"]) == 0
    assert main(["train", str(dataset), "--out", str(two), *TRAIN, "--max-iterations", "20", "--nproc", "2"]) == 0
    a, b = _weights(one), _weights(two)
    for name in a:
        torch.testing.assert_close(b[name], a[name], rtol=1e-5, atol=1e-5, msg=name)
    assert (two / "model.ts").is_file() and (two / "result.json").is_file()

    # stopped mid-group (iteration 11 of N = 2 carries state) and resumed: the uninterrupted run, exactly
    resumed = tmp_path / "resumed"
    assert main(["train", str(dataset), "--out", str(resumed), *TRAIN, "--max-iterations", "11", "--nproc", "2"]) == 0
    assert torch.load(resumed / "last.ckpt", weights_only=False)["carried"] is not None
    assert main(["train", str(dataset), "--out", str(resumed), *TRAIN, "--max-iterations", "20", "--nproc", "2",
                 "--resume"]) == 0
    c = _weights(resumed)
    for name in b:
        assert torch.equal(c[name], b[name]), name

    # Ctrl-C from a terminal reaches the launcher and both workers (one process group): they stop together
    # at an iteration boundary with a checkpoint, exit 130 without a traceback, and --resume ends as above
    stopped = tmp_path / "ctrl_c"
    command = [sys.executable, "-m", "neuralcomp.cli", "train", str(dataset), "--out", str(stopped), *TRAIN,
               "--max-iterations", "20", "--nproc", "2"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                               start_new_session=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    deadline = time.monotonic() + 300
    while process.poll() is None and time.monotonic() < deadline and not any(
            json.loads(line).get("iteration", 0) >= 3 for line in _lines(stopped / "metrics.jsonl")):
        time.sleep(0.01)
    os.killpg(process.pid, signal.SIGINT)
    _, err = process.communicate(timeout=300)
    assert process.returncode == 130, err
    assert "Traceback" not in err and "interrupted at iteration" in err and "--resume" in err, err
    assert 3 <= torch.load(stopped / "last.ckpt", weights_only=False)["progress"]["iteration"] < 20
    assert main(["train", str(dataset), "--out", str(stopped), *TRAIN, "--max-iterations", "20", "--nproc", "2",
                 "--resume"]) == 0
    d = _weights(stopped)
    for name in b:
        assert torch.equal(d[name], b[name]), name


def _lines(path):
    return [line for line in path.read_text().splitlines() if line.endswith("}")] if path.is_file() else []


def test_the_batch_must_split_evenly(dataset, tmp_path, capsys):
    with pytest.raises(ConfigError, match="multiple of the process count 3"):
        ProcessGroup(0, 3).check_batch(8)
    assert main(["train", str(dataset), "--out", str(tmp_path / "o"), *TRAIN, "--max-iterations", "2",
                 "--nproc", "3"]) != 0
    assert "multiple of the process count 3" in capsys.readouterr().err
