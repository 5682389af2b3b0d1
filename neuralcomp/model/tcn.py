"""The TCN baseline, the training-time module (the paper's Figure 5, after Steinmetz and Reiss).

A causal temporal convolutional network reads the input and computes a gain-reduction signal that
multiplies the input: y[t] = g[t] * x[t]. Each block: dilated Conv1d (no padding) -> FiLM from the
controls -> PReLU, plus a residual (the block input, through a 1x1 conv where the channel count
changes), left-cropped to the conv output. A 1x1 conv maps the last block to the gain,
g = 10 ** (max_gain_db / 20) * sigmoid(o), initialised to unity gain (zero weights, a bias).

It is not recurrent, so there is no SPN and nothing to predict. Its state is the cached padding of
each conv: the last (k - 1) d samples of the block input. The call forms match SPTMod's, so the
same TBPTT trainer runs it:
  * no padding (`state=None`): input length L + receptive_field - 1 gives L outputs;
  * cached padding (`state=...`): input length L gives L outputs, every L >= 1.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from neuralcomp.config import TCNConfig
from neuralcomp.errors import AudioInputError, ConfigError
from neuralcomp.model.film import FiLMGenerator
from neuralcomp.model.sptmod import START_STATE_SECONDS


def tcn_start_state_samples(config: TCNConfig) -> int:
    """Silence that defines the start state: START_STATE_SECONDS, and never less than the receptive
    field, after which every cache holds only what silence produces."""
    return max(round(START_STATE_SECONDS * config.sample_rate), config.receptive_field - 1)


def gain_bias(max_gain_db: float) -> float:
    """The output bias that makes the initial gain 1: logit(10 ** (-max_gain_db / 20)), 0 at +6 dB."""
    fraction = 10.0 ** (-max_gain_db / 20.0)
    if not 0.0 < fraction < 1.0:
        return 0.0
    return math.log(fraction / (1.0 - fraction))


@dataclass
class ConvCacheState:
    """Cached padding of one TCN block: the tail of its input, (B, c_in, (k - 1) d)."""

    conv_cache: torch.Tensor

    BATCH_DIMS = (0,)  # batch dimension of each tensor (data-parallel training gathers along it)

    def detached(self) -> "ConvCacheState":
        return ConvCacheState(self.conv_cache.detach())

    def tensors(self) -> tuple[torch.Tensor, ...]:
        return (self.conv_cache,)


class TCNBlock(nn.Module):
    """Dilated causal Conv1d -> FiLM -> PReLU, plus the (1x1-projected) residual."""

    def __init__(self, in_channels: int, channels: int, kernel_size: int, dilation: int, config: TCNConfig) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.channels = channels
        self.kernel_size = kernel_size
        self.dilation = dilation
        self.conv = nn.Conv1d(in_channels, channels, kernel_size, dilation=dilation)
        self.film = FiLMGenerator(config.num_controls, config.film_hidden, channels) if config.num_controls else None
        self.activation = nn.PReLU(channels)
        self.residual = nn.Conv1d(in_channels, channels, 1) if in_channels != channels else None

    @property
    def context(self) -> int:
        """Past samples the conv needs beyond its output: (k - 1) d."""
        return (self.kernel_size - 1) * self.dilation

    def forward(self, x: torch.Tensor, controls: torch.Tensor) -> torch.Tensor:
        """x (B, c_in, T) -> (B, c, T - context)."""
        z = self.conv(x)
        if self.film is not None:
            gamma, beta = self.film(controls)
            z = torch.addcmul(beta.unsqueeze(-1), z, gamma.unsqueeze(-1))
        z = self.activation(z)
        skip = x[..., self.context:]
        if self.residual is not None:
            skip = self.residual(skip)
        return z + skip


class TCN(nn.Module):
    """The TCN baseline: forward(x, controls, state) -> (g * x, new state), with SPTMod's call forms."""

    state_type = ConvCacheState  # one per block; the trainer rebuilds carried state from its tensors

    def __init__(self, config: TCNConfig) -> None:
        super().__init__()
        self.config = config
        in_channels = (1,) + (config.channels,) * (config.num_blocks - 1)
        self.blocks = nn.ModuleList(
            TCNBlock(cin, config.channels, config.kernel_size, d, config)
            for cin, d in zip(in_channels, config.dilations)
        )
        self.to_gain = nn.Conv1d(config.channels, 1, 1)
        with torch.no_grad():  # start at unity gain: the model first passes the input through
            self.to_gain.weight.zero_()
            self.to_gain.bias.fill_(gain_bias(config.max_gain_db))
        self.max_gain = 10.0 ** (config.max_gain_db / 20.0)
        self.spn = None  # not recurrent: no state to predict

    @property
    def pool_size(self) -> int:
        return 1

    @property
    def receptive_field(self) -> int:
        return self.config.receptive_field

    def input_length(self, output_length: int) -> int:
        """Input samples a no-padding call needs for `output_length` outputs."""
        if output_length < 1:
            raise ConfigError(f"output length must be >= 1, got {output_length}")
        return output_length + self.receptive_field - 1

    def zero_state(self, batch: int) -> list[ConvCacheState]:
        ref = self.to_gain.weight
        return [ConvCacheState(torch.zeros(batch, b.in_channels, b.context, dtype=ref.dtype, device=ref.device))
                for b in self.blocks]

    def forward(
        self,
        x: torch.Tensor,
        controls: torch.Tensor,
        state: list[ConvCacheState] | None = None,
        initial_lstm: None = None,
    ) -> tuple[torch.Tensor, list[ConvCacheState]]:
        """x (B, 1, T), controls (B, n) in [0, 1] -> y (B, 1, L), new state.

        `state=None`: no padding, T = input_length(L). Otherwise cached padding: T = L >= 1.
        `initial_lstm` is accepted for SPTMod's call form and must be None (there is no LSTM)."""
        self._check_inputs(x, controls)
        if initial_lstm is not None:
            raise ConfigError("a TCN has no LSTM states to seed")
        if state is None:
            if x.shape[-1] < self.receptive_field:
                raise AudioInputError(f"a no-padding call needs at least the receptive field "
                                      f"({self.receptive_field} samples), got {x.shape[-1]}")
        elif len(state) != len(self.blocks):
            raise ConfigError(f"state has {len(state)} blocks, the model {len(self.blocks)}")
        h = x
        new_state: list[ConvCacheState] = []
        for j, block in enumerate(self.blocks):
            if state is not None:
                h = torch.cat([state[j].conv_cache, h], dim=-1)
            new_state.append(ConvCacheState(h[..., h.shape[-1] - block.context:]))
            h = block(h, controls)
        gain = self.max_gain * torch.sigmoid(self.to_gain(h))
        return gain * x[..., x.shape[-1] - gain.shape[-1]:], new_state

    def _check_inputs(self, x: torch.Tensor, controls: torch.Tensor) -> None:
        if x.dim() != 3 or x.shape[1] != 1:
            raise AudioInputError(f"expected audio of shape (batch, 1, samples), got {tuple(x.shape)}")
        expected = (x.shape[0], self.config.num_controls)
        if tuple(controls.shape) != expected:
            raise AudioInputError(f"expected controls of shape {expected}, got {tuple(controls.shape)}")

    @torch.no_grad()
    def start_state(self, controls: torch.Tensor) -> list[ConvCacheState]:
        """The state after tcn_start_state_samples of silence at `controls` (B, n), from the zero state;
        the exported module's reset() computes the same, and ST validation starts from it."""
        batch = controls.shape[0]
        silence = torch.zeros(batch, 1, tcn_start_state_samples(self.config), device=controls.device,
                              dtype=controls.dtype)
        _, state = self(silence, controls, self.zero_state(batch))
        return state
