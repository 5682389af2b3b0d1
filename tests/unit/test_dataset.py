"""Datasets on disk (neuralcomp/data/dataset.py): control settings, a tiny rendered dataset (built-in
Compressor, ~3 s synthetic source per item), manifest contents, DC removal, CV splits, typed errors."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from neuralcomp.data.dataset import (
    FORMAT,
    DatasetError,
    build_dataset,
    cross_validation_splits,
    grid,
    latin_hypercube,
    load_dataset,
    snapshot,
    split_sizes,
)
from neuralcomp.data.source import SourceConfig
from neuralcomp.data.targets import PluginTarget, TargetError
from neuralcomp.errors import NeuralcompError

NAMES = ["threshold", "ratio", "attack", "release"]
# ~3 s per item: 1.6 s of tone steps, 0.8 s of music, 2 x 0.3 s procedural.
TINY = SourceConfig(seed=5, tone_step_seconds=0.025, tone_separator_seconds=0.15, music_seconds=0.8,
                    excerpt_seconds=0.4, procedural_seconds=0.3)


# ---------------------------------------------------------------------------------------- settings

def test_snapshot_all_mid_release_max():
    s = snapshot(NAMES, 16)
    assert len(s) == 16 and s.method == "snapshot"
    assert all(item == {"threshold": 0.5, "ratio": 0.5, "attack": 0.5, "release": 1.0} for item in s.items)
    assert snapshot(["a", "b"], 2).items[0] == {"a": 0.5, "b": 0.5}  # no release control: all mid


def test_grid_threshold_by_ratio():
    s = grid(NAMES, 4, 4)
    assert len(s) == 16
    axis = [0.0, 1 / 3, 2 / 3, 1.0]
    pairs = sorted((round(i["threshold"], 9), round(i["ratio"], 9)) for i in s.items)
    assert pairs == sorted((round(t, 9), round(r, 9)) for t in axis for r in axis)
    assert all(i["attack"] == 0.5 and i["release"] == 0.5 for i in s.items)
    with pytest.raises(DatasetError, match="threshold"):
        grid(["ratio", "attack"], 2, 2)


@pytest.mark.parametrize("n", [16, 160, 7])
def test_latin_hypercube_one_value_per_stratum(n):
    s = latin_hypercube(NAMES, n, seed=3)
    assert len(s) == n
    for name in NAMES:
        values = np.array([i[name] for i in s.items])
        assert np.all((values >= 0) & (values <= 1))
        assert sorted(np.floor(values * n).astype(int).tolist()) == list(range(n))
    assert latin_hypercube(NAMES, n, seed=3).items == s.items
    assert latin_hypercube(NAMES, n, seed=4).items != s.items


def test_settings_accept_a_target():
    target = PluginTarget("pedalboard_compressor")
    assert list(snapshot(target, 1).items[0]) == NAMES


# -------------------------------------------------------------------------------------------- splits

@pytest.mark.parametrize("n, sizes", [(16, (8, 4, 4)), (160, (128, 16, 16)), (15, (9, 3, 3)), (40, (32, 4, 4))])
def test_splits_sizes_disjoint_covering_reproducible(n, sizes):
    assert split_sizes(n) == sizes
    splits = cross_validation_splits(n, 10, seed=0)
    assert len(splits) == 10
    for s in splits:
        assert (len(s.train), len(s.valid), len(s.test)) == sizes
        assert not (set(s.train) & set(s.valid)) and not (set(s.train) & set(s.test))
        assert not (set(s.valid) & set(s.test))
        assert set(s.train) | set(s.valid) | set(s.test) == set(range(n))
    assert cross_validation_splits(n, 10, seed=0) == splits
    assert cross_validation_splits(n, 10, seed=1) != splits
    assert len({s.test for s in splits}) == 10  # the splits differ
    if n == 160:  # ordinary 10-fold CV: every item is a test item exactly once
        assert sorted(i for s in splits for i in s.test) == list(range(160))
    else:  # every item is tested at least once
        assert set(i for s in splits for i in s.test) == set(range(n))


def test_splits_too_few_items():
    with pytest.raises(DatasetError, match="at least 3"):
        cross_validation_splits(2)


# ---------------------------------------------------------------------------------------- tiny build

@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("ds") / "tiny"
    lines = []
    path = build_dataset(out, "pedalboard_compressor", latin_hypercube(NAMES, 3, seed=1), TINY, None,
                         allow_synthetic_music=True, progress=lambda done, total, item: lines.append((done, total)))
    assert lines == [(1, 3), (2, 3), (3, 3)]
    return path


def test_tiny_dataset_files_and_manifest(tiny):
    assert sorted(p.name for p in (tiny / "items").iterdir()) == [
        f"{i:03d}_{kind}.wav" for i in range(3) for kind in ("input", "target")]
    assert not list(tiny.parent.glob(".tiny.tmp-*"))  # temp folder renamed away
    m = json.loads((tiny / "manifest.json").read_text())
    assert m["format"] == FORMAT and m["version"] == 1 and m["kind"] == "rendered" and m["sample_rate"] == 44100
    assert m["target"]["name"] == "pedalboard_compressor"
    assert m["target"]["preset"]["plugin"] == {"kind": "builtin", "class": "Compressor"}
    assert [c["name"] for c in m["controls"]] == NAMES
    assert {"name", "minimum", "maximum", "default", "unit", "mapping"} <= set(m["controls"][0])
    assert m["settings"] == {"method": "latin_hypercube", "n_items": 3, "seed": 1}
    assert m["source"]["seed"] == 5 and m["source"]["procedural_seconds"] == 0.3 and m["synthetic_music"]
    lhs = latin_hypercube(NAMES, 3, seed=1).items
    target = PluginTarget("pedalboard_compressor")
    for i, item in enumerate(m["items"]):
        assert item["id"] == f"{i:03d}" and item["seed"] == 5 + i
        assert item["input"] == f"items/{i:03d}_input.wav" and item["target"] == f"items/{i:03d}_target.wav"
        assert item["controls"] == pytest.approx(lhs[i])
        assert item["parameters"] == pytest.approx(target.controls_to_parameters(lhs[i]))
        assert [s["name"] for s in item["sections"]] == ["tone_steps", "music", "procedural_dense",
                                                         "procedural_sparse"]
        assert item["sections"][-1]["end"] == item["length"]
        assert 2.5 * 44100 < item["length"] < 3.5 * 44100
        assert item["peak_input_db"] <= 0.0 and isinstance(item["peak_target_db"], float)
    splits = json.loads((tiny / "splits.json").read_text())
    assert splits["n_items"] == 3 and len(splits["splits"]) == 10


def test_tiny_dataset_reload_and_audio(tiny):
    ds = load_dataset(tiny, check_audio=True)
    assert len(ds) == 3 and ds.control_names == NAMES and ds.sample_rate == 44100
    inputs = []
    for item in ds.items:
        x, y = item.load()
        assert x.dtype == np.float32 and y.dtype == np.float32 and x.shape == y.shape == (item.length,)
        assert abs(float(np.mean(y, dtype=np.float64))) < 1e-6  # DC removed
        assert np.max(np.abs(y)) > 1e-3  # not silent
        assert item.control_vector(NAMES).shape == (4,)
        inputs.append(x)
    assert not np.array_equal(inputs[0][-1000:], inputs[1][-1000:])  # seeds differ per item
    assert np.array_equal(inputs[0][:1000], inputs[1][:1000])  # the tone section does not depend on the seed
    # the target is the input through the compressor at the item's controls (up to DC)
    target = PluginTarget("pedalboard_compressor")
    x, y = ds.items[1].load()
    ref = target.render(x, 44100, ds.items[1].controls)
    np.testing.assert_allclose(y, ref - ref.mean(dtype=np.float64), atol=1e-6)
    assert len(ds.splits()) == 10


def test_build_refuses_existing_and_bad_settings(tiny, tmp_path):
    with pytest.raises(DatasetError, match="already exists"):
        build_dataset(tiny, "pedalboard_compressor", snapshot(NAMES, 1), TINY, None, True, progress=False)
    with pytest.raises(TargetError, match="outside"):
        build_dataset(tmp_path / "x", "pedalboard_compressor", [{"threshold": 2.0}], TINY, None, True, progress=False)
    assert not (tmp_path / "x").exists() and not list(tmp_path.glob(".x.tmp-*"))


def test_build_prints_progress_by_default(tmp_path, capsys):
    short = SourceConfig(tone_step_seconds=0.01, tone_separator_seconds=0.05, music_seconds=0.2,
                         excerpt_seconds=0.2, procedural_seconds=0.1)
    build_dataset(tmp_path / "p", "pedalboard_compressor", snapshot(NAMES, 1), short, None, True)
    assert "[1/1] item 000" in capsys.readouterr().out
    assert json.loads((tmp_path / "p" / "manifest.json").read_text())["splits"] is None


# ---------------------------------------------------------------------------------------------- errors

@pytest.fixture
def copy(tiny, tmp_path) -> Path:
    dst = tmp_path / "copy"
    shutil.copytree(tiny, dst)
    return dst


def test_error_missing_file(copy):
    (copy / "items" / "001_target.wav").unlink()
    with pytest.raises(DatasetError, match="001.*missing") as info:
        load_dataset(copy)
    assert isinstance(info.value, NeuralcompError)


def test_error_missing_or_corrupt_manifest(copy, tmp_path):
    with pytest.raises(DatasetError, match="does not exist"):
        load_dataset(tmp_path / "nowhere")
    (copy / "manifest.json").write_text('{"format": "neuralcomp-dataset", "items": [')
    with pytest.raises(DatasetError, match="not valid JSON"):
        load_dataset(copy)
    (copy / "manifest.json").write_text('{"format": "neuralcomp-dataset", "version": 1, "sample_rate": 44100}')
    with pytest.raises(DatasetError, match="corrupt"):
        load_dataset(copy)
    (copy / "manifest.json").write_text('{"format": "something-else"}')
    with pytest.raises(DatasetError, match="not a neuralcomp-dataset"):
        load_dataset(copy)
    (copy / "manifest.json").unlink()
    with pytest.raises(DatasetError, match="no manifest.json"):
        load_dataset(copy)


def test_error_length_mismatch(copy):
    path = copy / "items" / "002_target.wav"
    audio, sr = sf.read(str(path), dtype="float32")
    sf.write(str(path), audio[:-10], sr, subtype="FLOAT")
    with pytest.raises(DatasetError, match="002: input has .* but target has"):
        load_dataset(copy)


def test_error_wrong_sample_rate(copy):
    path = copy / "items" / "000_input.wav"
    audio, _ = sf.read(str(path), dtype="float32")
    sf.write(str(path), audio, 48000, subtype="FLOAT")
    with pytest.raises(DatasetError, match="48000 Hz"):
        load_dataset(copy)


def test_error_nan_in_audio(copy):
    path = copy / "items" / "000_target.wav"
    audio, sr = sf.read(str(path), dtype="float32")
    audio[100] = np.nan
    sf.write(str(path), audio, sr, subtype="FLOAT")
    ds = load_dataset(copy)  # headers are fine
    with pytest.raises(DatasetError, match="NaN"):
        ds.items[0].load()
    with pytest.raises(DatasetError, match="NaN"):
        load_dataset(copy, check_audio=True)
