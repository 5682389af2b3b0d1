"""The TBPTT trainer (paper section 2.4.3, DESIGN.md section 5).

Every batch of long sequences is one TBPTT group of N iterations. Iteration 1 runs the SPN on the
lookback window (input and target) for the LSTMs' initial states and the processor without
padding; iterations 2..N carry states and caches over with gradients detached and use cached
padding; after N iterations everything resets. The loss covers the L output samples only.

Validation: WT (windowed target) processes validation sequences exactly like training; ST
(streamed target) streams each validation item from its start, never resetting, from the start
state the exported model uses, which is what users hear. Early stopping watches ST.

Checkpoints hold everything needed to continue bit for bit: weights, optimizer, iteration,
epoch, batch and TBPTT phase, the carried state inside a group, and the random generators; the
data order depends on (seed, epoch) only.

Data-parallel (neuralcomp.training.distributed): each process runs its slice of every batch, the
loss is that of the gathered whole batch, gradients are summed; the main process validates and writes.
"""

from __future__ import annotations

import json
import time
import warnings
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from neuralcomp.config import model_config_from_dict
from neuralcomp.errors import ConfigError, TrainingDivergedError, TrainingInterrupted
from neuralcomp.model.checkpoint import TRAINING_STATE_FORMAT, read_checkpoint, save_atomically, save_model
from neuralcomp.model.registry import Model
from neuralcomp.model.sptmod import BlockState, SPTMod
from neuralcomp.model.tcn import ConvCacheState
from neuralcomp.training.config import TrainingConfig
from neuralcomp.training.loss import CompressorLoss
from neuralcomp.training.distributed import ProcessGroup
from neuralcomp.training.resume import InterruptRequest, random_states, restore_random_states
from neuralcomp.training.sequences import Batch, TBPTTSequences, TrainingItem
from neuralcomp.training.truncation import (DecayEstimate, TruncationEstimateWarning, choose_truncation,
                                            estimate_decay, relative_bias)
from neuralcomp.training.validation import streamed_losses

# settings that change what training computes: a resumed run must keep them
_TRAJECTORY_SETTINGS = ("subsequences", "batch_size", "length", "optimizer", "learning_rate", "weight_decay",
                        "grad_clip", "schedule", "warmup_iterations", "min_lr_ratio", "grad_accumulation",
                        "ema_decay", "bf16", "use_spn", "spn_dropout", "spn_item_dropout", "spn_item_state",
                        "truncation", "bias_tolerance", "adaptive_choice", "adapt_every", "adaptive_window",
                        "adaptive_lag_frames", "adaptive_items", "adaptive_min_length", "adaptive_max_length",
                        "adaptive_max_subsequences", "seed", "loss")
_DEFAULTS = {f.name: f.default for f in fields(TrainingConfig)}  # for checkpoints older than a setting


@dataclass
class _Progress:
    """Where training stands; saved in every checkpoint."""

    iteration: int = 0
    epoch: int = 0
    batch: int = 0  # batch number within the epoch
    piece: int = 0  # TBPTT phase within the group
    best_st: float = float("inf")
    best_iteration: int = 0
    last_validation: int = 0
    length: int = 0  # L in use when adaptive truncation chose one (0: the configured L)
    subsequences: int = 0  # N likewise
    last_adapt: int = 0  # iteration of the last truncation estimate
    seconds: float = 0.0  # training-loop time so far, on the config's time_clock


class Trainer:
    """Trains a model (SPTMod or TCN) on items with TBPTT; `run()` until the iteration cap or early stop."""

    def __init__(self, model: Model, config: TrainingConfig, train_items: list[TrainingItem],
                 valid_items: list[TrainingItem], out_dir: str | Path, device: str | torch.device = "cpu",
                 log: Callable[[str], None] = print, progress_bar: bool = False,
                 on_record: Callable[[dict[str, Any]], None] | None = None,
                 parallel: ProcessGroup | None = None) -> None:
        self.config = config
        self.parallel = parallel  # data-parallel group (neuralcomp.training.distributed), None: one process
        self.is_main = parallel is None or parallel.is_main  # the process that validates, logs and writes
        if parallel is not None:
            parallel.check_batch(config.batch_size)
        if not self.is_main:
            log, progress_bar, on_record = (lambda line: None), False, None
        self.on_record = on_record  # sees every metrics row (sweeps report validations live)
        self.device = torch.device(device)
        self.model = model.to(self.device)
        self.out_dir = Path(out_dir)
        self.log = log
        self.loss = CompressorLoss(config.loss_config()).to(self.device)
        self.train = TBPTTSequences(train_items, model, config.subsequences, config.batch_size, config.length,
                                    config.use_spn, config.seed)
        if config.truncation == "adaptive":
            if not isinstance(model, SPTMod):
                raise ConfigError(f"adaptive truncation needs a recurrent model (SPTMod); {type(model).__name__} has a "
                                  "finite receptive field, so its truncation is exact: use \"truncation\": \"fixed\"")
            self._check_adaptive_lengths()
        self._pending: dict[str, float] = {}  # figures of the last truncation estimate, for the next row
        self.valid_items = valid_items
        optimizer = torch.optim.AdamW if config.optimizer == "adamw" else torch.optim.Adam
        self.optimizer = optimizer(model.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, self._lr_factor)
        self.ema = None
        if config.ema_decay is not None:
            from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

            self.ema = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(config.ema_decay))
        self.autocast = self.device.type == "cuda" and config.bf16  # bf16 autocast on this device
        self.progress = _Progress()
        self.progress_bar = progress_bar
        self._carried: list[BlockState | ConvCacheState] | None = None
        self._tensorboard = None  # a SummaryWriter while run() runs
        self.validate_every = config.validate_every or self.train.batches_per_epoch * config.subsequences

    @property
    def length(self) -> int:
        """L in use: the configured one, or the one adaptive truncation chose."""
        return self.progress.length or self.config.length

    @property
    def subsequences(self) -> int:
        """N in use: the configured one, or the one adaptive truncation chose."""
        return self.progress.subsequences or self.config.subsequences

    def _sequences(self, subsequences: int, length: int) -> TBPTTSequences:
        cfg = self.config
        return TBPTTSequences(self.train.items, self.model, subsequences, cfg.batch_size, length, cfg.use_spn, cfg.seed)

    def _check_adaptive_lengths(self) -> None:
        cfg, pool = self.config, self.model.pool_size
        for name in ("adaptive_min_length", "adaptive_max_length"):
            if getattr(cfg, name) % pool:
                raise ConfigError(f"{name} {getattr(cfg, name)} is not a multiple of the pool size P = {pool}")
        if cfg.adaptive_min_length < self.loss.config.min_samples:
            raise ConfigError(f"adaptive_min_length {cfg.adaptive_min_length} is shorter than the loss's largest "
                              f"window ({self.loss.config.min_samples} samples)")

    def _lr_factor(self, step: int) -> float:
        """Learning-rate multiplier after `step` optimizer steps: constant, or warm-up then cosine."""
        cfg = self.config
        if cfg.schedule == "none":
            return 1.0
        if step < cfg.warmup_iterations:
            return (step + 1) / cfg.warmup_iterations
        total = max(1, cfg.max_iterations // cfg.grad_accumulation - cfg.warmup_iterations)
        progress = min(1.0, (step - cfg.warmup_iterations) / total)
        # a Python float: the optimizer and scheduler states keep it, and training-state files hold plain data
        return float(cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + np.cos(np.pi * progress)))

    @property
    def evaluation_model(self) -> Model:
        """The weights validation and best.ckpt use: the EMA when enabled."""
        return self.ema.module if self.ema is not None else self.model

    # ---- the loop ---------------------------------------------------------------------------------
    def run(self, until: int | None = None) -> dict[str, Any]:
        """Train until max_iterations or early stopping; returns the final figures. `until` stops
        earlier, at that iteration, with a checkpoint, as an interrupted run would (tests, smoke runs)."""
        from torch.utils.tensorboard import SummaryWriter
        from tqdm import tqdm

        self.out_dir.mkdir(parents=True, exist_ok=True)
        cfg, p = self.config, self.progress
        stop_at = min(cfg.max_iterations, until or cfg.max_iterations)
        # purge_step: a resumed run drops events a killed run logged after its last checkpoint
        if self.is_main:
            self._tensorboard = SummaryWriter(str(self.out_dir / "tensorboard"), purge_step=p.iteration or None)
        bar = tqdm(total=stop_at, initial=p.iteration, unit="it", disable=not self.progress_bar, dynamic_ncols=True)
        log = self.log
        if self.progress_bar:
            self.log = bar.write  # lines go above the bar
        started, samples = time.perf_counter(), 0
        clock = time.process_time if cfg.time_clock == "cpu" else time.perf_counter
        stopped_early = out_of_time = False
        if p.iteration == 0:
            # a fresh start: rows of an earlier run in this folder go, and --resume finds a checkpoint at once
            if self.is_main:
                self._forget_metrics_after(0)
            self.save_checkpoint()
        # Ctrl-C stops at an iteration boundary with a checkpoint; data-parallel ranks agree on the
        # iteration first (they may see the signal at different ones, and saving is collective)
        interrupt = InterruptRequest()
        try:
            interrupt.__enter__()
            while p.iteration < stop_at:
                stop = interrupt.requested if self.parallel is None else self.parallel.any_flag(
                    interrupt.requested, self.device)
                if stop:
                    path = self.save_checkpoint()
                    raise TrainingInterrupted(p.iteration, str(path))
                if cfg.max_seconds is not None and p.seconds >= cfg.max_seconds:
                    out_of_time = True
                    self.log(f"time budget of {cfg.max_seconds:g} s ({cfg.time_clock}) spent at it {p.iteration}")
                    break
                tick = clock()
                if (cfg.truncation == "adaptive" and p.piece == 0 and p.iteration > 0
                        and p.iteration - p.last_adapt >= cfg.adapt_every):
                    self.adapt_truncation()
                terms, grad_norm = self.train_iteration()
                p.seconds += clock() - tick
                if not np.isfinite(terms["total"]):
                    raise TrainingDivergedError(f"training loss is {terms['total']} at iteration {p.iteration}")
                samples += cfg.batch_size * self.length
                rate = samples / max(time.perf_counter() - started, 1e-9)
                memory = torch.cuda.max_memory_allocated() / 2**20 if self.device.type == "cuda" else 0.0
                self._record({"iteration": p.iteration, "epoch": p.epoch, "grad_norm": grad_norm,
                              "gpu_memory_mib": memory, "lr": self.optimizer.param_groups[0]["lr"],
                              "samples_per_s": rate, **{f"train_{k}": v for k, v in terms.items()},
                              **self._pending})
                self._pending = {}
                bar.update(1)
                bar.set_postfix(loss=f"{terms['total']:.4f}", best_st=f"{p.best_st:.4f}", rate=f"{rate:,.0f}/s",
                                refresh=False)
                if not self.progress_bar and (p.iteration % 50 == 0 or p.iteration == 1):
                    self.log(f"it {p.iteration:7d}  epoch {p.epoch:4d}  loss {terms['total']:.4f}  "
                             f"grad {grad_norm:.3f}  {rate:,.0f} samples/s")
                if p.iteration - p.last_validation >= self.validate_every:
                    if self.validate_and_check_patience():
                        stopped_early = True
                        break
                if p.iteration % cfg.checkpoint_every == 0:
                    self.save_checkpoint()
            if (self.valid_items and not stopped_early and (p.iteration >= cfg.max_iterations or out_of_time)
                    and p.last_validation < p.iteration):
                self.validate_and_check_patience()  # the final weights get their chance to be the best
            self.save_checkpoint()
        finally:
            interrupt.__exit__()
            bar.close()
            self.log = log
            if self._tensorboard is not None:
                self._tensorboard.close()
            self._tensorboard = None
        return {"iterations": p.iteration, "best_st": p.best_st, "best_iteration": p.best_iteration,
                "stopped_early": stopped_early, "seconds": p.seconds}

    def train_iteration(self) -> tuple[dict[str, float], float]:
        """One TBPTT iteration at the current position, then advance it; returns the loss terms and
        the gradient norm (nan between optimizer steps when accumulating)."""
        p = self.progress
        terms, grad_norm = self._iteration(self.train.batch(p.epoch, p.batch), p.piece)
        p.iteration += 1
        p.piece += 1
        if p.piece == self.subsequences:  # group done: states and caches reset
            p.piece, self._carried = 0, None
            p.batch += 1
            if p.batch == self.train.batches_per_epoch:
                p.batch, p.epoch = 0, p.epoch + 1
        return terms, grad_norm

    def _forward_piece(self, model: Model, batch, bounds: tuple[int, int], piece: int,
                       carried: list[BlockState | ConvCacheState] | None, restart: torch.Tensor | None = None,
                       spn_dropout: float = 0.0):
        """One TBPTT piece: (prediction, new state, target) on the L output samples. On the first piece,
        items where `restart` (bool, per item) is set start from `spn_item_state` instead of the SPN's."""
        start, end = bounds
        x = batch.input[..., start:end].to(self.device)
        y = batch.target[..., start:end].to(self.device)
        controls = batch.controls.to(self.device)
        key = None if batch.sidechain is None else batch.sidechain[..., start:end].to(self.device)
        length = self.length
        if piece == 0:  # SPN on the lookback window just before the outputs, processor without padding
            initial = None
            if self.config.use_spn and model.spn is not None:
                window = slice(x.shape[-1] - length - model.spn.lookback_samples, x.shape[-1] - length)
                initial = model.spn(x[..., window], y[..., window], controls, spn_dropout)
                if restart is not None and bool(restart.any()):
                    initial = self._restart_items(model, initial, controls, restart)
            needed = x.shape[-1] - model.input_length(length)
            keyed = {} if key is None else {"sidechain": key[..., needed:]}  # sidechain models only
            prediction, state = model(x[..., needed:], controls, None, initial, **keyed)
        else:
            prediction, state = model(x, controls, carried, **({} if key is None else {"sidechain": key}))
        return prediction, state, y[..., y.shape[-1] - length:]

    def _restart_items(self, model: SPTMod, initial: list[tuple[torch.Tensor, torch.Tensor]],
                       controls: torch.Tensor, restart: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Whole-item SPN dropout: the rows in `restart` get the start (or zero) LSTM states, no gradient."""
        rows = restart.nonzero().squeeze(1).to(controls.device)
        if self.config.spn_item_state == "start":
            fresh = [(s.lstm_h, s.lstm_c) for s in model.start_state(controls[rows])]
        else:
            fresh = [(torch.zeros_like(h[:, rows]), torch.zeros_like(c[:, rows])) for h, c in initial]
        return [(h.index_copy(1, rows, fh.to(h.dtype)), c.index_copy(1, rows, fc.to(c.dtype)))
                for (h, c), (fh, fc) in zip(initial, fresh)]

    def _restart_mask(self, batch_size: int) -> torch.Tensor | None:
        """Which items of this group skip the SPN (whole-item SPN dropout): drawn from (seed, iteration)
        alone, so every data-parallel process and a resumed run draw the same, and no global generator moves."""
        if self.config.spn_item_dropout <= 0.0 or self.progress.piece != 0:
            return None
        draw = np.random.default_rng([self.config.seed, self.progress.iteration, 0x5B1]).random(batch_size)
        return torch.from_numpy(draw < self.config.spn_item_dropout)

    def _iteration(self, batch, piece: int) -> tuple[dict[str, float], float]:
        cfg, p = self.config, self.progress
        self.model.train()
        first_of_step = p.iteration % cfg.grad_accumulation == 0
        last_of_step = (p.iteration + 1) % cfg.grad_accumulation == 0
        if first_of_step:
            self.optimizer.zero_grad(set_to_none=True)
        bounds = self.train.piece_bounds(piece)
        local = batch
        restart = whole_restart = self._restart_mask(batch.input.shape[0])
        if self.parallel is not None:  # this process's slice of the batch
            local = Batch(*(None if t is None else self.parallel.shard(t)
                            for t in (batch.input, batch.target, batch.controls, batch.sidechain)))
            restart = None if restart is None else self.parallel.shard(restart)
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.autocast):
            prediction, state, target = self._forward_piece(self.model, local, bounds, piece, self._carried,
                                                            restart, cfg.spn_dropout)
            if self.parallel is not None:  # the loss of the whole batch, as one process computes it
                prediction = self.parallel.whole_batch(prediction)
                target = batch.target[..., bounds[0]:bounds[1]][..., -self.length:].to(self.device)
            total, terms = self.loss(prediction.float(), target)
        (total / cfg.grad_accumulation).backward()
        if self.parallel is not None:
            self.parallel.sum_gradients(list(self.model.parameters()))
        grad_norm = float("nan")
        if last_of_step:
            grad_norm = float(torch.nn.utils.clip_grad_norm_(
                self.model.parameters(), cfg.grad_clip if cfg.grad_clip else float("inf")))
            self.optimizer.step()
            self.scheduler.step()
            if self.ema is not None:
                self.ema.update_parameters(self.model)
        self._carried = [s.detached() for s in state]
        values = {k: float(v) for k, v in terms.items()}
        if whole_restart is not None:  # logged as train/spn_restarted: items of the whole batch that skipped the SPN
            values["spn_restarted"] = float(whole_restart.sum())
        return values, grad_norm

    # ---- adaptive truncation -----------------------------------------------------------------------
    def adapt_truncation(self) -> None:
        """Estimate the gradient's decay over lags, choose L (or N) for the bias tolerance and use it from
        this group on (a new epoch of sequences cut at the new length); without an estimate, the configured
        (N, L). Every figure goes into the next metrics row (TensorBoard tbptt/...)."""
        cfg, p = self.config, self.progress
        p.last_adapt = p.iteration
        estimate = self._estimate_decay()
        rate = None if estimate is None else estimate.rate_per_sample
        if rate is None:
            subsequences, length, bias = cfg.subsequences, cfg.length, float("nan")
            self.log(f"adaptive truncation at it {p.iteration}: no estimate, back to the configured "
                     f"N = {subsequences}, L = {length}")
        elif cfg.adaptive_choice == "length":
            pool = self.model.pool_size
            candidates = list(range(-(-cfg.adaptive_min_length // pool) * pool, cfg.adaptive_max_length + 1, pool))
            length, bias = choose_truncation(rate, cfg.bias_tolerance, candidates)
            subsequences = self.subsequences
            length = self._longest_feasible(candidates[:candidates.index(length) + 1], subsequences=subsequences)
            bias = relative_bias(rate, length)
        else:
            candidates = list(range(1, cfg.adaptive_max_subsequences + 1))
            length = self.length
            subsequences, bias = choose_truncation(rate, cfg.bias_tolerance, candidates, scale=length)
            subsequences = self._longest_feasible(candidates[:subsequences], length=length)
            bias = relative_bias(rate, subsequences * length)
        self._pending = {"tbptt_length": float(length), "tbptt_subsequences": float(subsequences),
                         "tbptt_bias": bias, "tbptt_fallback": float(rate is None)}
        if rate is not None:
            pool = self.model.pool_size
            self._pending.update(tbptt_rate_per_frame=rate ** pool,
                                 tbptt_memory_frames=estimate.memory_samples / pool)
            self.log(f"adaptive truncation at it {p.iteration}: gradient memory {estimate.memory_samples / pool:.1f} "
                     f"frames (rate {rate ** pool:.4f} per frame) -> N = {subsequences}, L = {length}, "
                     f"estimated bias {bias:.3f} (tolerance {cfg.bias_tolerance})")
        if (subsequences, length) != (self.subsequences, self.length):
            p.subsequences, p.length = subsequences, length
            self.train = self._sequences(subsequences, length)
            if p.batch:  # a new epoch of sequences cut at the new length
                p.batch, p.epoch = 0, p.epoch + 1

    def _longest_feasible(self, candidates: list[int], subsequences: int | None = None,
                          length: int | None = None) -> int:
        """The last candidate (N or L) whose sequences fill at least one batch; the configured value if none."""
        for candidate in reversed(candidates):
            try:
                self._sequences(subsequences or candidate, length or candidate)
                return candidate
            except ConfigError:
                continue
        return self.config.length if length is None else self.config.subsequences

    def _estimate_decay(self) -> DecayEstimate | None:
        """The decay estimate on `adaptive_items` windows of K·L samples drawn from (seed, iteration)."""
        cfg, pool = self.config, self.model.pool_size
        lag = cfg.adaptive_lag_frames * pool
        loss_samples = -(-self.loss.config.min_samples // pool) * pool
        lead = (cfg.adaptive_window * cfg.length - loss_samples) // lag * lag
        window = lead + loss_samples
        items = [k for k, item in enumerate(self.train.items) if len(item.input) >= window]
        if lead < 2 * lag or not items:
            warnings.warn(f"adaptive truncation: the estimate needs at least two lags of {lag} samples before "
                          f"{loss_samples} samples of loss, in items of {window} samples or more "
                          "(raise adaptive_window or length); keeping the configured truncation",
                          TruncationEstimateWarning, stacklevel=2)
            return None
        rng = np.random.default_rng([cfg.seed, self.progress.iteration, 0xADA])
        picks = [(k, int(rng.integers(0, len(self.train.items[k].input) - window + 1)))
                 for k in rng.choice(items, size=cfg.adaptive_items)]
        x = np.stack([self.train.items[k].input[s:s + window] for k, s in picks])[:, None]
        y = np.stack([self.train.items[k].target[s:s + window] for k, s in picks])[:, None]
        c = np.stack([self.train.items[k].controls for k, _ in picks]).astype(np.float32)
        key = (torch.from_numpy(np.stack([self.train.items[k].sidechain[:, s:s + window] for k, s in picks]))
               if self.train.items[0].sidechain is not None else None)  # the key of a sidechain model's windows
        device = self.device
        return estimate_decay(self.model, torch.from_numpy(x).to(device), torch.from_numpy(y).to(device),
                              torch.from_numpy(c).to(device), lag, loss_samples, self.loss,
                              None if key is None else key.to(device))

    # ---- validation --------------------------------------------------------------------------------
    @torch.no_grad()
    def validate(self) -> dict[str, float]:
        """WT and ST validation losses (totals averaged over items)."""
        model = self.evaluation_model.eval()
        st = streamed_losses(model, self.valid_items, self.loss, self.device)
        wt = []
        if self.valid_items:
            windows = TBPTTSequences(self.valid_items, model, self.subsequences, self.config.batch_size,
                                     self.length, self.config.use_spn, self.config.seed, drop_last=False)
            for number in range(windows.batches_per_epoch):
                batch, carried = windows.batch(0, number), None
                for piece in range(self.subsequences):
                    prediction, carried, target = self._forward_piece(model, batch, windows.piece_bounds(piece),
                                                                      piece, carried)
                    wt.append((float(self.loss(prediction, target)[0]), prediction.shape[0]))
        wt_mean = sum(v * n for v, n in wt) / sum(n for _, n in wt) if wt else float("nan")  # per window
        return {"st": float(np.mean(st)) if st else float("nan"), "wt": float(wt_mean)}

    def validate_and_check_patience(self) -> bool:
        """Validate (the main process) and say whether patience ran out (every process gets the answer)."""
        self.progress.last_validation = self.progress.iteration
        stop = self._validate_and_check_patience() if self.is_main else False
        return stop if self.parallel is None else self.parallel.broadcast_flag(stop, self.device)

    def _validate_and_check_patience(self) -> bool:
        p = self.progress
        scores = self.validate()
        self._record({"iteration": p.iteration, "valid_st": scores["st"], "valid_wt": scores["wt"],
                      "seconds_trained": p.seconds})
        self.log(f"validation at it {p.iteration}: ST {scores['st']:.4f}  WT {scores['wt']:.4f}")
        if scores["st"] < p.best_st:
            p.best_st, p.best_iteration = scores["st"], p.iteration
            save_model(self.evaluation_model, self.out_dir / "best.ckpt",
                       {"iteration": p.iteration, "valid_st": scores["st"], "valid_wt": scores["wt"],
                        "training": asdict(self.config)})
            return False
        return p.iteration - p.best_iteration >= self.config.patience_iterations

    # ---- checkpoints -------------------------------------------------------------------------------
    def _record(self, row: dict[str, Any]) -> None:
        """One row of metrics.jsonl, and every figure in it as a TensorBoard scalar when running."""
        if not self.is_main:
            return
        with open(self.out_dir / "metrics.jsonl", "a") as f:
            f.write(json.dumps(row) + "\n")
        if self.on_record is not None:
            self.on_record(row)
        if self._tensorboard is not None:
            for name, value in row.items():
                if name not in ("iteration", "epoch") and np.isfinite(value):
                    group, _, rest = name.partition("_")
                    tag = f"{group}/{rest}" if group in ("train", "valid", "tbptt") else f"progress/{name}"
                    self._tensorboard.add_scalar(tag, value, row["iteration"])

    def _forget_metrics_after(self, iteration: int) -> None:
        """Drop metrics.jsonl rows a killed run wrote after its last checkpoint (resume replays them)."""
        path = self.out_dir / "metrics.jsonl"
        if path.is_file():
            rows = [line for line in path.read_text().splitlines()
                    if line.strip() and json.loads(line)["iteration"] <= iteration]
            path.write_text("".join(row + "\n" for row in rows))

    def save_checkpoint(self) -> Path:
        """Everything needed to continue bit for bit, written atomically to out_dir/last.ckpt."""
        carried = None if self._carried is None else [[t.cpu() for t in s.tensors()] for s in self._whole_carried()]
        if not self.is_main:
            return self.out_dir / "last.ckpt"
        return save_atomically({
            "format": TRAINING_STATE_FORMAT,
            "model_config": self.model.config.to_dict(),
            "training_config": asdict(self.config),
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "ema": None if self.ema is None else self.ema.state_dict(),
            "progress": asdict(self.progress),
            "carried": carried,
            # gradients accumulated so far when stopping inside an accumulation window
            "grads": [None if q.grad is None else q.grad.cpu() for q in self.model.parameters()],
            "rng": random_states(),
        }, self.out_dir / "last.ckpt")

    def _whole_carried(self) -> list[BlockState | ConvCacheState]:
        """The carried TBPTT state of the whole batch (every process's slice, in rank order)."""
        if self.parallel is None:
            return self._carried
        return [type(s)(*(self.parallel.gather(t, dim) for t, dim in zip(s.tensors(), s.BATCH_DIMS)))
                for s in self._carried]

    def _my_slice(self, tensor: torch.Tensor, dim: int) -> torch.Tensor:
        return tensor if self.parallel is None else self.parallel.shard(tensor, dim)

    def load_checkpoint(self, path: str | Path) -> None:
        """Continue from `save_checkpoint`'s file; the trainer must have the same config and data."""
        data = read_checkpoint(path, TRAINING_STATE_FORMAT, "training checkpoint")
        saved, current = data["training_config"], asdict(self.config)
        differ = [k for k in _TRAJECTORY_SETTINGS if saved.get(k, _DEFAULTS[k]) != current[k]]
        if differ:  # the iteration cap, patience and checkpoint cadence may change on resume
            raise ConfigError(f"{path} was written with other training settings: "
                              + ", ".join(f"{k} {saved.get(k, _DEFAULTS[k])} != {current[k]}" for k in differ))
        # the same weights' shapes do not make the same model (pooling, mode, controls, rate): refuse a mix
        saved_model = model_config_from_dict(data["model_config"]).to_dict()
        current_model = self.model.config.to_dict()
        differ = [k for k in current_model if k not in ("name", "description") and saved_model.get(k) != current_model[k]]
        if differ:
            raise ConfigError(f"{path} holds another model ({saved_model['name']}) than the one being trained "
                              f"({current_model['name']}): " + "; ".join(
                                  f"{k} {saved_model.get(k)} != {current_model[k]}" for k in differ)
                              + ". Resume with the model it was started with, or train into a new --out")
        self.model.load_state_dict(data["model"])
        self.optimizer.load_state_dict(data["optimizer"])
        self.scheduler.load_state_dict(data["scheduler"])
        if self.ema is not None:
            self.ema.load_state_dict(data["ema"])
        self.progress = _Progress(**data["progress"])
        if self.is_main:
            self._forget_metrics_after(self.progress.iteration)
        for parameter, grad in zip(self.model.parameters(), data["grads"]):
            parameter.grad = None if grad is None else grad.to(self.device)
        if (self.progress.subsequences, self.progress.length) != (0, 0):  # the truncation adaptive training chose
            self.train = self._sequences(self.subsequences, self.length)
        state_type = self.model.state_type
        self._carried = None if data["carried"] is None else [
            state_type(*(self._my_slice(t, dim).to(self.device) for t, dim in zip(s, state_type.BATCH_DIMS)))
            for s in data["carried"]]
        restore_random_states(data["rng"])
