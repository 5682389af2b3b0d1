"""SPTMod, the training-time module (DESIGN.md sections 2 and 3).

Two ways to call it, matching TBPTT:
  * no padding (`state=None`): the first iteration of a group. The input holds exactly the past
    samples needed for L outputs (`input_length(L)`), LSTMs start from given (h0, c0) (the SPN's),
    no zero is ever read.
  * cached padding (`state=...`): every later iteration, and streaming. Each conv keeps the tail
    of its previous input, each LSTM its (h, c), and each block the modulation of its last two
    frames for interpolation, so the input length equals the output length (a multiple of P).

The per-sample modulation is computed at frame rate and then interpolated: the 1x1 convolution
on the interpolated LSTM output u in the paper equals interpolating the 1x1 outputs, since both
are linear and the interpolation weights sum to 1. The streaming module computes it the same way.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from neuralcomp.config import SPTModConfig
from neuralcomp.errors import AudioInputError, ConfigError
from neuralcomp.model.film import FiLMGenerator
from neuralcomp.model.lengths import check_output_length, interpolation_delay_frames, plan_lengths
from neuralcomp.model.spn import StatePredictionNetwork

LSTMState = tuple[torch.Tensor, torch.Tensor]

# Seconds of silence that define the start state (DESIGN.md section 6); rounded up to whole frames.
START_STATE_SECONDS = 1.0


def interpolation_weights(pool_size: int) -> torch.Tensor:
    """Weight of the newer frame for each position r in a frame: (r + 1) / P, so the last sample of
    frame i carries LSTM frame i alone (paper mode) and the blend is continuous across frames."""
    return torch.arange(1, pool_size + 1, dtype=torch.float32) / pool_size


def start_state_samples(config: SPTModConfig) -> int:
    frames = -(-round(START_STATE_SECONDS * config.sample_rate) // config.pool_size)
    return frames * config.pool_size


@dataclass
class BlockState:
    """Cached-padding state of one ModBlock (batch B, conv input channels c_in, kernel k)."""

    conv_cache: torch.Tensor  # (B, c_in, k - 1): tail of the conv input
    lstm_h: torch.Tensor  # (1, B, H)
    lstm_c: torch.Tensor  # (1, B, H)
    modulation_history: torch.Tensor  # (B, n_mod, 2): modulation of the last two LSTM frames

    BATCH_DIMS = (0, 1, 1, 0)  # batch dimension of each tensor (data-parallel training gathers along it)

    def detached(self) -> "BlockState":
        return BlockState(*(t.detach() for t in self.tensors()))

    def tensors(self) -> tuple[torch.Tensor, ...]:
        return (self.conv_cache, self.lstm_h, self.lstm_c, self.modulation_history)


def _chrono_initialise(lstm: nn.LSTM, max_frames: int) -> None:
    """Chrono initialisation (Tallec and Ollivier, 2018): forget-gate biases log(u), u ~ U(1, T - 1), and
    input-gate biases -log(u), so the cells start with memory timescales spread up to T frames. PyTorch's
    default starts every forget gate near 0.5 (a memory of about one frame), and TBPTT pieces shorter
    than a compressor's release do not teach the LSTM a long one (docs/gain-reduction/README.md)."""
    hidden = lstm.hidden_size
    with torch.no_grad():
        log_timescales = torch.empty(hidden).uniform_(1.0, max_frames - 1.0).log()
        lstm.bias_ih_l0.zero_()
        lstm.bias_hh_l0.zero_()
        lstm.bias_ih_l0[:hidden] = -log_timescales  # gate order: input, forget, cell, output
        lstm.bias_ih_l0[hidden : 2 * hidden] = log_timescales


class ModBlock(nn.Module):
    """Conv1d -> PReLU -> TFiLM (pool, FiLM, LSTM, interpolate) -> affine modulation of both paths (of the
    audio path, a gain only with `audio_modulation: "gain"`)."""

    def __init__(
        self, in_channels: int, channels: int, kernel_size: int, config: SPTModConfig, modulates_next: bool
    ) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.channels = channels
        self.kernel_size = kernel_size
        self.pool_size = config.pool_size
        self.max_pooling = config.pooling == "max"
        self.gain_only = config.audio_modulation == "gain"
        self.delay_frames = interpolation_delay_frames(config.mode)
        self.modulates_next = modulates_next
        self.conv = nn.Conv1d(in_channels, channels, kernel_size)
        self.activation = nn.PReLU(channels)
        self.film = FiLMGenerator(config.num_controls, config.film_hidden, channels) if config.num_controls else None
        self.lstm = nn.LSTM(channels, config.lstm_hidden, batch_first=True)
        if config.chrono_init_frames:
            _chrono_initialise(self.lstm, config.chrono_init_frames)
        # Frame-rate 1x1 conv: [alpha_audio, delta_audio, alpha_mod (c), delta_mod (c)].
        self.projection = nn.Linear(config.lstm_hidden, 2 + (2 * channels if modulates_next else 0))
        with torch.no_grad():  # start near identity: scale 1, shift 0
            self.projection.bias.zero_()
            self.projection.bias[0] = 1.0
            if modulates_next:
                self.projection.bias[2 : 2 + channels] = 1.0
        self.register_buffer("weights", interpolation_weights(config.pool_size), persistent=False)
        keep = torch.ones(self.projection.out_features, 1)
        if self.gain_only:
            keep[1] = 0.0  # the audio path's shift delta
        self.register_buffer("projection_keep", keep, persistent=False)

    @property
    def modulation_channels(self) -> int:
        return self.projection.out_features

    def frame_projection(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The frame-rate 1x1's (weight, bias) as the model uses them: with a gain-only audio path the
        shift's row is zero (whatever the parameter holds), so the exporter writes what training ran."""
        if not self.gain_only:
            return self.projection.weight, self.projection.bias
        return self.projection.weight * self.projection_keep, self.projection.bias * self.projection_keep[:, 0]

    def zero_state(self, batch: int) -> BlockState:
        ref = self.projection.weight
        hidden = self.lstm.hidden_size
        rest = nn.functional.linear(torch.zeros(batch, 1, hidden, dtype=ref.dtype, device=ref.device),
                                    *self.frame_projection())
        return BlockState(
            conv_cache=torch.zeros(batch, self.in_channels, self.kernel_size - 1, dtype=ref.dtype, device=ref.device),
            lstm_h=torch.zeros(1, batch, hidden, dtype=ref.dtype, device=ref.device),
            lstm_c=torch.zeros(1, batch, hidden, dtype=ref.dtype, device=ref.device),
            modulation_history=rest.transpose(1, 2).expand(-1, -1, 2).contiguous(),
        )

    def forward(
        self,
        modulation_path: torch.Tensor,
        audio_path: torch.Tensor,
        controls: torch.Tensor,
        lstm_state: LSTMState | None,
        state: BlockState | None,
    ) -> tuple[torch.Tensor, torch.Tensor, BlockState]:
        """One block. Without `state` (no padding) `lstm_state` seeds the LSTM (None: zeros).

        Returns the modulated modulation path (empty for the last block), the modulated audio path
        (its last samples; `audio_path` must not be longer than the modulation) and the new state.
        """
        if state is None:
            conv_input = modulation_path
        else:
            conv_input = torch.cat([state.conv_cache, modulation_path], dim=-1)
            lstm_state = (state.lstm_h, state.lstm_c)
        cache_start = conv_input.shape[-1] - (self.kernel_size - 1)
        z = self.activation(self.conv(conv_input))
        # z's length is a multiple of P by construction
        if self.max_pooling:
            frames = nn.functional.max_pool1d(z, self.pool_size)
        else:
            frames = nn.functional.avg_pool1d(z, self.pool_size)
        if self.film is not None:
            gamma, beta = self.film(controls)
            frames = torch.addcmul(beta.unsqueeze(-1), frames, gamma.unsqueeze(-1))
        lstm_out, (h, c) = self.lstm(frames.transpose(1, 2), lstm_state)
        frame_modulation = nn.functional.linear(lstm_out, *self.frame_projection()).transpose(1, 2)  # (B, n_mod, F)
        num_frames = frame_modulation.shape[-1]
        if state is None:  # frame i (>= d) blends frames i-d and i-d+1
            sequence, first, count = frame_modulation, 0, num_frames - self.delay_frames
        else:  # two cached frames in front: frame i blends sequence[i+2-d] and sequence[i+3-d]
            sequence = torch.cat([state.modulation_history, frame_modulation], dim=-1)
            first, count = 2 - self.delay_frames, num_frames
        modulation = self._interpolate(sequence, first, count)
        new_state = BlockState(
            conv_input[..., cache_start:], h, c, sequence[..., sequence.shape[-1] - 2 :]
        )
        length = audio_path.shape[-1]
        if length > modulation.shape[-1]:
            raise AudioInputError(f"audio path ({length}) longer than modulation ({modulation.shape[-1]})")
        audio_path = torch.addcmul(
            modulation[:, 1:2, -length:], modulation[:, 0:1, -length:], audio_path
        )
        if not self.modulates_next:
            return z[:, :0], audio_path, new_state
        z = z[..., z.shape[-1] - modulation.shape[-1] :]
        c = self.channels
        return torch.addcmul(modulation[:, 2 + c :], modulation[:, 2 : 2 + c], z), audio_path, new_state

    def _interpolate(self, sequence: torch.Tensor, first: int, count: int) -> torch.Tensor:
        """Blend frames sequence[first+i] -> sequence[first+i+1] over the P samples of output frame i."""
        older = sequence[..., first : first + count].unsqueeze(-1)
        newer = sequence[..., first + 1 : first + 1 + count].unsqueeze(-1)
        # under bf16 autocast the frames are bf16; lerp needs its weights in the same dtype
        blended = torch.lerp(older, newer, self.weights.to(older.dtype))  # (B, n_mod, count, P)
        return blended.flatten(-2)


class SPTMod(nn.Module):
    """The SPTMod processor plus its optional State Prediction Network."""

    state_type = BlockState  # one per block; the trainer rebuilds carried state from its tensors

    def __init__(self, config: SPTModConfig) -> None:
        super().__init__()
        self.config = config
        self.plan = plan_lengths(config)
        # the modulation path starts as [x; sidechain]: 1 + S channels (the audio path gets x only)
        in_channels = (1 + config.sidechain,) + config.channels[:-1]
        last = config.num_blocks - 1
        self.blocks = nn.ModuleList(
            ModBlock(cin, cout, k, config, modulates_next=j < last)
            for j, (cin, cout, k) in enumerate(zip(in_channels, config.channels, config.kernel_sizes))
        )
        self.spn = (
            StatePredictionNetwork(config.spn, config.num_controls, config.lstm_hidden, config.num_blocks)
            if config.spn is not None
            else None
        )

    @property
    def pool_size(self) -> int:
        return self.config.pool_size

    def input_length(self, output_length: int) -> int:
        """Input samples a no-padding call needs for `output_length` outputs."""
        return self.plan.input_length(output_length)

    def zero_state(self, batch: int) -> list[BlockState]:
        return [block.zero_state(batch) for block in self.blocks]

    def forward(
        self,
        x: torch.Tensor,
        controls: torch.Tensor,
        state: list[BlockState] | None = None,
        initial_lstm: list[LSTMState] | None = None,
        sidechain: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, list[BlockState]]:
        """x (B, 1, T), controls (B, n) in [0, 1] -> y (B, 1, L), new state.

        `state=None`: no padding, T = input_length(L), LSTMs from `initial_lstm` (zeros if None).
        Otherwise cached padding: T = L, a multiple of P. `sidechain` (B, S, T): the key channels of a
        model with `config.sidechain = S > 0` (required then, refused otherwise); modulation path only.
        """
        self._check_inputs(x, controls, sidechain)
        length = x.shape[-1]
        if state is None:
            output_length = length - self.plan.extra_input_samples
            check_output_length(output_length, self.pool_size)
            lstm_states: list[LSTMState | None] = list(initial_lstm) if initial_lstm else [None] * len(self.blocks)
            if len(lstm_states) != len(self.blocks):
                raise ConfigError(f"{len(lstm_states)} initial LSTM states for {len(self.blocks)} blocks")
        else:
            output_length = length
            check_output_length(output_length, self.pool_size)
            if len(state) != len(self.blocks):
                raise ConfigError(f"state has {len(state)} blocks, the model {len(self.blocks)}")
        audio = x[..., length - output_length :]
        modulation = x if sidechain is None else torch.cat([x, sidechain.to(x.dtype)], dim=1)
        new_state: list[BlockState] = []
        for j, block in enumerate(self.blocks):
            if state is None:  # left-crop to exactly what this block's conv needs
                needed = output_length - self.plan.blocks[j].conv_input_start
                modulation = modulation[..., modulation.shape[-1] - needed :]
                modulation, audio, block_state = block(modulation, audio, controls, lstm_states[j], None)
            else:
                modulation, audio, block_state = block(modulation, audio, controls, None, state[j])
            new_state.append(block_state)
        return audio, new_state

    def _check_inputs(self, x: torch.Tensor, controls: torch.Tensor, sidechain: torch.Tensor | None) -> None:
        if x.dim() != 3 or x.shape[1] != 1:
            raise AudioInputError(f"expected audio of shape (batch, 1, samples), got {tuple(x.shape)}")
        keys = self.config.sidechain
        if keys == 0 and sidechain is not None:
            raise AudioInputError(f"this model has no sidechain input, got a sidechain of shape {tuple(sidechain.shape)}")
        if keys > 0:
            expected_sidechain = (x.shape[0], keys, x.shape[-1])
            if sidechain is None:
                raise AudioInputError(f"this model needs a sidechain of shape {expected_sidechain} "
                                      f"(batch, sidechain channels, samples) with the audio {tuple(x.shape)}")
            if tuple(sidechain.shape) != expected_sidechain:
                raise AudioInputError(f"sidechain of shape {tuple(sidechain.shape)} does not match the audio "
                                      f"{tuple(x.shape)}: expected {expected_sidechain}")
        expected = (x.shape[0], self.config.num_controls)
        if tuple(controls.shape) != expected:
            raise AudioInputError(f"expected controls of shape {expected}, got {tuple(controls.shape)}")

    @torch.no_grad()
    def start_state(self, controls: torch.Tensor) -> list[BlockState]:
        """The state after START_STATE_SECONDS of silence at `controls` (B, n), from the zero state.

        The exported module's reset() computes the same; ST validation starts from it too.
        """
        batch = controls.shape[0]
        samples = start_state_samples(self.config)
        silence = torch.zeros(batch, 1, samples, device=controls.device, dtype=controls.dtype)
        quiet_key = (torch.zeros(batch, self.config.sidechain, samples, device=controls.device, dtype=controls.dtype)
                     if self.config.sidechain else None)
        _, state = self(silence, controls, self.zero_state(batch), sidechain=quiet_key)
        return state
