"""The streaming SPTMod that is scripted to TorchScript (DESIGN.md section 6).

Layout is time-major, (channels, samples, features), with the channels of a multichannel signal
as the batch: each has its own state. All state lives in named buffers (`state_names()`).

Bitwise streaming. For any partition of a signal into buffers the output is bitwise identical to
one call, because every reduction is computed with shapes that do not depend on the buffer length:
  * the conv is unfold + matmul; MKL's result for one row does not depend on the number of rows
    from 4 rows up, so calls with fewer rows are padded with zero rows to MIN_MATMUL_ROWS;
  * pooling reduces whole frames only (a sum, or a maximum for `pooling: "max"`): samples of an
    unfinished frame wait in `pool_partial`;
  * FiLM, the LSTM cell and the 1x1 projection run per frame with fixed shapes (channels, features);
  * everything else (lerp, addcmul, PReLU, index_select, cat) is elementwise or a copy.
A control change takes effect for the frames that *finish* after it: the FiLM of a frame uses the
controls in force at its last sample. A control track (n, T) gives the same result in one call.

Modes. Causal: the sample at t in frame i blends the modulation of frames i-2 and i-1, all known
before t, so latency is 0. Paper: it blends frames i-1 and i, so a frame is processed once its last
sample arrives: input waits in `pending_input`, output in `output_queue`, and every output sample is
delayed by exactly P - 1 samples (the first P - 1 outputs after reset are zeros).

Start state. `reset(channels, controls)` starts from the zero state (the training module's
`zero_state`) and processes START_STATE_SECONDS of silence at `controls` in one call; no target
audio is needed. Non-finite input mutes the buffer and restores that start state.
"""


from typing import List, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from neuralcomp.model.sptmod import ModBlock, SPTMod, interpolation_weights, start_state_samples

MIN_MATMUL_ROWS = 8
INDEX_TABLE_SAMPLES = 4096  # calls up to this length index precomputed tables


def _matmul_rows(rows: Tensor, weight_t: Tensor, bias: Tensor, min_rows: int) -> Tensor:
    """bias + rows @ weight_t, computed with at least `min_rows` rows so that the result of each
    row does not depend on how many rows there are (MKL picks other kernels below 4 rows)."""
    count = rows.size(0)
    if count >= min_rows:
        return torch.addmm(bias, rows, weight_t)
    padded = F.pad(rows, [0, 0, 0, min_rows - count])
    return torch.addmm(bias, padded, weight_t).narrow(0, 0, count)


def _copy(t: Tensor) -> Tensor:
    return t.detach().clone().contiguous()


class _StreamingBlock(nn.Module):
    """One ModBlock with its cached-padding state as buffers."""

    film_weights: List[Tensor]

    def __init__(self, block: ModBlock) -> None:
        super().__init__()
        c_in, channels, kernel = block.in_channels, block.channels, block.kernel_size
        self.in_channels = c_in
        self.channels = channels
        self.kernel_size = kernel
        self.pool_size = block.pool_size
        self.min_matmul_rows = MIN_MATMUL_ROWS
        self.max_pooling = block.max_pooling
        # average pooling sums the frame and folds 1/P into FiLM's gamma; max pooling needs no scale
        self.frame_scale = 1.0 if block.max_pooling else 1.0 / block.pool_size
        self.modulates_next = block.modulates_next
        self.has_film = block.film is not None
        self.hidden = block.lstm.hidden_size
        self.modulation_channels = block.modulation_channels

        # weights are stored transposed for addmm: rows (samples) @ weight_t
        self.register_buffer("conv_weight_t", _copy(block.conv.weight.reshape(channels, c_in * kernel).t()))
        self.register_buffer("conv_bias", _copy(block.conv.bias))
        self.register_buffer("prelu_weight", _copy(block.activation.weight))
        film_params: List[Tensor] = []
        if block.film is not None:
            mlp = block.film.mlp
            film_params = [mlp[0].weight.t(), mlp[0].bias, mlp[1].weight, mlp[2].weight.t(), mlp[2].bias,
                           mlp[3].weight, mlp[4].weight.t(), mlp[4].bias]
        self.film_weights = [_copy(p) for p in film_params]
        # one matmul per LSTM step: [frame, h] @ [W_ih, W_hh].T
        lstm = block.lstm
        self.register_buffer("lstm_weight_t", _copy(torch.cat([lstm.weight_ih_l0, lstm.weight_hh_l0], 1).t()))
        self.register_buffer("lstm_bias", _copy(lstm.bias_ih_l0 + lstm.bias_hh_l0))
        projection_weight, projection_bias = block.frame_projection()  # gain-only: the shift's row is zero
        self.register_buffer("projection_weight_t", _copy(projection_weight.t()))
        self.register_buffer("projection_bias", _copy(projection_bias))

        # state (documented shapes; C = channels of the stream)
        self.register_buffer("conv_cache", torch.zeros(1, kernel - 1, c_in))  # (C, k-1, c_in)
        self.register_buffer("pool_partial", torch.zeros(1, 0, channels))  # (C, phase, c)
        self.register_buffer("lstm_h", torch.zeros(1, self.hidden))  # (C, H)
        self.register_buffer("lstm_c", torch.zeros(1, self.hidden))  # (C, H)
        self.register_buffer("modulation_history", torch.zeros(1, 2, self.modulation_channels))  # (C, 2, n_mod)
        # FiLM (gamma; beta) at the controls last seen, (2, c): a cache, not state
        self.register_buffer("film_params", torch.zeros(2, channels))

    def zero_state(self, num_channels: int) -> None:
        self.conv_cache = torch.zeros(num_channels, self.kernel_size - 1, self.in_channels)
        self.pool_partial = torch.zeros(num_channels, 0, self.channels)
        self.lstm_h = torch.zeros(num_channels, self.hidden)
        self.lstm_c = torch.zeros(num_channels, self.hidden)
        self.modulation_history = self.projection_bias.expand(num_channels, 2, self.modulation_channels).clone()

    def compute_film(self, controls: Tensor) -> Tensor:
        """controls (1, n) -> (gamma * frame_scale; beta) as (2, c): with average pooling, gamma / P
        applies FiLM to a frame's sum. Always one row, so always the same kernels."""
        w = self.film_weights
        hidden = F.prelu(torch.addmm(w[1], controls, w[0]), w[2])
        hidden = F.prelu(torch.addmm(w[4], hidden, w[3]), w[5])
        film = torch.addmm(w[7], hidden, w[6]).view(2, self.channels)
        return film * torch.tensor([[self.frame_scale], [1.0]])

    def state(self) -> List[Tensor]:
        return [self.conv_cache, self.pool_partial, self.lstm_h, self.lstm_c, self.modulation_history]

    def set_state(self, state: List[Tensor]) -> None:
        self.conv_cache = state[0]
        self.pool_partial = state[1]
        self.lstm_h = state[2]
        self.lstm_c = state[3]
        self.modulation_history = state[4]

    def state_shapes(self, num_channels: int, phase: int) -> List[List[int]]:
        return [
            [num_channels, self.kernel_size - 1, self.in_channels],
            [num_channels, phase, self.channels],
            [num_channels, self.hidden],
            [num_channels, self.hidden],
            [num_channels, 2, self.modulation_channels],
        ]

    def process(
        self, m: Tensor, a: Tensor, phase: int, film: Tensor, lo_index: Tensor, hi_index: Tensor, weight: Tensor
    ) -> Tuple[Tensor, Tensor]:
        """m (C, T, c_in), a (C, T, 1) -> modulated m (C, T, c) and a. `phase`: samples of the
        current frame already seen; film (F or 1, 2, c) for the frames that finish in this call."""
        num_channels = m.size(0)
        length = m.size(1)
        extended = torch.cat([self.conv_cache, m], 1)
        if self.kernel_size > 1:
            self.conv_cache = extended.narrow(1, length, self.kernel_size - 1)
        rows = extended.unfold(1, self.kernel_size, 1).reshape(num_channels * length, -1)
        z = F.prelu(_matmul_rows(rows, self.conv_weight_t, self.conv_bias, self.min_matmul_rows), self.prelu_weight)
        z = z.view(num_channels, length, self.channels)

        pooled = z if self.pool_partial.size(1) == 0 else torch.cat([self.pool_partial, z], 1)
        num_frames = (phase + length) // self.pool_size
        sequence = self.modulation_history
        if num_frames > 0:
            whole = num_frames * self.pool_size
            frames = pooled.narrow(1, 0, whole).reshape(num_channels, num_frames, self.pool_size, self.channels)
            # the frame mean times gamma is the frame sum times gamma / P; a maximum is exact in any order
            reduced = frames.amax(2) if self.max_pooling else frames.sum(2)
            if self.has_film:
                scaled_gamma, beta = film.unbind(1)
                frames = torch.addcmul(beta, reduced, scaled_gamma)
            else:
                frames = reduced * self.frame_scale
            # LSTM step (gate order i, f, g, o as in torch), fixed shape (C, c + H) per frame
            hidden = self.hidden
            h = self.lstm_h
            c = self.lstm_c
            outputs: List[Tensor] = []
            for f in range(num_frames):
                gates = torch.addmm(self.lstm_bias, torch.cat([frames.select(1, f), h], 1), self.lstm_weight_t)
                in_gate, forget_gate, _, out_gate = torch.sigmoid(gates).chunk(4, 1)
                cell_input = torch.tanh(gates.narrow(1, 2 * hidden, hidden))
                c = torch.addcmul(forget_gate * c, in_gate, cell_input)
                h = out_gate * torch.tanh(c)
                outputs.append(torch.addmm(self.projection_bias, h, self.projection_weight_t))
            self.lstm_h = h
            self.lstm_c = c
            sequence = torch.cat([sequence, torch.stack(outputs, 1)], 1)
            self.modulation_history = sequence.narrow(1, num_frames, 2)
            self.pool_partial = pooled.narrow(1, whole, phase + length - whole)
        else:
            self.pool_partial = pooled

        modulation = torch.lerp(sequence.index_select(1, lo_index), sequence.index_select(1, hi_index), weight)
        a = torch.addcmul(modulation.narrow(2, 1, 1), modulation.narrow(2, 0, 1), a)
        if self.modulates_next:
            c_out = self.channels
            m = torch.addcmul(modulation.narrow(2, 2 + c_out, c_out), modulation.narrow(2, 2, c_out), z)
        return m, a


class StreamingSPTMod(nn.Module):
    """Buffer-by-buffer SPTMod for hosts: forward(x (C, T), controls (n,) or (n, T)) -> y (C, T)."""

    start_snapshot: List[Tensor]
    control_names: List[str]
    control_minimum: List[float]
    control_maximum: List[float]
    control_default: List[float]
    control_log_mapping: List[bool]

    def __init__(self, model: SPTMod, metadata_json: str, schema_version: int) -> None:
        super().__init__()
        config = model.config
        self.neuralcomp_schema_version = schema_version
        self.metadata_json = metadata_json
        self.sample_rate = config.sample_rate
        self.pool_size = config.pool_size
        self.paper_mode = config.mode == "paper"
        self.mode = config.mode
        self.latency_samples = config.pool_size - 1 if self.paper_mode else 0
        # with the 2 cached frames in front, a sample in frame i of the call blends frames
        # sequence[i + o] and sequence[i + o + 1], o = 2 - d (d = interpolation delay in frames)
        self.first_frame_offset = 1 if self.paper_mode else 0
        self.num_controls = config.num_controls
        self.num_sidechain = config.sidechain  # key channels per audio channel (0: no sidechain input)
        self.control_names = [c.name for c in config.controls]
        self.control_minimum = [float(c.minimum) for c in config.controls]
        self.control_maximum = [float(c.maximum) for c in config.controls]
        self.control_default = [float(c.default) for c in config.controls]
        # hosts turn a user value into the model's [0, 1] with ControlSpec.normalise: log or linear
        self.control_log_mapping = [c.mapping == "log" for c in config.controls]
        self.start_state_samples = start_state_samples(config)
        self.blocks = nn.ModuleList(_StreamingBlock(block) for block in model.blocks)
        self.register_buffer("interp_weights", interpolation_weights(config.pool_size))
        # per position in a call (from the frame start): interpolation frame indices and weight
        position = torch.arange(INDEX_TABLE_SAMPLES + config.pool_size)
        self.register_buffer("lo_index_table", position // config.pool_size + self.first_frame_offset)
        self.register_buffer("hi_index_table", self.lo_index_table + 1)
        self.register_buffer("weight_table", self.interp_weights[position % config.pool_size].unsqueeze(1))
        # stream state beyond the blocks
        self.num_channels = 1
        self.linked = False  # stereo link: one modulation path drives the gain of every channel
        self.phase = 0  # samples of the current frame already seen
        self.register_buffer("pending_input", torch.zeros(1, 0))  # paper: (C, phase)
        self.register_buffer("pending_sidechain", torch.zeros(self.num_sidechain, 0))  # paper: (C * S, phase)
        self.register_buffer("output_queue", torch.zeros(1, self.latency_samples))  # paper: (C, P-1-phase)
        self.register_buffer("film_controls", torch.full([max(self.num_controls, 1)], float("nan")))
        self.start_snapshot = []
        self.nonfinite_buffers = 0

    # ---- the real-time path -------------------------------------------------------------------
    def forward(self, x: Tensor, controls: Tensor, sidechain: Optional[Tensor] = None) -> Tensor:
        """x (C, T) -> y (C, T); `sidechain` (C * S, T), rows c * S ... c * S + S - 1 keying channel c,
        is required when the model has S > 0 sidechain channels and refused otherwise."""
        if x.dim() != 2 or x.size(0) != self.num_channels:
            raise ValueError(
                "audio must be (channels, samples) with " + str(self.num_channels)
                + " channels (call reset(channels, controls) to change), got " + str(x.shape)
            )
        if x.dtype != torch.float32:
            raise ValueError("audio must be float32, got " + str(x.dtype))
        key = self._checked_sidechain(x, sidechain)
        self._check_controls(controls, x.size(1))
        length = x.size(1)
        if length == 0:
            return torch.zeros_like(x)
        if not bool(torch.isfinite(x).all()) or not bool(torch.isfinite(key).all()):
            self._restore(self.start_snapshot)
            self.nonfinite_buffers += 1
            return torch.zeros_like(x)
        film = self._film_for_call(controls, length)
        if self.paper_mode:
            buffered = torch.cat([self.pending_input, x], 1)
            buffered_key = key
            whole = (self.phase + length) // self.pool_size * self.pool_size
            self.pending_input = buffered.narrow(1, whole, self.phase + length - whole)
            if self.num_sidechain > 0:  # (models without one keep their state layout and file contents)
                buffered_key = torch.cat([self.pending_sidechain, key], 1)
                self.pending_sidechain = buffered_key.narrow(1, whole, self.phase + length - whole)
            queued = self.output_queue
            if whole > 0:
                if self.num_sidechain > 0:
                    buffered_key = buffered_key.narrow(1, 0, whole)
                queued = torch.cat([queued, self._run(buffered.narrow(1, 0, whole), buffered_key, 0, film)], 1)
            y = queued.narrow(1, 0, length)
            self.output_queue = queued.narrow(1, length, queued.size(1) - length)
        else:
            y = self._run(x, key, self.phase, film)
        self.phase = (self.phase + length) % self.pool_size
        return y

    def _checked_sidechain(self, x: Tensor, sidechain: Optional[Tensor]) -> Tensor:
        """The sidechain as (C * S, T) float32 (empty rows without one); ValueError naming both shapes."""
        if sidechain is None:
            if self.num_sidechain > 0:
                raise ValueError(
                    "this model is keyed by " + str(self.num_sidechain) + " sidechain channel(s) per audio channel: "
                    "pass a sidechain of shape (" + str(x.size(0) * self.num_sidechain) + ", " + str(x.size(1))
                    + ") with the audio " + str(x.shape))
            return torch.zeros(0, x.size(1))
        if self.num_sidechain == 0:
            raise ValueError("this model has no sidechain input, got a sidechain of shape " + str(sidechain.shape))
        rows = x.size(0) * self.num_sidechain
        if sidechain.dim() != 2 or sidechain.size(0) != rows or sidechain.size(1) != x.size(1):
            raise ValueError(
                "sidechain of shape " + str(sidechain.shape) + " does not match the audio " + str(x.shape)
                + ": expected (" + str(rows) + ", " + str(x.size(1)) + "), " + str(self.num_sidechain)
                + " sidechain channel(s) per audio channel, as many samples")
        if sidechain.dtype != torch.float32:
            raise ValueError("sidechain must be float32, got " + str(sidechain.dtype))
        return sidechain

    def _run(self, x: Tensor, key: Tensor, phase: int, film: List[Tensor]) -> Tensor:
        length = x.size(1)
        if phase + length <= self.lo_index_table.size(0):
            lo_index = self.lo_index_table.narrow(0, phase, length)
            hi_index = self.hi_index_table.narrow(0, phase, length)
            weight = self.weight_table.narrow(0, phase, length)
        else:
            position = torch.arange(phase, phase + length)
            lo_index = torch.div(position, self.pool_size, rounding_mode="floor") + self.first_frame_offset
            hi_index = lo_index + 1
            weight = self.interp_weights.index_select(0, position % self.pool_size).unsqueeze(1)
        a = x.unsqueeze(2)
        m = a
        linked = self.linked and x.size(0) > 1
        if linked:
            # one detector for all channels: per sample, the channel of largest magnitude (signed)
            loudest = x.abs().argmax(0, keepdim=True)
            m = x.gather(0, loudest).unsqueeze(2)
        if self.num_sidechain > 0:  # the modulation path starts as [x; keys], (D, T, 1 + S)
            keys = key.view(x.size(0), self.num_sidechain, length)
            if linked:  # keyed from the sidechain: per sample and key channel, the loudest channel's key
                keys = keys.gather(0, keys.abs().argmax(0, keepdim=True))
            m = torch.cat([m, keys.transpose(1, 2)], 2)
        for j, block in enumerate(self.blocks):
            m, a = block.process(m, a, phase, film[j], lo_index, hi_index, weight)
        return a.squeeze(2)

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

    def _film_for_call(self, controls: Tensor, length: int) -> List[Tensor]:
        """Per block, FiLM (gamma; beta) of each frame finishing in this call: (frames or 1, 2, c)."""
        film: List[Tensor] = []
        if self.num_controls == 0:
            for _ in self.blocks:
                film.append(torch.zeros(0))
            return film
        if controls.dim() == 1:
            self._update_film(controls)
            for block in self.blocks:
                film.append(block.film_params.unsqueeze(0))
            return film
        per_block: List[List[Tensor]] = []
        for _ in self.blocks:
            per_block.append([])
        # frame f finishes at sample P - 1 - phase + f * P of this call
        end = self.pool_size - 1 - self.phase
        while end < length:
            self._update_film(controls.select(1, end))
            for j, block in enumerate(self.blocks):
                per_block[j].append(block.film_params)
            end += self.pool_size
        for j, block in enumerate(self.blocks):
            if len(per_block[j]) == 0:
                film.append(block.film_params.unsqueeze(0))
            else:
                film.append(torch.stack(per_block[j], 0))
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
        self.phase = 0
        self.pending_input = torch.zeros(num_channels, 0)
        self.pending_sidechain = torch.zeros(num_channels * self.num_sidechain, 0)
        self.output_queue = torch.zeros(num_channels, self.latency_samples)
        self.start_snapshot = []
        quiet_key: Optional[Tensor] = None
        if self.num_sidechain > 0:
            quiet_key = torch.zeros(num_channels * self.num_sidechain, self.start_state_samples)
        self.forward(torch.zeros(num_channels, self.start_state_samples), controls, quiet_key)
        self.output_queue = torch.zeros(num_channels, self.latency_samples)  # latency samples are silent
        self.start_snapshot = self.get_state()
        # compact copies: the warm-up left the state as views of its large intermediates, which
        # would otherwise be saved whole in the exported file
        self._restore(self.start_snapshot)

    @torch.jit.export
    def set_linked(self, linked: bool, controls: Tensor) -> None:
        """Linked mode on or off, then reset: linked, the channels share one modulation path."""
        self.linked = linked
        self.reset(self.num_channels, controls)

    def _detector_channels(self) -> int:
        return 1 if self.linked else self.num_channels

    @torch.jit.export
    def state_names(self) -> List[str]:
        names = ["phase"]
        for j in range(len(self.blocks)):
            for part in ["conv_cache", "pool_partial", "lstm_h", "lstm_c", "modulation_history"]:
                names.append("block" + str(j) + "." + part)
        names.append("pending_input")
        names.append("output_queue")
        if self.num_sidechain > 0:
            names.append("pending_sidechain")
        return names

    @torch.jit.export
    def get_state(self) -> List[Tensor]:
        state = [torch.tensor(self.phase, dtype=torch.int64)]
        for block in self.blocks:
            for t in block.state():
                state.append(t.clone())
        state.append(self.pending_input.clone())
        state.append(self.output_queue.clone())
        if self.num_sidechain > 0:
            state.append(self.pending_sidechain.clone())
        return state

    @torch.jit.export
    def set_state(self, state: List[Tensor]) -> None:
        """Restore a `get_state()` snapshot; shapes are checked against this model."""
        names = self.state_names()
        if len(state) != len(names):
            raise ValueError("state has " + str(len(state)) + " tensors, this model needs " + str(len(names)))
        if state[0].numel() != 1:
            raise ValueError("state 'phase' must be a scalar")
        phase = int(state[0].item())
        if phase < 0 or phase >= self.pool_size:
            raise ValueError("state 'phase' " + str(phase) + " outside [0, pool_size)")
        num_channels = self.num_channels
        queue_index = len(names) - 2 if self.num_sidechain > 0 else len(names) - 1
        if state[queue_index].dim() != 2 or state[queue_index].size(0) != num_channels:
            raise ValueError(
                "state 'output_queue' must be (" + str(num_channels) + ", samples): the stream has "
                + str(num_channels) + " channel(s); reset to the snapshot's channel count first"
            )
        no_shape: List[int] = []
        expected: List[List[int]] = [no_shape]
        partial_phase = 0 if self.paper_mode else phase
        for block in self.blocks:
            for shape in block.state_shapes(self._detector_channels(), partial_phase):
                expected.append(shape)
        expected.append([num_channels, phase if self.paper_mode else 0])
        expected.append([num_channels, self.latency_samples - phase if self.paper_mode else 0])
        if self.num_sidechain > 0:
            expected.append([num_channels * self.num_sidechain, phase if self.paper_mode else 0])
        for i in range(1, len(names)):
            if state[i].dtype != torch.float32:
                raise ValueError("state '" + names[i] + "' must be float32")
            if list(state[i].shape) != expected[i]:
                raise ValueError(
                    "state '" + names[i] + "' must have shape " + str(expected[i]) + ", got "
                    + str(list(state[i].shape))
                )
        self._restore(state)

    def _restore(self, state: List[Tensor]) -> None:
        self.phase = int(state[0].item())
        i = 1
        for block in self.blocks:
            block.set_state([state[i].clone(), state[i + 1].clone(), state[i + 2].clone(),
                             state[i + 3].clone(), state[i + 4].clone()])
            i += 5
        self.pending_input = state[i].clone()
        self.output_queue = state[i + 1].clone()
        if self.num_sidechain > 0:
            self.pending_sidechain = state[i + 2].clone()
