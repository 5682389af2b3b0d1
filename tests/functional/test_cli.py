"""The command line end to end: export, info, process (both backends), complexity, and the C++
render executable, on real WAV files."""

import subprocess
import sys
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
    assert f"the input file {tmp_path / 'none.wav'} does not exist" in capsys.readouterr().err
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


@pytest.mark.parametrize("preset", ["tiny", "tcn"])
def test_export_from_model_rewrites_the_same_model(tmp_path, preset):
    """`export --from-model` reads every weight back: the new file holds the same tensors and code, its
    metadata differs only by the provenance it adds, and it renders bitwise the same (SPTMod and TCN)."""
    import json
    import zipfile

    import torch

    import neuralcomp
    from export import export_model
    from tests.conftest import make_model

    model = make_model(preset, "causal", 2)
    with torch.no_grad():  # off the initialisation (a fresh TCN's gain head is all zeros)
        for parameter in model.parameters():
            parameter.add_(0.05 * torch.randn_like(parameter))
    original = export_model(model, tmp_path / "a.ts", {"test": True})
    again = tmp_path / "b.ts"
    assert main(["export", "--from-model", str(original), "-o", str(again)]) == 0

    def entries(path: Path) -> dict[str, bytes]:
        with zipfile.ZipFile(path) as archive:
            return {i.filename.split("/", 1)[1]: archive.read(i) for i in archive.infolist()}

    a, b = entries(original), entries(again)
    assert a.keys() == b.keys()
    differ = {name for name in a if a[name] != b[name]}
    assert differ <= {"extra/neuralcomp_metadata.json", "data.pkl", ".data/serialization_id"}, differ
    meta_a, meta_b = (json.loads(e["extra/neuralcomp_metadata.json"]) for e in (a, b))
    assert meta_b["provenance"].pop("reexported_from")["file"] == "a.ts"
    assert meta_a == meta_b
    x = noise(5000, seed=3)
    first, second = (neuralcomp.load(p, backend="python") for p in (original, again))
    for p in (first, second):
        p.set_control("c1", 0.3)  # generic controls are 0..1 knobs
    assert np.array_equal(first.process(x, 44100, buffer_size=333), second.process(x, 44100, buffer_size=333))


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


def test_process_renders_what_the_library_renders_and_controls_change_it(tmp_path, wav, exported):
    import neuralcomp

    audio, _ = sf.read(wav, dtype="float32", always_2d=True)
    rendered = {}
    for setting in ("0.2", "0.9"):
        out = tmp_path / f"c{setting}.wav"
        assert main(["process", str(exported), str(wav), str(out), "--buffer", "256", "--backend", "python",
                     "--control", f"c1={setting}"]) == 0
        rendered[setting] = sf.read(out, dtype="float32", always_2d=True)[0]
    library = neuralcomp.load(exported, backend="python")
    library.c1 = 0.2
    assert np.array_equal(rendered["0.2"], library.process(audio.T.copy(), 44100).T)
    assert np.abs(rendered["0.2"] - rendered["0.9"]).max() > 1e-3


def test_process_reports_and_compensates_the_latency_at_the_file_rate(tmp_path, exported, capsys):
    import neuralcomp

    path = tmp_path / "48k.wav"
    x = noise(9600, seed=5)[0]
    sf.write(path, x, 48000, subtype="FLOAT")
    latency = neuralcomp.load(exported, backend="python").latency_at(48000)
    assert latency > 63
    assert main(["process", str(exported), str(path), str(tmp_path / "late.wav"), "--backend", "python"]) == 0
    assert f"latency {latency} samples at 48000 Hz," in capsys.readouterr().out
    assert main(["process", str(exported), str(path), str(tmp_path / "aligned.wav"), "--backend", "python",
                 "--compensate-latency"]) == 0
    assert f"latency {latency} samples at 48000 Hz, compensated" in capsys.readouterr().out
    late, _ = sf.read(tmp_path / "late.wav", dtype="float32")
    aligned, _ = sf.read(tmp_path / "aligned.wav", dtype="float32")
    assert aligned.shape == late.shape == x.shape
    assert np.array_equal(aligned[:-latency], late[latency:])  # moved earlier by exactly the latency
    assert np.abs(aligned[-latency:]).max() > 0  # the tail after the input's end is rendered, not cut


@pytest.mark.parametrize("extension, subtype", [("flac", "PCM_24"), ("ogg", "VORBIS"), ("aiff", "FLOAT")])
def test_process_writes_the_format_its_extension_names(tmp_path, wav, exported, extension, subtype):
    out = tmp_path / f"o.{extension}"
    assert main(["process", str(exported), str(wav), str(out), "--backend", "python"]) == 0
    info = sf.info(out)
    assert info.frames == 20000 and info.channels == 2 and info.subtype == subtype


def test_bad_paths_are_one_line_before_any_work(tmp_path, wav, exported, capsys):
    """Output folder and format are checked before the model is even opened (a bad model file here)."""
    def fails(*argv, says):
        assert main(list(argv)) == 2
        err = capsys.readouterr().err
        assert len(err.strip().splitlines()) == 1 and says in err, err

    not_a_model = tmp_path / "not_a_model.ts"
    not_a_model.write_bytes(b"junk")
    fails("process", str(not_a_model), str(wav), str(tmp_path / "o.xyz"), says="libsndfile writes no .xyz")
    fails("process", str(not_a_model), str(wav), str(tmp_path / "missing" / "o.wav"),
          says=f"the folder {tmp_path / 'missing'} does not exist")
    empty = tmp_path / "empty.wav"
    sf.write(empty, np.zeros((0, 1), np.float32), 44100)
    fails("process", str(exported), str(empty), str(tmp_path / "o.wav"), says="holds no audio (0 frames)")
    fails("export", "--untrained", "--preset", "tiny", "-o", str(tmp_path / "missing" / "m.ts"),
          says="the folder")
    assert not (tmp_path / "missing").exists()


def test_dataset_build_says_what_it_cannot_build_as_asked(tmp_path, capsys):
    """A grid of a non-square item count is refused with the nearest squares; too few items for splits
    are built, with a note that train and evaluate will not take them."""
    for items, says in (("3", "use --items 1 (1 x 1) or 4 (2 x 2)"), ("12", "use --items 9 (3 x 3) or 16 (4 x 4)")):
        assert main(["dataset", "build", str(tmp_path / "d"), "--synthetic-music", "--items", items,
                     "--sampling", "grid"]) == 2
        err = capsys.readouterr().err
        assert says in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "d").exists()
    assert main(["dataset", "build", str(tmp_path / "one"), "--target", "pedalboard_compressor", "--synthetic-music",
                 "--items", "1"]) == 0
    assert "1 item(s) long enough to train give no cross-validation splits" in capsys.readouterr().err


def test_dataset_build_and_import_through_the_command_line(tmp_path, capsys):
    """`dataset build` renders a small grid; building again names the --overwrite flag; `dataset import`
    reads recorded input/target pairs, and says when they are too few for splits."""
    from neuralcomp.data.dataset import load_dataset

    out = tmp_path / "grid"
    grid = ["--target", "pedalboard_compressor", "--synthetic-music", "--sampling", "grid", "--items", "4"]
    assert main(["dataset", "build", str(out), *grid]) == 0
    assert "4 items (grid)" in capsys.readouterr().out
    built = load_dataset(out)
    assert len(built) == 4 and len(built.splits()) == 10
    assert main(["dataset", "build", str(out), *grid]) == 2
    assert "--overwrite on the command line" in capsys.readouterr().err

    captures = tmp_path / "captures"
    captures.mkdir()
    x = noise(44100, seed=6)[0]  # long enough to train (shorter captures are kept for validation only)
    sf.write(captures / "Input.wav", x, 44100, subtype="FLOAT")
    for name, gain in (("target_at_0_re_1_ra_05_th_025.wav", 0.5), ("target_at_1_re_0_ra_1_th_05.wav", 0.25)):
        sf.write(captures / name, gain * x, 44100, subtype="FLOAT")
    assert main(["dataset", "import", str(captures), str(tmp_path / "two")]) == 0
    assert "2 item(s) long enough to train give no cross-validation splits" in capsys.readouterr().err
    sf.write(captures / "target_at_1_re_1_ra_1_th_1.wav", 0.1 * x, 44100, subtype="FLOAT")
    assert main(["dataset", "import", str(captures), str(tmp_path / "three")]) == 0
    assert "cross-validation" not in capsys.readouterr().err
    imported = load_dataset(tmp_path / "three")
    assert len(imported) == 3 and len(imported.splits()) == 10


def test_info_into_a_closed_pipe_is_quiet(exported):
    """`neuralcomp info MODEL | head -1`: the reader leaves early; no BrokenPipeError traceback."""
    child = subprocess.Popen([sys.executable, "-m", "neuralcomp.cli", "info", str(exported), "--backend", "python",
                              "--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    child.stdout.close()  # as `head` does once it has its lines
    err = child.stderr.read().decode()
    assert child.wait(timeout=120) != 0
    assert "Traceback" not in err and "BrokenPipe" not in err, err


def test_render_executable_level_trims_equal_the_processors(tmp_path, wav):
    """--input-level-db / --output-level-db / --match-calibration in neuralcomp-render give bitwise the
    processor's output with the same trims (native engine, both backends' trims are float32 gains)."""
    cpp_host_or_skip()
    import neuralcomp
    from export import export_model
    from tests.conftest import make_model

    model = export_model(make_model("tiny", "causal", 2), tmp_path / "cal.ts",
                         calibration={"input_dbu_at_0dbfs": 20.0, "output_dbu_at_0dbfs": 24.0})
    audio, _ = sf.read(wav, dtype="float32", always_2d=True)
    plain = subprocess.run([str(RENDER), str(model), str(wav), str(tmp_path / "plain.wav")],
                           capture_output=True, text=True, check=True)
    assert "level trims:    input 0.00 dB, output 0.00 dB" in plain.stdout
    for flags, trims in ((["--input-level-db", "9.5", "--output-level-db", "-3"], (9.5, -3.0)),
                         (["--match-calibration", "14", "18"], (-6.0, 6.0))):
        out = tmp_path / "trimmed.wav"
        result = subprocess.run([str(RENDER), str(model), str(wav), str(out), "--buffer", "333", *flags],
                                capture_output=True, text=True, check=True)
        assert f"level trims:    input {trims[0]:.2f} dB, output {trims[1]:.2f} dB" in result.stdout
        processor = neuralcomp.load(model, backend="native")
        processor.input_level_db, processor.output_level_db = trims
        expected = processor.process(audio.T.copy(), 44100, buffer_size=512).T
        rendered = sf.read(out, dtype="float32", always_2d=True)[0]
        assert np.array_equal(rendered, expected)
        assert not np.array_equal(rendered, sf.read(tmp_path / "plain.wav", dtype="float32", always_2d=True)[0])
    for flags, message in ((["--input-level-db", "61"], "-60..60"), (["--output-level-db", "x"], "-60..60")):
        refused = subprocess.run([str(RENDER), str(model), str(wav), str(tmp_path / "o.wav"), *flags],
                                 capture_output=True, text=True)
        assert refused.returncode == 2 and message in refused.stderr
    uncalibrated = export_model(make_model("tiny", "causal", 2), tmp_path / "plain.ts")
    refused = subprocess.run([str(RENDER), str(uncalibrated), str(wav), str(tmp_path / "o.wav"),
                              "--match-calibration", "14", "18"], capture_output=True, text=True)
    assert refused.returncode == 2 and "records no level calibration" in refused.stderr
