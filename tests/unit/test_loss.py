"""Training loss (DESIGN.md section 7): every term against hand-computed values, silence, errors."""

import dataclasses
import math

import numpy as np
import pytest
import torch
from auraloss.freq import MultiResolutionSTFTLoss

from neuralcomp.errors import ConfigError
from neuralcomp.training import CompressorLoss, LossConfig
from neuralcomp.training.loss import gain_error_db, level_weights

EPS = 1e-5  # documented eps_esr and eps_eesr
TINY = LossConfig(stft_windows=(8,), eesr_windows=(8,))  # lets hand-made tensors of 8 samples through


def _t(*rows: list[float]) -> torch.Tensor:
    return torch.tensor(rows, dtype=torch.float32).unsqueeze(1)


def _signals(seed: int = 0, samples: int = 4096) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    target = 0.3 * torch.randn(2, 1, samples, generator=gen)
    prediction = target + 0.05 * torch.randn(2, 1, samples, generator=gen)
    return prediction, target


def test_defaults_and_exports():
    cfg = LossConfig()
    assert (cfg.mae_weight, cfg.esr_weight, cfg.mr_stft_weight, cfg.mr_eesr_weight) == (100, 1, 1, 1)
    assert cfg.stft_windows == cfg.eesr_windows == (512, 1024, 2048)
    assert cfg.esr_eps == cfg.eesr_eps == EPS and cfg.min_samples == 2048


def test_mae_and_esr_by_hand():
    target = _t([1, -1, 0.5, 0, 0, 0, 0, 0], [2, 0, 0, 0, 0, 0, 0, 0])
    prediction = _t([0.5, -1, 0, 0, 0, 0, 0, 0], [1, 0, 0, 0, 0, 0, 0, 1])
    _, terms = CompressorLoss(TINY)(prediction, target)
    # |errors|: item 0: 0.5, 0, 0.5 -> 1.0; item 1: 1, 1 -> 2.0; 16 samples
    assert terms["mae"].item() == pytest.approx(3.0 / 16)
    # item 0: (0.25 + 0.25) / (1 + 1 + 0.25 + eps); item 1: (1 + 1) / (4 + eps); mean of the ratios
    expected_esr = (0.5 / (2.25 + EPS) + 2.0 / (4.0 + EPS)) / 2
    assert terms["esr"].item() == pytest.approx(expected_esr, rel=1e-6)


def test_eesr_constant_levels_exact():
    target = torch.full((1, 1, 4096), 0.5)
    prediction = torch.full((1, 1, 4096), 0.25)
    _, terms = CompressorLoss()(prediction, target)
    # every window of every resolution: E = 0.25, E_hat = 0.0625
    assert terms["mr_eesr"].item() == pytest.approx(abs(0.0625 - 0.25) / (0.25 + EPS), rel=1e-6)


def test_eesr_energies_differing_per_window():
    n = 4096
    target = np.where(np.arange(n) < 1500, 0.5, 0.1).astype(np.float64)
    prediction = np.full(n, 0.3) * np.linspace(0.5, 1.5, n)
    per_resolution = []
    for w in (512, 1024, 2048):
        hop = w // 4
        ratios = []
        for start in range(0, n - w + 1, hop):  # windows that fit, no padding
            e = np.mean(target[start:start + w] ** 2)
            e_hat = np.mean(prediction[start:start + w] ** 2)
            ratios.append(abs(e_hat - e) / (e + EPS))
        per_resolution.append(np.mean(ratios))
    expected = np.mean(per_resolution)
    as_tensor = lambda x: torch.tensor(x, dtype=torch.float32).view(1, 1, n)  # noqa: E731
    _, terms = CompressorLoss()(as_tensor(prediction), as_tensor(target))
    assert terms["mr_eesr"].item() == pytest.approx(expected, rel=1e-5)


def test_silence_both():
    zeros = torch.zeros(2, 1, 4096)
    total, terms = CompressorLoss()(zeros, zeros)
    assert total.item() == 0.0
    assert all(v.item() == 0.0 for v in terms.values())


def test_silent_target_nonsilent_prediction_is_finite_and_positive():
    prediction, _ = _signals()
    total, terms = CompressorLoss()(0.03 * prediction, torch.zeros_like(prediction))
    assert math.isfinite(total.item()) and total.item() > 0
    for name in ("mae", "esr", "mr_stft", "mr_eesr"):
        assert math.isfinite(terms[name].item()) and terms[name].item() > 0, name
    # documented floors: ESR = sum(y_hat^2) / eps per item, EESR = E_hat / eps per window
    energy = (0.03 * prediction).double().square().sum(dim=(1, 2))
    assert terms["esr"].item() == pytest.approx((energy / EPS).mean().item(), rel=1e-4)


def test_identical_signals_give_zero():
    _, target = _signals()
    total, terms = CompressorLoss()(target.clone(), target)
    assert abs(terms["mr_stft"].item()) < 1e-6
    assert total.item() == pytest.approx(0.0, abs=1e-6)


def test_mr_stft_matches_auraloss_settings_and_grows_with_gain_error():
    prediction, target = _signals()
    reference = MultiResolutionSTFTLoss(fft_sizes=[512, 1024, 2048], hop_sizes=[128, 256, 512],
                                        win_lengths=[512, 1024, 2048], window="hann_window",
                                        w_sc=1.0, w_log_mag=1.0, w_lin_mag=0.0, w_phs=0.0, eps=1e-8)
    loss = CompressorLoss()
    _, terms = loss(prediction, target)
    assert terms["mr_stft"].item() == pytest.approx(reference(prediction, target).item(), rel=1e-6)
    _, halved = loss(0.5 * prediction, target)
    assert halved["mr_stft"].item() > terms["mr_stft"].item()


def test_total_is_weighted_sum_and_terms_are_detached():
    prediction, target = _signals()
    prediction.requires_grad_(True)
    cfg = LossConfig(mae_weight=3.0, esr_weight=0.5, mr_stft_weight=2.0, mr_eesr_weight=0.25)
    total, terms = CompressorLoss(cfg)(prediction, target)
    expected = 3.0 * terms["mae"] + 0.5 * terms["esr"] + 2.0 * terms["mr_stft"] + 0.25 * terms["mr_eesr"]
    assert total.item() == pytest.approx(expected.item(), rel=1e-6)
    assert set(terms) == {"mae", "esr", "mr_stft", "mr_eesr", "total"}
    assert all(not v.requires_grad and v.dim() == 0 for v in terms.values())
    assert total.dtype == torch.float32


def test_gradients_reach_prediction():
    prediction, target = _signals()
    prediction.requires_grad_(True)
    total, _ = CompressorLoss()(prediction, target)
    total.backward()
    assert torch.isfinite(prediction.grad).all() and prediction.grad.abs().sum() > 0


def test_errors():
    loss = CompressorLoss()
    prediction, target = _signals()
    with pytest.raises(ValueError, match="shapes differ"):
        loss(prediction[..., :4000], target)
    with pytest.raises(ValueError, match=r"\(batch, 1, samples\)"):
        loss(prediction.squeeze(1), target.squeeze(1))
    bad = prediction.clone()
    bad[0, 0, 10] = float("nan")
    with pytest.raises(ValueError, match="prediction contains NaN"):
        loss(bad, target)
    with pytest.raises(ValueError, match="target contains NaN"):
        loss(prediction, bad)
    with pytest.raises(ValueError, match="2047 samples .* at least 2048"):
        loss(prediction[..., :2047], target[..., :2047])
    with pytest.raises(ConfigError):
        LossConfig(eesr_windows=(510,))
    with pytest.raises(ConfigError):
        LossConfig(esr_eps=0.0)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu():
    prediction, target = _signals()
    loss = CompressorLoss()
    _, cpu_terms = loss(prediction, target)
    pred_cuda = prediction.cuda().requires_grad_(True)
    total, cuda_terms = loss(pred_cuda, target.cuda())
    total.backward()
    assert pred_cuda.grad is not None and torch.isfinite(pred_cuda.grad).all()
    for name, value in cpu_terms.items():
        assert cuda_terms[name].item() == pytest.approx(value.item(), rel=1e-4), name


# ---- the optional gain-domain term (GAIN-dB) -------------------------------------------------------
GAIN = LossConfig(stft_windows=(8,), eesr_windows=(8,), gain_weight=1.0, gain_window=4, gain_floor_db=-40.0)


def test_gain_term_off_by_default_leaves_the_paper_loss():
    prediction, target = _signals(3)
    total, terms = CompressorLoss()(prediction, target)
    assert "gain_db" not in terms
    with_zero_weight, _ = CompressorLoss(LossConfig(gain_weight=0.0))(prediction, target)
    assert torch.equal(total, with_zero_weight)


def test_gain_term_known_values():
    # window 1: target 0.5, prediction 0.25 -> -6.02 dB; window 2: target 0.1, prediction 0.2 -> +6.02 dB
    target = _t([0.5] * 4 + [0.1] * 4)
    prediction = _t([0.25] * 4 + [0.2] * 4)
    total, terms = CompressorLoss(GAIN)(prediction, target)
    assert terms["gain_db"].item() == pytest.approx(20 * math.log10(2), rel=1e-5)
    paper, _ = CompressorLoss(dataclasses.replace(GAIN, gain_weight=0.0))(prediction, target)
    assert total.item() == pytest.approx(paper.item() + 20 * math.log10(2), rel=1e-5)


def test_gain_term_zero_when_equal_and_ignores_windows_below_the_floor():
    target = _t([0.5] * 4 + [0.001] * 4)  # second window at -60 dBFS, under the -40 dB floor
    prediction = _t([0.5] * 4 + [0.1] * 4)  # wrong by 40 dB there only
    _, terms = CompressorLoss(GAIN)(prediction, target)
    assert terms["gain_db"].item() == 0.0
    louder_floor = dataclasses.replace(GAIN, gain_floor_db=-80.0)
    _, terms = CompressorLoss(louder_floor)(prediction, target)
    assert terms["gain_db"].item() == pytest.approx(40.0 / 2, rel=1e-5)  # 40 dB in one window of two


def test_gain_term_silent_target_gives_zero_with_a_graph():
    prediction = _t([0.3] * 8).requires_grad_()
    value = gain_error_db(prediction, torch.zeros(1, 1, 8), 4, -50.0)
    assert value.item() == 0.0 and value.requires_grad


def test_gain_term_gradient_flows_towards_the_target_level():
    target = torch.full((2, 1, 4410), 0.5)  # 10 whole windows of 441 samples
    prediction = torch.full((2, 1, 4410), 0.25, requires_grad=True)
    total, terms = CompressorLoss(LossConfig(gain_weight=1.0, mae_weight=0.0, esr_weight=0.0,
                                             mr_stft_weight=0.0, mr_eesr_weight=0.0))(prediction, target)
    assert terms["gain_db"].item() == pytest.approx(20 * math.log10(2), rel=1e-4)
    total.backward()
    # too quiet everywhere: raising any sample lowers the loss
    assert torch.isfinite(prediction.grad).all() and (prediction.grad < 0).all()


def test_gain_term_silent_prediction_is_finite():
    _, terms = CompressorLoss(GAIN)(torch.zeros(1, 1, 8), _t([0.5] * 8))
    assert math.isfinite(terms["gain_db"].item()) and terms["gain_db"].item() > 100


def test_gain_settings_refused_and_read_from_a_preset():
    for bad in ({"gain_weight": -1.0}, {"gain_window": 0}, {"gain_floor_db": 3.0}, {"gain_floor_db": float("nan")}):
        with pytest.raises(ConfigError):
            LossConfig(**bad)
    with pytest.raises(ConfigError, match="gain_wieght"):
        LossConfig.from_dict({"gain_wieght": 0.1})
    assert LossConfig.from_dict({"gain_weight": 0.1, "stft_windows": [512]}).stft_windows == (512,)
    from neuralcomp.training.config import TrainingConfig
    with pytest.raises(ConfigError, match="gain_wieght"):
        TrainingConfig(loss={"gain_wieght": 0.1})
    assert TrainingConfig(loss={"gain_weight": 0.1}).loss_config().gain_weight == 0.1


# ---- optional level weighting of MAE and ESR ---------------------------------------------------------
LEVEL = LossConfig(stft_windows=(8,), eesr_windows=(8,), level_weighting=1.0, level_window=4, level_floor_db=-60.0)


def test_level_weighting_off_by_default_leaves_the_paper_loss():
    prediction, target = _signals(4)
    total, terms = CompressorLoss()(prediction, target)
    zero_total, zero_terms = CompressorLoss(LossConfig(level_weighting=0.0))(prediction, target)
    assert torch.equal(total, zero_total) and torch.equal(terms["mae"], zero_terms["mae"])


def test_level_weighting_counts_the_same_relative_error_alike_at_any_level():
    # a loud window (0.5) and a window 40 dB quieter (0.005), each 10 % too loud
    target = _t([0.5] * 4 + [0.005] * 4)
    prediction = 1.1 * target
    weights = level_weights(target, 4, -60.0, 1.0)
    weighted_error = (weights * (prediction - target)).abs()[0, 0]
    assert weighted_error[:4].mean().item() == pytest.approx(weighted_error[4:].mean().item(), rel=1e-5)
    # the weighted target keeps the target's energy, so the terms keep their scale
    assert (weights * target).square().sum().item() == pytest.approx(target.square().sum().item(), rel=1e-5)
    # the paper's MAE sees almost only the loud window; the weighted one sees both halves equally
    _, paper = CompressorLoss(dataclasses.replace(LEVEL, level_weighting=0.0))(prediction, target)
    _, weighted = CompressorLoss(LEVEL)(prediction, target)
    assert paper["mae"].item() == pytest.approx(0.1 * (0.5 + 0.005) / 2, rel=1e-5)
    assert weighted["mae"].item() == pytest.approx(weighted_error.mean().item(), rel=1e-5)


def test_level_weighting_half_exponent_and_floor():
    target = _t([0.5] * 4 + [0.005] * 4 + [1e-5] * 4)  # 0, -40 and -100 dB re the first window
    raw = level_weights(target, 4, -60.0, 0.5)[0, 0]
    assert (raw[4] / raw[0]).item() == pytest.approx(10.0, rel=1e-4)  # 40 dB -> 20 dB of weight at 0.5
    floored = level_weights(target, 4, -60.0, 1.0)[0, 0]  # -100 dBFS is weighted as -60 dBFS
    assert (floored[8] / floored[0]).item() == pytest.approx(0.5 / 1e-3, rel=1e-4)


def test_level_weighting_partial_last_window_silence_and_gradient():
    target = _t([0.5] * 4 + [0.05] * 2)  # a short last window is weighted by its own level
    weights = level_weights(target, 4, -60.0, 1.0)[0, 0]
    assert (weights[4] / weights[0]).item() == pytest.approx(10.0, rel=1e-4)
    assert torch.equal(level_weights(torch.zeros(2, 1, 8), 4, -60.0, 1.0), torch.ones(2, 1, 8))
    prediction = _t([0.4] * 8).requires_grad_()
    target = _t([0.5] * 4 + [0.05] * 4).requires_grad_()
    assert not level_weights(target, 4, -60.0, 1.0).requires_grad  # a weighting, not a term to learn
    total, _ = CompressorLoss(LEVEL)(prediction, target)
    total.backward()
    assert torch.isfinite(prediction.grad).all() and prediction.grad.abs().sum() > 0


def test_level_settings_refused_and_read_from_a_preset():
    for bad in ({"level_weighting": -0.1}, {"level_weighting": 1.5}, {"level_weighting": float("nan")},
                {"level_window": 0}, {"level_floor_db": 0.0}):
        with pytest.raises(ConfigError, match="level_"):
            LossConfig(**bad)
    assert LossConfig.from_dict({"level_weighting": 0.5}).level_weighting == 0.5
