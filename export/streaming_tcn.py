"""The streaming TCN baseline that is scripted to TorchScript (DESIGN.md section 6, as for SPTMod).

Same host interface as StreamingSPTMod: forward(x (C, T), controls (n,) or (n, T)) -> y (C, T),
reset(channels, controls), set_linked, state_names / get_state / set_state, the same attributes.
Layout is time-major, (channels, samples, features); the channels of a signal are the batch.

Bitwise streaming. Every output sample is computed with shapes that do not depend on the buffer
length: each dilated conv is a gather of its k taps + one matmul (rows padded to MIN_MATMUL_ROWS, as
in export/streaming.py), the residual 1x1 and the gain head are matmuls the same way, and the rest
is elementwise. The gain head's single output column is padded to GAIN_COLUMNS zero columns: with one
column MKL takes a matrix-vector path whose result for a row depends on the row count. The cached padding of block j is the last (k - 1) d_j samples of its input.

Controls take effect per sample (the "frame" is one sample: pool_size 1): with a control track
(n, T), sample t uses the FiLM of controls[:, t], computed once per run of equal values and always
with one row, so a control change at a buffer boundary gives the same result as the track.

Start state: the zero state, then tcn_start_state_samples of silence at the controls. Non-finite
input mutes the buffer and restores that start state. Linked stereo: one detector path (per sample
the channel of largest magnitude, signed) computes the gain that multiplies every channel.
"""

from typing import List

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from export.streaming import MIN_MATMUL_ROWS, _copy, _matmul_rows
from neuralcomp.model.tcn import TCN, TCNBlock, tcn_start_state_samples

GAIN_COLUMNS = 8


class _StreamingTCNBlock(nn.Module):
    """One TCN block with its cached padding as a buffer."""

    film_weights: List[Tensor]

    def __init__(self, block: TCNBlock) -> None:
        super().__init__()
        c_in, channels, kernel = block.in_channels, block.channels, block.kernel_size
        self.in_channels = c_in
        self.channels = channels
        self.kernel_size = kernel
        self.dilation = block.dilation
        self.context = block.context
        self.min_matmul_rows = MIN_MATMUL_ROWS
        self.has_film = block.film is not None
        self.has_residual_projection = block.residual is not None
        # conv weight as (c_in * k, c): row i * k + tap, the order of the gathered taps below
        self.register_buffer("conv_weight_t", _copy(block.conv.weight.reshape(channels, c_in * kernel).t()))
        self.register_buffer("conv_bias", _copy(block.conv.bias))
        self.register_buffer("prelu_weight", _copy(block.activation.weight))
        if block.residual is not None:
            self.register_buffer("residual_weight_t", _copy(block.residual.weight.reshape(channels, c_in).t()))
            self.register_buffer("residual_bias", _copy(block.residual.bias))
        else:
            self.register_buffer("residual_weight_t", torch.zeros(0))
            self.register_buffer("residual_bias", torch.zeros(0))
        film_params: List[Tensor] = []
        if block.film is not None:
            mlp = block.film.mlp
            film_params = [mlp[0].weight.t(), mlp[0].bias, mlp[1].weight, mlp[2].weight.t(), mlp[2].bias,
                           mlp[3].weight, mlp[4].weight.t(), mlp[4].bias]
        self.film_weights = [_copy(p) for p in film_params]
        self.register_buffer("conv_cache", torch.zeros(1, self.context, c_in))  # state: (D, (k-1) d, c_in)
        self.register_buffer("film_params", torch.zeros(2, channels))  # (gamma; beta) at the last controls

    def zero_state(self, num_paths: int) -> None:
        self.conv_cache = torch.zeros(num_paths, self.context, self.in_channels)

    def compute_film(self, controls: Tensor) -> Tensor:
        """controls (1, n) -> (gamma; beta) as (2, c); always one row, so always the same kernels."""
        w = self.film_weights
        hidden = F.prelu(torch.addmm(w[1], controls, w[0]), w[2])
        hidden = F.prelu(torch.addmm(w[4], hidden, w[3]), w[5])
        return torch.addmm(w[7], hidden, w[6]).view(2, self.channels)

    def process(self, h: Tensor, film: Tensor) -> Tensor:
        """h (D, T, c_in) -> (D, T, c); film (T or 1, 2, c) (unused without controls)."""
        num_paths = h.size(0)
        length = h.size(1)
        extended = torch.cat([self.conv_cache, h], 1)
        if self.context > 0:
            self.conv_cache = extended.narrow(1, length, self.context)
        # taps t, t + d, ..., t + (k-1) d of the extended input for output t: (D, T, c_in, k)
        taps = extended.unfold(1, self.context + 1, 1)
        if self.dilation > 1:
            taps = taps[:, :, :, :: self.dilation]
        rows = taps.reshape(num_paths * length, self.in_channels * self.kernel_size)
        z = _matmul_rows(rows, self.conv_weight_t, self.conv_bias, self.min_matmul_rows)
        if self.has_film:
            z = z.view(num_paths, length, self.channels)
            gamma, beta = film.unbind(1)
            z = torch.addcmul(beta, z, gamma).reshape(num_paths * length, self.channels)
        z = F.prelu(z, self.prelu_weight).view(num_paths, length, self.channels)
        if self.has_residual_projection:
            skip = _matmul_rows(h.reshape(num_paths * length, self.in_channels), self.residual_weight_t,
                                self.residual_bias, self.min_matmul_rows).view(num_paths, length, self.channels)
        else:
            skip = h
        return z + skip

    def state_shape(self, num_paths: int) -> List[int]:
        return [num_paths, self.context, self.in_channels]


class StreamingTCN(nn.Module):
    """Buffer-by-buffer TCN for hosts: forward(x (C, T), controls (n,) or (n, T)) -> y (C, T)."""

    start_snapshot: List[Tensor]
    control_names: List[str]
    control_minimum: List[float]
    control_maximum: List[float]
    control_default: List[float]
    control_log_mapping: List[bool]

    def __init__(self, model: TCN, metadata_json: str, schema_version: int) -> None:
        super().__init__()
        config = model.config
        self.neuralcomp_schema_version = schema_version
        self.metadata_json = metadata_json
        self.architecture = "tcn"
        self.sample_rate = config.sample_rate
        self.pool_size = 1
        self.paper_mode = False
        self.mode = "causal"
        self.latency_samples = 0
        self.receptive_field = config.receptive_field
        self.num_controls = config.num_controls
        self.control_names = [c.name for c in config.controls]
        self.control_minimum = [float(c.minimum) for c in config.controls]
        self.control_maximum = [float(c.maximum) for c in config.controls]
        self.control_default = [float(c.default) for c in config.controls]
        self.control_log_mapping = [c.mapping == "log" for c in config.controls]
        self.start_state_samples = tcn_start_state_samples(config)
        self.blocks = nn.ModuleList(_StreamingTCNBlock(block) for block in model.blocks)
        self.channels = config.channels
        self.min_matmul_rows = MIN_MATMUL_ROWS
        # (c, GAIN_COLUMNS) and (GAIN_COLUMNS,): column 0 is the 1x1 conv to the gain, the rest zeros
        self.register_buffer("gain_weight_t", F.pad(_copy(model.to_gain.weight.reshape(1, config.channels).t()),
                                                    [0, GAIN_COLUMNS - 1]))
        self.register_buffer("gain_bias", F.pad(_copy(model.to_gain.bias), [0, GAIN_COLUMNS - 1]))
        self.max_gain = float(model.max_gain)
        self.num_channels = 1
        self.linked = False
        self.phase = 0  # always 0: every sample is a whole frame (kept for the hosts' state layout)
        self.register_buffer("film_controls", torch.full([max(self.num_controls, 1)], float("nan")))
        self.start_snapshot = []
        self.nonfinite_buffers = 0

    # ---- the real-time path -------------------------------------------------------------------
    def forward(self, x: Tensor, controls: Tensor) -> Tensor:
        if x.dim() != 2 or x.size(0) != self.num_channels:
            raise ValueError(
                "audio must be (channels, samples) with " + str(self.num_channels)
                + " channels (call reset(channels, controls) to change), got " + str(x.shape)
            )
        if x.dtype != torch.float32:
            raise ValueError("audio must be float32, got " + str(x.dtype))
        self._check_controls(controls, x.size(1))
        length = x.size(1)
        if length == 0:
            return torch.zeros_like(x)
        if not bool(torch.isfinite(x).all()):
            self._restore(self.start_snapshot)
            self.nonfinite_buffers += 1
            return torch.zeros_like(x)
        film = self._film_for_call(controls)
        detector = x
        if self.linked and x.size(0) > 1:
            loudest = x.abs().argmax(0, keepdim=True)
            detector = x.gather(0, loudest)
        h = detector.unsqueeze(2)
        for j, block in enumerate(self.blocks):
            h = block.process(h, film[j])
        num_paths = h.size(0)
        out = _matmul_rows(h.reshape(num_paths * length, self.channels), self.gain_weight_t, self.gain_bias,
                           self.min_matmul_rows).select(1, 0)
        gain = self.max_gain * torch.sigmoid(out.view(num_paths, length))
        return gain * x

    def _check_controls(self, controls: Tensor, length: int) -> None:
        ok = controls.dtype == torch.float32 and controls.size(0) == self.num_controls
        if controls.dim() == 2:
            ok = ok and controls.size(1) == length
        elif controls.dim() != 1:
            ok = False
        if not ok:
            raise ValueError(
                "controls must be float32 of shape (" + str(self.num_controls) + ",) or ("
                + str(self.num_controls) + ", samples), got " + str(controls.shape) + " " + str(controls.dtype)
            )

    def _film_for_call(self, controls: Tensor) -> List[Tensor]:
        """Per block, the FiLM (gamma; beta) of each sample: (1, 2, c) when the controls do not change
        in the call, else (T, 2, c), computed once per run of equal control values."""
        film: List[Tensor] = []
        if self.num_controls == 0:
            for _ in self.blocks:
                film.append(torch.zeros(0))
            return film
        if controls.dim() == 1 or controls.size(1) == 1:
            self._update_film(controls.reshape(self.num_controls))
            for block in self.blocks:
                film.append(block.film_params.unsqueeze(0))
            return film
        changed = (controls.narrow(1, 1, controls.size(1) - 1) != controls.narrow(1, 0, controls.size(1) - 1)).any(0)
        starts = torch.cat([torch.zeros(1, dtype=torch.long), changed.nonzero().flatten() + 1])
        run_of_sample = torch.cat([torch.zeros(1, dtype=torch.long), changed.long().cumsum(0)])
        per_block: List[List[Tensor]] = []
        for _ in self.blocks:
            per_block.append([])
        for r in range(starts.size(0)):
            self._update_film(controls.select(1, int(starts[r])))
            for j, block in enumerate(self.blocks):
                per_block[j].append(block.film_params)
        for j in range(len(per_block)):
            if len(per_block[j]) == 1:
                film.append(per_block[j][0].unsqueeze(0))
            else:
                film.append(torch.stack(per_block[j], 0).index_select(0, run_of_sample))
        return film

    def _update_film(self, controls: Tensor) -> None:
        if torch.equal(controls, self.film_controls):
            return
        self.film_controls = controls.clone()
        for block in self.blocks:
            block.film_params = block.compute_film(controls.unsqueeze(0))

    # ---- state management ---------------------------------------------------------------------
    @torch.jit.export
    def reset(self, num_channels: int, controls: Tensor) -> None:
        """Zero state for `num_channels` channels, then the silence warm-up at `controls`."""
        if num_channels < 1:
            raise ValueError("num_channels must be >= 1, got " + str(num_channels))
        self._check_controls(controls, 0)
        if controls.dim() != 1:
            raise ValueError("reset takes one control vector of shape (" + str(self.num_controls) + ",)")
        self.num_channels = num_channels
        for block in self.blocks:
            block.zero_state(self._detector_channels())
        self.start_snapshot = []
        self.forward(torch.zeros(num_channels, self.start_state_samples), controls)
        self.start_snapshot = self.get_state()
        self._restore(self.start_snapshot)  # compact copies, not views of the warm-up's intermediates

    @torch.jit.export
    def set_linked(self, linked: bool, controls: Tensor) -> None:
        """Linked mode on or off, then reset: linked, one detector path drives the gain of every channel."""
        self.linked = linked
        self.reset(self.num_channels, controls)

    def _detector_channels(self) -> int:
        return 1 if self.linked else self.num_channels

    @torch.jit.export
    def state_names(self) -> List[str]:
        names = ["phase"]
        for j in range(len(self.blocks)):
            names.append("block" + str(j) + ".conv_cache")
        return names

    @torch.jit.export
    def get_state(self) -> List[Tensor]:
        state = [torch.tensor(self.phase, dtype=torch.int64)]
        for block in self.blocks:
            state.append(block.conv_cache.clone())
        return state

    @torch.jit.export
    def set_state(self, state: List[Tensor]) -> None:
        """Restore a `get_state()` snapshot; shapes are checked against this model and stream."""
        names = self.state_names()
        if len(state) != len(names):
            raise ValueError("state has " + str(len(state)) + " tensors, this model needs " + str(len(names)))
        if state[0].numel() != 1 or int(state[0].item()) != 0:
            raise ValueError("state 'phase' must be the scalar 0 for a TCN")
        j = 1
        for block in self.blocks:
            expected = block.state_shape(self._detector_channels())
            if state[j].dtype != torch.float32:
                raise ValueError("state '" + names[j] + "' must be float32")
            if list(state[j].shape) != expected:
                raise ValueError(
                    "state '" + names[j] + "' must have shape " + str(expected) + ", got " + str(list(state[j].shape))
                    + " (reset to the snapshot's channel count and linked setting first)"
                )
            j += 1
        self._restore(state)

    def _restore(self, state: List[Tensor]) -> None:
        self.phase = 0
        j = 1
        for block in self.blocks:
            block.conv_cache = state[j].clone()
            j += 1
