"""The streaming contract on the Python TorchScript path (DESIGN.md section 6):
any partition into buffers, with control changes at buffer boundaries, is bitwise identical to one
call with the same changes as a control track; the exported module matches the training module."""

import numpy as np
import pytest
import torch

from neuralcomp.host.torchscript_host import load_torchscript
from tests.conftest import CONFIGS, noise
from tests.streaming_helpers import control_schedule, control_track, random_partition, run_seed


def stream(module, x: torch.Tensor, sizes, schedule: np.ndarray) -> torch.Tensor:
    module.reset(x.shape[0], torch.from_numpy(schedule[0]))
    outputs, position = [], 0
    for size, controls in zip(sizes, schedule):
        outputs.append(module(x[:, position: position + size], torch.from_numpy(controls)))
        position += size
    return torch.cat(outputs, dim=1)


def one_call(module, x: torch.Tensor, sizes, schedule: np.ndarray) -> torch.Tensor:
    module.reset(x.shape[0], torch.from_numpy(schedule[0]))
    return module(x, torch.from_numpy(control_track(sizes, schedule)))


@pytest.mark.parametrize("preset, mode, controls", CONFIGS)
def test_random_partitions_are_bitwise_identical_to_one_call(model_files, preset, mode, controls):
    """Fresh random partitions each run (runs of 1-sample buffers, sizes around the frame, large ones),
    controls changing at buffer boundaries; the seed is in the failure message."""
    module = load_torchscript(model_files(preset, mode, controls)[0])
    seed = run_seed()
    rng = np.random.default_rng(seed)
    for case in range(3):
        sizes = random_partition(rng, int(rng.integers(1000, 6000)))
        x = torch.from_numpy(noise(sum(sizes), seed=int(rng.integers(2**31))))
        schedule = control_schedule(len(sizes), controls, int(rng.integers(2**31)))
        with torch.inference_mode():
            streamed = stream(module, x, sizes, schedule)
            reference = one_call(module, x, sizes, schedule)
        assert streamed.shape == x.shape
        assert torch.equal(streamed, reference), (
            f"NEURALCOMP_TEST_SEED={seed} repeats this: case {case}, sizes {sizes}, "
            f"max diff {(streamed - reference).abs().max()}")


def test_every_small_buffer_size_is_exact(model_files, preset="sptmod25"):
    """Exhaustive over sizes 1..130 (all phases of the pooling frame), one size per stream, with the
    controls changing every few buffers. Every stream starts from one start state (restored, not
    recomputed: a reset costs a second of warm-up)."""
    module = load_torchscript(model_files(preset, "causal", 7)[0])
    x = torch.from_numpy(noise(1500, seed=3))
    first = torch.from_numpy(control_schedule(1, 7, 0)[0])
    with torch.inference_mode():
        module.reset(1, first)
        start = module.get_state()
        for size in range(1, 131):
            sizes = [size] * (x.shape[1] // size) + ([x.shape[1] % size] if x.shape[1] % size else [])
            schedule = control_schedule(len(sizes), 7, size, change_probability=min(1.0, 0.3 * size / 64))
            schedule[0] = first.numpy()
            module.set_state(start)
            outputs, position = [], 0
            for length, controls in zip(sizes, schedule):
                outputs.append(module(x[:, position: position + length], torch.from_numpy(controls)))
                position += length
            module.set_state(start)
            reference = module(x, torch.from_numpy(control_track(sizes, schedule)))
            assert torch.equal(torch.cat(outputs, dim=1), reference), f"buffer size {size}"


@pytest.mark.parametrize("preset, mode", [("sptmod25", "causal"), ("sptmod25", "paper"), ("tcn", "causal")])
def test_stereo_streams_exactly_with_per_channel_state(model_files, preset, mode):
    module = load_torchscript(model_files(preset, mode, 7)[0])
    x = torch.from_numpy(noise(5000, channels=2, seed=5))
    x[1] *= 0.1  # channels differ, so shared state would show
    sizes = [1, 64, 100, 3, 4096, 736]
    schedule = control_schedule(len(sizes), 7, 1)
    with torch.inference_mode():
        streamed = stream(module, x, sizes, schedule)
        reference = one_call(module, x, sizes, schedule)
        left = one_call(module, x[:1].clone(), sizes, schedule)
    assert torch.equal(streamed, reference)
    torch.testing.assert_close(streamed[:1], left, rtol=0, atol=1e-6)


@pytest.mark.parametrize("preset, mode, controls", CONFIGS)
def test_exported_module_matches_training_module(model_files, preset, mode, controls):
    """Same start state (silence warm-up), then one signal: within 1e-6 absolute, shifted by latency."""
    path, model = model_files(preset, mode, controls)
    module = load_torchscript(path)
    latency = int(module.latency_samples)
    ctl = torch.rand(controls, generator=torch.Generator().manual_seed(1))
    x = torch.from_numpy(noise(3 * 4096, seed=7))
    with torch.inference_mode():
        module.reset(1, ctl)
        exported = module(x, ctl)
        assert torch.count_nonzero(exported[:, :latency]) == 0  # the latency samples are silent
        state = model.start_state(ctl[None])
        trained, _ = model(x[:, None, :], ctl[None], state)
    diff = (exported[0, latency:] - trained[0, 0, : x.shape[1] - latency]).abs().max().item()
    assert diff <= 1e-6, diff


def test_reset_gives_the_same_start_state_and_output(model_files):
    module = load_torchscript(model_files("sptmod24", "paper", 7)[0])
    ctl = torch.full((7,), 0.25)
    x = torch.from_numpy(noise(3000, seed=9))
    with torch.inference_mode():
        module.reset(1, ctl)
        first_state = module.get_state()
        first = module(x, ctl)
        module(torch.from_numpy(noise(777, seed=1)), torch.full((7,), 0.9))
        module.reset(1, ctl)
        assert all(torch.equal(a, b) for a, b in zip(first_state, module.get_state()))
        assert torch.equal(module(x, ctl), first)


@pytest.mark.parametrize("preset, mode", [("sptmod25", "paper"), ("tcn", "causal")])
def test_snapshot_and_restore_continue_identically(model_files, preset, mode):
    module = load_torchscript(model_files(preset, mode, 7)[0])
    ctl = torch.full((7,), 0.5)
    x = torch.from_numpy(noise(6000, seed=11))
    with torch.inference_mode():
        module.reset(1, ctl)
        module(x[:, :1234], ctl)
        snapshot = module.get_state()
        expected = module(x[:, 1234:], ctl)
        module(torch.from_numpy(noise(999, seed=2)), ctl)  # wander off
        module.set_state(snapshot)
        assert torch.equal(module(x[:, 1234:], ctl), expected)
