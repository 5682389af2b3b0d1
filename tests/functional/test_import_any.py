"""`neuralcomp dataset import` for captures as users have them: manifests (CSV, JSON), --pair patterns with
controls from a regular expression, snapshot captures, a shared reamp input, the sync-marker source with an
unknown round trip, resampling, short items, and the bad-input list (nothing left behind on failure)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pedalboard
import pytest
import soundfile as sf

from neuralcomp.cli import main
from neuralcomp.data.captures import ImportOptions, import_pairs
from neuralcomp.data.dataset import load_dataset
from neuralcomp.data.pairing import CaptureError, pairs_from_manifest, pairs_from_patterns
from neuralcomp.data.sync import program_start, with_sync_marker

SR = 44100


def program(seconds: float, seed: int = 0, level: float = 0.4) -> np.ndarray:
    """Noise with a level envelope that steps every 50 ms: a compressor has something to do."""
    rng = np.random.default_rng(seed)
    n = round(seconds * SR)
    envelope = np.repeat(rng.uniform(0.02, 1.0, n // 2205 + 1), 2205)[:n]
    return (level * envelope * rng.standard_normal(n)).astype(np.float32)


def compress(x: np.ndarray, threshold_db: float = -20.0, ratio: float = 4.0, rate: int = SR) -> np.ndarray:
    comp = pedalboard.Compressor(threshold_db=threshold_db, ratio=ratio, attack_ms=2.0, release_ms=50.0)
    return comp(x[None].astype(np.float32), rate)[0]


def write(path: Path, audio: np.ndarray, rate: int = SR) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), np.asarray(audio, np.float32).T, rate, subtype="FLOAT")
    return path


def nothing_left(parent: Path, out_name: str) -> bool:
    return not any(p.name == out_name or p.name.startswith(f".{out_name}.") for p in parent.iterdir())


# ------------------------------------------------------------------------------------------- sources of pairs

def test_csv_manifest_in_user_units_with_ranges_in_the_header(tmp_path, capsys):
    x = program(1.0)
    write(tmp_path / "caps" / "dry.wav", x)
    for t in (-30, -10):
        write(tmp_path / "caps" / "wet" / f"t{-t}.wav", compress(x, t, 4.0))
    (tmp_path / "caps" / "takes.csv").write_text(
        "# two takes of one source\ninput,target,threshold:-40:0:dB,ratio:1:20::log\n"
        "dry.wav,wet/t30.wav,-30,4\ndry.wav,wet/t10.wav,-10,4\n")
    assert main(["dataset", "import", str(tmp_path / "caps" / "takes.csv"), str(tmp_path / "out")]) == 0
    data = load_dataset(tmp_path / "out")
    assert data.control_names == ["threshold", "ratio"]
    assert [c.mapping for c in data.controls] == ["linear", "log"] and data.controls[0].unit == "dB"
    assert data[0].controls["threshold"] == pytest.approx(0.25) and data[1].controls["threshold"] == pytest.approx(0.75)
    assert data[0].controls["ratio"] == pytest.approx(np.log(4) / np.log(20))
    assert data[0].entry["origin"] == "takes.csv line 3"
    assert "Imported 2 pair(s)" in capsys.readouterr().out


def test_json_manifest_with_controls_and_calibration(tmp_path):
    x = program(1.0, seed=1)
    write(tmp_path / "in.wav", x)
    write(tmp_path / "out.wav", compress(x))
    (tmp_path / "m.json").write_text(json.dumps({
        "controls": [{"name": "amount", "minimum": 0, "maximum": 10, "unit": ""}],
        "input_dbu_at_0dbfs": 18.0, "output_dbu_at_0dbfs": 20.0,
        "items": [{"input": "in.wav", "target": "out.wav", "controls": {"amount": 7.5}}]}))
    pairs = pairs_from_manifest(tmp_path / "m.json")
    assert pairs.pairs[0].controls == {"amount": 0.75} and pairs.calibration["input_dbu_at_0dbfs"] == 18.0
    path, _ = import_pairs(pairs, tmp_path / "out", ImportOptions(output_dbu_at_0dbfs=24.0))
    manifest = json.loads((path / "manifest.json").read_text())
    assert manifest["calibration"] == {"input_dbu_at_0dbfs": 18.0, "output_dbu_at_0dbfs": 24.0}  # the flag wins


def test_pair_patterns_with_controls_from_a_regex(tmp_path):
    folder = tmp_path / "caps"
    for k, (t, r) in enumerate([(-30, 2), (-20, 8), (-12, 4)]):
        x = program(0.8, seed=k)
        write(folder / "takes" / f"take{k}_th{t}_r{r}_inp.wav", x)
        write(folder / "takes" / f"take{k}_th{t}_r{r}_target.wav", compress(x, t, r))
    write(folder / "notes" / "stray.wav", program(0.1))
    pairs = pairs_from_patterns(folder, [("takes/*_inp.wav", "takes/*_target.wav")],
                                r"_th(?P<threshold>-?\d+)_r(?P<ratio>\d+)",
                                [*map(__import__("neuralcomp.config", fromlist=["ControlSpec"]).ControlSpec.parse,
                                      ["threshold:-40:0:dB", "ratio:1:20::log"])])
    assert [p.input.name.replace("_inp", "_target") for p in pairs.pairs] == [p.target.name for p in pairs.pairs]
    assert [p.raw for p in pairs.pairs] == [{"threshold": -30, "ratio": 2}, {"threshold": -20, "ratio": 8},
                                            {"threshold": -12, "ratio": 4}]
    assert pairs.ignored == ["notes/stray.wav"]
    # through the command line, with an item that does not parse: the error names it
    write(folder / "takes" / "take9_inp.wav", program(0.8, seed=9))
    write(folder / "takes" / "take9_target.wav", compress(program(0.8, seed=9)))
    code = main(["dataset", "import", str(folder), str(tmp_path / "out"), "--pair", "takes/*_inp.wav",
                 "takes/*_target.wav", "--name-regex", r"_th(?P<threshold>-?\d+)_r(?P<ratio>\d+)",
                 "--control", "threshold:-40:0:dB", "--control", "ratio:1:20::log"])
    assert code == 2 and nothing_left(tmp_path, "out")


def test_snapshot_takes_and_a_shared_reamp_input_train_a_model_without_controls(tmp_path):
    """The optical-compressor case: `<take>_inp.wav` / `<take>_target.wav`, one fixed setting."""
    folder = tmp_path / "optical"
    for k in range(4):
        x = program(1.5, seed=10 + k)
        write(folder / f"take{k}_inp.wav", x)
        write(folder / f"take{k}_target.wav", compress(x))
    assert main(["dataset", "import", str(folder), str(tmp_path / "snap"), "--pair", "*_inp.wav",
                 "*_target.wav", "--input-dbu-at-0dbfs", "4", "--output-dbu-at-0dbfs", "10.5"]) == 0
    data = load_dataset(tmp_path / "snap")
    assert len(data) == 4 and data.control_names == [] and data.controls == ()
    assert main(["train", str(tmp_path / "snap"), "--out", str(tmp_path / "run"), "--preset", "tiny",
                 "--length", "2048", "--batch-size", "2", "--max-iterations", "2", "--validate-every", "2",
                 "--no-progress"]) == 0
    import neuralcomp

    model = neuralcomp.load(tmp_path / "run" / "model.ts", backend="python")
    assert model.control_names == [] and model.sample_rate == SR
    assert model.calibration == {"input_dbu_at_0dbfs": 4.0, "output_dbu_at_0dbfs": 10.5}  # carried into the model
    assert model.match_calibration(18.0, 18.0) == (14.0, -7.5)
    # `export --checkpoint` carries it too: from run.json beside the checkpoint, or from --dataset
    moved = tmp_path / "elsewhere" / "best.ckpt"
    moved.parent.mkdir()
    moved.write_bytes((tmp_path / "run" / "best.ckpt").read_bytes())
    for checkpoint, extra, name in ((tmp_path / "run" / "best.ckpt", [], "a.ts"),
                                    (tmp_path / "run" / "last.ckpt", [], "b.ts"),
                                    (moved, ["--dataset", str(tmp_path / "snap")], "c.ts")):
        assert main(["export", "--checkpoint", str(checkpoint), "-o", str(tmp_path / name), *extra]) == 0
        assert neuralcomp.load(tmp_path / name, backend="python").calibration == model.calibration, name
    assert main(["export", "--checkpoint", str(moved), "-o", str(tmp_path / "d.ts")]) == 0  # no record: none
    assert neuralcomp.load(tmp_path / "d.ts", backend="python").calibration is None
    assert main(["export", "--from-model", str(tmp_path / "a.ts"), "-o", str(tmp_path / "e.ts")]) == 0
    assert neuralcomp.load(tmp_path / "e.ts", backend="python").calibration == model.calibration
    # reports for captures: the same plots as the demo, the static curve from window levels
    assert main(["evaluate", str(tmp_path / "run" / "model.ts"), str(tmp_path / "snap"), "--plots",
                 str(tmp_path / "plots"), "--backend", "python"]) == 0
    test_id = data[data.split(0).test[0]].id
    assert {f"target_vs_model_{test_id}.png", f"static_curve_{test_id}.png"} <= {
        p.name for p in (tmp_path / "plots").iterdir()}
    # one reamp input shared by several outputs
    shared = tmp_path / "reamp"
    x = program(1.0, seed=20)
    write(shared / "DI.wav", x)
    for t in (-30, -20, -10):
        write(shared / "out" / f"thr{t}.wav", compress(x, t))
    assert main(["dataset", "import", str(shared), str(tmp_path / "shared"), "--pair", "DI.wav", "out/*.wav",
                 "--name-regex", r"thr(?P<threshold>-?\d+)", "--control", "threshold:-40:0:dB"]) == 0
    data = load_dataset(tmp_path / "shared")
    assert {Path(item.entry["source_files"]["input"]).name for item in data.items} == {"DI.wav"}
    assert sorted(item.controls["threshold"] for item in data.items) == pytest.approx([0.25, 0.5, 0.75])


# ---------------------------------------------------------------------------------------- sync marker

@pytest.mark.parametrize("round_trip_s", [0.0123, 0.83])
def test_the_sync_marker_aligns_an_unknown_round_trip_up_to_one_second(tmp_path, round_trip_s):
    assert main(["dataset", "source", "-o", str(tmp_path / "source.wav"), "--seconds", "2.5",
                 "--synthetic-music"]) == 0
    source, rate = sf.read(str(tmp_path / "source.wav"), dtype="float32")
    start = program_start(rate)
    assert rate == SR and len(source) == start + round(2.5 * SR) + SR  # marker section, program, 1 s tail
    delay = round(round_trip_s * SR)
    wet = 0.7 * compress(source)
    recording = np.concatenate([np.zeros(delay, np.float32), wet])[:len(source) + 4410]  # recorder ran on
    recording += 1e-4 * np.random.default_rng(0).standard_normal(len(recording)).astype(np.float32)
    write(tmp_path / "rec" / "take.wav", recording)
    (tmp_path / "rec" / "source.wav").write_bytes((tmp_path / "source.wav").read_bytes())
    assert main(["dataset", "import", str(tmp_path / "rec"), str(tmp_path / "out"), "--pair", "source.wav",
                 "take.wav"]) == 0
    item = load_dataset(tmp_path / "out")[0]
    assert item.entry["alignment"]["lag_samples"] == delay
    assert item.entry["alignment"]["aligned_by"] == "sync marker"
    x, y = item.load()
    np.testing.assert_allclose(x, source[start:start + len(x)] - source[start:start + len(x)].mean(), atol=1e-6)
    assert np.corrcoef(y, wet[start:start + len(y)])[0, 1] > 0.999  # the unit's output of exactly that input


def test_a_recording_without_the_marker_is_refused(tmp_path):
    program_audio = program(1.0)
    write(tmp_path / "source.wav", with_sync_marker(program_audio, SR))
    write(tmp_path / "take.wav", compress(np.concatenate([np.zeros(SR), program_audio])))  # marker not recorded
    with pytest.raises(CaptureError, match="sync marker"):
        import_pairs(pairs_from_patterns(tmp_path, [("source.wav", "take.wav")]), tmp_path / "out")
    assert nothing_left(tmp_path, "out")


# ---------------------------------------------------------------------------------- rates and short items

def test_mixed_rates_are_refused_or_resampled_on_request(tmp_path):
    x44, x48 = program(1.0, seed=1), None
    write(tmp_path / "a_in.wav", x44)
    write(tmp_path / "a_out.wav", compress(x44))
    t = np.arange(48000) / 48000
    x48 = (0.3 * np.sin(2 * np.pi * 440 * t) * (1 + np.sin(2 * np.pi * 3 * t))).astype(np.float32)
    write(tmp_path / "b_in.wav", x48, 48000)
    write(tmp_path / "b_out.wav", compress(x48, rate=48000), 48000)
    patterns = [("*_in.wav", "*_out.wav")]
    with pytest.raises(CaptureError, match="48000 Hz.*--resample"):
        import_pairs(pairs_from_patterns(tmp_path, patterns), tmp_path / "out")
    assert nothing_left(tmp_path, "out")
    path, report = import_pairs(pairs_from_patterns(tmp_path, patterns), tmp_path / "out", ImportOptions(resample=44100))
    data = load_dataset(path)
    assert data.sample_rate == 44100 and report.resampled_from == {"b_in.wav": 48000, "b_out.wav": 48000}
    assert abs(data[1].length - 44100) <= 2


def test_short_items_validate_and_test_but_never_train(tmp_path, capsys):
    seconds = [2.5, 0.3, 2.5, 0.8, 0.3, 0.8]  # 0.3 s: shorter than any training window
    for k, length in enumerate(seconds):
        x = program(length, seed=k)
        write(tmp_path / "caps" / f"{k}_inp.wav", x)
        write(tmp_path / "caps" / f"{k}_target.wav", compress(x))
    path, report = import_pairs(pairs_from_patterns(tmp_path / "caps", [("*_inp.wav", "*_target.wav")]),
                                tmp_path / "out")
    assert [r.training for r in report.items] == [True, False, True, True, False, True]
    assert "valid/test only" in report.format() and "too short to train" in report.format()
    splits = json.loads((path / "splits.json").read_text())
    assert splits["eval_only"] == [1, 4]
    for split in splits["splits"]:
        assert not {1, 4} & set(split["train"]) and {1, 4} <= set(split["valid"]) | set(split["test"])
        assert sorted(split["train"] + split["valid"] + split["test"]) == list(range(6))
    # training at a longer L: the 0.8 s items validate instead, and the log says so before training
    from neuralcomp.config import load_preset
    from neuralcomp.model import SPTMod
    from neuralcomp.training.run import split_by_training_length
    from neuralcomp.training.config import TrainingConfig

    data, lines = load_dataset(path), []
    model = SPTMod(load_preset("tiny", sample_rate=SR))
    train, valid = split_by_training_length(data, [0, 2, 3, 5], [1, 4], model, TrainingConfig(length=32768),
                                            lines.append)
    assert (train, valid) == ([0, 2], [1, 3, 4, 5])
    assert "003 (0.80 s), 005 (0.80 s)" in lines[0] and "validate instead" in lines[0]
    assert main(["train", str(path), "--out", str(tmp_path / "run"), "--preset", "tiny", "--length", "131072",
                 "--max-iterations", "1", "--no-progress"]) == 2
    assert "no training item is at least" in capsys.readouterr().err


# --------------------------------------------------------------------------------------------- bad input

def _manifest(tmp_path: Path, rows: list[str], header: str = "input,target,threshold:-40:0:dB") -> Path:
    path = tmp_path / "m.csv"
    path.write_text("\n".join([header, *rows]) + "\n")
    return path


def test_bad_manifests_name_the_file_and_the_line(tmp_path):
    x = program(0.5)
    write(tmp_path / "in.wav", x)
    write(tmp_path / "out.wav", compress(x))
    for rows, match in [(["in.wav,out.wav,-20", "in.wav,missing.wav,-20"], r"m.csv line 3: target file .*missing.wav"),
                        (["in.wav,out.wav,-50"], r"m.csv line 2: control 'threshold' = -50 is outside .*\[-40, 0\] dB"),
                        (["in.wav,out.wav"], "line 2: 2 fields, the header has 3"),
                        (["in.wav,out.wav,loud"], "line 2: control 'threshold' = 'loud' is not a number")]:
        with pytest.raises(CaptureError, match=match):
            pairs_from_manifest(_manifest(tmp_path, rows))
    with pytest.raises(CaptureError, match="no range"):
        pairs_from_manifest(_manifest(tmp_path, ["in.wav,out.wav,3"], "input,target,amount"))
    assert main(["dataset", "import", str(_manifest(tmp_path, ["in.wav,nope.wav,-20"])), str(tmp_path / "out")]) == 2
    assert nothing_left(tmp_path, "out")


def _import_one(tmp_path: Path, x: np.ndarray, y: np.ndarray | bytes, **options):
    folder = tmp_path / "caps"
    write(folder / "a_inp.wav", program(0.5, seed=7))  # a good pair first: written, then removed on failure
    write(folder / "a_target.wav", compress(program(0.5, seed=7)))
    write(folder / "b_inp.wav", x)
    if isinstance(y, bytes):
        (folder / "b_target.wav").write_bytes(y)
    else:
        write(folder / "b_target.wav", y)
    return import_pairs(pairs_from_patterns(folder, [("*_inp.wav", "*_target.wav")]), tmp_path / "out",
                        ImportOptions(**options))


@pytest.mark.parametrize("case, match", [
    ("unreadable", r"cannot read target .*b_target.wav"),
    ("empty", r"b_target.wav is empty"),
    ("too long", r"more than 1 s longer than its input"),
    ("silent", r"b_target.wav is silent"),
    ("uncorrelated", r"uncorrelated with input b_inp.wav \(correlation -?0.0\d+.*below 0.2\).*return channel"),
    ("wrong channel", r"uncorrelated .*the file has 2 channels.*--target-channel"),
])
def test_bad_captures_are_refused_and_leave_nothing(tmp_path, case, match):
    x = program(0.5, seed=3)
    y = {"unreadable": b"RIFF\x00\x00garbage", "empty": np.zeros(0, np.float32),
         "too long": np.concatenate([compress(x), np.zeros(round(1.2 * SR), np.float32)]),
         "silent": np.zeros(len(x), np.float32),
         "uncorrelated": program(0.5, seed=99),
         "wrong channel": np.stack([program(0.5, seed=99), compress(x)])}[case]
    with pytest.raises(CaptureError, match=match):
        _import_one(tmp_path, x, y, target_channel=1 if case == "wrong channel" else None)
    assert nothing_left(tmp_path, "out")
    if case == "wrong channel":  # the right channel imports
        path, _ = _import_one(tmp_path, x, y, target_channel=2)
        assert len(load_dataset(path)) == 2


def test_clipping_is_a_warning_with_the_sample_count(tmp_path):
    x = program(0.5, seed=4, level=0.1)
    y = compress(x) * 30
    clipped = int(np.count_nonzero(np.abs(y) >= 0.999))
    y = np.clip(y, -1, 1)
    path, report = _import_one(tmp_path, x, y)
    assert any(f"b_target.wav (target) clips: {clipped} sample(s)" in w for w in report.warnings)
    assert load_dataset(path)[1].entry["clipped_samples"] == {"input": 0, "target": clipped}


# ------------------------------------------------------------------------------------------- sidechain

def _keyed_takes(folder: Path, thresholds=(-40, -30, -20, -10), early: int = 300) -> list[tuple[str, ...]]:
    """Takes of the keyed compressor: each input ducked by its own key; the recorder started `early`
    samples late, so the target is early and the input (and its key) lose their first samples."""
    from neuralcomp.data.keyed import KeyedCompressor

    rows = []
    for k, threshold in enumerate(thresholds):
        x, key = program(1.5, seed=40 + k, level=0.3), program(1.5, seed=60 + k, level=0.8)
        y = KeyedCompressor(threshold_db=threshold, ratio=8.0, attack_ms=1.0, release_ms=30.0).process(x, key, SR)
        rows.append((write(folder / f"in{k}.wav", x).name, write(folder / f"out{k}.wav", y[early:]).name,
                     write(folder / f"key{k}.wav", key).name, str(threshold)))
    return rows


def test_captures_with_a_sidechain_column_train_a_keyed_model(tmp_path):
    folder = tmp_path / "keyed"
    rows = _keyed_takes(folder)
    (folder / "takes.csv").write_text("input,target,sidechain,threshold:-60:0:dB\n"
                                      + "".join(",".join(r) + "\n" for r in rows))
    assert main(["dataset", "import", str(folder / "takes.csv"), str(tmp_path / "data")]) == 0
    data = load_dataset(tmp_path / "data", check_audio=True)
    assert data.sidechain_channels == 1 and data.manifest["sidechain"]["channels"] == 1
    item = data[2]
    assert item.entry["alignment"]["trims"]["input_start"] == 300  # the input's cut ...
    key, _ = sf.read(str(folder / "key2.wav"), dtype="float64")
    kept = key[300:300 + item.length]
    np.testing.assert_allclose(item.load_sidechain()[0], kept - kept.mean(), atol=1e-6)  # ... is the key's
    assert item.entry["source_files"]["sidechain"].endswith("key2.wav")
    # the same through a JSON manifest
    (folder / "takes.json").write_text(json.dumps({
        "controls": ["threshold:-60:0:dB"],
        "items": [{"input": r[0], "target": r[1], "sidechain": r[2], "threshold": float(r[3])} for r in rows]}))
    path, report = import_pairs(pairs_from_manifest(folder / "takes.json"), tmp_path / "json")
    assert report.sidechain_channels == 1 and "sidechain: each take's key" in report.format()
    assert np.array_equal(load_dataset(path)[2].load_sidechain(), item.load_sidechain())
    # `neuralcomp train` on it trains a keyed model: the exported file takes the key
    assert main(["train", str(tmp_path / "data"), "--out", str(tmp_path / "run"), "--preset", "tiny", "--length",
                 "2048", "--batch-size", "2", "--max-iterations", "2", "--validate-every", "2", "--no-progress"]) == 0
    import neuralcomp

    model = neuralcomp.load(tmp_path / "run" / "model.ts", backend="python")
    assert model.sidechain_channels == 1 and model.control_names == ["threshold"]
    audio, _ = item.load()
    assert np.all(np.isfinite(model.process(audio, SR, sidechain=item.load_sidechain())))


@pytest.mark.parametrize("case, match", [
    ("missing", r"takes.csv line 3: sidechain file .*nokey.wav does not exist"),
    ("some takes only", r"takes.csv line 3: no sidechain file, but takes.csv line 2 has one \(key0.wav\): every take"),
    ("wrong length", r"takes.csv line 3: sidechain short.wav has 66049 samples but its input in1.wav has 66150"),
    ("wrong rate", r"takes.csv line 3: sidechain fast.wav is at 48000 Hz but its input in1.wav is at 44100 Hz"),
    ("channels", r"takes.csv line 3: sidechain stereo.wav has 2 channel\(s\) but key0.wav has 1"),
])
def test_bad_sidechain_files_are_refused_by_name_and_leave_nothing(tmp_path, case, match):
    folder = tmp_path / "keyed"
    rows = [list(r) for r in _keyed_takes(folder, thresholds=(-30, -20, -10), early=0)]
    key1, _ = sf.read(str(folder / "key1.wav"), dtype="float32")
    rows[1][2] = {"missing": "nokey.wav", "some takes only": "",
                  "wrong length": write(folder / "short.wav", key1[:-101]).name,
                  "wrong rate": write(folder / "fast.wav", key1, 48000).name,
                  "channels": write(folder / "stereo.wav", np.stack([key1, key1])).name}[case]
    (folder / "takes.csv").write_text("input,target,sidechain,threshold:-60:0:dB\n"
                                      + "".join(",".join(r) + "\n" for r in rows))
    with pytest.raises(CaptureError, match=match):
        import_pairs(pairs_from_manifest(folder / "takes.csv"), tmp_path / "out")
    assert nothing_left(tmp_path, "out")
    assert main(["dataset", "import", str(folder / "takes.csv"), str(tmp_path / "out")]) == 2
    assert nothing_left(tmp_path, "out")


def test_pair_patterns_take_a_sidechain_pattern(tmp_path, capsys):
    folder = tmp_path / "keyed"
    for k, (inp, out, key, threshold) in enumerate(_keyed_takes(folder, thresholds=(-30, -20, -10), early=0)):
        for name, new in ((inp, f"take{k}_in.wav"), (out, f"take{k}_out.wav"), (key, f"take{k}_key.wav")):
            (folder / name).rename(folder / new)
    args = ["dataset", "import", str(folder), str(tmp_path / "data"), "--pair", "*_in.wav", "*_out.wav"]
    assert main([*args, "--sidechain", "*_key.wav"]) == 0
    data = load_dataset(tmp_path / "data")
    assert data.sidechain_channels == 1
    assert [Path(i.entry["source_files"]["sidechain"]).name for i in data.items] == [
        f"take{k}_key.wav" for k in range(3)]
    assert data.manifest["ignored_files"] == []
    # a take without its key, a shared key of the wrong length, and --sidechain without --pair: named
    (folder / "take2_key.wav").rename(folder / "other.wav")
    assert main([*args, "--sidechain", "*_key.wav", "--overwrite"]) == 2
    assert "output take2_out.wav has no sidechain file matching '*_key.wav'" in capsys.readouterr().err
    write(folder / "shared_key.wav", program(1.0, seed=70))
    assert main([*args, "--sidechain", "shared_key.wav", "--overwrite"]) == 2
    assert "sidechain shared_key.wav has 44100 samples but its input take0_in.wav has 66150" in capsys.readouterr().err
    assert main(["dataset", "import", str(folder), str(tmp_path / "x"), "--sidechain", "*_key.wav"]) == 2
    assert "give --pair too" in capsys.readouterr().err
