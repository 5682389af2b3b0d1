"""External sidechain (issue 12 part 4): key channels feed the modulation path only; the exported module
takes (audio, controls, sidechain), stays bitwise streaming-exact and matches the training module; shapes
that do not match are refused with errors that name both; models without a sidechain are unchanged."""

import re
from pathlib import Path

import numpy as np
import pytest
import torch

from export import export_model
from neuralcomp.config import generic_controls, load_preset
from neuralcomp.errors import AudioInputError, ConfigError
from neuralcomp.host.processor import NonFiniteAudioWarning, Processor
from neuralcomp.host.torchscript_host import load_torchscript
from neuralcomp.model.sptmod import SPTMod
from tests.conftest import cpp_host_or_skip, native_engine_or_skip, noise
from tests.streaming_helpers import control_schedule, control_track, random_partition, run_seed

RENDER = Path(__file__).resolve().parents[2] / "build" / "cpp_host" / "neuralcomp-render"


def _keyed_model(mode: str, keys: int = 1, controls: int = 2, seed: int = 0) -> SPTMod:
    torch.manual_seed(seed)
    return SPTMod(load_preset("tiny", mode=mode, controls=generic_controls(controls), sidechain=keys)).eval()


@pytest.fixture(scope="module")
def keyed_files(tmp_path_factory):
    root = tmp_path_factory.mktemp("keyed")
    cache: dict[tuple[str, int], tuple[Path, SPTMod]] = {}

    def get(mode: str = "causal", keys: int = 1) -> tuple[Path, SPTMod]:
        if (mode, keys) not in cache:
            model = _keyed_model(mode, keys)
            cache[(mode, keys)] = (export_model(model, root / f"keyed_{mode}_{keys}.ts", {"test": True}), model)
        return cache[(mode, keys)]

    return get


def _stream(module, x, key, sizes, schedule):
    module.reset(x.shape[0], torch.from_numpy(schedule[0]))
    outputs, position = [], 0
    for size, controls in zip(sizes, schedule):
        window = slice(position, position + size)
        outputs.append(module(x[:, window], torch.from_numpy(controls), key[:, window]))
        position += size
    return torch.cat(outputs, dim=1)


def _one_call(module, x, key, sizes, schedule):
    module.reset(x.shape[0], torch.from_numpy(schedule[0]))
    return module(x, torch.from_numpy(control_track(sizes, schedule)), key)


@pytest.mark.parametrize("mode, keys, channels, linked", [
    ("causal", 1, 1, False), ("paper", 1, 1, False), ("causal", 2, 2, False), ("paper", 1, 2, True),
    ("causal", 2, 2, True)])
def test_random_partitions_with_a_sidechain_are_bitwise_identical_to_one_call(keyed_files, mode, keys, channels,
                                                                             linked):
    module = load_torchscript(keyed_files(mode, keys)[0])
    seed = run_seed()
    rng = np.random.default_rng(seed)
    with torch.inference_mode():
        module.set_linked(linked, torch.full((2,), 0.5))
        for case in range(1):
            sizes = random_partition(rng, int(rng.integers(1000, 3000)))
            x = torch.from_numpy(noise(sum(sizes), channels=channels, seed=int(rng.integers(2**31)), level=0.1))
            key = torch.from_numpy(noise(sum(sizes), channels=channels * keys, seed=int(rng.integers(2**31))))
            schedule = control_schedule(len(sizes), 2, int(rng.integers(2**31)))
            streamed = _stream(module, x, key, sizes, schedule)
            reference = _one_call(module, x, key, sizes, schedule)
            assert torch.equal(streamed, reference), (
                f"NEURALCOMP_TEST_SEED={seed} repeats this: case {case}, sizes {sizes}, "
                f"max diff {(streamed - reference).abs().max()}")


@pytest.mark.parametrize("mode", ["causal", "paper"])
def test_exported_keyed_module_matches_training_module_and_the_key_matters(keyed_files, mode):
    path, model = keyed_files(mode, 1)
    module = load_torchscript(path)
    latency = int(module.latency_samples)
    ctl = torch.tensor([0.3, 0.8])
    x = torch.from_numpy(noise(3 * 4096, seed=7, level=0.1))
    key = torch.from_numpy(noise(3 * 4096, seed=8))
    with torch.inference_mode():
        module.reset(1, ctl)
        exported = module(x, ctl, key)
        module.reset(1, ctl)
        other_key = module(x, ctl, 0.1 * key)
        trained, _ = model(x[:, None, :], ctl[None], model.start_state(ctl[None]), sidechain=key[:, None, :])
    diff = (exported[0, latency:] - trained[0, 0, : x.shape[1] - latency]).abs().max().item()
    assert diff <= 1e-6, diff
    assert (exported - other_key).abs().max() > 1e-4  # the key drives the modulation


def test_training_module_no_padding_call_and_the_audio_path_gets_the_main_input_only():
    model = _keyed_model("causal", 1)
    ctl = torch.tensor([[0.5, 0.5]])
    x = torch.from_numpy(noise(model.input_length(4096), seed=1))[None]
    key = torch.from_numpy(noise(model.input_length(4096), seed=2))[None]
    with torch.no_grad():
        y, _ = model(x, ctl, sidechain=key)
        doubled, _ = model(2 * x, ctl, sidechain=key)
    assert y.shape == (1, 1, 4096)
    # with the key fixed, the modulation depends on x only through the detector input
    assert model.blocks[0].conv.in_channels == 2
    assert not torch.allclose(doubled, 2 * y)


def test_mismatched_sidechains_are_refused_naming_both_shapes(keyed_files):
    model = _keyed_model("causal", 2)
    x, ctl = torch.zeros(1, 1, model.input_length(64)), torch.zeros(1, 2)
    with pytest.raises(AudioInputError, match=r"sidechain of shape \(1, 2, 10\).*audio \(1, 1, "):
        model(x, ctl, sidechain=torch.zeros(1, 2, 10))
    with pytest.raises(AudioInputError, match="needs a sidechain"):
        model(x, ctl)
    with pytest.raises(AudioInputError, match="no sidechain input"):
        _keyed_model("causal", 0)(x, ctl, sidechain=torch.zeros(1, 1, x.shape[-1]))

    processor = Processor(keyed_files("causal", 2)[0], backend="python")
    assert processor.sidechain_channels == 2
    stereo = noise(1000, channels=2)
    for bad in (noise(999, channels=4), noise(1000, channels=2), noise(1000)[0]):
        with pytest.raises(AudioInputError, match=re.escape(f"sidechain of shape {bad.shape}") + r".*audio \(2, 1000\).*\(4, 1000\)"):
            processor.process(stereo, 44100, sidechain=bad)
    with pytest.raises(AudioInputError, match=r"pass sidechain= of shape \(4, 1000\)"):
        processor.process(stereo, 44100)
    with pytest.raises(AudioInputError, match=r"sidechain of shape \(4, 999\)"):
        processor.process(stereo, 48000, sidechain=noise(999, channels=4))
    with pytest.raises(ConfigError, match="sidechain"):
        load_preset("tiny", sidechain=-1)


def test_processor_with_a_sidechain_buffers_exactly_and_links_from_the_key(keyed_files):
    processor = Processor(keyed_files("paper", 1)[0], backend="python")
    mono, key = noise(3000, seed=3, level=0.1)[0], noise(3000, seed=4)[0]
    whole = processor.process(mono, 44100, sidechain=key)
    assert np.array_equal(processor.process(mono, 44100, buffer_size=77, sidechain=key), whole)
    # linked stereo of one signal twice: keyed from the louder sidechain channel, whichever it is
    processor.linked = True
    stereo = np.stack([mono, mono])
    louder_left = processor.process(stereo, 44100, sidechain=np.stack([key, 0.5 * key]))
    louder_right = processor.process(stereo, 44100, sidechain=np.stack([0.5 * key, key]))
    assert np.array_equal(louder_left, louder_right)
    assert np.array_equal(louder_left[0], whole) and np.array_equal(louder_left[1], whole)


@pytest.mark.parametrize("backend", ["python", "native"])
def test_a_key_at_another_host_rate_is_resampled_with_the_audio(keyed_files, backend):
    """At 48 kHz the key goes through its own resampler beside the audio: buffered equals one call,
    the key (not only the audio) moves the output, and a NaN in the key mutes that buffer only."""
    if backend == "native":
        native_engine_or_skip()
    processor = Processor(keyed_files("causal", 1)[0], backend=backend)
    mono, key = noise(9600, seed=3, level=0.1)[0], noise(9600, seed=4)[0]
    whole = processor.process(mono, 48000, sidechain=key)
    assert whole.shape == mono.shape and np.isfinite(whole).all()
    assert np.array_equal(processor.process(mono, 48000, buffer_size=333, sidechain=key), whole)
    assert np.max(np.abs(processor.process(mono, 48000, sidechain=np.zeros_like(key)) - whole)) > 1e-5
    bad_key = key.copy()
    bad_key[1000] = np.nan
    with pytest.warns(NonFiniteAudioWarning):
        muted = processor.process(mono, 48000, buffer_size=960, sidechain=bad_key)
    assert not muted[960:1920].any() and np.isfinite(muted).all()
    assert np.array_equal(muted[:960], whole[:960])


def test_models_without_a_sidechain_keep_their_layout(model_files):
    module = load_torchscript(model_files("sptmod25", "paper", 7)[0])
    assert int(module.num_sidechain) == 0 and "pending_sidechain" not in module.state_names()
    assert SPTMod(load_preset("sptmod25")).blocks[0].conv.in_channels == 1
    with torch.inference_mode(), pytest.raises(torch.jit.Error, match="no sidechain input"):
        module(torch.zeros(1, 64), torch.zeros(7), torch.zeros(1, 64))


def test_keyed_snapshot_restores_the_pending_sidechain(keyed_files):
    module = load_torchscript(keyed_files("paper", 1)[0])
    ctl = torch.full((2,), 0.5)
    x, key = torch.from_numpy(noise(4000, seed=5, level=0.1)), torch.from_numpy(noise(4000, seed=6))
    with torch.inference_mode():
        module.reset(1, ctl)
        module(x[:, :1234], ctl, key[:, :1234])  # 1234 = 19 frames + 18 samples pending
        snapshot = dict(zip(module.state_names(), module.get_state()))
        assert snapshot["pending_sidechain"].shape == (1, 1234 % 64)
        expected = module(x[:, 1234:], ctl, key[:, 1234:])
        module(x[:, :500], ctl, key[:, :500])  # wander off
        module.set_state(list(snapshot.values()))
        assert torch.equal(module(x[:, 1234:], ctl, key[:, 1234:]), expected)


@pytest.mark.parametrize("mode, linked", [("causal", False), ("paper", True)])
def test_cpp_host_with_a_sidechain_is_bitwise_the_python_path(keyed_files, mode, linked):
    cpp_host_or_skip()
    path = keyed_files(mode, 1)[0]
    stereo, key = noise(3000, channels=2, seed=12, level=0.1), noise(3000, channels=2, seed=13)
    outputs = []
    for backend in ("torchscript", "python"):
        processor = Processor(path, backend=backend)
        processor.linked = linked
        outputs.append(processor.process(stereo, 44100, buffer_size=97, sidechain=key))
    assert np.array_equal(outputs[0], outputs[1])
    host = Processor(path, backend="torchscript")._host
    assert host.sidechain_channels == 1
    with pytest.raises(ValueError, match=r"sidechain: .*\(2, 10\).*does not match the audio.*expected float32 \(1, 100\)"):
        host.process(np.zeros((1, 100), np.float32), np.zeros((2, 10), np.float32))
    with pytest.raises(ValueError, match="keyed by 1 sidechain channel"):
        host.process(np.zeros((1, 100), np.float32))


# ---- the native engine -------------------------------------------------------------------------------


@pytest.mark.parametrize("mode, keys, channels, linked", [
    ("causal", 1, 1, False), ("paper", 1, 1, False), ("causal", 2, 2, False), ("paper", 2, 2, True),
    ("causal", 1, 2, True)])
def test_native_keyed_follows_torchscript_and_streams_bitwise(keyed_files, mode, keys, channels, linked):
    """The native engine runs keyed models: within 1e-5 of the TorchScript module, and any partition of
    audio, key and control track is bitwise one call."""
    native_engine_or_skip()
    path = keyed_files(mode, keys)[0]
    seed = run_seed()
    rng = np.random.default_rng(seed)
    x = noise(8000, channels=channels, seed=int(rng.integers(2**31)), level=0.1)
    key = noise(8000, channels=channels * keys, seed=int(rng.integers(2**31)))
    outputs = {}
    for backend in ("native", "python"):
        processor = Processor(path, backend=backend)
        processor.linked = linked
        processor.set_control("c1", 0.7)
        outputs[backend] = processor.process(x, 44100, buffer_size=64 if backend == "native" else None, sidechain=key)
    assert np.max(np.abs(outputs["native"] - outputs["python"])) <= 1e-5
    assert Processor(path).backend == "native"  # auto picks the native engine for keyed models too

    host = Processor(path, backend="native")._host
    host.linked = linked
    host.reset(channels)
    sizes = random_partition(rng, x.shape[1])
    track = control_track(sizes, control_schedule(len(sizes), 2, int(rng.integers(2**31))))
    start = host.get_state()
    parts, position = [], 0
    for size in sizes:
        window = slice(position, position + size)
        parts.append(host.process(np.ascontiguousarray(x[:, window]), np.ascontiguousarray(track[:, window]),
                                  np.ascontiguousarray(key[:, window])))
        position += size
    host.set_state(start)
    one_call = host.process(x, track, key)
    assert np.array_equal(np.concatenate(parts, axis=1), one_call), f"NEURALCOMP_TEST_SEED={seed} repeats this"


def test_native_refuses_a_wrong_key_naming_both_shapes(keyed_files, model_files):
    native_engine_or_skip()
    processor = Processor(keyed_files("causal", 2)[0], backend="native")
    assert processor.sidechain_channels == 2
    stereo = noise(1000, channels=2)
    for bad in (noise(999, channels=4), noise(1000, channels=2), noise(1000)[0]):
        message = re.escape(f"sidechain of shape {bad.shape}") + r".*audio \(2, 1000\).*\(4, 1000\)"
        with pytest.raises(AudioInputError, match=message):
            processor.process(stereo, 44100, sidechain=bad)
    host = processor._host
    host.reset(2)
    with pytest.raises(AudioInputError,
                       match=r"keyed by 2 sidechain channel.*shape \(4, 100\) with the audio \(2, 100\)"):
        host.process(np.zeros((2, 100), np.float32))
    with pytest.raises(AudioInputError,
                       match=r"sidechain: .*\(2, 100\).*does not match the audio \(2, 100\).*\(4, 100\)"):
        host.process(np.zeros((2, 100), np.float32), None, np.zeros((2, 100), np.float32))
    with pytest.raises(AudioInputError, match=r"sidechain: .*float64.*expected float32"):
        host.process(np.zeros((2, 100), np.float32), None, np.zeros((4, 100)))
    unkeyed = Processor(model_files("sptmod25", "causal", 7)[0], backend="native")
    with pytest.raises(AudioInputError, match="no sidechain input"):
        unkeyed.process(noise(100), 44100, sidechain=noise(100))
    with pytest.raises(AudioInputError, match="no sidechain input"):
        unkeyed._host.process(noise(100), None, noise(100))
    # a non-finite key mutes the call and restarts the stream, as non-finite audio does
    key = noise(1000, channels=4)
    key[3, 10] = np.inf
    with pytest.warns(Warning, match="NaN/Inf"):
        assert not np.any(processor.process(stereo, 44100, sidechain=key))
    assert processor.nonfinite_buffers == 1


def test_native_keyed_snapshot_holds_the_pending_sidechain_and_moves_to_torchscript(keyed_files):
    native_engine_or_skip()
    path = keyed_files("paper", 1)[0]
    native, reference = Processor(path, backend="native"), Processor(path, backend="python")
    x, key = noise(4000, seed=5, level=0.1), noise(4000, seed=6)
    native.process(x[:, :1234], 44100, sidechain=key[:, :1234])  # 19 frames + 18 samples pending
    snapshot = native.get_state()
    assert native.state_names == reference.state_names and snapshot["pending_sidechain"].shape == (1, 1234 % 64)
    expected = native.process(x[:, 1234:], 44100, reset=False, sidechain=key[:, 1234:])
    native.process(x[:, :500], 44100, reset=False, sidechain=key[:, :500])  # wander off
    native.set_state(snapshot)
    assert np.array_equal(native.process(x[:, 1234:], 44100, reset=False, sidechain=key[:, 1234:]), expected)
    reference.process(x[:, :1], 44100, sidechain=key[:, :1])
    reference.set_state(snapshot)
    np.testing.assert_allclose(reference.process(x[:, 1234:], 44100, reset=False, sidechain=key[:, 1234:]),
                               expected, rtol=0, atol=1e-5)


def test_render_executable_takes_a_sidechain_file(keyed_files, model_files, tmp_path):
    """neuralcomp-render --sidechain KEY: bitwise the processor of the same backend; a missing, misshapen
    or unwanted key is refused with exit status 2 and a message naming both files' shapes."""
    import subprocess

    import soundfile as sf

    cpp_host_or_skip()
    assert RENDER.is_file(), "neuralcomp-render not built"
    path = keyed_files("paper", 2)[0]
    stereo, key = noise(5000, channels=2, seed=21, level=0.1), noise(5000, channels=4, seed=22)
    wav, key_wav = tmp_path / "in.wav", tmp_path / "key.wav"
    sf.write(wav, stereo.T, 44100, subtype="FLOAT")
    sf.write(key_wav, key.T, 44100, subtype="FLOAT")
    for render_backend, python_backend in (("native", "native"), ("torchscript", "python")):
        out = tmp_path / f"{render_backend}.wav"
        result = subprocess.run([str(RENDER), str(path), str(wav), str(out), "--buffer", "97", "--sidechain",
                                 str(key_wav), "--backend", render_backend], capture_output=True, text=True)
        assert result.returncode == 0, result.stderr
        expected = Processor(path, backend=python_backend).process(stereo, 44100, sidechain=key)
        assert np.array_equal(sf.read(out, dtype="float32")[0].T, expected), render_backend

    def refused(model, *flags):
        result = subprocess.run([str(RENDER), str(model), str(wav), str(tmp_path / "o.wav"), *flags],
                                capture_output=True, text=True)
        assert result.returncode == 2, result.stderr
        return result.stderr

    assert "give --sidechain KEY_AUDIO with 4 channel(s) of 5000 frames" in refused(path)
    sf.write(tmp_path / "short.wav", key[:3, :4000].T, 44100, subtype="FLOAT")
    assert ("(3 channel(s), 4000 frames at 44100 Hz) does not match the input" in
            (message := refused(path, "--sidechain", str(tmp_path / "short.wav")))
            and "(2 channel(s), 5000 frames at 44100 Hz): expected 4 channel(s)" in message)
    assert "has no sidechain input" in refused(model_files("sptmod25", "causal", 7)[0], "--sidechain", str(key_wav))
