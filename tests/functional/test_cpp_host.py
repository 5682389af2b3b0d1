"""The C++ host (libtorch, pybind11): bitwise identical to the Python TorchScript path for any
partition and control changes, refuses what it cannot run, and keeps its state consistent."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from neuralcomp.host.torchscript_host import load_torchscript
from tests.conftest import CONFIGS, cpp_host_or_skip, noise
from tests.streaming_helpers import control_schedule, control_track, partitions


@pytest.fixture(scope="module")
def cpp():
    return cpp_host_or_skip()


@pytest.mark.parametrize("preset, mode, controls", CONFIGS)
def test_cpp_stream_equals_python_one_call(cpp, model_files, preset, mode, controls):
    path = model_files(preset, mode, controls)[0]
    module = load_torchscript(path)
    host = cpp.Host(str(path), 1)

    @settings(max_examples=5)
    @given(sizes=partitions(), seed=st.integers(0, 2**16))
    def check(sizes, seed):
        x = noise(sum(sizes), seed=seed)
        schedule = control_schedule(len(sizes), controls, seed)
        for name, value in zip(host.control_names, schedule[0]):
            host.set_control(name, float(value))  # controls here are in [0, 1]: user units == normalised
        host.reset(1)
        outputs, position = [], 0
        for size, row in zip(sizes, schedule):
            for name, value in zip(host.control_names, row):
                host.set_control(name, float(value))
            outputs.append(host.process(np.ascontiguousarray(x[:, position: position + size])))
            position += size
        streamed = np.concatenate(outputs, axis=1)
        with torch.inference_mode():
            module.reset(1, torch.from_numpy(schedule[0]))
            reference = module(torch.from_numpy(x), torch.from_numpy(control_track(sizes, schedule))).numpy()
        assert np.array_equal(streamed, reference)

    check()


def test_host_reports_the_model(cpp, model_files):
    path = model_files("sptmod25", "paper", 7)[0]
    host = cpp.Host(str(path), 2)
    assert host.latency_samples == 63 and host.sample_rate == 44100 and host.pool_size == 64
    assert host.mode == "paper" and host.num_channels == 2
    assert host.control_names == [f"c{i}" for i in range(7)] and host.get_control("c4") == 0.5
    assert '"schema_version": 1' in host.metadata_json
    assert host.state_names[0] == "phase" and len(host.get_state()) == len(host.state_names)


def test_host_errors(cpp, model_files, tmp_path):
    path = model_files("sptmod25", "causal", 7)[0]
    host = cpp.Host(str(path), 1)
    with pytest.raises(ValueError, match="volume"):
        host.set_control("volume", 0.5)
    with pytest.raises(ValueError):
        host.set_control("c0", 2.0)
    with pytest.raises(ValueError):
        host.process(np.zeros((2, 64), np.float32))  # stream has 1 channel
    with pytest.raises((ValueError, TypeError)):
        host.process(np.zeros((1, 64), np.float64))
    assert host.process(np.zeros((1, 0), np.float32)).shape == (1, 0)
    truncated = tmp_path / "t.ts"
    truncated.write_bytes(path.read_bytes()[:2000])
    with pytest.raises(cpp.ModelLoadError):
        cpp.Host(str(truncated), 1)
    with pytest.raises(cpp.ModelLoadError, match="exist|No such|not found"):
        cpp.Host(str(tmp_path / "missing.ts"), 1)


def test_host_memory_does_not_grow(cpp, model_files):
    """Runs under InferenceMode: no autograd graph grows through the state buffers."""
    import resource

    host = cpp.Host(str(model_files("sptmod25", "causal", 7)[0]), 1)
    x = noise(256, seed=1)
    for _ in range(500):
        host.process(x)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    for _ in range(3000):
        host.process(x)
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 20_000  # KiB


def test_host_restores_only_snapshots_of_its_own_layout(cpp, model_files):
    """The C++ host on its own (as plugins use it): a linked stereo snapshot restores bitwise; a
    snapshot of another channel count or link setting is refused naming both, and changes nothing."""
    path = str(model_files("tiny", "paper", 2)[0])
    host = cpp.Host(path, 2)
    x = noise(1500, channels=2, seed=12)
    host.linked = True
    host.process(x[:, :700])
    linked = host.get_state()
    expected = host.process(x[:, 700:])
    host.set_state(linked)
    assert np.array_equal(host.process(x[:, 700:]), expected)
    host.linked = False
    unlinked = host.get_state()
    with pytest.raises(ValueError, match=r"snapshot has 2 channels \(linked\), the stream has 2 channels \(unlinked\)"):
        host.set_state(linked)
    host.reset(1)
    with pytest.raises(ValueError, match=r"snapshot has 2 channels \(unlinked\), the stream has 1 channel;"):
        host.set_state(unlinked)
    assert host.num_channels == 1 and not host.linked
    fresh_mono = cpp.Host(path, 1).get_state()
    assert all(np.array_equal(a, b) for a, b in zip(host.get_state(), fresh_mono))
