"""Length arithmetic for SPTMod without zero padding (DESIGN.md section 3).

Time is measured relative to the first of the L wanted output samples (t = 0 ... L-1), so every
tensor ends at t = L and is described by where it starts. All pooling grids are aligned to
multiples of P in this time axis; that is what lets later cached-padding iterations and the
streaming module continue on the same frame grid.

Derivation, block j of B (kernel k_j), with d = frames of delay of the interpolation
(d = 1 in paper mode: sample in frame i blends LSTM frames i-1 and i; d = 2 in causal mode:
frames i-2 and i-1):
  * pool input (= conv output) starts at s_j, a multiple of P, so it holds (L - s_j) / P frames;
  * without a cached previous frame, the first d frames have no interpolation partner, so the
    modulation starts at s_j + d*P;
  * the audio path needs the last block's modulation from t = 0:  s_B + d*P <= 0  ->  s_B = -d*P;
  * block j+1's conv needs its input from s_{j+1} - (k_{j+1} - 1), and that input is block j's
    modulated output:  s_j + d*P <= s_{j+1} - (k_{j+1} - 1); the largest multiple of P that fits is
    s_j = -P * ceil((d*P - s_{j+1} + k_{j+1} - 1) / P);
  * the model input starts at s_1 - (k_1 - 1), so it is L - s_1 + k_1 - 1 samples long.
Each longer tensor is cropped on its left where two meet. Paper mode, P = 64: SPTMod24 needs L + 328
and SPTMod25 L + 450 input samples, the figures of the SPTMod authors.
"""

from __future__ import annotations

from dataclasses import dataclass

from neuralcomp.config import SPNConfig, SPTModConfig, TCNConfig
from neuralcomp.errors import ConfigError


def interpolation_delay_frames(mode: str) -> int:
    """Frames between a pooling frame and the first output sample it fully modulates (d above)."""
    return 1 if mode == "paper" else 2


@dataclass(frozen=True)
class BlockSpan:
    """Where one ModBlock's tensors start (t <= 0) in a no-padding call; all end at t = L."""

    conv_input_start: int
    pool_start: int
    modulation_start: int


@dataclass(frozen=True)
class LengthPlan:
    """Input padding and per-block spans of a configuration for a no-padding first iteration."""

    pool_size: int
    blocks: tuple[BlockSpan, ...]

    @property
    def extra_input_samples(self) -> int:
        """Input samples needed beyond L: L_nopad = L + extra_input_samples."""
        return -self.blocks[0].conv_input_start

    def input_length(self, output_length: int) -> int:
        check_output_length(output_length, self.pool_size)
        return output_length + self.extra_input_samples

    def receptive_field(self) -> int:
        """Samples of the model input that influence the first output sample without cached state."""
        return self.extra_input_samples + 1


def check_output_length(output_length: int, pool_size: int) -> None:
    if output_length < pool_size or output_length % pool_size:
        raise ConfigError(
            f"output length {output_length} must be a positive multiple of the pool size {pool_size}"
        )


def plan_lengths(config: SPTModConfig) -> LengthPlan:
    """Minimal no-padding spans for `config` (see the module docstring for the derivation)."""
    pool = config.pool_size
    delay = interpolation_delay_frames(config.mode) * pool
    spans: list[BlockSpan] = []
    next_conv_input_start = 0  # the audio path needs modulation from t = 0
    for kernel in reversed(config.kernel_sizes):
        # largest multiple of P with pool_start + delay <= next_conv_input_start
        pool_start = -pool * ((delay - next_conv_input_start + pool - 1) // pool)
        spans.append(BlockSpan(pool_start - (kernel - 1), pool_start, pool_start + delay))
        next_conv_input_start = pool_start - (kernel - 1)
    return LengthPlan(pool, tuple(reversed(spans)))


def spn_lookback(spn: SPNConfig) -> int:
    """Input length that the SPN shrinks to exactly one value: n <- pool*n + kernel - 1, `blocks` times."""
    length = 1
    for _ in range(spn.blocks):
        length = spn.pool_size * length + spn.kernel_size - 1
    return length


def first_iteration_input_length(config: SPTModConfig | TCNConfig, output_length: int, use_spn: bool = True) -> int:
    """L_in0 = L + max(L_nopad - L, L_lookback) (paper section 2.4.3): SPN window then processor window.
    A TCN has no SPN: its receptive field minus one is the look-back (warm-up) of every first iteration."""
    if isinstance(config, TCNConfig):
        check_training_window(config, output_length)
        return output_length + config.receptive_field - 1
    plan = plan_lengths(config)
    extra = plan.extra_input_samples
    if use_spn and config.spn is not None:
        extra = max(extra, spn_lookback(config.spn))
    return plan.input_length(output_length) - plan.extra_input_samples + extra


def check_training_window(config: TCNConfig, length: int) -> None:
    """Refuse a TCN whose receptive field exceeds the training window L: most of what it sees would
    never be trained on a full window (and longer windows cost memory), so say both lengths."""
    if config.receptive_field > length:
        raise ConfigError(
            f"the TCN preset {config.name!r} has a receptive field of {config.receptive_field} samples "
            f"({config.receptive_field_ms():.1f} ms), longer than the training window L = {length} samples: "
            f"use L >= {config.receptive_field} or smaller dilations/kernel"
        )
