"""Held-out evaluation as users hear it: streamed, aligned by the model's latency, figures recomputable
from the streamed audio; paper and causal modes of the same weights agree; mismatched controls refused."""

import dataclasses

import numpy as np
import pytest

import neuralcomp
from export import export_model
from neuralcomp.cli import main
from neuralcomp.config import load_preset
from neuralcomp.data import dataset as ds
from neuralcomp.data.source import SourceConfig
from neuralcomp.data.targets import PluginTarget, load_target_preset
from neuralcomp.evaluation import esr, evaluate, gain_reduction_rmse_db
from neuralcomp.model import SPTMod

SHORT = SourceConfig(tone_step_seconds=0.05, tone_separator_seconds=0.1, music_seconds=2.0, excerpt_seconds=1.0,
                     procedural_seconds=0.5)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    target = PluginTarget(load_target_preset("pedalboard_compressor"))
    path = ds.build_dataset(tmp_path_factory.mktemp("data") / "d", target, ds.latin_hypercube(target, 3, seed=2),
                            SHORT, None, allow_synthetic_music=True, progress=False)
    return ds.load_dataset(path)


@pytest.fixture(scope="module")
def paper_and_causal(dataset, tmp_path_factory):
    """The same (seeded, untrained) weights exported in paper and in causal mode, with the dataset's controls."""
    import torch

    torch.manual_seed(4)
    paper = SPTMod(load_preset("tiny", mode="paper", controls=dataset.controls)).eval()
    causal = SPTMod(dataclasses.replace(paper.config, mode="causal")).eval()
    causal.load_state_dict(paper.state_dict())
    root = tmp_path_factory.mktemp("models")
    return export_model(paper, root / "paper.ts"), export_model(causal, root / "causal.ts")


def test_evaluation_aligns_by_latency_so_paper_and_causal_modes_agree(dataset, paper_and_causal):
    paper, causal = (neuralcomp.load(path, backend="python") for path in paper_and_causal)
    assert paper.latency_samples == 63
    items = [0]
    by_paper, by_causal = evaluate(paper, dataset, items, 512), evaluate(causal, dataset, items, 512)
    for p, c in zip(by_paper.items, by_causal.items):
        # the figures are those of the streamed audio they come with, sample t answering input t
        assert p.esr == esr(p.target, p.output) and p.output.shape == p.target.shape
        assert p.gain_reduction_rmse_db == gain_reduction_rmse_db(p.input, p.target, p.output)
        for name, value in p.controls.items():
            paper.set_control(name, value)
        raw = paper.process(p.input, dataset.sample_rate, buffer_size=512)
        assert np.array_equal(p.output[:-63], raw[63:])
        # the same weights in both modes: the same figures (unaligned, paper's ESR would be near 2)
        print(f"{p.item_id}: ST ESR paper {p.esr:.6f} causal {c.esr:.6f}, unaligned {esr(p.target, raw):.3f}")
        assert p.esr == pytest.approx(c.esr, rel=1e-3)
        assert p.gain_reduction_rmse_db == pytest.approx(c.gain_reduction_rmse_db, abs=0.01)


def test_evaluate_refuses_a_model_with_other_controls(tmp_path, dataset, capsys):
    from tests.conftest import make_model

    model = export_model(make_model("tiny", "causal", 2), tmp_path / "two.ts")
    assert main(["evaluate", str(model), str(dataset.path), "--backend", "python"]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert "['c0', 'c1']" in err and "['threshold', 'ratio', 'attack', 'release']" in err
