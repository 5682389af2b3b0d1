"""Fine-tuning starts (neuralcomp/training/init.py): weights read back from an exported model, controls
mapped by name (exactly where units and mappings agree), and clear refusals where they cannot be."""

from pathlib import Path

import pytest
import torch

from export import export_model
from neuralcomp.config import ControlSpec, load_preset
from neuralcomp.errors import ConfigError
from neuralcomp.model import build_model
from neuralcomp.model.checkpoint import save_model
from neuralcomp.training.init import initialise_from, load_pretrained
from tests.conftest import noise

THRESHOLD = ControlSpec("threshold", -60.0, 0.0, -30.0, "dB")
RATIO = ControlSpec("ratio", 1.0, 20.0, 4.0, ":1", "log")
ATTACK = ControlSpec("attack", 0.1, 100.0, 3.0, "ms", "log")


TCN_SMALL = dict(channels=4, kernel_size=3, dilations=(1, 2, 4, 8), film_hidden=8)  # receptive field 31


def _model(controls, seed=0, preset="tiny", **changes):
    torch.manual_seed(seed)
    model = build_model(load_preset(preset, controls=tuple(controls), **changes)).eval()
    with torch.no_grad():  # move the weights off their identity-like start so that FiLM matters
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return model


@torch.no_grad()
def _stream(model, values: dict[str, float]) -> torch.Tensor:
    controls = torch.tensor([[c.normalise(values[c.name]) for c in model.config.controls]], dtype=torch.float32)
    x = torch.from_numpy(noise(64 * 80, seed=5))[None]
    return model(x, controls, model.start_state(controls))[0]


def test_an_exported_model_reads_back_to_the_same_processor(tmp_path):
    original = _model([THRESHOLD, RATIO])
    path = export_model(original, tmp_path / "m.ts")
    rebuilt, spn_included = load_pretrained(path)
    assert not spn_included and rebuilt.config == original.config
    values = {"threshold": -40.0, "ratio": 6.0}
    torch.testing.assert_close(_stream(rebuilt, values), _stream(original, values), atol=1e-6, rtol=0)


def test_a_tcn_reads_back_from_its_export_and_its_checkpoint_and_maps_its_controls(tmp_path):
    original = _model([THRESHOLD, RATIO], preset="tcn", **TCN_SMALL)
    for path, with_spn in ((export_model(original, tmp_path / "tcn.ts"), False),
                           (save_model(original, tmp_path / "tcn.ckpt"), True)):
        rebuilt, spn_included = load_pretrained(path)
        assert spn_included == with_spn and rebuilt.config == original.config, path
        for (name, a), b in zip(original.state_dict().items(), rebuilt.state_dict().values()):
            assert torch.equal(a, b), (path.name, name)  # every weight back, bit for bit (the gain head too)
    # fine-tuning a TCN: controls by name, exact where units agree, as for SPTMod
    narrower = ControlSpec("threshold", -40.0, -10.0, -20.0, "dB")
    new = _model([RATIO, narrower], seed=1, preset="tcn", **TCN_SMALL)
    report = initialise_from(new, rebuilt, "tcn.ckpt")
    assert report.mapped == {"ratio": "exact", "threshold": "exact"} and not report.fresh
    for threshold, ratio in [(-40.0, 2.0), (-25.0, 12.0)]:
        torch.testing.assert_close(_stream(new, {"threshold": threshold, "ratio": ratio}),
                                   _stream(original, {"threshold": threshold, "ratio": ratio}), atol=2e-6, rtol=0)
    # and from a TCN without controls, the FiLM layers start as the identity
    snapshot = _model([], seed=2, preset="tcn", **TCN_SMALL)
    keyed = _model([THRESHOLD], seed=3, preset="tcn", **TCN_SMALL)
    assert initialise_from(keyed, snapshot).new_controls == ["threshold"]
    torch.testing.assert_close(_stream(keyed, {"threshold": -50.0}), _stream(snapshot, {}), atol=1e-6, rtol=0)


def test_controls_are_mapped_by_name_exactly_where_units_agree(tmp_path):
    old = _model([THRESHOLD, RATIO, ATTACK])
    narrower = ControlSpec("threshold", -40.0, -10.0, -20.0, "dB")  # another range, same unit and mapping
    knee = ControlSpec("knee", 0.0, 8.0, 4.0, "dB")  # new
    new = _model([RATIO, narrower, knee], seed=1)
    report = initialise_from(new, old, "old")
    assert report.mapped == {"ratio": "exact", "threshold": "exact"}
    assert report.new_controls == ["knee"] and report.dropped_controls == ["attack"]
    for threshold, ratio, knee_db in [(-40.0, 2.0, 0.0), (-25.0, 12.0, 8.0)]:
        # the new model equals the old one at the same user values, with attack at its default
        want = _stream(old, {"threshold": threshold, "ratio": ratio, "attack": ATTACK.default})
        got = _stream(new, {"threshold": threshold, "ratio": ratio, "knee": knee_db})
        torch.testing.assert_close(got, want, atol=2e-6, rtol=0)
    # a control with another unit keeps its knob position
    knob = ControlSpec("threshold", 0.0, 1.0, 0.5)
    assert initialise_from(_model([knob], seed=2), old).mapped == {"threshold": "knob position"}


def test_a_snapshot_model_gives_identity_film_layers():
    old = _model([])
    new = _model([THRESHOLD], seed=3)
    report = initialise_from(new, old)
    assert report.new_controls == ["threshold"]
    for value in (-60.0, -5.0):
        torch.testing.assert_close(_stream(new, {"threshold": value}), _stream(old, {}), atol=1e-6, rtol=0)


def test_refusals_name_the_reason():
    with pytest.raises(ConfigError, match="architecture.*channels"):
        initialise_from(_model([THRESHOLD]), _model([THRESHOLD], preset="sptmod25"))
    with pytest.raises(ConfigError, match="has no FiLM layers"):
        initialise_from(_model([]), _model([THRESHOLD]))
    tcn = _model([THRESHOLD], preset="tcn", **TCN_SMALL)
    with pytest.raises(ConfigError, match="architecture is 'tcn' .* trained is 'sptmod' .* within one architecture"):
        initialise_from(_model([THRESHOLD]), tcn)
    with pytest.raises(ConfigError, match=r"architecture.*dilations \(1, 2\) vs \(1, 2, 4, 8\)"):
        initialise_from(_model([THRESHOLD], preset="tcn", **{**TCN_SMALL, "dilations": (1, 2)}), tcn)


def test_rate_and_mode_changes_are_noted():
    report = initialise_from(_model([THRESHOLD], sample_rate=48000, mode="paper"), _model([THRESHOLD]))
    assert any("44100 Hz, now 48000 Hz" in n for n in report.notes) and any("mode" in n for n in report.notes)
    report = initialise_from(_model([THRESHOLD], pooling="max"), _model([THRESHOLD]))
    assert any("average pooling, now max" in n for n in report.notes)


def test_train_init_from_the_shipped_model(tmp_path, capsys):
    from neuralcomp.cli import main
    from tests.functional.test_train_cli import SHORT
    from neuralcomp.data import dataset as ds
    from neuralcomp.data.source import SourceConfig
    from neuralcomp.data.targets import PluginTarget, load_target_preset

    import neuralcomp

    target = PluginTarget(load_target_preset("pedalboard_compressor"))
    data = ds.build_dataset(tmp_path / "d", target, ds.latin_hypercube(target, 4, seed=1), SourceConfig(**SHORT),
                            None, allow_synthetic_music=True, progress=False)
    shipped = Path(__file__).resolve().parents[2] / "presets" / "trained" / "zamcomp_tiny.ts"
    assert main(["train", str(data), "--out", str(tmp_path / "run"), "--init", str(shipped), "--length", "2048",
                 "--batch-size", "2", "--max-iterations", "1", "--validate-every", "1", "--no-progress"]) == 0
    err = capsys.readouterr().err
    assert "controls mapped by name: threshold (exact), ratio (exact), attack (exact), release (exact)" in err
    provenance = neuralcomp.load(tmp_path / "run" / "model.ts", backend="python").metadata["provenance"]
    assert provenance["init"]["source"] == str(shipped) and provenance["init"]["copied"] > 0
    # a TCN fine-tunes the same way: its architecture comes from the file
    tcn = export_model(_model(ds.load_dataset(data).controls, preset="tcn", **TCN_SMALL), tmp_path / "tcn.ts")
    assert main(["train", str(data), "--out", str(tmp_path / "tcn_run"), "--init", str(tcn), "--length", "2048",
                 "--batch-size", "2", "--max-iterations", "1", "--validate-every", "1", "--no-progress"]) == 0
    assert "controls mapped by name: threshold (exact), ratio (exact), attack (exact)" in capsys.readouterr().err
    tuned = neuralcomp.load(tmp_path / "tcn_run" / "model.ts", backend="python").metadata
    assert tuned["model_config"]["architecture"] == "tcn" and tuned["model_config"]["dilations"] == [1, 2, 4, 8]
    assert tuned["provenance"]["init"]["source"] == str(tcn)
    assert main(["train", str(data), "--out", str(tmp_path / "run2"), "--init", str(tmp_path / "nope.ts"),
                 "--max-iterations", "1"]) == 2
    assert "does not exist" in capsys.readouterr().err
