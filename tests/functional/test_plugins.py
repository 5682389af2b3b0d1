"""Real plugins of an exported model (neuralcomp plugin): VST3 in pedalboard, CLAP in nc-clap-host, LV2 through
lilv, each compared with the native engine.

The plugins of a seeded untrained `tiny` model with ZamComp's four controls (threshold dB, ratio :1, attack and
release ms, log mappings) are built once per session into build/plugin-tests (incremental: the export is
deterministic, so a rebuild is a no-op). Set NEURALCOMP_REQUIRE_PLUGINS=1 (make test does) to make missing
build tools a failure instead of a skip.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from neuralcomp.errors import ModelFileError
from neuralcomp.host.resample import RateAdaptedStream
from neuralcomp.plugin_build import DPF_ROOT, build_plugins, plugin_identity
from tests.conftest import native_engine_or_skip, noise

REPO = Path(__file__).resolve().parents[2]
BUILD_ROOT = REPO / "build" / "plugin-tests"
RATE = 44100


def _require_tools() -> None:
    native_engine_or_skip()
    missing = [what for what, ok in (("cmake", shutil.which("cmake")), ("dpf-source", DPF_ROOT.is_dir()),
                                     ("lilv-utils", shutil.which("lv2info")), ("lv2file", shutil.which("lv2file")),
                                     ("sordi", shutil.which("sord_validate"))) if not ok]
    if missing:
        if os.environ.get("NEURALCOMP_REQUIRE_PLUGINS") == "1":
            pytest.fail(f"NEURALCOMP_REQUIRE_PLUGINS=1 but {', '.join(missing)} missing (make system-deps)")
        pytest.skip(f"{', '.join(missing)} missing (make system-deps)")


class Built:
    """One model's built plugins, the test hosts of its build, and the native engine to compare with."""

    def __init__(self, model: Path, bundles: dict[str, Path], build_dir: Path, channels: int = 2) -> None:
        self.model = model
        self.bundles = bundles
        self.clap_host = build_dir / "cmake" / "nc-clap-host"
        self.lv2_apply = build_dir / "cmake" / "nc-lv2-apply"
        self.identity = plugin_identity(model.read_bytes(), model.stem, channels)

    def engine(self, channels: int = 2, linked: bool = False):
        host = native_engine_or_skip().Host(str(self.model), channels, 4096)
        host.linked = linked
        return host


def _export(name: str, mode: str, controls: tuple, seed: int, sidechain: int = 0) -> Path:
    """A seeded untrained tiny model, rewritten only when its bytes change (keeps plugin rebuilds incremental)."""
    import tempfile

    import torch

    from export import export_model
    from neuralcomp.config import load_preset
    from neuralcomp.model import SPTMod

    torch.manual_seed(seed)
    model = SPTMod(load_preset("tiny", mode=mode, controls=controls, sidechain=sidechain)).eval()
    target = BUILD_ROOT / "models" / f"{name}.ts"
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        fresh = export_model(model, Path(tmp) / f"{name}.ts", {"test": True})
        if not target.exists() or target.read_bytes() != fresh.read_bytes():
            shutil.copyfile(fresh, target)
    return target


@pytest.fixture(scope="session")
def zamcomp_plugins(tmp_path_factory: pytest.TempPathFactory) -> Built:
    """ZamComp-like model (causal, latency 0): VST3, CLAP and LV2 plus the test hosts."""
    _require_tools()
    from neuralcomp.data.targets import load_target_preset

    model = _export("zamcomp_like", "causal", load_target_preset("zamcomp").control_specs(), seed=0)
    out = tmp_path_factory.mktemp("plugins")
    bundles = build_plugins(model, out, build_dir=BUILD_ROOT / "zamcomp_like", tools=True, verbose=False)
    return Built(model, bundles, BUILD_ROOT / "zamcomp_like")


@pytest.fixture(scope="session")
def paper_plugin(tmp_path_factory: pytest.TempPathFactory) -> Built:
    """An untrained paper-mode model (latency P - 1 = 63) with two controls, keyed by one sidechain channel, as
    mono CLAP, LV2 and VST3 plugins (inputs: the audio, then the sidechain) and the test hosts."""
    _require_tools()
    from neuralcomp.config import generic_controls

    model = _export("paper_keyed_tiny", "paper", generic_controls(2), seed=3, sidechain=1)
    out = tmp_path_factory.mktemp("paper_plugins")
    bundles = build_plugins(model, out, build_dir=BUILD_ROOT / "paper_keyed_tiny", tools=True, channels=1,
                            verbose=False)
    return Built(model, bundles, BUILD_ROOT / "paper_keyed_tiny", channels=1)


def _clap(built: Built, x: np.ndarray, tmp_path: Path, rate: int = RATE, *args: str) -> tuple[np.ndarray, str]:
    src, dst = tmp_path / "in.f32", tmp_path / "out.f32"
    np.ascontiguousarray(x, np.float32).tofile(src)
    run = subprocess.run([str(built.clap_host), str(built.bundles["clap"]), "--rate", str(rate), "--in", str(src),
                          "--out", str(dst), *args], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
    return np.fromfile(dst, np.float32).reshape(-1, x.shape[1]), run.stdout  # (outputs, frames)


def _latency(stdout: str) -> int:
    return int(next(line.split()[1] for line in stdout.splitlines() if line.startswith("latency")))


# ---- pedalboard (VST3) -------------------------------------------------------------------------------


def test_pedalboard_sees_every_parameter_with_its_range(zamcomp_plugins: Built) -> None:
    import pedalboard

    plugin = pedalboard.load_plugin(str(zamcomp_plugins.bundles["vst3"]))
    by_name = {p.name: p for p in plugin.parameters.values()}
    value = {p.name: float(getattr(plugin, key)) for key, p in plugin.parameters.items()}
    metadata_controls = zamcomp_plugins.engine(1)
    for i, name in enumerate(metadata_controls.control_names):
        param = by_name[name]
        assert param.label == metadata_controls.control_units[i]
        assert param.range[0] == pytest.approx(metadata_controls.control_minimum[i])
        assert param.range[1] == pytest.approx(metadata_controls.control_maximum[i])
        assert value[name] == pytest.approx(metadata_controls.control_default[i], rel=1e-4)
    assert by_name["input gain"].range[:2] == (-24.0, 24.0) and by_name["input gain"].label == "dB"
    assert by_name["output gain"].range[:2] == (-24.0, 24.0)
    assert by_name["mix"].range[:2] == (0.0, 100.0) and value["mix"] == 100.0
    assert {"linked", "Bypass"} <= set(by_name)
    assert plugin.reported_latency_samples == 0  # causal model at its own rate


def test_plugin_output_is_the_engines_bitwise_and_chains_stream_exactly(zamcomp_plugins: Built) -> None:
    import pedalboard

    plugin = pedalboard.load_plugin(str(zamcomp_plugins.bundles["vst3"]))
    x = noise(3 * RATE, channels=2, seed=1)
    y = plugin.process(x, RATE)
    assert np.array_equal(y, zamcomp_plugins.engine(2).process(x))
    # mono use (the same signal on both inputs, unlinked): each channel is the mono engine's output
    mono = plugin.process(np.vstack([x[0], x[0]]), RATE)
    assert np.array_equal(mono[0], zamcomp_plugins.engine(1).process(x[:1])[0])

    board = pedalboard.Pedalboard([pedalboard.Gain(gain_db=-3.0), plugin,
                                   pedalboard.Compressor(threshold_db=-20, ratio=3)])
    one_shot = board.process(x, RATE)
    board.reset()
    rng = np.random.default_rng(5)
    pieces, start = [], 0
    while start < x.shape[1]:
        n = int(rng.integers(1, 3000))
        pieces.append(board.process(x[:, start:start + n], RATE, reset=False))
        start += n
    assert np.array_equal(np.concatenate(pieces, axis=1), one_shot)


def test_automation_mid_stream_matches_the_engine(zamcomp_plugins: Built) -> None:
    import pedalboard

    plugin = pedalboard.load_plugin(str(zamcomp_plugins.bundles["vst3"]))
    x = noise(2 * RATE, channels=2, seed=2)
    cut = 30_000  # not a multiple of the pooling size
    first = plugin.process(x[:, :cut], RATE)
    plugin.threshold_db = -45.0  # normalised 0.25: exact through VST3's [0, 1] mapping
    second = plugin.process(x[:, cut:], RATE, reset=False)
    engine = zamcomp_plugins.engine(2)
    expected_first = engine.process(x[:, :cut])
    engine.set_control("threshold", -45.0)
    expected_second = engine.process(x[:, cut:])
    assert np.array_equal(first, expected_first)
    assert np.array_equal(second, expected_second)
    assert not np.array_equal(second, zamcomp_plugins.engine(2).process(x)[:, cut:])  # the change mattered


def test_linked_bypass_mix_and_state(zamcomp_plugins: Built) -> None:
    import pedalboard

    plugin = pedalboard.load_plugin(str(zamcomp_plugins.bundles["vst3"]))
    x = noise(RATE, channels=2, seed=3)
    x[1] *= 0.3
    plugin.linked = True
    assert np.array_equal(plugin.process(x, RATE), zamcomp_plugins.engine(2, linked=True).process(x))
    plugin.linked = False
    ramp = int(0.02 * RATE)
    # bypass and mix 0 cross-fade to the dry signal in 20 ms, then pass it bitwise (latency 0 here)
    for name, value in (("bypass", True), ("mix", 0.0)):
        plugin.process(x, RATE)
        setattr(plugin, name, value)
        y = plugin.process(x, RATE, reset=False)
        assert np.array_equal(y[:, ramp:], x[:, ramp:]), name
        wet = zamcomp_plugins.engine(2).process(np.concatenate([x, x], axis=1))[:, x.shape[1]:]
        jump = np.abs(np.diff(y[:, : ramp + 1], axis=1)).max()
        assert jump < np.abs(np.diff(x, axis=1)).max() + np.abs(wet - x).max() / ramp * 4  # no click
        setattr(plugin, name, False if name == "bypass" else 100.0)
    # state: parameter values travel through the host's saved state
    plugin.threshold_db = -45.0
    plugin.mix = 25.0
    plugin.process(x[:, :64], RATE)  # parameter changes reach the processor with a process call
    state = plugin.raw_state
    fresh = pedalboard.load_plugin(str(zamcomp_plugins.bundles["vst3"]))
    fresh.raw_state = state
    assert np.array_equal(fresh.process(x, RATE), plugin.process(x, RATE))
    plugin.threshold_db, plugin.mix = -30.0, 100.0
    assert not np.array_equal(fresh.process(x, RATE), plugin.process(x, RATE))


def test_switching_linked_mid_stream_restarts_the_other_mode_from_its_start_state(zamcomp_plugins: Built) -> None:
    """Both stereo modes are prepared up front (the switch allocates nothing, see the CLAP allocation test):
    after a switch the output is a fresh engine's in the new mode, bitwise."""
    import pedalboard

    plugin = pedalboard.load_plugin(str(zamcomp_plugins.bundles["vst3"]))
    x = noise(RATE, channels=2, seed=13)
    x[1] *= 0.3
    cuts = [0, 20_000, 31_111, x.shape[1]]
    pieces = []
    for k, linked in enumerate((False, True, False)):
        plugin.linked = linked
        pieces.append(plugin.process(x[:, cuts[k]:cuts[k + 1]], RATE, reset=k == 0))
    for k, linked in enumerate((False, True, False)):
        expected = zamcomp_plugins.engine(2, linked=linked).process(x[:, cuts[k]:cuts[k + 1]])
        assert np.array_equal(pieces[k], expected), k
    assert not np.array_equal(pieces[1], zamcomp_plugins.engine(2).process(x[:, cuts[1]:cuts[2]]))


def test_nonfinite_input_at_48k_mutes_and_restarts_like_the_python_host(zamcomp_plugins: Built) -> None:
    """At a host rate other than the model's, a 512-sample step holding NaN is output as zeros and sends the
    resamplers and the model back to their start state (as Processor does): what follows is bitwise a fresh
    plugin's output, and it matches the Python host (native engine) within the resamplers' float error."""
    import pedalboard

    import neuralcomp

    plugin = pedalboard.load_plugin(str(zamcomp_plugins.bundles["vst3"]))
    rate, step = 48000, 512
    x = noise(12 * step, channels=2, seed=14)
    x[0, 5 * step + 100] = np.nan
    y = plugin.process(x, rate, buffer_size=step)  # pedalboard removes the reported latency
    python_host = neuralcomp.load(zamcomp_plugins.model, backend="native")
    latency = plugin.reported_latency_samples
    assert latency == python_host.latency_at(rate) > 0
    assert np.isfinite(y).all() and not y[:, 5 * step - latency:6 * step - latency].any()
    assert y[:, 6 * step - latency:].any()
    fresh = pedalboard.load_plugin(str(zamcomp_plugins.bundles["vst3"]))
    assert np.array_equal(y[:, 6 * step:], fresh.process(x[:, 6 * step:], rate, buffer_size=step))
    expected = python_host.process(x, rate, buffer_size=step)  # delayed by the latency
    assert python_host.nonfinite_buffers == 1 and not expected[:, 5 * step:6 * step].any()
    assert np.abs(y[:, :-latency] - expected[:, latency:]).max() < 1e-4 * max(1.0, np.abs(expected).max())


def test_nonfinite_input_is_muted_like_the_engine(zamcomp_plugins: Built) -> None:
    import pedalboard

    plugin = pedalboard.load_plugin(str(zamcomp_plugins.bundles["vst3"]))
    x = noise(8 * 512, channels=2, seed=4)
    x[1, 3 * 512 + 7] = np.nan
    y = plugin.process(x, RATE, buffer_size=512)
    engine = zamcomp_plugins.engine(2)
    expected = np.concatenate([engine.process(x[:, i:i + 512]) for i in range(0, x.shape[1], 512)], axis=1)
    assert np.isfinite(y).all() and not y[:, 3 * 512:4 * 512].any()
    assert np.array_equal(y, expected)


def test_nonfinite_buffers_are_counted(zamcomp_plugins: Built, tmp_path: Path) -> None:
    x = noise(4096, channels=2, seed=4)
    x[0, 1000] = np.inf
    y, out = _clap(zamcomp_plugins, x, tmp_path, RATE, "--blocks", "512")
    assert not y[:, 512:1024].any() and np.isfinite(y).all()
    assert "value\tnonfinite buffers\t1\n" in out


def test_damaged_bundle_loads_and_passes_audio_through(zamcomp_plugins: Built, tmp_path: Path) -> None:
    bundle = tmp_path / zamcomp_plugins.bundles["vst3"].name
    shutil.copytree(zamcomp_plugins.bundles["vst3"], bundle)
    binary = next(bundle.rglob("*.so"))
    data = bytearray(binary.read_bytes())
    model = zamcomp_plugins.model.read_bytes()
    start = data.find(model[:4096])
    assert start >= 0
    data[start + len(model) // 2] ^= 0xFF
    binary.write_bytes(bytes(data))
    script = (
        "import numpy as np, pedalboard, sys\n"
        f"p = pedalboard.load_plugin({str(bundle)!r})\n"
        "x = (np.random.default_rng(0).standard_normal((2, 5000)) * 0.2).astype(np.float32)\n"
        "y = p.process(x, 44100)\n"
        "print('PASSTHROUGH', bool(np.array_equal(x, y)))\n"
    )
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert "PASSTHROUGH True" in run.stdout
    assert "checksum does not match" in run.stderr and "passes audio through" in run.stderr


# ---- CLAP ------------------------------------------------------------------------------------------------


def test_clap_host_lists_parameters_and_matches_the_engine(zamcomp_plugins: Built, tmp_path: Path) -> None:
    listing = subprocess.run([str(zamcomp_plugins.clap_host), str(zamcomp_plugins.bundles["clap"]), "--list"],
                             capture_output=True, text=True, timeout=60)
    assert listing.returncode == 0, listing.stderr
    params = {f[2]: (float(f[3]), float(f[4])) for f in (l.split("\t") for l in listing.stdout.splitlines())
              if f[0] == "param"}
    assert params["threshold"] == (-60.0, 0.0) and params["ratio"] == (1.0, 20.0)
    assert {"input gain", "output gain", "mix", "linked", "Bypass"} <= set(params)
    assert zamcomp_plugins.identity.clap_id in listing.stdout

    x = noise(2 * RATE, channels=2, seed=6)
    y, out = _clap(zamcomp_plugins, x, tmp_path, RATE, "--random-blocks", "7:1500", "--set", "threshold=-45@40000",
                   "--count-allocations")
    engine = zamcomp_plugins.engine(2)
    expected = np.concatenate([engine.process(x[:, :40000]), (engine.set_control("threshold", -45.0),
                                                              engine.process(x[:, 40000:]))[1]], axis=1)
    assert np.array_equal(y, expected)
    assert "allocations 0" in out


def test_process_is_allocation_free_under_automation_at_other_rates(zamcomp_plugins: Built, tmp_path: Path) -> None:
    x = noise(RATE, channels=2, seed=7)
    automation = ["--set", "threshold=-50@3000", "--set", "input gain=6@9000", "--set", "output gain=-3@12000",
                  "--set", "linked=1@15000", "--set", "mix=40@20000", "--set", "linked=0@25000",
                  "--set", "Bypass=1@30000", "--set", "ratio=8@35000"]
    for rate in (RATE, 48000, 96000):
        _, out = _clap(zamcomp_plugins, x, tmp_path, rate, "--random-blocks", "9:700", "--count-allocations",
                       *automation)
        assert "allocations 0" in out, (rate, out)


def test_other_host_rates_resample_with_the_python_hosts_latency(zamcomp_plugins: Built, tmp_path: Path) -> None:
    x = noise(RATE, channels=2, seed=8)
    engine = zamcomp_plugins.engine(2)
    for rate in (48000, 22050):
        fixed, out = _clap(zamcomp_plugins, x, tmp_path, rate, "--blocks", "512")
        chunked, _ = _clap(zamcomp_plugins, x, tmp_path, rate, "--random-blocks", "11:999")
        assert np.array_equal(fixed, chunked)  # bitwise partition invariant through both resamplers
        adapter = RateAdaptedStream(engine.process, rate, RATE, 2)
        assert _latency(out) == adapter.total_latency_samples(0)
        engine.reset()
        expected = adapter.process(x)
        assert np.abs(fixed - expected).max() < 1e-4 * max(1.0, np.abs(expected).max())


def test_paper_mode_mono_keyed_plugin_reports_its_latency(paper_plugin: Built, tmp_path: Path) -> None:
    """The CLAP build (nc-clap-host feeds every input port: the audio, then the sidechain): latency 63, bitwise the
    engine with its key in random block sizes and allocation-free; at 48 kHz the key goes through the resamplers
    with the audio, partition-invariant, and it matters."""
    x, key = noise(RATE // 2, channels=1, seed=9), noise(RATE // 2, channels=1, seed=8)
    y, out = _clap(paper_plugin, np.concatenate([x, key]), tmp_path, RATE, "--channels", "1", "--random-blocks",
                   "3:200", "--count-allocations")
    assert _latency(out) == 63 and "allocations 0" in out
    assert np.array_equal(y, paper_plugin.engine(1).process(x, None, key))
    fixed, out48 = _clap(paper_plugin, np.concatenate([x, key]), tmp_path, 48000, "--channels", "1", "--blocks", "256",
                         "--count-allocations")
    assert _latency(out48) == RateAdaptedStream(lambda v: v, 48000, RATE, 1).total_latency_samples(63)
    chunked, _ = _clap(paper_plugin, np.concatenate([x, key]), tmp_path, 48000, "--channels", "1", "--random-blocks",
                       "9:999")
    silent, _ = _clap(paper_plugin, np.concatenate([x, 0 * key]), tmp_path, 48000, "--channels", "1", "--blocks", "256")
    assert "allocations 0" in out48 and np.array_equal(fixed, chunked) and not np.array_equal(fixed, silent)


# ---- LV2 -------------------------------------------------------------------------------------------------


def test_lv2_bundle_validates_and_renders_a_wav_like_the_engine(zamcomp_plugins: Built, tmp_path: Path) -> None:
    env = dict(os.environ, LV2_PATH=str(zamcomp_plugins.bundles["lv2"].parent))
    uri = zamcomp_plugins.identity.lv2_uri
    info = subprocess.run(["lv2info", uri], capture_output=True, text=True, env=env, timeout=60)
    assert info.returncode == 0 and "zamcomp_like" in info.stdout, info.stderr
    for symbol in ("threshold", "ratio", "attack", "release", "input_gain", "output_gain", "mix", "linked"):
        assert f"Symbol:      {symbol}\n" in info.stdout
    assert "Has latency:       yes" in info.stdout
    x = noise(RATE, channels=2, seed=10)
    sf.write(tmp_path / "in.wav", x.T, RATE, subtype="FLOAT")
    run = subprocess.run([str(zamcomp_plugins.lv2_apply), "-i", str(tmp_path / "in.wav"), "-o",
                          str(tmp_path / "out.wav"), "-c", "threshold", "-45", "-b", "300", uri],
                         capture_output=True, text=True, env=env, timeout=120)
    assert run.returncode == 0, run.stderr
    y, rate = sf.read(tmp_path / "out.wav", dtype="float32")
    engine = zamcomp_plugins.engine(2)
    engine.set_control("threshold", -45.0)
    expected = engine.process(x)
    assert rate == RATE and np.array_equal(y.T, expected)
    # Debian's own file host, lv2file (lilv), gives the same output bitwise (--ignore-clipping: by default it
    # clamps output samples beyond full scale, and this untrained model's output peaks at 1.3)
    run = subprocess.run(["lv2file", "--ignore-clipping", "-i", str(tmp_path / "in.wav"), "-o",
                          str(tmp_path / "lv2file.wav"), "-p", "threshold:-45", "-b", "300", uri],
                         capture_output=True, text=True, env=env, timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr
    y, rate = sf.read(tmp_path / "lv2file.wav", dtype="float32")
    assert rate == RATE and np.array_equal(y.T, expected)


def test_lv2_bundle_passes_lv2_validate(zamcomp_plugins: Built) -> None:
    """lv2_validate (lv2-dev, on sord_validate) checks the bundle's Turtle against the installed LV2 specs.
    The one term it cannot know is DPF's `kx:NonAutomatable` port property on `linked` (KXStudio's
    vocabulary, which Debian does not ship): anything else it reports fails the test."""
    bundle = zamcomp_plugins.bundles["lv2"]
    run = subprocess.run(["lv2_validate", *sorted(str(p) for p in bundle.glob("*.ttl"))], capture_output=True,
                         text=True, timeout=120)
    report = run.stdout + run.stderr
    errors = [block for block in report.split("error: ")[1:]]
    unknown = [e for e in errors if "kxstudio.sf.net/ns/lv2ext/props#NonAutomatable" not in e]
    assert unknown == [] and "Found" in report, report
    assert len(errors) <= 1


# ---- neuralcomp plugin: IDs and refusals ------------------------------------------------------------------


def test_ids_are_stable_and_depend_on_model_and_name() -> None:
    a = plugin_identity(b"model bytes", "Tube Comp")
    assert a == plugin_identity(b"model bytes", "Tube Comp")
    assert a.file_name == "Tube_Comp"
    for other in (plugin_identity(b"model bytez", "Tube Comp"), plugin_identity(b"model bytes", "Tube Comp 2"),
                  plugin_identity(b"model bytes", "Tube Comp", channels=1)):
        assert other.unique_id != a.unique_id and other.clap_id != a.clap_id and other.lv2_uri != a.lv2_uri


def test_plugin_command_refuses_a_bad_model_before_building(zamcomp_plugins: Built, tmp_path: Path) -> None:
    from neuralcomp.cli import main

    not_zip = tmp_path / "broken.ts"
    not_zip.write_bytes(b"not a model")
    assert main(["plugin", str(not_zip), "-o", str(tmp_path / "out")]) == 2
    # a neuralcomp archive whose engine entry is damaged: the engine's reason
    damaged = tmp_path / "damaged.ts"
    with zipfile.ZipFile(zamcomp_plugins.model) as src, zipfile.ZipFile(damaged, "w") as dst:
        for item in src.infolist():
            data = src.read(item)
            if item.filename.endswith("neuralcomp_engine.bin"):
                data = data[:-10] + bytes(10)
            dst.writestr(item, data)
    with pytest.raises(ModelFileError, match="checksum|corrupt|CRC"):
        build_plugins(damaged, tmp_path / "out")
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_keyed_lv2_plugin_has_sidechain_ports_and_renders_like_the_engine(paper_plugin: Built, tmp_path: Path) -> None:
    """A keyed model's plugin: a sidechain input port after the audio one (lv2:isSideChain), and Debian's lv2file,
    given a file of the audio channel then the key channel (it connects file channels to input ports in order),
    renders bitwise what the engine gives for that audio and key."""
    env = dict(os.environ, LV2_PATH=str(paper_plugin.bundles["lv2"].parent))
    uri = paper_plugin.identity.lv2_uri
    ttls = "".join(path.read_text() for path in paper_plugin.bundles["lv2"].glob("*.ttl"))
    assert ttls.count("lv2:isSideChain") == 1 and '"lv2_sidechain_1"' in ttls
    x, key = noise(RATE, channels=1, seed=40, level=0.1), noise(RATE, channels=1, seed=41)
    sf.write(tmp_path / "in.wav", np.concatenate([x, key]).T, RATE, subtype="FLOAT")
    run = subprocess.run(["lv2file", "--ignore-clipping", "-i", str(tmp_path / "in.wav"), "-o",
                          str(tmp_path / "out.wav"), "-p", "c0:0.3", "-b", "300", uri],
                         capture_output=True, text=True, env=env, timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr
    y, rate = sf.read(tmp_path / "out.wav", dtype="float32")
    engine = paper_plugin.engine(1)
    engine.set_control("c0", 0.3)
    expected = engine.process(x, None, key)
    assert rate == RATE and y.shape == (RATE,) and np.array_equal(y[None, :], expected)
    engine.reset()
    assert not np.array_equal(engine.process(x, None, 0 * key), expected)  # the key drives the gain
    # pedalboard gives a VST3 one input bus (spotify/pedalboard#254): the sidechain bus stays unconnected and
    # the plugin hears a silent key, as DPF feeds an inactive bus zeros (pedalboard compensates the reported
    # latency: it feeds 63 more samples of silence and drops the first 63 outputs)
    import pedalboard

    vst3 = pedalboard.load_plugin(str(paper_plugin.bundles["vst3"]))
    padded = np.concatenate([x, np.zeros((1, 63), np.float32)], axis=1)
    silent_key = paper_plugin.engine(1).process(padded, None, 0 * padded)  # default controls
    assert np.array_equal(vst3(x, RATE), silent_key[:, 63:])
