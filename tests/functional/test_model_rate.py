"""The dataset's sample rate is the model's: a 48 kHz dataset trains and exports a 48 kHz model, which
the hosts run at 48 kHz without resampling and at 44.1 kHz with resampling (and its latency reported)."""

import json

import numpy as np
import pytest

import neuralcomp
from neuralcomp.data import dataset as ds
from neuralcomp.data.source import SourceConfig
from neuralcomp.data.targets import PluginTarget, load_target_preset
from neuralcomp.host.torchscript_host import TorchScriptHost
from neuralcomp.training.run import train_and_export
from neuralcomp.training.trainer import TrainingConfig
from tests.conftest import cpp_host_or_skip, noise

SHORT = dict(tone_step_seconds=0.05, tone_separator_seconds=0.1, music_seconds=4.0, excerpt_seconds=1.0,
             procedural_seconds=0.5)


@pytest.fixture(scope="module")
def model_48k(tmp_path_factory):
    root = tmp_path_factory.mktemp("rate48")
    target = PluginTarget(load_target_preset("pedalboard_compressor"))
    data = ds.build_dataset(root / "data", target, ds.latin_hypercube(target, 4, seed=1),
                            SourceConfig(sample_rate=48000, **SHORT), None, allow_synthetic_music=True,
                            progress=False)
    config = TrainingConfig(subsequences=1, batch_size=2, length=2048, max_iterations=2, validate_every=2)
    result = train_and_export(data, root / "run", config, "tiny", "causal", log=lambda line: None)
    return result.model_path, data


def test_a_48k_dataset_exports_a_48k_model(model_48k):
    path, data = model_48k
    assert ds.load_dataset(data).sample_rate == 48000
    meta = neuralcomp.load(path, backend="python").metadata
    assert meta["sample_rate"] == 48000 and meta["model_config"]["sample_rate"] == 48000
    assert meta["pool_size"] == 64  # P stays the configuration's
    assert meta["start_state"]["silence_samples"] == 48000  # 1 s of silence at the model's rate


@pytest.mark.parametrize("backend", ["python", "cpp"])
def test_the_hosts_run_it_at_48k_without_resampling_and_resample_at_44k(model_48k, backend):
    if backend == "cpp":
        cpp_host_or_skip()
    path, _ = model_48k
    p = neuralcomp.load(path, backend=backend)
    assert p.sample_rate == 48000 and p.latency_samples == 0
    x = noise(9600, seed=3)[0]
    # at the model's rate the host's output is the module's own, sample for sample
    assert p.latency_at(48000) == 0
    assert np.array_equal(p.process(x, 48000), TorchScriptHost(path).process(x[None].copy())[0])
    # at 44.1 kHz it resamples around the model and says what that costs
    assert p.latency_at(44100) > 0
    y = p.process(x, 44100)
    assert y.shape == x.shape and not np.array_equal(y, p.process(x, 48000))


def test_the_cli_builds_a_dataset_at_another_rate(tmp_path):
    from neuralcomp.cli import main

    assert main(["dataset", "build", str(tmp_path / "d"), "--target", "pedalboard_compressor", "--items", "1",
                 "--synthetic-music", "--rate", "48000"]) == 0
    manifest = json.loads((tmp_path / "d" / "manifest.json").read_text())
    assert manifest["sample_rate"] == 48000 and manifest["source"]["sample_rate"] == 48000
