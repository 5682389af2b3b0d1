import pytest

from neuralcomp.config import ControlSpec, SPTModConfig, available_presets, generic_controls, load_preset
from neuralcomp.errors import ConfigError


def test_presets_are_data_files():
    assert {"sptmod24", "sptmod25", "tiny"} <= set(available_presets())
    c = load_preset("sptmod24")
    assert c.channels == (21, 19, 32) and c.kernel_sizes == (9, 29, 25) and c.pool_size == 64


def test_unknown_preset_names_the_choices():
    with pytest.raises(ConfigError, match="sptmod25"):
        load_preset("nope")


@pytest.mark.parametrize("bad", [
    dict(channels=(8,), kernel_sizes=(3, 3)),
    dict(channels=(), kernel_sizes=()),
    dict(channels=(8,), kernel_sizes=(3,), pool_size=1),
    dict(channels=(8,), kernel_sizes=(3,), mode="lookahead"),
    dict(channels=(8,), kernel_sizes=(0,)),
    dict(channels=(8,), kernel_sizes=(3,), pooling="rms"),
])
def test_invalid_configs_are_rejected(bad):
    with pytest.raises(ConfigError):
        SPTModConfig(name="x", **bad)


def test_controls_validate_and_normalise():
    spec = ControlSpec("threshold", -60.0, 0.0, -20.0, "dB")
    assert spec.normalise(-30.0) == 0.5
    with pytest.raises(ConfigError):
        ControlSpec("t", 1.0, 0.0, 0.5)
    with pytest.raises(ConfigError):
        ControlSpec("t", 0.0, 1.0, 2.0)
    with pytest.raises(ConfigError):
        SPTModConfig(name="x", channels=(4,), kernel_sizes=(3,), controls=(ControlSpec("a"), ControlSpec("a")))
    with pytest.raises(ConfigError):
        generic_controls(-1)


def test_config_round_trips_through_dict():
    c = load_preset("sptmod25", mode="paper", controls=generic_controls(3))
    assert SPTModConfig.from_dict(c.to_dict()) == c


def test_pooling_defaults_to_the_papers_average_and_names_the_choices():
    data = load_preset("tiny").to_dict()
    del data["pooling"]  # a configuration saved before the option reads as average pooling
    assert SPTModConfig.from_dict(data).pooling == "average"
    assert load_preset("tiny_max").pooling == "max"
    with pytest.raises(ConfigError, match=r"pooling must be one of \('average', 'max'\), got 'peak'"):
        load_preset("tiny", pooling="peak")


def test_chrono_initialisation_is_off_unless_asked_and_refuses_too_short_timescales():
    data = load_preset("tiny").to_dict()
    del data["chrono_init_frames"]  # a configuration saved before the option keeps PyTorch's initialisation
    assert SPTModConfig.from_dict(data).chrono_init_frames == 0
    for bad in (-1, 1, 2, 2.5, True):
        with pytest.raises(ConfigError, match=f"chrono_init_frames must be 0 .* or a number of frames >= 3, got {bad!r}"):
            load_preset("tiny", chrono_init_frames=bad)


def test_audio_modulation_defaults_to_the_papers_affine_path_and_names_the_choices():
    data = load_preset("tiny").to_dict()
    del data["audio_modulation"]  # a configuration saved before the option keeps the affine path
    assert SPTModConfig.from_dict(data).audio_modulation == "affine"
    with pytest.raises(ConfigError, match=r"audio_modulation must be one of \('affine', 'gain'\), got 'shift'"):
        load_preset("tiny", audio_modulation="shift")
