"""The trained model shipped in presets/trained/ loads on both hosts and behaves like the compressor."""

import json
from pathlib import Path

import numpy as np
import pytest

import neuralcomp

SHIPPED = Path(__file__).resolve().parents[2] / "presets" / "trained"


def _steady_gain_db(processor, level_db: float) -> float:
    t = np.arange(88200) / 44100
    x = (10 ** (level_db / 20) * np.sin(2 * np.pi * 1000 * t)).astype(np.float32)
    y = processor.process(x, 44100, buffer_size=512)
    return float(20 * np.log10(np.sqrt(np.mean(y[-22050:] ** 2)) / np.sqrt(np.mean(x[-22050:] ** 2))))


@pytest.mark.parametrize("backend", ["python", "torchscript", "native"])
def test_shipped_zamcomp_model_compresses_like_zamcomp(backend):
    from tests.conftest import cpp_host_or_skip, native_engine_or_skip

    if backend == "torchscript":
        cpp_host_or_skip()
    if backend == "native":
        native_engine_or_skip()
    card = json.loads((SHIPPED / "zamcomp_tiny.json").read_text())
    comp = neuralcomp.load(SHIPPED / card["file"], backend=backend)
    assert comp.control_names == ["threshold", "ratio", "attack", "release"]
    comp.threshold, comp.ratio = -30.0, 4.0
    # ZamComp, hard knee: a 1 kHz sine 24 dB over the threshold at 4:1 loses 18 dB; far below it, nothing
    assert -20.0 < _steady_gain_db(comp, -6.0) < -14.0
    assert abs(_steady_gain_db(comp, -50.0)) < 1.0
    comp.ratio = 20.0
    assert _steady_gain_db(comp, -6.0) < -18.0  # a higher ratio compresses more
    assert card["held_out"]["st_esr"] < 0.05


def test_readme_held_out_table_is_the_model_card():
    """The README's held-out figures for the shipped model are those its card records (mean and per-item
    range), and the card's means are the means of its per-item figures."""
    card = json.loads((SHIPPED / "zamcomp_tiny.json").read_text())["held_out"]
    readme = (SHIPPED.parents[1] / "README.md").read_text()
    per_item = card["per_item"]
    assert len(per_item) == card["items"]
    esr = [item["st_esr"] for item in per_item]
    gain = [item["gain_reduction_rmse_db"] for item in per_item]
    assert np.mean(esr) == pytest.approx(card["st_esr"], abs=1e-4)
    assert np.mean(gain) == pytest.approx(card["gain_reduction_rmse_db"], abs=0.01)
    assert f"| ST ESR | **{card['st_esr']:.4f}** | {min(esr):.4f}–{max(esr):.4f} |" in readme
    assert (f"| gain-reduction error, RMS | **{card['gain_reduction_rmse_db']:.2f} dB** | "
            f"{min(gain):.2f}–{max(gain):.2f} dB |") in readme
