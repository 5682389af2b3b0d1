"""Target presets and plugin rendering (neuralcomp/data/targets.py): control mappings against hand-computed
values, pedalboard's built-in Compressor on a steady tone, ZamComp (VST3) when installed, typed errors.

Set NEURALCOMP_REQUIRE_PLUGINS=1 to make a missing ZamComp a failure instead of a skip."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np
import pytest

from neuralcomp.data.targets import (
    DEFAULT_TARGET,
    PluginTarget,
    TargetControl,
    TargetError,
    TargetPreset,
    available_target_presets,
    controls_to_parameters,
    load_target_preset,
)
from neuralcomp.errors import NeuralcompError

SR = 44100
ZAMCOMP = Path("/usr/lib/vst3/ZamComp.vst3")


def tone(level_db: float, seconds: float = 1.0, freq: float = 1000.0) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    return (10 ** (level_db / 20) * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def peak_db(x: np.ndarray) -> float:
    return 20 * math.log10(float(np.max(np.abs(x))))


def zamcomp_or_skip() -> None:
    if not ZAMCOMP.exists():
        if os.environ.get("NEURALCOMP_REQUIRE_PLUGINS") == "1":
            pytest.fail(f"NEURALCOMP_REQUIRE_PLUGINS=1 but {ZAMCOMP} is missing (apt-get install zam-plugins)")
        pytest.skip(f"{ZAMCOMP} not installed (apt-get install --no-install-recommends zam-plugins)")


# ------------------------------------------------------------------------------------------ mappings

@pytest.mark.parametrize("mapping, lo, hi, expected", [
    ("linear", -60.0, 0.0, (-60.0, -30.0, 0.0)),
    ("linear", 0.0, 30.0, (0.0, 15.0, 30.0)),
    ("log", 1.0, 20.0, (1.0, math.sqrt(20.0), 20.0)),          # 4.4721
    ("log", 0.1, 100.0, (0.1, math.sqrt(10.0), 100.0)),         # 3.1623 ms
    ("log", 1.0, 500.0, (1.0, math.sqrt(500.0), 500.0)),        # 22.3607 ms
])
def test_mapping_at_0_half_1(mapping, lo, hi, expected):
    c = TargetControl("x", "p", lo, hi, default=lo, unit="", mapping=mapping)
    for x, want in zip((0.0, 0.5, 1.0), expected):
        assert c.to_value(x) == pytest.approx(want, rel=1e-12, abs=1e-12)
        assert c.to_normalised(want) == pytest.approx(x, abs=1e-12)
    assert c.to_value(0.25) == pytest.approx(lo + 0.25 * (hi - lo) if mapping == "linear"
                                             else lo * (hi / lo) ** 0.25)


def test_presets_default_is_mid_and_mapping_as_documented():
    assert DEFAULT_TARGET == "zamcomp"
    assert {"zamcomp", "pedalboard_compressor"} <= set(available_target_presets())
    for name in ("zamcomp", "pedalboard_compressor"):
        preset = load_target_preset(name)
        assert preset.control_names == ["threshold", "ratio", "attack", "release"]
        mappings = {c.name: c.mapping for c in preset.controls}
        assert mappings == {"threshold": "linear", "ratio": "log", "attack": "log", "release": "log"}
        for c in preset.controls:
            assert c.default == pytest.approx(c.to_value(0.5))
        specs = preset.control_specs()
        assert [s.name for s in specs] == preset.control_names and specs[0].unit == "dB"
        params = controls_to_parameters(preset, {"threshold": 0.0, "ratio": 1.0, "attack": 0.5, "release": 1.0})
        assert params == pytest.approx({"threshold_db": -60.0, "ratio": 20.0, "attack_ms": math.sqrt(10.0),
                                        "release_ms": 500.0})
    zam = load_target_preset("zamcomp")
    assert zam.plugin["kind"] == "vst3" and zam.plugin["apt_package"] == "zam-plugins"
    assert zam.fixed_parameters == {"knee_db": 0.0, "makeup_db": 0.0, "slew": 1.0, "sidechain": False}


def test_missing_controls_take_default():
    preset = load_target_preset("pedalboard_compressor")
    params = controls_to_parameters(preset, {"ratio": 0.0})
    assert params["ratio"] == 1.0 and params["threshold_db"] == pytest.approx(-30.0)


# ------------------------------------------------------------------------------------ builtin render

@pytest.fixture(scope="module")
def builtin() -> PluginTarget:
    return PluginTarget("pedalboard_compressor")


@pytest.mark.parametrize("ratio_x", [0.5, 1.0])
def test_builtin_compressor_steady_tone_matches_static_curve(builtin, ratio_x):
    level = -6.0
    controls = {"threshold": 0.5, "ratio": ratio_x, "attack": 0.0, "release": 0.5}
    params = builtin.controls_to_parameters(controls)
    out = builtin.render(tone(level), SR, controls)
    assert out.dtype == np.float32 and out.shape == (SR,)
    predicted = params["threshold_db"] + (level - params["threshold_db"]) / params["ratio"]
    steady = peak_db(out[-SR // 10:])
    assert steady < level - 10  # clear gain reduction
    assert abs(steady - predicted) < 3.0, (steady, predicted)


def test_builtin_below_threshold_is_untouched(builtin):
    x = tone(-40.0, 0.3)
    out = builtin.render(x, SR, {"threshold": 0.5, "ratio": 1.0})
    assert peak_db(out[-SR // 10:]) == pytest.approx(-40.0, abs=0.1)


def test_louder_input_gets_more_gain_reduction(builtin):
    controls = {"threshold": 0.5, "ratio": 1.0}
    gains = [peak_db(builtin.render(tone(lv, 0.5), SR, controls)[-SR // 10:]) - lv for lv in (-20.0, -6.0)]
    assert gains[1] < gains[0] - 5


def test_render_is_fresh_per_call(builtin):
    x = tone(-6.0, 0.3)
    a = builtin.render(x, SR, {"threshold": 0.2, "ratio": 0.9})
    builtin.render(tone(0.0, 0.3), SR, {"threshold": 0.0, "ratio": 1.0, "release": 1.0})
    b = builtin.render(x, SR, {"threshold": 0.2, "ratio": 0.9})
    np.testing.assert_array_equal(a, b)


# ------------------------------------------------------------------------------------------- ZamComp

def test_zamcomp_compresses_and_is_reproducible():
    zamcomp_or_skip()
    target = PluginTarget("zamcomp")
    assert {"threshold_db", "ratio", "attack_ms", "release_ms", "knee_db"} <= set(target.parameter_names)
    x = tone(-6.0, 0.5)
    controls = {"threshold": 0.5, "ratio": 1.0, "attack": 0.5, "release": 0.5}
    a = target.render(x, SR, controls)
    assert a.shape == x.shape and a.dtype == np.float32
    assert peak_db(a[-SR // 10:]) < -6.0 - 10  # -6 dB tone, threshold -30 dB, ratio 20: ~-28.8 dB
    assert abs(peak_db(a[-SR // 10:]) - (-30 + 24 / 20)) < 4.0
    target.render(tone(0.0, 0.5), SR, {"threshold": 0.0, "ratio": 1.0, "release": 1.0})
    b = target.render(x, SR, controls)
    np.testing.assert_array_equal(a, b)
    quiet = target.render(tone(-40.0, 0.3), SR, controls)
    assert peak_db(quiet[-SR // 10:]) == pytest.approx(-40.0, abs=0.5)


# -------------------------------------------------------------------------------------------- errors

def _preset(**changes) -> dict:
    data = json.loads(Path(load_target_preset("pedalboard_compressor").path).read_text())
    data.update(changes)
    return data


def test_missing_plugin_file_names_the_package(tmp_path):
    data = _preset(plugin={"kind": "vst3", "path": str(tmp_path / "Nope.vst3"), "apt_package": "zam-plugins"})
    with pytest.raises(TargetError, match="zam-plugins") as info:
        PluginTarget(TargetPreset.from_dict(data))
    assert "Nope.vst3" in str(info.value) and isinstance(info.value, NeuralcompError)


def test_unknown_parameter_lists_the_plugins(tmp_path):
    data = _preset()
    data["controls"][0]["parameter"] = "thresh_db"
    with pytest.raises(TargetError, match="thresh_db") as info:
        PluginTarget(TargetPreset.from_dict(data))
    for name in ("threshold_db", "ratio", "attack_ms", "release_ms"):
        assert name in str(info.value)
    with pytest.raises(TargetError, match="knee_db"):
        PluginTarget(TargetPreset.from_dict(_preset(fixed_parameters={"knee_db": 2.0})))


def test_unknown_builtin_class():
    with pytest.raises(TargetError, match="NoSuchPlugin"):
        PluginTarget(TargetPreset.from_dict(_preset(plugin={"kind": "builtin", "class": "NoSuchPlugin"})))


@pytest.mark.parametrize("controls, match", [
    ({"threshold": 1.5}, "outside"),
    ({"ratio": -0.1}, "outside"),
    ({"attack": float("nan")}, "outside"),
    ({"knee": 0.5}, "unknown control"),
])
def test_bad_controls(builtin, controls, match):
    with pytest.raises(TargetError, match=match):
        builtin.render(tone(-6.0, 0.05), SR, controls)
    with pytest.raises(TargetError):
        builtin.controls_to_parameters(controls)


def test_bad_audio_and_presets(builtin, tmp_path):
    with pytest.raises(TargetError, match="mono"):
        builtin.render(np.zeros((2, 100), np.float32), SR, {})
    with pytest.raises(TargetError, match="NaN"):
        builtin.render(np.full(100, np.nan, np.float32), SR, {})
    with pytest.raises(TargetError, match="zamcomp"):
        load_target_preset("no_such_target")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(TargetError, match="not valid JSON"):
        load_target_preset(bad)
    with pytest.raises(TargetError, match="mapping"):
        TargetPreset.from_dict(_preset(controls=[{**_preset()["controls"][0], "mapping": "cubic"}]))
    with pytest.raises(TargetError, match="minimum > 0"):
        TargetPreset.from_dict(_preset(controls=[{**_preset()["controls"][0], "mapping": "log"}]))
    with pytest.raises(TargetError, match="kind"):
        TargetPreset.from_dict(_preset(plugin={"kind": "lv2"}))
