"""Importing hardware captures (neuralcomp/data/captures.py): the real TubeTech CL 1B pairs in
/work/shared/data/cl1b (read-only; output goes to tmp_path), a synthetic delayed/offset/longer target,
file-name parsing and typed errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from neuralcomp.data.captures import (
    CaptureError,
    estimate_lag,
    import_captures,
    normalised_correlation,
    parse_cl1b_name,
)
from neuralcomp.data.dataset import load_dataset
from neuralcomp.errors import NeuralcompError

CL1B = Path("/work/shared/data/cl1b")
SR = 44100


def write(path: Path, audio: np.ndarray, sr: int = SR) -> None:
    sf.write(str(path), audio.astype(np.float32), sr, subtype="FLOAT")


# ----------------------------------------------------------------------------------------- names

@pytest.mark.parametrize("name, layout, controls", [
    ("target_at_025_re_05_ra_05_th_05.wav", "shared_input",
     {"attack": 0.25, "release": 0.5, "ratio": 0.5, "threshold": 0.5}),
    ("target_at_1_re_075_ra_0_th_1.wav", "shared_input",
     {"attack": 1.0, "release": 0.75, "ratio": 0.0, "threshold": 1.0}),
    ("00_tar_at_2_re_2_ra_4_th_2.wav", "numbered", {"attack": 0.2, "release": 0.2, "ratio": 0.4, "threshold": 0.2}),
    ("02_tar_at_0_re_0_r_3_th_3.wav", "numbered", {"attack": 0.0, "release": 0.0, "ratio": 0.3, "threshold": 0.3}),
])
def test_parse_cl1b_names(name, layout, controls):
    parsed = parse_cl1b_name(name)
    assert parsed.layout == layout
    assert parsed.controls == pytest.approx(controls)
    assert list(parsed.controls) == ["attack", "release", "ratio", "threshold"]


def test_parse_knob_max_and_errors():
    assert parse_cl1b_name("01_tar_at_3_re_3_ra_1_th_3.wav", knob_max=5).controls["attack"] == pytest.approx(0.6)
    assert parse_cl1b_name("01_tar_at_3_re_3_ra_1_th_3.wav").raw == {"attack": 3, "release": 3, "ratio": 1,
                                                                      "threshold": 3}
    for bad, match in [("take1.wav", "not a capture target"), ("target_at_05_re_05_ra_05.wav", "missing"),
                       ("target_at_05_xx_05_ra_05_th_05.wav", "unknown control key"),
                       ("target_at_05_re_05_ra_05_th_x.wav", "not a number"),
                       ("target_at_05_re_05_ra_05_th.wav", "key_value pairs"),
                       ("00_tar_at_20_re_2_ra_4_th_2.wav", "outside")]:
        with pytest.raises(CaptureError, match=match):
            parse_cl1b_name(bad)


def test_estimate_lag_both_signs():
    rng = np.random.default_rng(0)
    x = rng.standard_normal(5000)
    for lag in (0, 12, -9):
        y = np.roll(x, lag)
        assert estimate_lag(x, y, 100) == (lag, 1.0)
    assert estimate_lag(x, -np.roll(x, 3), 100) == (3, -1.0)
    assert normalised_correlation(x, x) == pytest.approx(1.0)


# ------------------------------------------------------------------------------------------ real CL 1B

@pytest.fixture(scope="module")
def cl1b(tmp_path_factory):
    if not CL1B.is_dir():
        pytest.skip(f"{CL1B} not present")
    out = tmp_path_factory.mktemp("cap") / "cl1b"
    path, report = import_captures(CL1B, out)
    return path, report


def test_cl1b_all_pairs_imported(cl1b):
    path, report = cl1b
    targets = sorted(p.name for p in CL1B.glob("*.wav") if "_tar_" in p.name or p.name.startswith("target_"))
    assert len(targets) == 15
    assert sorted(r.target_file for r in report.items) == targets
    assert report.ignored == []
    by_target = {r.target_file: r for r in report.items}
    assert by_target["01_tar_at_3_re_3_ra_1_th_3.wav"].input_file == "01_inp.wav"
    assert by_target["target_at_05_re_05_ra_05_th_05.wav"].input_file == "Input.wav"
    assert by_target["02_tar_at_0_re_0_r_3_th_3.wav"].controls == pytest.approx(
        {"attack": 0.0, "release": 0.0, "ratio": 0.3, "threshold": 0.3})
    assert by_target["target_at_05_re_05_ra_0_th_075.wav"].controls == pytest.approx(
        {"attack": 0.5, "release": 0.5, "ratio": 0.0, "threshold": 0.75})


def test_cl1b_alignment_improves_correlation(cl1b):
    _, report = cl1b
    for r in report.items:
        assert abs(r.lag_samples) <= round(0.05 * SR)
        assert r.lag_ms == pytest.approx(1000 * r.lag_samples / SR)
        assert r.correlation_after >= r.correlation_before - 1e-9
        assert r.correlation_after > 0.7
        assert abs(r.dc_input_after) < 1e-6 and abs(r.dc_target_after) < 1e-6
        if r.lag_samples > 10:
            assert r.correlation_after > r.correlation_before + 0.3
    assert max(r.lag_samples for r in report.items) > 10  # some CL 1B targets are late
    # the longer targets (5.25 s, 5.5 s against 5 s) are trimmed to the input
    longer = [r for r in report.items if r.trimmed_target >= 11025]
    assert len(longer) >= 2 and all(r.length <= 5 * SR for r in longer)
    table = report.format()
    assert "lag" in table and "target_at_05_re_075_ra_05_th_05" in table and len(table.splitlines()) >= 17


def test_cl1b_dataset_reads_like_a_rendered_one(cl1b):
    path, report = cl1b
    ds = load_dataset(path)
    assert len(ds) == 15 and ds.control_names == ["attack", "release", "ratio", "threshold"]
    m = ds.manifest
    assert m["kind"] == "captures" and m["source"] is None and m["target"]["name"] == "captures"
    item = ds.items[3]
    x, y = item.load()
    assert x.shape == y.shape == (item.length,)
    assert item.entry["alignment"]["lag_samples"] == report.items[3].lag_samples
    assert normalised_correlation(x, y) == pytest.approx(report.items[3].correlation_after, abs=1e-4)
    assert len(json.loads((path / "splits.json").read_text())["splits"]) == 10


# -------------------------------------------------------------------------------------------- synthetic

def test_synthetic_delay_dc_and_extra_samples(tmp_path):
    rng = np.random.default_rng(1)
    n = 30000
    x = (0.3 * rng.standard_normal(n) * np.repeat(rng.uniform(0.1, 1.0, n // 1000), 1000)).astype(np.float32)
    y = np.concatenate([np.zeros(37), 0.5 * x, 0.5 * x[:10]]) + 0.1  # 37 late, DC 0.1, 10 extra at the end
    folder = tmp_path / "caps"
    folder.mkdir()
    write(folder / "Input.wav", x)
    write(folder / "target_at_0_re_1_ra_05_th_025.wav", y)
    (folder / "notes.txt").write_text("not audio")
    path, report = import_captures(folder, tmp_path / "out")
    (r,) = report.items
    assert r.lag_samples == 37 and r.lag_ms == pytest.approx(37 / 44.1)
    assert r.dc_target_before == pytest.approx(0.1, abs=2e-3)
    assert abs(r.dc_target_after) < 1e-6
    assert r.trims == {"input_start": 0, "input_end": 0, "target_start": 37, "target_end": 10}
    assert (r.trimmed_input, r.trimmed_target, r.length) == (0, 47, n)
    assert r.correlation_after > 0.999 and r.correlation_before < 0.2
    assert r.controls == {"attack": 0.0, "release": 1.0, "ratio": 0.5, "threshold": 0.25}
    xin, yout = load_dataset(path).items[0].load()
    np.testing.assert_allclose(yout, 0.5 * (x - x.mean()), atol=1e-5)
    assert "37" in report.format()


def test_synthetic_target_early_numbered_layout(tmp_path):
    rng = np.random.default_rng(2)
    x = rng.standard_normal(8000).astype(np.float32)
    write(tmp_path / "07_inp.wav", x)
    write(tmp_path / "07_tar_at_1_re_2_ra_3_th_4.wav", x[5:])  # target 5 samples early
    _, report = import_captures(tmp_path, tmp_path / "out", pairing="numbered")
    (r,) = report.items
    assert r.lag_samples == -5 and r.trimmed_input == 5 and r.trimmed_target == 0
    assert r.raw_controls == {"attack": 1, "release": 2, "ratio": 3, "threshold": 4}


def test_custom_controls_from_name(tmp_path):
    x = np.random.default_rng(3).standard_normal(4000).astype(np.float32)
    write(tmp_path / "Input.wav", x)
    write(tmp_path / "target_gentle.wav", 0.5 * x)
    _, report = import_captures(tmp_path, tmp_path / "out",
                                controls_from_name=lambda name: {"amount": 0.25 if "gentle" in name else 1.0})
    assert report.items[0].controls == {"amount": 0.25}


# ----------------------------------------------------------------------------------------------- errors

def test_error_rate_mismatch(tmp_path):
    x = np.zeros(1000, np.float32)
    write(tmp_path / "Input.wav", x)
    write(tmp_path / "target_at_0_re_0_ra_0_th_0.wav", x, sr=48000)
    with pytest.raises(CaptureError, match="sample-rate mismatch.*48000") as info:
        import_captures(tmp_path, tmp_path / "out")
    assert isinstance(info.value, NeuralcompError)
    assert not (tmp_path / "out").exists()


def test_error_unknown_layout(tmp_path):
    write(tmp_path / "dry.wav", np.zeros(100))
    write(tmp_path / "wet.wav", np.zeros(100))
    with pytest.raises(CaptureError, match="no input/target pairs.*dry.wav"):
        import_captures(tmp_path, tmp_path / "out")
    with pytest.raises(CaptureError, match="unknown pairing"):
        import_captures(tmp_path, tmp_path / "out", pairing="zip")
    with pytest.raises(CaptureError, match="does not exist"):
        import_captures(tmp_path / "none", tmp_path / "out")


def test_error_missing_input(tmp_path):
    write(tmp_path / "03_tar_at_1_re_1_ra_1_th_1.wav", np.zeros(100))
    with pytest.raises(CaptureError, match="03_inp.wav"):
        import_captures(tmp_path, tmp_path / "out")
    (tmp_path / "03_tar_at_1_re_1_ra_1_th_1.wav").unlink()
    write(tmp_path / "target_at_1_re_1_ra_1_th_1.wav", np.zeros(100))
    with pytest.raises(CaptureError, match="no Input.wav"):
        import_captures(tmp_path, tmp_path / "out")
