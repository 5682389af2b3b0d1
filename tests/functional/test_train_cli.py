"""Dataset to trained, exported model through the command line, on a tiny dataset."""

import json

import numpy as np

import neuralcomp
from neuralcomp.cli import main
from neuralcomp.data import dataset as ds
from neuralcomp.data.source import SourceConfig
from neuralcomp.data.targets import PluginTarget, load_target_preset

SHORT = dict(tone_step_seconds=0.05, tone_separator_seconds=0.1, music_seconds=4.0, excerpt_seconds=1.0,
             procedural_seconds=0.5)


def test_dataset_train_export_round_trip(tmp_path):
    target = PluginTarget(load_target_preset("pedalboard_compressor"))
    data = ds.build_dataset(tmp_path / "data", target, ds.latin_hypercube(target, 16, seed=1),
                            SourceConfig(**SHORT), None, allow_synthetic_music=True, progress=False)
    run = tmp_path / "run"
    assert main(["train", str(data), "--out", str(run), "--preset", "tiny", "--max-iterations", "4",
                 "--length", "2048", "--batch-size", "2", "--subsequences", "2", "--validate-every", "2"]) == 0
    result = json.loads((run / "result.json").read_text())
    assert result["iterations"] == 4 and np.isfinite(result["test_st"]) and np.isfinite(result["valid_st"])
    model = neuralcomp.load(run / "model.ts", backend="python")
    assert model.control_names == ["threshold", "ratio", "attack", "release"]
    assert model.metadata["provenance"]["split"] == 0
    model.set_control("threshold", -40.0)  # linear control: its user range in dB
    y = model.process(np.zeros(4410, np.float32), 44100)
    assert y.shape == (4410,) and np.all(np.isfinite(y))
    # resuming continues from the last checkpoint
    assert main(["train", str(data), "--out", str(run), "--preset", "tiny", "--max-iterations", "6",
                 "--length", "2048", "--batch-size", "2", "--subsequences", "2", "--validate-every", "2",
                 "--resume"]) == 0
    assert json.loads((run / "result.json").read_text())["iterations"] == 6
