"""Adaptive TBPTT truncation (Aicher, Foti and Fox, seeds/003; issue 12 part 1; docs/adaptive-tbptt.md).

One long backward pass measures how the gradient of the loss with respect to the carried state decays
with the lag: the model streams a window of K·L samples from the start state, a zero "probe" is
added to the whole carried state every S samples, and the loss covers only the window's last samples,
so the gradient at probe j is d loss / d state at lag j·S before the loss. A least-squares line
through log norms over lags >= S gives the geometric rate r per sample (the paper's assumption:
geometric decay in expectation). A TBPTT piece of L outputs back-propagates output t over t samples
only, so the share of the state gradient it drops, averaged over the piece, is
    bias(L) = mean over t < L of r^t = (1 - r^L) / (L (1 - r)),
and the smallest L (a multiple of P) with bias(L) <= delta is chosen. Choosing N instead keeps L and
applies the same formula to the group, N·L: the share of the group's outputs still steered by the
SPN's predicted state rather than by the model's own.

A sidechain model gets the key of the same window, cut into the same pieces, as the training step
feeds it: the state's gradient then also carries what the key did to the loss.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np
import torch

from neuralcomp.model.sptmod import BlockState, SPTMod
from neuralcomp.training.loss import CompressorLoss


class TruncationEstimateWarning(RuntimeWarning):
    """The decay could not be estimated (no gradient, no decay, too little data): the configured L/N stays."""


@dataclass(frozen=True)
class DecayEstimate:
    """Gradient norms per lag and the geometric rate fitted to them (None when no fit was possible)."""

    lag_samples: int  # S, the spacing of the measured lags
    norms: tuple[float, ...]  # ||d loss / d state|| at lags 0, S, 2S, ...
    rate_per_sample: float | None

    @property
    def memory_samples(self) -> float:
        """Time constant of the fitted decay, -1 / ln r (inf without a fit)."""
        if self.rate_per_sample is None:
            return math.inf
        return -1.0 / math.log(self.rate_per_sample) if self.rate_per_sample > 0 else 0.0


def fit_geometric_rate(norms: list[float] | tuple[float, ...], lag_samples: int, first_lag: int = 1) -> float | None:
    """Rate per sample of a geometric decay through `norms[first_lag:]` (least squares on log norms);
    None when fewer than two lags have a positive finite norm or the fit does not decay."""
    lags = [j for j in range(first_lag, len(norms)) if math.isfinite(norms[j]) and norms[j] > 0]
    if len(lags) < 2:
        return None
    x = np.array(lags, dtype=np.float64) * lag_samples
    y = np.log(np.array([norms[j] for j in lags], dtype=np.float64))
    slope = float(np.polyfit(x, y, 1)[0])
    if not math.isfinite(slope) or slope >= 0.0:
        return None
    return math.exp(slope)


def relative_bias(rate_per_sample: float, length: int) -> float:
    """Mean over t < length of r^t: the share of the state gradient a piece of `length` outputs drops."""
    if rate_per_sample <= 0.0:
        return 1.0 / length  # only the lag-0 term survives
    log_rate = math.log(rate_per_sample)
    return -math.expm1(length * log_rate) / (length * -math.expm1(log_rate))


def choose_truncation(rate_per_sample: float, tolerance: float, candidates: list[int],
                      scale: int = 1) -> tuple[int, float]:
    """The smallest candidate c with relative_bias(r, c·scale) <= tolerance, else the largest; with its bias."""
    for candidate in candidates:
        bias = relative_bias(rate_per_sample, candidate * scale)
        if bias <= tolerance:
            return candidate, bias
    return candidates[-1], relative_bias(rate_per_sample, candidates[-1] * scale)


def _probe(state: list[BlockState], probes: list[torch.Tensor]) -> list[BlockState]:
    """The state plus zero tensors that require gradients: their gradient is the state's, and the
    gradient still flows on to earlier lags."""
    probed = []
    for block in state:
        added = [torch.zeros_like(t, requires_grad=True) for t in block.tensors()]
        probes.extend(added)
        probed.append(type(block)(*(t + z for t, z in zip(block.tensors(), added))))
    return probed


def measure_gradient_decay(model: SPTMod, inputs: torch.Tensor, targets: torch.Tensor, controls: torch.Tensor,
                           lag_samples: int, loss_samples: int, loss: CompressorLoss,
                           sidechain: torch.Tensor | None = None) -> tuple[float, ...]:
    """||d loss / d carried state|| at lags 0, S, 2S, ... before the last `loss_samples` of the window.

    inputs/targets (B, 1, W): W - loss_samples a multiple of S, S and loss_samples multiples of P;
    `sidechain` (B, S, W): the key of a sidechain model (required then), cut like the inputs.
    The model streams the window from its start state; no parameter gradient is touched."""
    window = inputs.shape[-1]
    lead = window - loss_samples
    state = [s.detached() for s in model.start_state(controls)]
    per_lag: list[list[torch.Tensor]] = []
    with torch.enable_grad():
        for start in range(0, lead, lag_samples):
            probes: list[torch.Tensor] = []
            state = _probe(state, probes)
            per_lag.append(probes)
            _, state = model(inputs[..., start:start + lag_samples], controls, state,
                             **_key(sidechain, start, start + lag_samples))
        probes = []
        state = _probe(state, probes)
        per_lag.append(probes)
        prediction, _ = model(inputs[..., lead:], controls, state, **_key(sidechain, lead, window))
        total, _ = loss(prediction, targets[..., lead:])
        flat = [p for group in per_lag for p in group]
        grads = torch.autograd.grad(total, flat, allow_unused=True)
    norms, k = [], 0
    for group in per_lag:
        squares = sum(float(g.double().pow(2).sum()) for g in grads[k:k + len(group)] if g is not None)
        norms.append(math.sqrt(squares))
        k += len(group)
    return tuple(reversed(norms))  # lag 0 first


def _key(sidechain: torch.Tensor | None, start: int, end: int) -> dict[str, torch.Tensor]:
    """The model's `sidechain` argument for samples [start, end) (none for a model without a key)."""
    return {} if sidechain is None else {"sidechain": sidechain[..., start:end]}


def estimate_decay(model: SPTMod, inputs: torch.Tensor, targets: torch.Tensor, controls: torch.Tensor,
                   lag_samples: int, loss_samples: int, loss: CompressorLoss,
                   sidechain: torch.Tensor | None = None) -> DecayEstimate:
    """measure_gradient_decay, then the fitted rate (None, with a TruncationEstimateWarning, when none fits)."""
    was_training = model.training
    model.eval()
    try:
        norms = measure_gradient_decay(model, inputs, targets, controls, lag_samples, loss_samples, loss, sidechain)
    finally:
        model.train(was_training)
    rate = fit_geometric_rate(norms, lag_samples)
    if rate is None:
        warnings.warn(f"adaptive truncation: no geometric decay to fit in the gradient norms per lag "
                      f"({', '.join(f'{n:.3g}' for n in norms[:6])}{', ...' if len(norms) > 6 else ''}); "
                      "keeping the configured truncation", TruncationEstimateWarning, stacklevel=2)
    return DecayEstimate(lag_samples, norms, rate)
