"""Held-out figures against hand-computed values: ESR, gain over time, static curve."""

import numpy as np
import pytest

from neuralcomp.data.source import SourceConfig, tone_schedule, tone_steps
from neuralcomp.evaluation import GAIN_FLOOR_DB, esr, gain_db, gain_reduction_rmse_db, static_curve


def test_esr():
    y = np.sin(np.arange(1000) / 7.0)
    assert esr(y, y) == 0.0
    assert esr(y, np.zeros_like(y)) == pytest.approx(1.0)
    assert esr(y, 0.9 * y) == pytest.approx(0.01)


def test_gain_error_is_the_db_offset_and_ignores_the_noise_floor():
    rng = np.random.default_rng(0)
    x = np.concatenate([0.3 * rng.standard_normal(44100), 1e-4 * rng.standard_normal(44100)])
    target = 0.5 * x
    model = target * 10 ** (-3 / 20)
    model[44100:] = 0.0  # wrong only where the input is under the floor: not counted
    gain, mask = gain_db(x, target)
    assert gain[mask] == pytest.approx(20 * np.log10(0.5)) and mask[:99].all() and not mask[101:].any()
    assert gain_reduction_rmse_db(x, target, model) == pytest.approx(3.0, abs=1e-9)
    assert GAIN_FLOOR_DB == -50.0


def test_static_curve_reads_each_tone_step():
    config = SourceConfig()
    tones = tone_steps(config).astype(np.float64)
    pad = 1000  # the tone section need not start at 0
    x = np.concatenate([np.zeros(pad), tones])
    level_in, level_out = static_curve(x, 0.5 * x, config, pad)
    steps = [level for level, _, _ in tone_schedule(config) if level != config.tone_separator_db]
    assert level_in == pytest.approx(steps, abs=0.01)  # dBFS of the sine peak
    assert level_out - level_in == pytest.approx(20 * np.log10(0.5), abs=1e-9)
