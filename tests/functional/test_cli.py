"""The command line end to end: export, info, process (both backends), complexity, and the C++
render executable, on real WAV files."""

import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from neuralcomp.cli import main
from tests.conftest import cpp_host_or_skip, noise

RENDER = Path(__file__).resolve().parents[2] / "build" / "cpp_host" / "neuralcomp-render"


@pytest.fixture
def wav(tmp_path) -> Path:
    path = tmp_path / "in.wav"
    sf.write(path, noise(20000, channels=2, seed=4).T, 44100, subtype="FLOAT")
    return path


@pytest.fixture
def exported(tmp_path) -> Path:
    path = tmp_path / "m.ts"
    assert main(["export", "--untrained", "--preset", "sptmod25", "--mode", "paper", "--controls", "3",
                 "--seed", "1", "-o", str(path)]) == 0
    return path


def test_export_info_process_round_trip(tmp_path, wav, exported, capsys):
    assert main(["info", str(exported), "--backend", "python"]) == 0
    info = capsys.readouterr().out
    assert "paper (latency 63 samples)" in info and "control      c2" in info
    outputs = []
    for buffer in ["64", "1021"]:
        out = tmp_path / f"out{buffer}.wav"
        assert main(["process", str(exported), str(wav), str(out), "--buffer", buffer, "--backend", "python",
                     "--control", "c1=0.2"]) == 0
        audio, rate = sf.read(out, dtype="float32")
        assert rate == 44100 and audio.shape == (20000, 2)
        outputs.append(audio)
    assert np.array_equal(outputs[0], outputs[1])


def test_cli_errors_are_one_line_with_exit_code_2(tmp_path, wav, exported, capsys):
    assert main(["process", str(exported), str(wav), str(tmp_path / "o.wav"), "--control", "volume=1"]) == 2
    assert "unknown control 'volume'" in capsys.readouterr().err
    assert main(["process", str(exported), str(tmp_path / "none.wav"), str(tmp_path / "o.wav")]) == 2
    assert "cannot read" in capsys.readouterr().err
    assert main(["info", str(wav)]) == 2
    assert "not a model archive" in capsys.readouterr().err  # the native engine reads the file
    assert main(["export", "-o", str(tmp_path / "x.ts")]) == 2
    odd = tmp_path / "odd.wav"
    sf.write(odd, np.zeros(100, np.float32), 4000)
    assert main(["process", str(exported), str(odd), str(tmp_path / "o.wav")]) == 2
    assert "sample rate" in capsys.readouterr().err


def test_process_resamples_other_rates(tmp_path, exported):
    path = tmp_path / "48k.wav"
    sf.write(path, noise(9600, seed=3)[0], 48000, subtype="FLOAT")
    assert main(["process", str(exported), str(path), str(tmp_path / "o.wav"), "--backend", "python"]) == 0
    audio, rate = sf.read(tmp_path / "o.wav", dtype="float32")
    assert rate == 48000 and audio.shape == (9600,) and np.abs(audio).max() > 0


def test_export_from_checkpoint(tmp_path):
    from neuralcomp.model.checkpoint import save_model
    from tests.conftest import make_model

    model = make_model("tiny", "causal", 2)
    ckpt = save_model(model, tmp_path / "m.ckpt", {"trained_iterations": 0})
    out = tmp_path / "m.ts"
    assert main(["export", "--checkpoint", str(ckpt), "-o", str(out)]) == 0
    import neuralcomp

    p = neuralcomp.load(out, backend="python")
    assert p.metadata["provenance"]["trained_iterations"] == 0
    assert p.metadata["model_config"]["name"] == "tiny"
    (tmp_path / "bad.ckpt").write_bytes(b"nope")
    assert main(["export", "--checkpoint", str(tmp_path / "bad.ckpt"), "-o", str(out)]) == 2


def test_complexity_reports_published_figures(capsys):
    assert main(["complexity", "--preset", "sptmod24", "--controls", "7"]) == 0
    out = capsys.readouterr().out
    assert "processor 57,834" in out and "total 30,075" in out


def test_render_executable_matches_python_path(tmp_path, wav, exported):
    """neuralcomp-render on each backend equals the same backend from Python (other buffer sizes)."""
    cpp_host_or_skip()
    assert RENDER.is_file(), "neuralcomp-render not built"
    for render_backend, python_backend in (("native", "native"), ("torchscript", "python")):
        out_cpp = tmp_path / f"{render_backend}.wav"
        result = subprocess.run([str(RENDER), str(exported), str(wav), str(out_cpp), "--buffer", "97",
                                 "--control", "c0=0.7", "--backend", render_backend],
                                capture_output=True, text=True, check=True)
        assert "real-time factor" in result.stdout.lower() and f"backend:        {render_backend}" in result.stdout
        out_py = tmp_path / f"py_{python_backend}.wav"
        assert main(["process", str(exported), str(wav), str(out_py), "--buffer", "512", "--backend",
                     python_backend, "--control", "c0=0.7"]) == 0
        assert np.array_equal(sf.read(out_cpp, dtype="float32")[0], sf.read(out_py, dtype="float32")[0])
    slow = tmp_path / "48k.wav"
    sf.write(slow, np.zeros(100, np.float32), 48000)
    refused = subprocess.run([str(RENDER), str(exported), str(slow), str(tmp_path / "o.wav")],
                             capture_output=True, text=True)
    assert refused.returncode == 2 and "48000" in refused.stderr
