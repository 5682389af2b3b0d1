"""`neuralcomp live` on a real audio server: a private JACK dummy server (real clock, real
callbacks, real xrun flags), no mocked audio device.

A known signal is played into the live stream by a second PortAudio stream in this process whose
output ports are wired to the live stream's input ports with jack_connect. Every check of the
model's output compares what the live path produced with an offline render of exactly what it
received, so the checks stay exact even when the server reports xruns.

jackd missing: the module is skipped, unless NEURALCOMP_REQUIRE_JACK=1 (then it fails).
sounddevice is imported only inside functions, after the server is up: PortAudio lists devices at
import, so importing it earlier would hide the server.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

import neuralcomp
from neuralcomp.cli.live import add_live_command, main_live
from neuralcomp.live import LiveAudioError, LiveSession, resolve_device
from tests.conftest import noise

from tests.jack import BLOCK, RATE


@pytest.fixture(scope="module")
def causal_model(model_files):
    return model_files("sptmod25", "causal", 7)[0]


def _numbered(ports: list[str]) -> list[str]:
    return sorted(ports, key=lambda p: int(p.rsplit("_", 1)[1]))


def play_through(jack, session: LiveSession, signal: np.ndarray, during=None, timeout: float = 20.0):
    """Run `session` while playing `signal` (channels, samples) into its inputs; returns the summary.

    The player stream outputs silence until the live stream runs. The live stream's input ports are
    wired to the player's output ports after the stream opens and before it starts (session.on_open:
    JACK flags every graph change as an xrun, so none happen while the live stream runs); then the
    signal is played once. `during(session)` runs on this thread while the signal plays. The
    session is stopped shortly after the signal has been played.
    """
    import sounddevice as sd

    channels = signal.shape[0]
    frames = np.ascontiguousarray(signal.T, dtype=np.float32)
    go, done, pos = threading.Event(), threading.Event(), [0]

    def player(outdata, n, time_info, status):
        outdata.fill(0)
        if go.is_set() and pos[0] < len(frames):
            k = min(n, len(frames) - pos[0])
            outdata[:k] = frames[pos[0] : pos[0] + k]
            pos[0] += k
            if pos[0] >= len(frames):
                done.set()

    before = set(jack.ports())
    result: list = []
    errors: list = []
    with sd.OutputStream(device=jack.device, samplerate=RATE, blocksize=BLOCK, channels=channels,
                         dtype="float32", callback=player) as stream:
        player_ports = _numbered([p for p in set(jack.ports()) - before if ":out_" in p])
        assert len(player_ports) == channels, player_ports

        def wire(live_stream):
            live_in = _numbered([p for p in set(jack.ports()) - before - set(player_ports) if ":in_" in p])
            assert len(live_in) == channels, live_in
            for source, destination in zip(player_ports, live_in):
                jack.connect(source, destination)

        def run():
            try:
                result.append(session.run(timeout))
            except BaseException as exc:  # noqa: BLE001 - re-raised on the test thread
                errors.append(exc)

        session.on_open = wire
        thread = threading.Thread(target=run, name="live-session")
        thread.start()
        try:
            while session.callbacks < 1 and thread.is_alive():
                time.sleep(0.005)
            assert thread.is_alive(), f"the live session ended before it ran: {errors}"
            go.set()
            if during is not None:
                during(session)
            assert done.wait(timeout=10), "the player did not finish"
            time.sleep(0.1)  # let the last played block reach the live stream
        finally:
            session.stop()
            thread.join(timeout=10)
        assert stream.active
    if errors:
        raise errors[0]
    return result[0]


def _best_lag(received: np.ndarray, played: np.ndarray) -> tuple[int, float]:
    """Lag of `played` inside `received` (channel 0) and the normalised correlation there."""
    r, p = received[0].astype(np.float64), played[0].astype(np.float64)
    n = len(r) + len(p)
    corr = np.fft.irfft(np.fft.rfft(r, n) * np.conj(np.fft.rfft(p, n)), n)[: len(r) - len(p) + 1]
    lag = int(np.argmax(corr))
    seg = r[lag : lag + len(p)]
    return lag, float(corr[lag] / (np.linalg.norm(seg) * np.linalg.norm(p) + 1e-30))


# ---- the key check ----------------------------------------------------------------------------------
@pytest.mark.parametrize("mode", ["causal", "paper"])
def test_live_output_is_bitwise_the_offline_render_of_what_was_received(jack, model_files, mode):
    path = model_files("sptmod25", mode, 7)[0]
    processor = neuralcomp.load(path)
    session = LiveSession(processor, device=jack.device, blocksize=BLOCK, channels=2, record=True,
                          record_seconds=6, status_interval=None)
    played = noise(int(0.8 * RATE), channels=2, seed=11)
    summary = play_through(jack, session, played)
    rec = session.recording()
    print(f"\n[{mode}] {summary.format()}")
    print(f"[{mode}] callbacks {summary.callbacks}, xruns {summary.xrun_count} {summary.xruns}, "
          f"deadline misses {summary.deadline_misses}")

    assert summary.errors == [] and summary.stopped_by == "stop()"
    assert summary.callbacks > 100 and summary.frames == summary.callbacks * BLOCK
    assert rec.input.shape == rec.output.shape == (2, summary.frames) and not rec.truncated
    assert summary.model_latency_samples == processor.latency_samples == (63 if mode == "paper" else 0)
    assert summary.latency_samples == processor.latency_samples + BLOCK

    # the known signal really arrived
    lag, corr = _best_lag(rec.input, played)
    print(f"[{mode}] signal arrived at sample {lag} (callback {lag / BLOCK:.2f}), correlation {corr:.6f}")
    assert corr > 0.9, f"the played signal did not arrive (best correlation {corr})"
    if summary.xrun_count == 0:  # nothing can have been dropped: it arrived bit for bit
        assert np.array_equal(rec.input[:, lag : lag + played.shape[1]], played)

    # what the live path produced == one offline call on what it received, from a fresh reset
    fresh = neuralcomp.load(path)
    assert rec.initial_controls == fresh.controls
    offline = fresh.process(rec.input, rec.sample_rate)
    assert offline.dtype == rec.output.dtype == np.float32
    assert np.array_equal(offline, rec.output), (
        f"max |diff| {np.abs(offline - rec.output).max()} (xruns {summary.xrun_count})"
    )
    assert np.abs(rec.output[:, lag + processor.latency_samples :]).max() > 1e-4  # it is not silence


def test_live_level_trims_equal_the_offline_processor_with_the_same_trims(jack, causal_model):
    """input_level_db / output_level_db (the `live` options) act live exactly as they do offline."""
    processor = neuralcomp.load(causal_model)
    processor.input_level_db, processor.output_level_db = 9.0, -6.0
    session = LiveSession(processor, device=jack.device, blocksize=BLOCK, channels=2, record=True,
                          record_seconds=4, status_interval=None)
    summary = play_through(jack, session, noise(int(0.3 * RATE), channels=2, seed=12))
    rec = session.recording()
    assert summary.errors == [] and summary.level_trims_db == (9.0, -6.0)
    fresh = neuralcomp.load(causal_model)
    untrimmed = fresh.process(rec.input, rec.sample_rate)
    fresh.input_level_db, fresh.output_level_db = 9.0, -6.0
    assert np.array_equal(fresh.process(rec.input, rec.sample_rate), rec.output)
    assert np.abs(untrimmed - rec.output).max() > 1e-3  # the trims changed what was heard


# ---- controls while running -------------------------------------------------------------------------
def _render_with_changes(p, rec) -> np.ndarray:
    """Offline: the recorded start controls, then each change at the frame it was applied at."""
    for name, value in rec.initial_controls.items():
        p.set_control(name, value)
    channels = rec.input.shape[0]
    p.process(np.zeros((channels, 0), np.float32), rec.sample_rate, reset=True)  # start state, like the live reset
    out, pos = [], 0
    for change in rec.control_changes:
        if change.frame > pos:
            out.append(p.process(rec.input[:, pos : change.frame], rec.sample_rate, reset=False))
            pos = change.frame
        p.set_control(change.name, change.value)
    out.append(p.process(rec.input[:, pos:], rec.sample_rate, reset=False))
    return np.concatenate(out, axis=1)


def test_controls_changed_while_running_apply_at_callback_boundaries(jack, causal_model):
    processor = neuralcomp.load(causal_model)
    session = LiveSession(processor, device=jack.device, blocksize=BLOCK, channels=1, record=True,
                          record_seconds=6, status_interval=None)
    session.set_control("c1", 0.2)  # before the stream: applies directly, part of the start state
    with pytest.raises(neuralcomp.ControlError, match="unknown control"):
        session.set_control("nope", 0.5)
    with pytest.raises(neuralcomp.ControlError, match="outside its range"):
        session.set_control("c0", 7.0)
    played = noise(int(1.0 * RATE), channels=1, seed=5)
    requested = []

    def change_controls(s: LiveSession):
        for name, value, after in (("c0", 0.02, 40), ("c3", 0.97, 80), ("c0", 0.9, 81)):
            while s.callbacks < after:
                time.sleep(0.002)
            s.set_control(name, value)  # from this (non-audio) thread while the stream runs
            requested.append((name, value))

    summary = play_through(jack, session, played, during=change_controls)
    rec = session.recording()
    print(f"\n{summary.format()}\ncontrol changes: {rec.control_changes}")
    assert summary.errors == [] and summary.control_changes == 3
    assert rec.initial_controls["c1"] == 0.2
    assert [(c.name, c.value) for c in rec.control_changes] == requested
    for change in rec.control_changes:  # applied at a callback boundary
        assert change.frame == change.callback * BLOCK and change.callback >= 40
    assert processor.get_control("c0") == 0.9 and processor.get_control("c3") == 0.97

    # bitwise equal to the offline render with the same changes at the same callbacks
    offline = neuralcomp.load(causal_model)
    assert np.array_equal(_render_with_changes(offline, rec), rec.output)

    # and the changes did something: same input without them differs, but only after the first change
    for name, value in rec.initial_controls.items():
        offline.set_control(name, value)
    plain = offline.process(rec.input, rec.sample_rate)
    first = rec.control_changes[0].frame
    assert np.array_equal(plain[:, :first], rec.output[:, :first])
    assert not np.array_equal(plain[:, first:], rec.output[:, first:])
    assert np.abs(plain[:, first:] - rec.output[:, first:]).max() > 1e-5


def test_terminal_control_lines_and_quit(jack, causal_model):
    """NAME=VALUE lines (here from a pipe) change controls; bad lines print errors; q stops the run."""
    import io

    read_fd, write_fd = os.pipe()
    out = io.StringIO()
    try:
        session = LiveSession(neuralcomp.load(causal_model), device=jack.device, channels=1,
                              status_interval=0.2, out=out, control_input=read_fd)
        result: list = []
        thread = threading.Thread(target=lambda: result.append(session.run(10.0)))
        thread.start()
        assert session.wait_running(timeout=10)
        os.write(write_fd, b"c2=0.25\nc2=5\nwhat\nnope=1\n")
        time.sleep(0.5)
        os.write(write_fd, b"q\n")
        thread.join(timeout=10)
    finally:
        os.close(read_fd)
        os.close(write_fd)
    summary = result[0]
    text = out.getvalue()
    print(text + summary.format())
    assert summary.stopped_by == "quit" and summary.seconds < 5
    assert summary.control_changes == 1 and session.processor.get_control("c2") == 0.25
    assert "outside its range" in text and "unknown control 'nope'" in text and "NAME=VALUE" in text
    assert "[live" in text and "callbacks" in text  # status lines


# ---- the command ------------------------------------------------------------------------------------
def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="neuralcomp")
    add_live_command(parser.add_subparsers(dest="command", required=True))
    return parser.parse_args(argv)


def test_cli_live_duration_prints_a_summary(jack, model_files, capsys):
    path = model_files("sptmod25", "paper", 7)[0]
    args = _parse(["live", str(path), "--device", str(jack.device), "--duration", "1.2", "--blocksize", "256",
                   "--channels", "2", "--control", "c4=0.1", "--input-level-db", "6", "--output-level-db", "-4.5"])
    start = time.monotonic()
    code = main_live(args)
    elapsed = time.monotonic() - start
    out, err = capsys.readouterr()
    with capsys.disabled():
        print("\n" + out + err)
    assert code == 0, err
    assert elapsed > 1.2  # loading and warming up the model add to the 1.2 s run, more so on a loaded machine
    ran_seconds = float(out.split("ran ", 1)[1].split(" s:", 1)[0])
    assert 1.2 <= ran_seconds < 4  # the stream stops at the duration, give or take a status wake-up
    assert "live summary" in out and "stopped by duration" in out
    assert "latency     319 samples" in out  # model 63 + one 256-sample block
    assert "level trims input +6.00 dB, output -4.50 dB" in out
    assert "[live" in out  # at least one status line
    callbacks = int(out.split(" callbacks,")[0].rsplit(" ", 1)[1])
    # ~207 in 1.2 s at 256 frames; a loaded machine misses cycles (counted as xruns), never makes extra ones
    assert 40 < callbacks < 260 and f"{callbacks} callbacks, {256 * callbacks} frames" in out

    assert main_live(_parse(["live", "--list-devices"])) == 0
    assert "JACK" in capsys.readouterr().out


def test_cli_live_defaults_to_the_server_rate_and_reports_the_latency_there(jack, model_files):
    """A server at 48 kHz and a 44.1 kHz model: live runs at the server's rate (resampling) without
    --samplerate, and its latency is the model's at 48 kHz (latency_at) plus one block."""
    from tests.jack import start_jack_server

    path = model_files("sptmod25", "paper", 7)[0]
    server = start_jack_server(rate=48000, period=256, name=f"neuralcomp-test-48k-{os.getpid()}", use_here=False)
    try:
        run = subprocess.run([sys.executable, "-m", "neuralcomp.cli", "live", str(path), "--duration", "1",
                              "--channels", "1", "--blocksize", "256"],
                             capture_output=True, text=True, timeout=120, env=server.child_env())
    finally:
        server.stop()
    assert run.returncode == 0, run.stderr
    expected = neuralcomp.load(path, backend="python").latency_at(48000) + 256
    assert "1 ch at 48000 Hz" in run.stdout
    assert f"latency     {expected} samples" in run.stdout and "with resampling" in run.stdout


# ---- errors -------------------------------------------------------------------------------------------
def test_device_errors_say_what_is_there(jack, causal_model):
    processor = neuralcomp.load(causal_model)
    with pytest.raises(LiveAudioError, match="no input device matches 'no such card'") as info:
        LiveSession(processor, device="no such card").run(1.0)
    assert "available devices" in str(info.value) and "JACK" in str(info.value)
    with pytest.raises(LiveAudioError, match="no audio device with index 99"):
        LiveSession(processor, device=99).run(1.0)
    with pytest.raises(LiveAudioError, match=r"does not support 64 channel\(s\).*has 2 input channel") as info:
        LiveSession(processor, device=jack.device, channels=64).run(1.0)
    assert "44100 Hz by default" in str(info.value)
    with pytest.raises(LiveAudioError, match=r"does not support 1 channel\(s\) at 48000 Hz.*44100 Hz by default"):
        LiveSession(processor, device=jack.device, channels=1, samplerate=48000).run(1.0)


def test_cli_errors_are_one_line_exit_2(jack, tmp_path, causal_model, capsys):
    corrupt = tmp_path / "corrupt.ts"
    corrupt.write_bytes(b"PK\x03\x04 this is not a TorchScript archive" * 10)
    with pytest.raises(neuralcomp.ModelFileError):
        neuralcomp.load(corrupt)
    assert main_live(_parse(["live", str(corrupt), "--duration", "1"])) == 2
    err = capsys.readouterr().err
    assert err.startswith("neuralcomp live: error:") and err.count("\n") == 1 and "corrupt" in err

    assert main_live(_parse(["live", str(causal_model), "--device", "nowhere", "--duration", "1"])) == 2
    err = capsys.readouterr().err
    assert "no input device matches 'nowhere'" in err and err.count("\n") == 1

    assert main_live(_parse(["live", str(causal_model), "--control", "c0=3", "--duration", "1"])) == 2
    assert "outside its range" in capsys.readouterr().err


def test_no_devices_at_all_is_a_clear_error():
    class NoDevices:  # what PortAudio reports on a machine without sound cards or servers
        PortAudioError = RuntimeError

        @staticmethod
        def query_devices():
            return []

    with pytest.raises(LiveAudioError, match="no audio devices found"):
        resolve_device(None, "input", NoDevices)


def test_nan_input_mutes_its_block_counts_it_and_keeps_running(jack, causal_model):
    processor = neuralcomp.load(causal_model)
    session = LiveSession(processor, device=jack.device, blocksize=BLOCK, channels=2, record=True,
                          record_seconds=6, status_interval=None)
    played = noise(int(0.6 * RATE), channels=2, seed=8)
    played[0, 12345] = np.nan
    summary = play_through(jack, session, played)
    rec = session.recording()
    print(f"\n{summary.format()}")
    assert summary.errors == [] and summary.stopped_by == "stop()"

    bad_blocks = [i for i in range(summary.callbacks)
                  if not np.isfinite(rec.input[:, i * BLOCK : (i + 1) * BLOCK]).all()]
    # the NaN arrived (in one callback: the player's blocks line up with the live stream's)
    assert len(bad_blocks) >= 1, "the NaN never reached the live stream"
    assert summary.nonfinite_buffers == len(bad_blocks)
    for bad in bad_blocks:
        assert not rec.output[:, bad * BLOCK : (bad + 1) * BLOCK].any()  # muted
    bad = bad_blocks[-1]
    assert np.isfinite(rec.output).all()
    assert summary.callbacks > bad + 20  # it kept running
    assert np.abs(rec.output[:, (bad + 1) * BLOCK : (bad + 40) * BLOCK]).max() > 1e-4  # and producing sound
    # offline, in the same 256-sample buffers, gives the same bits (mute and state reset included)
    with pytest.warns(neuralcomp.NonFiniteAudioWarning):
        offline = neuralcomp.load(causal_model).process(rec.input, rec.sample_rate, buffer_size=BLOCK)
    assert np.array_equal(offline, rec.output)


def test_an_exception_in_the_callback_stops_the_stream_and_is_reported(jack, causal_model):
    class FailsLater:
        """The real processor, except that its 30th block on the audio thread raises."""

        def __init__(self, processor):
            self._p, self.calls = processor, 0

        def __getattr__(self, name):
            return getattr(self._p, name)

        def process(self, audio, rate, buffer_size=None, reset=True):
            if threading.current_thread() is not threading.main_thread():  # not the warm-up
                self.calls += 1
                if self.calls == 30:
                    raise RuntimeError("simulated failure in the model")
            return self._p.process(audio, rate, buffer_size, reset)

    session = LiveSession(FailsLater(neuralcomp.load(causal_model)), device=jack.device, channels=1,
                          record=True, record_seconds=2, status_interval=None)
    start = time.monotonic()
    summary = session.run(10.0)  # returns early, with the error; the process lives on
    print(summary.format())
    assert time.monotonic() - start < 5
    assert summary.stopped_by == "error" and len(summary.errors) == 1
    assert "callback 29: RuntimeError: simulated failure in the model" in summary.errors[0]
    assert summary.callbacks == 30
    rec = session.recording()
    assert not rec.output[:, 29 * BLOCK :].any()  # that block was silenced
    assert "errors      1" in summary.format()


# ---- a keyed (sidechain) model -------------------------------------------------------------------------
def test_live_keyed_model_takes_its_key_from_the_last_capture_channels(jack, tmp_path, causal_model, capsys):
    """A model keyed by a sidechain, live: the audio on capture channel 0, the key on channel 1
    (`sidechain_inputs`, `--sidechain-inputs`); the output is bitwise the offline render of what was
    received, with the key that was received."""
    import torch

    from export import export_model
    from neuralcomp.config import generic_controls, load_preset
    from neuralcomp.host.processor import native_engine_available
    from neuralcomp.model import build_model

    torch.manual_seed(3)
    path = export_model(build_model(load_preset("tiny", mode="paper", controls=generic_controls(2), sidechain=1)),
                        tmp_path / "keyed.ts")
    processor = neuralcomp.load(path)
    assert processor.backend == ("native" if native_engine_available() else "python")
    session = LiveSession(processor, device=jack.device, blocksize=BLOCK, channels=1, sidechain_inputs=1,
                          record=True, record_seconds=6, status_interval=None)
    played = np.concatenate([noise(int(0.8 * RATE), seed=31, level=0.1), noise(int(0.8 * RATE), seed=32)])
    summary = play_through(jack, session, played)
    rec = session.recording()
    assert summary.errors == [] and summary.sidechain_inputs == 1 and "1 sidechain input(s)" in summary.format()
    assert rec.input.shape == rec.output.shape == rec.sidechain.shape == (1, summary.frames)
    lag, corr = _best_lag(rec.sidechain, played[1:])
    assert corr > 0.9, f"the played key did not arrive on the sidechain input (best correlation {corr})"
    fresh = neuralcomp.load(path)
    offline = fresh.process(rec.input, rec.sample_rate, sidechain=rec.sidechain)
    assert np.array_equal(offline, rec.output), f"max |diff| {np.abs(offline - rec.output).max()}"
    # the key matters: the same audio with a silent key comes out otherwise
    assert not np.array_equal(fresh.process(rec.input, rec.sample_rate, sidechain=0 * rec.sidechain), rec.output)

    with pytest.raises(LiveAudioError, match=r"keyed by 1 sidechain channel.*--sidechain-inputs"):
        LiveSession(processor, device=jack.device)
    with pytest.raises(LiveAudioError, match=r"1 audio channel\(s\) need 1 sidechain input\(s\), got 2"):
        LiveSession(processor, device=jack.device, channels=1, sidechain_inputs=2).run(1.0)
    with pytest.raises(LiveAudioError, match="no sidechain input"):
        LiveSession(neuralcomp.load(causal_model), device=jack.device, sidechain_inputs=1)
    assert main_live(_parse(["live", str(path), "--device", str(jack.device), "--duration", "0.5",
                             "--channels", "1", "--sidechain-inputs", "1"])) == 0
    assert "1 sidechain input(s)" in capsys.readouterr().out
    assert main_live(_parse(["live", str(path), "--device", str(jack.device), "--duration", "0.5"])) == 2
    assert "--sidechain-inputs" in capsys.readouterr().err
