"""The latency report command writes what it promises, and its eager backend is the same model."""

import json

import numpy as np

from neuralcomp.bench import _EagerHost
from neuralcomp.cli import main
from tests.conftest import noise


def test_eager_backend_is_the_exported_model(model_files):
    import neuralcomp

    for mode in ["paper", "causal"]:
        path = model_files("sptmod25", mode, 7)[0]
        eager = _EagerHost(path)
        exported = neuralcomp.load(path, backend="python")
        x = noise(6400, seed=2)
        y_eager = np.concatenate([eager.process(x[:, i:i + 100]) for i in range(0, 6400, 100)], axis=1)
        y_exported = exported.process(x, 44100)
        # eager buffers whole frames: P - 1 samples, which in paper mode is the model's own latency
        assert eager.latency_samples == 63
        shift = eager.latency_samples - exported.latency_samples
        np.testing.assert_allclose(y_eager[:, shift:], y_exported[:, : 6400 - shift], rtol=0, atol=1e-6)


def test_eager_backend_runs_the_tcn(model_files, capsys):
    """A TCN's frame is one sample: the eager host adds no latency and matches the exported file; the bench
    reports its eager rows."""
    import neuralcomp

    path = model_files("tcn", "causal", 2)[0]
    eager = _EagerHost(path)
    assert eager.latency_samples == 0
    x = noise(6000, seed=4)
    y_eager = np.concatenate([eager.process(x[:, i:i + 77]) for i in range(0, 6000, 77)], axis=1)
    np.testing.assert_allclose(y_eager, neuralcomp.load(path, backend="python").process(x, 44100), rtol=0, atol=1e-6)
    assert main(["bench", str(path), "--backends", "eager", "--rates", "44100", "--buffers", "64",
                 "--seconds", "0.02"]) == 0
    assert "| eager | 44100 | 64 |" in capsys.readouterr().out


def test_bench_feeds_a_keyed_model_its_key(tmp_path, capsys):
    """A sidechain model: the eager host streams the key with the audio (equal to the exported file), and the
    bench gives every backend a key instead of failing; a backend that refuses the model is left out."""
    import neuralcomp
    import torch

    from export import export_model
    from neuralcomp.config import generic_controls, load_preset
    from neuralcomp.model import build_model

    torch.manual_seed(0)
    path = export_model(build_model(load_preset("tiny", controls=generic_controls(1), sidechain=1)),
                        tmp_path / "keyed.ts")
    eager = _EagerHost(path)
    x, key = noise(6400, seed=2), noise(6400, seed=3)
    y_eager = np.concatenate([eager.process(x[:, i:i + 100], key[:, i:i + 100]) for i in range(0, 6400, 100)], axis=1)
    y_exported = neuralcomp.load(path, backend="python").process(x, 44100, sidechain=key)
    shift = eager.latency_samples  # causal: the exported file has no latency, eager buffers whole frames
    np.testing.assert_allclose(y_eager[:, shift:], y_exported[:, :6400 - shift], rtol=0, atol=1e-6)
    assert main(["bench", str(path), "--backends", "native,python,eager", "--rates", "44100,48000", "--buffers",
                 "64", "--seconds", "0.02"]) == 0
    captured = capsys.readouterr()
    rows = [line for line in captured.out.splitlines() if line.startswith("| python") or line.startswith("| eager")]
    # the hosts resample a key beside the audio at another rate; the training module runs at the model's only
    assert sorted(row.split("|")[1:3] for row in rows) == [
        [" eager ", " 44100 "], [" python ", " 44100 "], [" python ", " 48000 "]]
    for rate in (44100, 48000):  # the native engine runs keyed models, timed in C++ with the key at 44.1 kHz
        assert f"| native | {rate} | 64 |" in captured.out


def test_bench_writes_json_markdown_and_png(model_files, tmp_path, capsys):
    path = model_files("sptmod25", "causal", 7)[0]
    out = tmp_path / "report"
    assert main(["bench", str(path), "--backends", "python,eager", "--rates", "44100", "--buffers", "64,256",
                 "--seconds", "0.05", "--out", str(out)]) == 0
    table = capsys.readouterr().out
    assert "| python | 44100 | 64 |" in table and "| eager | 44100 | 256 |" in table
    data = json.loads((out / "latency.json").read_text())
    assert {r["backend"] for r in data["rows"]} == {"python", "eager"} and len(data["rows"]) == 4
    row = data["rows"][0]
    assert row["p50_us"] <= row["p99_us"] <= row["p999_us"] <= row["max_us"]
    assert row["calls"] >= 30 and 0 <= row["deadline_misses"] <= row["calls"]
    assert data["machine"]["torch"] and data["machine"]["cores"] >= 1
    assert (out / "latency.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (out / "latency.md").read_text().startswith("sptmod25 (causal)")


def test_bench_latency_column_is_the_model_and_resampler_delay(model_files, capsys):
    """The latency a user hears: the model's (63 in paper mode), plus at 48 kHz the two resamplers'
    group delays, computed here from the filters themselves, plus one buffer."""
    import neuralcomp
    from neuralcomp.host.resample import StreamingResampler

    path = model_files("sptmod25", "paper", 7)[0]
    assert main(["bench", str(path), "--backends", "python", "--rates", "44100,48000", "--buffers", "64",
                 "--seconds", "0.02"]) == 0
    rows = {int(line.split("|")[2]): line for line in capsys.readouterr().out.splitlines()
            if line.startswith("| python |")}
    down = StreamingResampler(48000, 44100, 1, whole_delay_at=48000)
    up = StreamingResampler(44100, 48000, 1, whole_delay_at=48000)
    at_48k = round(down.delay * 48000 / 44100 + up.delay + 63 * 48000 / 44100)
    assert at_48k == neuralcomp.load(path, backend="python").latency_at(48000) > 63 * 48000 / 44100
    for rate, algorithmic in ((44100, 63), (48000, at_48k)):
        assert f"| {algorithmic} + 64 | {1000 * (algorithmic + 64) / rate:.2f} |" in rows[rate], rows[rate]


def test_training_benchmark_reports_each_setting(capsys):
    assert main(["bench-train", "--presets", "tiny", "--settings", "1,2,2048;2,2,2048", "--groups", "1",
                 "--controls", "2"]) == 0
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if line.startswith("| tiny")]
    assert len(rows) == 2 and "| 2 | 2 | 2048 |" in rows[1]
    seconds = float(rows[1].split("|")[8])
    assert seconds > 0


def test_training_benchmark_runs_a_keyed_model():
    """A sidechain model trains with a key of its own (a sweep on a keyed dataset times the model its trials
    train)."""
    import torch

    from neuralcomp.config import generic_controls, load_preset
    from neuralcomp.model import build_model
    from neuralcomp.training.bench import bench_training

    torch.manual_seed(0)
    model = build_model(load_preset("tiny", controls=generic_controls(1), sidechain=1))
    row = bench_training(model, 2, 1, 2048, groups=1)
    assert row.seconds_first > 0 and row.seconds_later > 0
