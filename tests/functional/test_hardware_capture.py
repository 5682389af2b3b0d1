"""Hardware capture through sounddevice on a real audio server: the JACK dummy server, with the capture
stream's output wired back to its input (a digital loopback standing in for the compressor's cable
round trip). The round-trip latency must be found and removed to the sample."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from neuralcomp.config import ControlSpec
from neuralcomp.data.dataset import load_dataset
from neuralcomp.data.hardware import HardwareCaptureError, InterfaceConfig, capture_dataset, measure_round_trip
from tests.conftest import noise
from tests.jack import RATE


def _loopback(jack):
    """on_open hook: connect the open stream's first output to its first input.
    The stream is the only client besides the server's own `system` ports."""

    def wire(stream):
        ours = [p for p in jack.ports() if not p.startswith("system:")]
        outs, ins = [p for p in ours if ":out_" in p], [p for p in ours if ":in_" in p]
        assert len(outs) == len(ins) == 1, ours
        out_port, in_port = outs[0], ins[0]
        for other in jack.connections(in_port):
            jack.disconnect(other, in_port)
        jack.connect(out_port, in_port)

    return wire


def test_takes_come_back_sample_aligned_with_controls_and_report(jack, tmp_path):
    interface = InterfaceConfig(device=jack.device, sample_rate=RATE, blocksize=256, max_latency_seconds=0.1)
    controls = [ControlSpec("threshold", -60.0, 0.0, -30.0, "dB"),
                ControlSpec("ratio", 1.0, 20.0, 4.0, ":1", mapping="log")]
    settings = [{"threshold": 0.25, "ratio": 0.5}, {"threshold": 0.75, "ratio": 1.0}]
    sources = [noise(RATE // 2, seed=s)[0] for s in (1, 2)]
    asked, lines = [], []
    path, report = capture_dataset(tmp_path / "captured", sources, settings, controls, interface,
                                   ask_user=asked.append, on_open=_loopback(jack), log=lines.append)
    assert asked[0] == "take 1/2: set threshold -45 dB, ratio 4.472 :1" and len(asked) == 2
    assert len(lines) == 2 and "round trip" in lines[0]
    dataset = load_dataset(path)
    assert [c.mapping for c in dataset.controls] == ["linear", "log"] and dataset.controls[0].minimum == -60.0
    for item, source, setting in zip(dataset.items, sources, settings):
        x, y = item.load()
        # latency removed exactly: the importer finds no residual lag and the loopback is bit-transparent
        assert item.entry["alignment"]["lag_samples"] == 0
        assert item.controls == pytest.approx(setting)
        assert len(x) == len(source) and np.allclose(y, x, atol=1e-6)
    assert all(i.correlation_after > 0.999999 for i in report.items)
    raw, rate = sf.read(tmp_path / "captured.takes" / "00_tar_take.wav", dtype="float32")
    assert rate == RATE and np.array_equal(raw, sources[0])  # the take itself, before import's DC removal


def test_no_return_signal_is_a_clear_error(jack):
    interface = InterfaceConfig(device=jack.device, sample_rate=RATE, blocksize=256, max_latency_seconds=0.1)

    def unplugged(stream):  # input 1 hears only the dummy server's silent capture port
        pass

    with pytest.raises(HardwareCaptureError, match="no usable return on input channel 1"):
        measure_round_trip(interface, on_open=unplugged)


def test_a_keyed_unit_gets_each_takes_key_on_its_own_output_and_the_dataset_carries_it(jack, tmp_path):
    """The 'unit' is a mixer: output 1 (the audio) and output 2 (the key) both wired into input 1, so the
    recording is audio + key only if the key was played sample for sample with the audio."""
    interface = InterfaceConfig(device=jack.device, sample_rate=RATE, blocksize=256, max_latency_seconds=0.1,
                                key_channel=2)

    def mixer(stream):
        ours = [p for p in jack.ports() if not p.startswith("system:")]
        outs, ins = sorted(p for p in ours if ":out_" in p), [p for p in ours if ":in_" in p]
        assert len(outs) == 2 and len(ins) == 1, ours
        for other in jack.connections(ins[0]):
            jack.disconnect(other, ins[0])
        for out in outs:
            jack.connect(out, ins[0])

    sources = [noise(RATE // 2, seed=s)[0] for s in (1, 2)]
    keys = [noise(RATE // 2, seed=s, level=0.2)[0] for s in (5, 6)]
    path, report = capture_dataset(tmp_path / "keyed", sources, [{}, {}], [], interface, ask_user=lambda text: None,
                                   on_open=mixer, log=lambda line: None, keys=keys)
    assert report.sidechain_channels == 1 and report.ignored == []
    dataset = load_dataset(path)
    assert dataset.sidechain_channels == 1
    for item, source, key in zip(dataset.items, sources, keys):
        x, y = item.load()
        sidechain = item.load_sidechain()[0]
        assert item.entry["alignment"]["lag_samples"] == 0
        np.testing.assert_allclose(sidechain, key - key.mean(), atol=1e-6)
        np.testing.assert_allclose(y, x + sidechain, atol=1e-6)  # the key reached the unit with the audio
    raw, _ = sf.read(tmp_path / "keyed.takes" / "01_key.wav", dtype="float32")
    assert np.array_equal(raw, keys[1])
    with pytest.raises(HardwareCaptureError, match="needs both a key channel"):
        capture_dataset(tmp_path / "x", sources, [{}, {}], [], interface, ask_user=lambda text: None)
    with pytest.raises(HardwareCaptureError, match="key needs an output of its own"):
        InterfaceConfig(key_channel=1)
