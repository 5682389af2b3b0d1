"""neuralcomp.load(): the pedalboard-style processor, on both backends, and its handling of bad input."""

import warnings

import numpy as np
import pytest
import torch

import neuralcomp
from neuralcomp import AudioInputError, ControlError, ModelFileError, NonFiniteAudioWarning, StateError
from tests.conftest import cpp_host_or_skip, native_engine_or_skip, noise

BACKENDS = ["python", "torchscript", "native"]


@pytest.fixture(params=BACKENDS)
def backend(request):
    if request.param == "torchscript":
        cpp_host_or_skip()
    if request.param == "native":
        native_engine_or_skip()
    return request.param


@pytest.fixture
def processor(model_files, backend):
    return neuralcomp.load(model_files("sptmod25", "causal", 7)[0], backend=backend)


def test_mono_and_stereo_shapes_and_streaming(processor):
    mono = noise(3000, seed=1)[0]
    out = processor.process(mono, 44100)
    assert out.shape == mono.shape and out.dtype == np.float32
    stereo = noise(3000, channels=2, seed=2)
    whole = processor.process(stereo, 44100)
    assert whole.shape == (2, 3000)
    parts = [processor.process(stereo[:, :1000], 44100, reset=True)]
    parts.append(processor.process(stereo[:, 1000:1001], 44100, reset=False))
    parts.append(processor.process(stereo[:, 1001:], 44100, reset=False))
    assert np.array_equal(np.concatenate(parts, axis=1), whole)
    assert np.array_equal(processor.process(stereo, 44100, buffer_size=37), whole)


def test_backends_are_bitwise_identical(model_files):
    cpp_host_or_skip()
    path = model_files("sptmod24", "paper", 7)[0]
    x = noise(9000, channels=2, seed=3)
    outputs = []
    for backend in BACKENDS:
        p = neuralcomp.load(path, backend=backend)
        p.set_control("c3", 0.9)
        outputs.append(p.process(x, 44100, buffer_size=129))
    assert np.array_equal(outputs[0], outputs[1])  # the two TorchScript hosts
    np.testing.assert_allclose(outputs[2], outputs[0], rtol=0, atol=1e-5)  # the native engine


def test_controls_by_name_and_attribute(processor):
    assert processor.control_names == [f"c{i}" for i in range(7)]
    assert processor.controls["c0"] == 0.5
    processor.c2 = 0.75
    assert processor.get_control("c2") == 0.75 and processor.c2 == 0.75
    with pytest.raises(ControlError, match="unknown control 'gain'"):
        processor.set_control("gain", 0.1)
    with pytest.raises(ControlError, match=r"outside its range \[0.0, 1.0\]"):
        processor.set_control("c1", 1.5)
    with pytest.raises(ControlError):
        processor.set_control("c1", float("nan"))
    assert processor.controls["c1"] == 0.5  # a refused value changes nothing


def test_a_misspelt_control_attribute_is_refused_not_ignored(processor):
    x = noise(3000, seed=5)[0]
    before = processor.process(x, 44100)
    with pytest.raises(ControlError, match=r"unknown control 'c22'; did you mean 'c2'"):
        processor.c22 = 0.1
    with pytest.raises(ControlError, match="unknown control 'knee'"):
        setattr(processor, "knee", 1)
    assert "c22" not in vars(processor) and "knee" not in vars(processor)
    assert np.array_equal(processor.process(x, 44100), before)
    processor.path = processor.path  # real attributes stay assignable


def test_control_changes_the_output(processor):
    x = noise(8000, seed=4)[0]
    a = processor.process(x, 44100)
    processor.set_control("c0", 0.0)
    b = processor.process(x, 44100)
    assert not np.array_equal(a, b)


@pytest.mark.parametrize("bad, message", [
    (np.zeros((3, 4, 5), np.float32), "shape"),
    (np.zeros(100, np.int16), "float32"),
    (np.zeros((1000, 2), np.float32), "audio.T"),
    ([0.0] * 10, "numpy array"),
    (np.zeros((0, 10), np.float32), "zero channels"),
])
def test_bad_audio_is_refused_with_a_reason(processor, bad, message):
    with pytest.raises(AudioInputError, match=message):
        processor.process(bad, 44100)


def test_wrong_sample_rate_and_channel_count(processor):
    x = noise(100, seed=0)
    for bad in [44100.5, 0, "fast", 1e9]:
        with pytest.raises(AudioInputError, match="sample rate"):
            processor.process(x, bad)
    processor.process(x, 44100)
    with pytest.raises(AudioInputError, match="stream runs at 44100 Hz"):
        processor.process(x, 48000, reset=False)
    with pytest.raises(AudioInputError, match="2 channels"):
        processor.process(noise(100, channels=2), 44100, reset=False)
    with pytest.raises(AudioInputError, match="buffer_size"):
        processor.process(x, 44100, buffer_size=0)


def test_zero_length_buffers_and_float64(processor):
    x = noise(500, seed=6)
    whole = processor.process(x, 44100)
    processor.process(x[:, :200], 44100)
    assert processor.process(x[:, :0], 44100, reset=False).shape == (1, 0)
    rest = processor.process(x[:, 200:], 44100, reset=False)
    assert np.array_equal(np.concatenate([whole[:, :200], rest], 1), whole)
    assert np.array_equal(processor.process(x.astype(np.float64), 44100), whole)


def test_nonfinite_input_mutes_the_buffer_and_restores_the_start_state(processor):
    x = noise(4000, seed=8)
    clean_start = processor.process(x[:, 2000:], 44100)  # what a fresh stream gives
    processor.process(x[:, :1000], 44100)
    poisoned = x[:, 1000:2000].copy()
    poisoned[0, 17] = np.nan
    with pytest.warns(NonFiniteAudioWarning, match="1 buffer"):
        muted = processor.process(poisoned, 44100, reset=False)
    assert np.array_equal(muted, np.zeros_like(muted))
    assert processor.nonfinite_buffers == 1
    after = processor.process(x[:, 2000:], 44100, reset=False)
    assert np.all(np.isfinite(after))
    assert np.array_equal(after, clean_start)  # nothing of the NaN survives in the state
    inf = x[:, :64].copy()
    inf[0, 3] = np.inf
    with pytest.warns(NonFiniteAudioWarning):
        processor.process(inf, 44100)


def test_state_snapshot_and_restore(processor):
    x = noise(5000, channels=2, seed=10)
    processor.process(x[:, :1300], 44100)
    snapshot = processor.get_state()
    assert list(snapshot) == processor.state_names
    expected = processor.process(x[:, 1300:], 44100, reset=False)
    processor.process(x, 44100)
    processor.set_state(snapshot)
    assert np.array_equal(processor.process(x[:, 1300:], 44100, reset=False), expected)
    broken = dict(snapshot)
    broken["block0.lstm_h"] = np.zeros((2, 5), np.float32)
    with pytest.raises(StateError, match="block0.lstm_h"):
        processor.set_state(broken)
    with pytest.raises(StateError):
        processor.set_state({"phase": snapshot["phase"]})


LAYOUTS = [(1, False), (2, False), (2, True)]  # (channels, linked)
LAYOUT_NAMES = {(1, False): "1 channel", (2, False): r"2 channels \(unlinked\)", (2, True): r"2 channels \(linked\)"}


def _stream_in_layout(processor, channels, linked, x):
    processor.linked = linked
    processor.process(x[:channels, :700], 44100)


@pytest.mark.parametrize("mode", ["causal", "paper"])
def test_snapshots_restore_only_into_the_same_channels_and_link(model_files, backend, mode):
    """Every backend: a snapshot restores bitwise into a stream of its own layout (linked stereo
    included) and is refused, naming both layouts, by a stream of any other; a refusal changes nothing."""
    processor = neuralcomp.load(model_files("tiny", mode, 2)[0], backend=backend)
    x = noise(2000, channels=2, seed=11)
    snapshots = {}
    for channels, linked in LAYOUTS:
        _stream_in_layout(processor, channels, linked, x)
        snapshot = processor.get_state()
        expected = processor.process(x[:channels, 700:], 44100, reset=False)
        processor.process(x[:channels, :1500], 44100)
        processor.set_state(snapshot)
        assert np.array_equal(processor.process(x[:channels, 700:], 44100, reset=False), expected)
        snapshots[channels, linked] = snapshot
    for target in LAYOUTS:
        _stream_in_layout(processor, *target, x)
        before = processor.get_state()
        for source in LAYOUTS:
            if source != target:
                with pytest.raises(StateError, match=f"snapshot has {LAYOUT_NAMES[source]}, the stream has "
                                                     f"{LAYOUT_NAMES[target]}; "):
                    processor.set_state(snapshots[source])
        assert (processor.num_channels, processor.linked) == target
        after = processor.get_state()
        assert all(np.array_equal(before[name], after[name]) for name in before)


def test_latency_and_metadata(model_files, backend):
    causal = neuralcomp.load(model_files("sptmod25", "causal", 7)[0], backend=backend)
    paper = neuralcomp.load(model_files("sptmod25", "paper", 7)[0], backend=backend)
    assert causal.latency_samples == 0 and paper.latency_samples == 63
    meta = paper.metadata
    assert meta["schema_version"] == 1 and meta["pool_size"] == 64 and meta["mode"] == "paper"
    assert meta["torch_version"] == torch.__version__ and meta["sample_rate"] == 44100
    assert [c["name"] for c in meta["controls"]] == [f"c{i}" for i in range(7)]
    assert [s["name"] for s in meta["state"]] == paper.state_names
    assert meta["model_config"]["channels"] == [15, 15, 15, 15]


def test_unreadable_model_files_are_refused(tmp_path, model_files, backend):
    good = model_files("sptmod25", "causal", 0)[0]
    truncated = tmp_path / "truncated.ts"
    truncated.write_bytes(good.read_bytes()[:4000])
    garbage = tmp_path / "garbage.ts"
    garbage.write_bytes(b"RIFF this is not a model" * 100)
    foreign = tmp_path / "foreign.ts"
    torch.jit.save(torch.jit.script(torch.nn.Linear(2, 2)), str(foreign))
    unreadable = "not a model archive" if backend == "native" else "TorchScript"
    for path, message in [(tmp_path / "missing.ts", "does not exist"), (truncated, unreadable),
                          (garbage, unreadable), (foreign, "not a neuralcomp model")]:
        with pytest.raises(ModelFileError, match=message):
            neuralcomp.load(path, backend=backend)


def test_newer_schema_is_refused(tmp_path, backend):
    from export.streaming import StreamingSPTMod
    from tests.conftest import make_model

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        future = torch.jit.script(StreamingSPTMod(make_model(controls=0), "{}", 99))
        torch.jit.save(future, str(tmp_path / "future.ts"))
    # the native engine reads only its own entry, which this file lacks (its newer-layout refusal is
    # tested in test_native_engine.py)
    with pytest.raises(ModelFileError, match="not a neuralcomp model" if backend == "native" else "newer"):
        neuralcomp.load(tmp_path / "future.ts", backend=backend)


def test_python_fallback_is_announced(model_files, monkeypatch):
    import neuralcomp.host.processor as processor_module

    import neuralcomp.host

    for module in ("_cpp_host", "_native"):
        monkeypatch.setitem(__import__("sys").modules, f"neuralcomp.host.{module}", None)
        monkeypatch.delattr(neuralcomp.host, module, raising=False)
    with pytest.warns(RuntimeWarning, match="no C.. backend built"):
        p = processor_module.load(model_files("sptmod25", "causal", 0)[0])
    assert p.backend == "python"
    for backend in ("cpp", "torchscript", "native"):
        with pytest.raises(ImportError, match="make build"):
            processor_module.load(model_files("sptmod25", "causal", 0)[0], backend=backend)


def test_log_mapped_controls_reach_the_model_as_their_log_position(tmp_path, backend):
    """A ratio in 1..20 (log) set to 1 * 20 ** 0.25 drives the model exactly like x = 0.25 fed to the
    exported module directly; a linear threshold keeps (v - min) / (max - min)."""
    from export import export_model
    from neuralcomp.config import ControlSpec, load_preset
    from neuralcomp.model import SPTMod

    controls = (ControlSpec("threshold", -60.0, 0.0, -30.0, "dB"),
                ControlSpec("ratio", 1.0, 20.0, 20.0 ** 0.5, ":1", mapping="log"))
    torch.manual_seed(0)
    path = export_model(SPTMod(load_preset("tiny", controls=controls)).eval(), tmp_path / "log.ts")
    processor = neuralcomp.load(path, backend=backend)
    assert processor.metadata["controls"][1]["mapping"] == "log"
    x = noise(4000, seed=9)
    processor.set_control("threshold", -45.0)
    processor.set_control("ratio", 20.0 ** 0.25)
    out = processor.process(x, 44100, buffer_size=256)

    module = torch.jit.load(str(path))
    normalised = torch.tensor([0.25, 0.25], dtype=torch.float32)
    with torch.inference_mode():
        module.reset(1, normalised)
        expected = torch.cat([module(torch.from_numpy(x[:, i:i + 256].copy()), normalised)
                              for i in range(0, 4000, 256)], dim=1).numpy()
    if backend == "native":  # its own kernels: within 1e-5 of the TorchScript module, not bitwise
        np.testing.assert_allclose(out, expected, rtol=0, atol=1e-5)
    else:
        assert np.array_equal(out, expected)
    with pytest.raises(ControlError, match="outside its range"):
        processor.set_control("ratio", 0.5)


def test_level_trims_are_gains_around_the_model_and_stay_chunk_exact(model_files, tmp_path):
    from export import export_model

    path, model = model_files("sptmod25", "causal", 7)
    p = neuralcomp.load(path, backend="python")
    x = noise(3000, seed=11)[0]
    plain = p.process(x, 44100)
    p.input_level_db = 6.0
    assert np.array_equal(p.process(x, 44100), p.process(x, 44100, buffer_size=77))
    p.input_level_db = 0.0
    assert np.array_equal(p.process(x, 44100), plain)  # 0 dB: untouched, bit for bit
    p.output_level_db = -6.0
    np.testing.assert_allclose(p.process(x, 44100), plain * 10 ** (-6 / 20), rtol=1e-6)
    for bad in (float("nan"), 100.0, "loud"):
        with pytest.raises(ControlError):
            p.input_level_db = bad
    with pytest.raises(ModelFileError, match="no level calibration"):
        p.match_calibration(18.0, 18.0)
    calibrated = export_model(model, tmp_path / "cal.ts", calibration={"input_dbu_at_0dbfs": 20.0,
                                                                       "output_dbu_at_0dbfs": 24.0})
    q = neuralcomp.load(calibrated, backend="python")
    assert q.metadata["calibration"] == {"input_dbu_at_0dbfs": 20.0, "output_dbu_at_0dbfs": 24.0}
    assert q.match_calibration(14.0, 18.0) == (-6.0, 6.0)
