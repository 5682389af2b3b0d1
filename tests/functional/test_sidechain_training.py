"""Sidechain datasets end to end: the keyed compressor target, a dataset with a sidechain track, training a
keyed model on it through the command line, and evaluating the exported model with its key."""

import json

import numpy as np
import pytest
import soundfile as sf

from neuralcomp.cli import main
from neuralcomp.data import dataset as ds
from neuralcomp.data.keyed import KEYED_CONTROLS, KeyedCompressor, build_keyed_dataset
from neuralcomp.data.source import SourceConfig
from neuralcomp.errors import AudioInputError
from neuralcomp.host.processor import load, native_engine_available
from neuralcomp.training.data import training_items

SHORT = dict(tone_step_seconds=0.05, tone_separator_seconds=0.1, music_seconds=4.0, excerpt_seconds=1.0,
             procedural_seconds=0.5)


def test_keyed_compressor_follows_its_key_not_its_input():
    rate = 1000
    compressor = KeyedCompressor(threshold_db=-20.0, ratio=4.0, attack_ms=1.0, release_ms=1.0)
    audio = np.full(2000, 0.5, np.float32)
    key = np.concatenate([np.full(1000, 0.01), np.full(1000, 1.0)])  # -40 dBFS, then 0 dBFS
    out = compressor.process(audio, key, rate)
    assert out[900] == pytest.approx(0.5, rel=1e-6)  # key under the threshold: unity gain
    # key 20 dB over the threshold at 4:1: 15 dB of gain reduction once settled
    assert 20 * np.log10(out[-1] / 0.5) == pytest.approx(-15.0, abs=1e-3)
    np.testing.assert_allclose(compressor.process(0.1 * audio, key, rate), 0.1 * out, rtol=1e-6)  # same gain
    with pytest.raises(AudioInputError, match="sidechain of shape"):
        compressor.process(audio, key[:10], rate)


@pytest.fixture(scope="module")
def keyed_dataset(tmp_path_factory):
    settings = ds.latin_hypercube([c.name for c in KEYED_CONTROLS], 4, seed=2)
    return build_keyed_dataset(tmp_path_factory.mktemp("keyed") / "data", settings, SourceConfig(**SHORT),
                               allow_synthetic_music=True, overwrite=True)


def test_keyed_dataset_carries_a_sidechain_track(keyed_dataset):
    dataset = ds.load_dataset(keyed_dataset, check_audio=True)
    assert dataset.sidechain_channels == 1
    items = training_items(dataset, [0, 1])
    assert items[0].sidechain.shape == (1, len(items[0].input))
    assert not np.array_equal(items[0].sidechain[0], items[0].input)
    # a sidechain file of the wrong length is named
    entry = json.loads((keyed_dataset / "manifest.json").read_text())["items"][1]
    path = keyed_dataset / entry["sidechain"]
    key, rate = sf.read(str(path), dtype="float32")
    try:
        sf.write(str(path), key[:-5], rate, subtype="FLOAT")
        with pytest.raises(ds.DatasetError, match=r"item 001: sidechain 001_sidechain.wav has \d+ samples"):
            ds.load_dataset(keyed_dataset)
    finally:
        sf.write(str(path), key, rate, subtype="FLOAT")


def test_train_export_and_evaluate_a_keyed_model(tmp_path, keyed_dataset, capsys):
    run = tmp_path / "run"
    assert main(["train", str(keyed_dataset), "--out", str(run), "--preset", "tiny", "--length", "2048",
                 "--batch-size", "2", "--subsequences", "2", "--max-iterations", "2", "--validate-every", "2"]) == 0
    assert np.isfinite(json.loads((run / "result.json").read_text())["test_st"])
    processor = load(run / "model.ts")
    assert processor.sidechain_channels == 1
    assert processor.backend == ("native" if native_engine_available() else "python")
    item = ds.load_dataset(keyed_dataset)[0]
    audio, _ = item.load()
    key = item.load_sidechain()
    whole = processor.process(audio[:20000], 44100, sidechain=key[:, :20000])
    assert np.array_equal(processor.process(audio[:20000], 44100, buffer_size=333, sidechain=key[:, :20000]), whole)
    with pytest.raises(AudioInputError, match="sidechain"):
        processor.process(audio[:20000], 44100)
    # the command line: neuralcomp process --sidechain, and a key of the wrong length named in one line
    sf.write(str(tmp_path / "in.wav"), audio[:20000], 44100, subtype="FLOAT")
    sf.write(str(tmp_path / "key.wav"), key[0, :20000], 44100, subtype="FLOAT")
    sf.write(str(tmp_path / "short.wav"), key[0, :19000], 44100, subtype="FLOAT")
    assert main(["process", str(run / "model.ts"), str(tmp_path / "in.wav"), str(tmp_path / "out.wav"),
                 "--sidechain", str(tmp_path / "key.wav")]) == 0
    assert f"backend {processor.backend}" in capsys.readouterr().out  # the native engine, where it is built
    rendered, _ = sf.read(str(tmp_path / "out.wav"), dtype="float32")
    assert np.array_equal(rendered, whole)
    assert main(["process", str(run / "model.ts"), str(tmp_path / "in.wav"), str(tmp_path / "bad.wav"),
                 "--sidechain", str(tmp_path / "short.wav")]) == 2
    assert "sidechain of shape (1, 19000) does not match the audio (1, 20000)" in capsys.readouterr().err
    report = tmp_path / "report.json"
    assert main(["evaluate", str(run / "model.ts"), str(keyed_dataset), "--out", str(report)]) == 0
    assert report.is_file()


def test_a_keyed_dataset_refuses_a_model_without_a_sidechain_input(tmp_path, keyed_dataset, capsys):
    assert main(["train", str(keyed_dataset), "--out", str(tmp_path / "run"), "--preset", "tcn",
                 "--max-iterations", "1"]) == 2
    assert ("the dataset's items carry a 1-channel sidechain (key), but the tcn model 'tcn' has no sidechain "
            "input: train an SPTMod preset") in capsys.readouterr().err
