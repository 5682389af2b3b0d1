"""The training loss of SPTMod: time-domain, spectral and energy-envelope errors in one weighted sum.

Following Bourdin et al. (TBPTT for neural audio effects), for a prediction y_hat and a target y,
both (batch, 1, samples):

    total = w_mae * MAE + w_esr * ESR + w_stft * MR-STFT + w_eesr * MR-EESR   (weights 100, 1, 1, 1)

    MAE      = mean |y_hat - y|                                   over batch and samples
    ESR      = mean_b  sum_n (y - y_hat)^2 / (sum_n y^2 + eps_esr)  per item, averaged over the batch
    MR-STFT  = auraloss.freq.MultiResolutionSTFTLoss with FFT size = window size in (512, 1024, 2048),
               hop = window / 4, Hann window, spectral convergence + log-magnitude L1 (auraloss'
               default weights 1 and 1, no linear magnitude, no phase), magnitudes clamped at
               sqrt(eps_stft) by auraloss
    EESR_W   = mean_k |E_hat_k - E_k| / (E_k + eps_eesr),  E_k = mean(y^2) over the k-th window of W
               samples, hop W / 4, windows that fit inside the signal (no padding), averaged over k
               and the batch
    MR-EESR  = mean of EESR_W over W in (512, 1024, 2048)

Every term is also returned on its own, unweighted and detached, for logging.

Optional gain-domain term (off by default: `gain_weight = 0` leaves the paper's loss exactly as it is,
and 'gain_db' is then neither computed nor logged):

    GAIN-dB  = mean over windows k where the target is above the floor of |10 log10(E_hat_k / E_k)|
               E_k = mean(y^2) over non-overlapping windows of `gain_window` samples (441 = 10 ms at
               44.1 kHz, the window of the evaluation's gain-reduction error), windows whose target
               RMS is under `gain_floor_db` dBFS (default -50, the evaluation's floor) left out

Optional level weighting of the time-domain terms (off by default: `level_weighting = 0`):

    w_n      = s * max(RMS_k(y), floor) ** -level_weighting   for the samples n of window k
               RMS_k over non-overlapping windows of `level_window` samples (441 = 10 ms), floored at
               `level_floor_db` dBFS; s per item so that w * y keeps the energy of y (so the terms keep
               their scale; a silent target gets w = 1); w is not differentiated
    MAE, ESR are then computed on (w * y_hat, w * y)

With exponent 1 an error counts relative to the level of the passage it is in, so a 1 dB error in a
quiet window weighs as much as a 1 dB error in a loud one; 0.5 is halfway (in dB) between that and
the paper's loss. MR-STFT and MR-EESR are left as they are (a piecewise-constant weight would add
spectral edges at every window boundary).

GAIN-dB is the error of the gain reduction in dB: the model's gain over a window, out/in, minus the
compressor's is 10 log10(E_hat / E) because both share the input. The loud passages that dominate
MAE, ESR and MR-STFT weigh no more here than quiet ones above the floor, so gain reduction applied
below the threshold and slow releases back to 0 dB count at their size in dB. E_hat is clamped at
1e-12 (-120 dBFS) so a silent prediction over a loud target gives a large, finite error.

Epsilon choices (all chosen so that silence never gives NaN or Inf):
  * eps_eesr = 1e-5 is a mean energy (mean square): that of a signal whose RMS is -50 dBFS (a sine
    of -47 dBFS peak; a -50 dBFS-peak sine has 5e-6). Windows of the target quieter than that --
    fade-outs, noise floor, gaps between notes -- weigh their absolute energy error |E_hat - E|
    (scaled by 1e5) instead of a relative one, so a near-silent target window cannot blow up the
    mean with the ratio of two tiny numbers. A window at -30 dBFS RMS (E = 1e-3) sees a bias of 1%,
    louder ones less. Both silent: 0. Target silent, prediction not: E_hat / 1e-5, finite.
  * eps_esr = 1e-5 is a summed energy (the ESR denominator sums over the whole segment): a 4096-
    sample segment reaches it at an RMS of -86 dBFS, below the noise floor of 16-bit audio, so the
    bias on any real segment is negligible (2.4e-5 relative for 4096 samples at -40 dBFS RMS).
    Both silent: 0 / 1e-5 = 0. Target silent, prediction not: sum(y_hat^2) / 1e-5, finite.
  * eps_stft = 1e-8 is auraloss' own default: it clamps every squared STFT magnitude at 1e-8, so a
    silent target has magnitude 1e-4 in every bin; the spectral-convergence denominator and the
    logarithms stay finite. Both silent: exactly 0.

Inputs must be finite floating-point tensors of the same (batch, 1, samples) shape with at least as
many samples as the largest window (of either the STFT or the EESR resolutions); anything else
raises a ValueError (AudioInputError) that names the problem. Floating inputs of any precision are
computed in float32. Nothing is device-specific: auraloss moves its window to the input's device.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import torch
from auraloss.freq import MultiResolutionSTFTLoss
from torch import nn

from neuralcomp.errors import AudioInputError, ConfigError

TERM_NAMES = ("mae", "esr", "mr_stft", "mr_eesr")


@dataclass(frozen=True)
class LossConfig:
    """Weights, resolutions and epsilons of CompressorLoss (see the module docstring)."""

    mae_weight: float = 100.0
    esr_weight: float = 1.0
    mr_stft_weight: float = 1.0
    mr_eesr_weight: float = 1.0
    stft_windows: tuple[int, ...] = (512, 1024, 2048)
    """MR-STFT resolutions: FFT size = window length; hop = window / 4; Hann window."""
    eesr_windows: tuple[int, ...] = (512, 1024, 2048)
    """MR-EESR energy windows in samples; hop = window / 4."""
    esr_eps: float = 1e-5
    eesr_eps: float = 1e-5
    stft_eps: float = 1e-8
    gain_weight: float = 0.0
    """Weight of the gain-reduction error in dB (GAIN-dB in the module docstring); 0: the paper's loss."""
    gain_window: int = 441
    """GAIN-dB window in samples (non-overlapping); 441 = 10 ms at 44.1 kHz."""
    gain_floor_db: float = -50.0
    """GAIN-dB leaves out windows whose target RMS is under this level, in dBFS."""
    level_weighting: float = 0.0
    """Exponent of the level weighting of MAE and ESR, in [0, 1]: 0 is the paper's loss, 1 weighs each
    window's error relative to the target's RMS there (see the module docstring)."""
    level_window: int = 441
    """Level-weighting window in samples (non-overlapping); 441 = 10 ms at 44.1 kHz."""
    level_floor_db: float = -50.0
    """Windows quieter than this (dBFS) are weighted as if they were at this level."""

    def __post_init__(self) -> None:
        for name in ("mae_weight", "esr_weight", "mr_stft_weight", "mr_eesr_weight", "gain_weight"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise ConfigError(f"LossConfig.{name} must be a finite number >= 0, got {value!r}")
        for name in ("esr_eps", "eesr_eps", "stft_eps"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ConfigError(f"LossConfig.{name} must be a finite number > 0, got {value!r}")
        for name in ("stft_windows", "eesr_windows"):
            windows = tuple(getattr(self, name))
            if not windows:
                raise ConfigError(f"LossConfig.{name} must name at least one window")
            for window in windows:
                if isinstance(window, bool) or not isinstance(window, int) or window < 4 or window % 4:
                    raise ConfigError(
                        f"LossConfig.{name} must hold integers >= 4 divisible by 4 (hop = window / 4), "
                        f"got {window!r}")
            object.__setattr__(self, name, windows)
        for name in ("gain_window", "level_window"):
            window = getattr(self, name)
            if isinstance(window, bool) or not isinstance(window, int) or window < 1:
                raise ConfigError(f"LossConfig.{name} must be an integer >= 1 (samples), got {window!r}")
        for name in ("gain_floor_db", "level_floor_db"):
            level = getattr(self, name)
            if not (math.isfinite(level) and level < 0):
                raise ConfigError(f"LossConfig.{name} must be a finite level below 0 dBFS, got {level!r}")
        if not (math.isfinite(self.level_weighting) and 0.0 <= self.level_weighting <= 1.0):
            raise ConfigError(f"LossConfig.level_weighting must be an exponent in [0, 1], got {self.level_weighting!r}")

    @classmethod
    def from_dict(cls, data: dict | None) -> "LossConfig":
        """A LossConfig from a training preset's "loss" object (lists for the window tuples)."""
        data = dict(data or {})
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"unknown loss settings {unknown}; known: {sorted(known)}")
        for name in ("stft_windows", "eesr_windows"):
            if name in data and isinstance(data[name], list):
                data[name] = tuple(data[name])
        return cls(**data)

    @property
    def min_samples(self) -> int:
        """Shortest signal the loss accepts: the largest window of either resolution set (and of
        GAIN-dB when it is on)."""
        longest = max(max(self.stft_windows), max(self.eesr_windows))
        return max(longest, self.gain_window) if self.gain_weight > 0 else longest


class CompressorLoss(nn.Module):
    """100*MAE + ESR + MR-STFT + MR-EESR (weights from LossConfig); forward returns (total, terms)."""

    def __init__(self, config: LossConfig | None = None) -> None:
        super().__init__()
        self.config = config if config is not None else LossConfig()
        windows = list(self.config.stft_windows)
        self.mr_stft = MultiResolutionSTFTLoss(
            fft_sizes=windows,
            hop_sizes=[w // 4 for w in windows],
            win_lengths=windows,
            window="hann_window",
            eps=self.config.stft_eps,
        )

    def forward(self, prediction: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Loss of prediction against target, both (batch, 1, samples).

        Returns the weighted total (differentiable w.r.t. prediction) and a dict of detached scalar
        tensors: the unweighted terms 'mae', 'esr', 'mr_stft', 'mr_eesr' and the weighted 'total'.
        """
        prediction, target = _validate(prediction, target, self.config.min_samples)
        cfg = self.config
        time_prediction, time_target = prediction, target
        if cfg.level_weighting > 0:
            weights = level_weights(target, cfg.level_window, cfg.level_floor_db, cfg.level_weighting)
            time_prediction, time_target = prediction * weights, target * weights
        terms = {
            "mae": _mae(time_prediction, time_target),
            "esr": _esr(time_prediction, time_target, cfg.esr_eps),
            "mr_stft": self.mr_stft(prediction, target),
            "mr_eesr": _mr_eesr(prediction, target, cfg.eesr_windows, cfg.eesr_eps),
        }
        total = (cfg.mae_weight * terms["mae"] + cfg.esr_weight * terms["esr"]
                 + cfg.mr_stft_weight * terms["mr_stft"] + cfg.mr_eesr_weight * terms["mr_eesr"])
        if cfg.gain_weight > 0:
            terms["gain_db"] = gain_error_db(prediction, target, cfg.gain_window, cfg.gain_floor_db)
            total = total + cfg.gain_weight * terms["gain_db"]
        logged = {name: value.detach() for name, value in terms.items()}
        logged["total"] = total.detach()
        return total, logged


def _validate(prediction: torch.Tensor, target: torch.Tensor, min_samples: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Check shapes, dtypes, finiteness and length; return both as contiguous float32 tensors."""
    for name, tensor in (("prediction", prediction), ("target", target)):
        if not isinstance(tensor, torch.Tensor):
            raise AudioInputError(f"{name} must be a torch.Tensor, got {type(tensor).__name__}")
        if not tensor.is_floating_point():
            raise AudioInputError(f"{name} must be a floating-point tensor, got {tensor.dtype}")
        if tensor.dim() != 3 or tensor.shape[1] != 1 or tensor.shape[0] < 1:
            raise AudioInputError(
                f"{name} must have shape (batch, 1, samples) with batch >= 1, got {tuple(tensor.shape)}")
    if prediction.shape != target.shape:
        raise AudioInputError(
            f"prediction and target shapes differ: {tuple(prediction.shape)} vs {tuple(target.shape)}")
    if prediction.device != target.device:
        raise AudioInputError(f"prediction and target are on different devices: {prediction.device} vs {target.device}")
    samples = prediction.shape[-1]
    if samples < min_samples:
        raise AudioInputError(
            f"signals have {samples} samples but the loss needs at least {min_samples} "
            f"(its largest STFT/EESR window)")
    for name, tensor in (("prediction", prediction), ("target", target)):
        if not bool(torch.isfinite(tensor).all()):
            raise AudioInputError(f"{name} contains NaN or Inf values")
    return prediction.float().contiguous(), target.float().contiguous()


def _mae(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean absolute error over batch and samples."""
    return (prediction - target).abs().mean()


def _esr(prediction: torch.Tensor, target: torch.Tensor, eps: float) -> torch.Tensor:
    """Error-to-signal ratio per item, sum(e^2) / (sum(y^2) + eps), averaged over the batch."""
    error_energy = (target - prediction).square().sum(dim=(1, 2))
    target_energy = target.square().sum(dim=(1, 2))
    return (error_energy / (target_energy + eps)).mean()


def _window_energies(signal: torch.Tensor, window: int) -> torch.Tensor:
    """Mean square over windows of `window` samples, hop window / 4, no padding: (batch, 1, frames)."""
    return signal.square().unfold(-1, window, window // 4).mean(dim=-1)


def _mr_eesr(prediction: torch.Tensor, target: torch.Tensor, windows: tuple[int, ...], eps: float) -> torch.Tensor:
    """Energy-envelope error-to-signal ratio averaged over frames, batch and window sizes."""
    per_window = []
    for window in windows:
        predicted = _window_energies(prediction, window)
        wanted = _window_energies(target, window)
        per_window.append(((predicted - wanted).abs() / (wanted + eps)).mean())
    return torch.stack(per_window).mean()


def level_weights(target: torch.Tensor, window: int, floor_db: float, exponent: float) -> torch.Tensor:
    """Per-sample weights (batch, 1, samples), not differentiated: the target's RMS over non-overlapping
    windows of `window` samples (the last one may be shorter), floored at `floor_db` dBFS, to the power
    -exponent, scaled per item so that the weighted target keeps its energy (a silent item gets 1)."""
    batch, _, samples = target.shape
    energy = target.detach().square()
    whole = samples - samples % window
    energies = energy[..., :whole].reshape(batch, 1, -1, window).mean(dim=-1)
    if whole < samples:
        energies = torch.cat([energies, energy[..., whole:].mean(dim=-1, keepdim=True)], dim=-1)
    per_window = energies.clamp_min(10.0 ** (floor_db / 10.0)).pow(-0.5 * exponent)
    weights = per_window.repeat_interleave(window, dim=-1)[..., :samples]
    target_energy = energy.sum(dim=-1, keepdim=True)
    weighted_energy = (weights.square() * energy).sum(dim=-1, keepdim=True)
    silent = weighted_energy <= 0
    scale = torch.where(silent, 1.0 / weights[..., :1], (target_energy / weighted_energy.clamp_min(1e-30)).sqrt())
    return weights * scale


_GAIN_ENERGY_FLOOR = 1e-12  # -120 dBFS: a silent prediction gives a large, finite error


def gain_error_db(prediction: torch.Tensor, target: torch.Tensor, window: int, floor_db: float) -> torch.Tensor:
    """Mean |10 log10(E_hat / E)| over non-overlapping windows whose target RMS is at least `floor_db`
    dBFS (the gain-reduction error in dB, see the module docstring); 0 when no window is that loud."""
    predicted = prediction.square().unfold(-1, window, window).mean(dim=-1)
    wanted = target.square().unfold(-1, window, window).mean(dim=-1)
    loud = wanted >= 10.0 ** (floor_db / 10.0)
    ratio_db = 10.0 * torch.log10(predicted.clamp_min(_GAIN_ENERGY_FLOOR) / wanted.clamp_min(_GAIN_ENERGY_FLOOR))
    count = loud.sum()
    if int(count) == 0:
        return (ratio_db * 0.0).sum()  # zero, still attached to the prediction's graph
    return torch.where(loud, ratio_db.abs(), torch.zeros_like(ratio_db)).sum() / count
