"""The main job end to end on a small budget: dataset -> TBPTT -> export -> C++ host -> report."""

import json

import numpy as np
import soundfile as sf

from neuralcomp.data.source import SourceConfig
from neuralcomp.demo import DemoConfig, run_demo
from neuralcomp.evaluation import esr, gain_reduction_rmse_db
from tests.conftest import cpp_host_or_skip

SHORT = SourceConfig(tone_step_seconds=0.05, tone_separator_seconds=0.1, music_seconds=4.0, excerpt_seconds=1.0,
                     procedural_seconds=0.5)
QUICK = dict(max_iterations=4, length=2048, batch_size=2, validate_every=2)


def test_demo_writes_a_report_and_plots_and_continues(tmp_path):
    cpp_host_or_skip()
    config = DemoConfig(target="pedalboard_compressor", source=SHORT, music_dir=None, training_overrides=QUICK,
                        buffer_size=300)
    lines = []
    report = run_demo(tmp_path, config, log=lines.append)
    saved = json.loads((tmp_path / "report.json").read_text())
    assert saved["st_esr"] == report["st_esr"] and np.isfinite(saved["st_esr"])
    assert np.isfinite(saved["gain_reduction_rmse_db"])
    assert set(saved["loss_terms"]) == {"mae", "esr", "mr_stft", "mr_eesr", "total"}
    assert saved["backend"] == "native" and saved["streamed_equals_offline"] is True
    assert len(saved["items"]) == 4 and saved["dataset"]["test_items"] == [i["item"] for i in saved["items"]]
    assert saved["training"]["iterations"] == 4
    for name in ("loss_curves.png", "target_vs_model.png", "static_curve.png", "heldout_model.wav"):
        assert (tmp_path / name).stat().st_size > 1000, name
    # the figures are those of the streamed audio written next to them (first held-out item)
    audio = {n: sf.read(tmp_path / f"heldout_{n}.wav", dtype="float32")[0] for n in ("input", "target", "model")}
    assert saved["items"][0]["st_esr"] == esr(audio["target"], audio["model"])
    assert saved["items"][0]["gain_reduction_rmse_db"] == gain_reduction_rmse_db(audio["input"], audio["target"],
                                                                                  audio["model"])
    assert saved["st_esr"] == np.mean([item["st_esr"] for item in saved["items"]])
    # a second run reuses the dataset and resumes training where the first stopped
    longer = DemoConfig(**{**config.__dict__, "training_overrides": {**QUICK, "max_iterations": 6}})
    lines.clear()
    report = run_demo(tmp_path, longer, log=lines.append)
    assert any("reusing" in line for line in lines) and any("resumed at iteration 4" in line for line in lines)
    assert report["training"]["iterations"] == 6
