"""Run a sweep on Ray Tune: a local Ray instance by default, an existing cluster with an address.

Every trial is one `neuralcomp train` run in OUT/trials/TRIAL_ID (see neuralcomp.sweep.trial). The
folders are the sweep's memory: started again, a sweep skips finished trials, resumes the others from
their last checkpoint (the trainer's exact resume) and, unless asked, leaves failed ones recorded as
failed. On a cluster, OUT and the dataset must be on a filesystem every node sees, and neuralcomp
must be installed on every node.
"""

from __future__ import annotations

import json
import math
import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from neuralcomp.sweep.spec import SweepError, SweepSpec, TrialSpec, check_sweep, parse_sweep
from neuralcomp.sweep.trial import read_status, run_trial

INSTALL_HINT = "install it with: pip install -e '.[sweep]' (ray[tune] and optuna), or `make setup`"
TRIALS_DIR = "trials"
SWEEP_FILE = "sweep.json"


@dataclass(frozen=True)
class SweepOptions:
    """How a sweep runs: where Ray is, how many trials at once, resources per trial."""

    address: str | None = None  # None: a local Ray instance; "auto" or host:port: an existing cluster
    max_concurrent: int | None = None  # None: as many as the resources allow
    cpus_per_trial: float = 1.0
    gpus_per_trial: float = 0.0  # fractional GPUs share a device
    retry_failed: bool = False
    local_cpus: int | None = None  # CPUs of the local instance (None: all)


def _import_ray():
    try:
        import ray
        from ray import tune
    except ImportError as exc:
        raise SweepError(f"neuralcomp sweep needs Ray Tune, which is not installed: {INSTALL_HINT}") from exc
    return ray, tune


def _check_reachable(address: str, timeout_s: float = 5.0) -> None:
    """Fail fast, naming the address, when nothing listens there (Ray itself retries for minutes)."""
    if address == "auto" or address.startswith("ray://") or address.startswith("local"):
        return
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise SweepError(f"--address {address!r} is not HOST:PORT, 'auto' or ray://HOST:PORT")
    try:
        socket.create_connection((host, int(port)), timeout=timeout_s).close()
    except OSError as exc:
        raise SweepError(f"cannot reach a Ray cluster at {address}: {exc}") from exc


def _start_ray(options: SweepOptions) -> bool:
    """Connect to Ray; returns True when this call started it (and so must shut it down)."""
    import logging

    ray, _ = _import_ray()
    if options.address:
        _check_reachable(options.address)
    if ray.is_initialized():  # a caller (a notebook, the tests) started Ray already
        return False
    if options.address:
        try:
            ray.init(address=options.address, logging_level=logging.WARNING, log_to_driver=False)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            raise SweepError(f"cannot connect to the Ray cluster at {options.address}: {exc}") from exc
    else:
        ray.init(num_cpus=options.local_cpus, include_dashboard=False, logging_level=logging.WARNING,
                 log_to_driver=False)
    return True


def _trainable(config: dict[str, Any]) -> None:
    """Ray Tune's function: one trial, reporting each validation and then its final figures."""
    from ray import tune

    spec = parse_sweep(config["sweep"], Path(config["sweep_path"]))
    if "trial" in config:
        trial = TrialSpec.from_dict(config["trial"])
    else:  # a search: the sampled point
        trial = spec.trial({k: config[k] for k in spec.space}, spec.splits[0], spec.seeds[0])
    threads = max(1, int(config["threads"]))
    status = run_trial(trial, config["dataset"], Path(config["out"]) / TRIALS_DIR / trial.trial_id,
                       config["device"], threads, report=tune.report)
    tune.report(final_metrics(status))


def final_metrics(status: dict[str, Any]) -> dict[str, Any]:
    """What a finished trial reports to Tune: ST loss and cost for the search, or no metric when failed."""
    if status["status"] != "done":
        return {"status": status["status"], "reason": status.get("reason", "")}
    return {"status": "done", "valid_st": status["result"]["valid_st"], "test_st": status["result"]["test_st"],
            "cost_us": status["cost"]["us_per_buffer_p50"], "macs": status["cost"]["macs_per_sample"]}


class ProgressTable:
    """Counts of pending / running / done / failed trials, the best ST so far, and the running trials'
    latest validation; printed when something changes."""

    def __init__(self, total: int, statuses: dict[str, dict[str, Any]], log: Callable[[str], None]) -> None:
        self.total = total
        self.log = log
        self.done = {k for k, s in statuses.items() if s["status"] == "done"}
        self.failed = {k for k, s in statuses.items() if s["status"] == "failed"}
        self.best: tuple[float, str] = min(((s["result"]["valid_st"], k) for k, s in statuses.items()
                                            if s["status"] == "done"), default=(math.inf, ""))
        self.running: dict[str, str] = {}

    def started(self, name: str) -> None:
        self.running[name] = "starting"
        self.print()

    def validated(self, name: str, result: dict[str, Any]) -> None:
        if "valid_st" not in result or "iteration" not in result:
            return
        self.running[name] = f"it {result['iteration']}: ST {result['valid_st']:.4f}"
        self.best = min(self.best, (result["valid_st"], name))
        self.print()

    def finished(self, name: str, status: str, detail: str = "") -> None:
        self.running.pop(name, None)
        (self.done if status == "done" else self.failed).add(name)
        if status != "done":
            self.log(f"trial {name} failed: {detail}")
        self.print()

    def print(self) -> None:
        pending = max(0, self.total - len(self.done) - len(self.failed) - len(self.running))
        best = f"{self.best[0]:.4f} ({self.best[1]})" if math.isfinite(self.best[0]) else "-"
        lines = [f"[{time.strftime('%H:%M:%S')}] trials: {len(self.running)} running, {len(self.done)} done, "
                 f"{len(self.failed)} failed, {pending} pending of {self.total}; best ST so far {best}"]
        lines += [f"    running {name}: {state}" for name, state in sorted(self.running.items())]
        self.log("\n".join(lines))


def _tune_callback(table: ProgressTable, spec: SweepSpec):
    """A Ray Tune callback that feeds the progress table (built lazily: Ray is optional)."""
    from ray import tune

    def name_of(trial) -> str:  # noqa: ANN001 - a Ray Tune Trial
        config = trial.config
        if "trial" in config:
            return TrialSpec.from_dict(config["trial"]).trial_id
        return spec.trial({k: config[k] for k in spec.space}, spec.splits[0], spec.seeds[0]).trial_id

    class _Callback(tune.Callback):
        def on_trial_start(self, iteration, trials, trial, **info):  # noqa: ANN001
            table.started(name_of(trial))

        def on_trial_result(self, iteration, trials, trial, result, **info):  # noqa: ANN001
            if "status" in result:
                table.finished(name_of(trial), result["status"], result.get("reason", ""))
            else:
                table.validated(name_of(trial), result)

        def on_trial_error(self, iteration, trials, trial, **info):  # noqa: ANN001
            table.finished(name_of(trial), "failed", "the trial's worker died (see its train.log)")

    return _Callback()


def _record_sweep(spec: SweepSpec, raw: dict[str, Any], dataset_dir: Path, out: Path) -> None:
    """OUT/sweep.json: the sweep and its dataset; a restarted sweep must use the same dataset."""
    path = out / SWEEP_FILE
    if path.is_file():
        before = json.loads(path.read_text())
        if before.get("dataset") != str(dataset_dir):
            raise SweepError(f"{out} holds a sweep on dataset {before.get('dataset')}, not {dataset_dir}; "
                             f"use another --out")
    out.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"sweep": raw, "sweep_path": str(spec.path), "dataset": str(dataset_dir)},
                               indent=2))


def _search_space(spec: SweepSpec, tune) -> dict[str, Any]:  # noqa: ANN001 - the ray.tune module
    space = {}
    for name, rule in spec.space.items():
        if "choice" in rule:
            space[name] = tune.choice(rule["choice"])
        else:
            low, high = rule["int"]
            space[name] = tune.randint(low, high + 1)  # randint's upper bound is exclusive
    return space


def run_sweep(spec: SweepSpec, raw: dict[str, Any], dataset_dir: str | Path, out: str | Path,
              options: SweepOptions = SweepOptions(), log: Callable[[str], None] = print) -> dict[str, Any]:
    """Check the sweep, then run every unfinished trial on Ray Tune; returns the summary (also in
    OUT/summary.json). Everything is checked before Ray starts."""
    from neuralcomp.data.dataset import load_dataset

    dataset_dir, out = Path(dataset_dir).resolve(), Path(out).resolve()
    dataset = load_dataset(dataset_dir)
    trials = check_sweep(spec, len(dataset.splits()))
    if options.gpus_per_trial < 0 or options.cpus_per_trial <= 0:
        raise SweepError("--gpus-per-trial must be >= 0 and --cpus-per-trial > 0")
    if options.max_concurrent is not None and options.max_concurrent < 1:
        raise SweepError(f"--max-concurrent must be >= 1, got {options.max_concurrent}")
    ray, tune = _import_ray()
    _record_sweep(spec, raw, dataset_dir, out)
    statuses = {p.name: s for p in (out / TRIALS_DIR).glob("*") if (s := read_status(p))}
    if spec.search == "grid":
        skip = {"done", "failed"} if not options.retry_failed else {"done"}
        pending = [t for t in trials if (statuses.get(t.trial_id) or {}).get("status") not in skip]
        known = {t.trial_id for t in trials}
        statuses = {k: s for k, s in statuses.items() if k in known}
        total = len(trials)
        log(f"sweep {spec.path.name}: {total} trials, {total - len(pending)} already finished or failed, "
            f"{len(pending)} to run")
    else:
        finished = [s for s in statuses.values() if s["status"] == "done"]
        total = spec.samples
        pending = list(range(max(0, spec.samples - len(finished))))
        log(f"sweep {spec.path.name}: optuna search, {spec.samples} samples, {len(finished)} already done")
    table = ProgressTable(total, statuses, log)
    if pending:
        started_ray = _start_ray(options)
        try:
            _fit(spec, raw, dataset_dir, out, options, pending, statuses, table, tune)
        finally:
            if started_ray:
                ray.shutdown()
    return summarise(out, log)


def _fit(spec: SweepSpec, raw: dict[str, Any], dataset_dir: Path, out: Path, options: SweepOptions,
         pending: list, statuses: dict[str, dict[str, Any]], table: ProgressTable, tune) -> None:  # noqa: ANN001
    base = {"sweep": raw, "sweep_path": str(spec.path), "dataset": str(dataset_dir), "out": str(out),
            "device": "cuda" if options.gpus_per_trial > 0 else "cpu",
            "threads": max(1, int(options.cpus_per_trial))}
    tune_config: dict[str, Any] = {"max_concurrent_trials": options.max_concurrent,
                                   "trial_dirname_creator": lambda trial: f"ray_{trial.trial_id}"}
    if spec.search == "grid":
        param_space = {**base, "trial": tune.grid_search([t.to_dict() for t in pending])}
    else:
        from ray.tune.search.optuna import OptunaSearch

        done = [json.loads((out / TRIALS_DIR / k / "trial.json").read_text()) for k, s in statuses.items()
                if s["status"] == "done"]
        points = [{k: d["setting"][k] for k in spec.space} for d in done]
        rewards = [[statuses[TrialSpec.from_dict(d).trial_id]["result"]["valid_st"],
                    statuses[TrialSpec.from_dict(d).trial_id]["cost"]["us_per_buffer_p50"]] for d in done]
        searcher = OptunaSearch(metric=["valid_st", "cost_us"], mode=["min", "min"], seed=spec.seeds[0],
                                points_to_evaluate=points or None, evaluated_rewards=rewards or None)
        param_space = {**base, **_search_space(spec, tune)}
        tune_config.update(search_alg=searcher, num_samples=len(pending))
    # intermediate results carry the ST loss only and failed trials no metric: let Tune accept both
    os.environ.setdefault("TUNE_DISABLE_STRICT_METRIC_CHECKING", "1")
    tuner = tune.Tuner(
        tune.with_resources(_trainable, {"cpu": options.cpus_per_trial, "gpu": options.gpus_per_trial}),
        param_space=param_space,
        tune_config=tune.TuneConfig(**tune_config),
        run_config=tune.RunConfig(name="tune", storage_path=str(out / "ray"), verbose=0,
                                  callbacks=[_tune_callback(table, spec)]),
    )
    tuner.fit()


def summarise(out: Path, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Every trial's status from its folder (the source of truth), written to OUT/summary.json."""
    trials = {}
    for folder in sorted((out / TRIALS_DIR).glob("*")):
        status = read_status(folder)
        if status is not None:
            trials[folder.name] = status
    counts = {s: sum(1 for t in trials.values() if t["status"] == s) for s in ("done", "failed", "running")}
    summary = {"counts": counts, "trials": trials}
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    log(f"sweep finished: {counts['done']} done, {counts['failed']} failed, {counts['running']} interrupted; "
        f"results in {out / TRIALS_DIR}, TensorBoard: tensorboard --logdir {out / TRIALS_DIR}")
    for name, t in trials.items():
        if t["status"] == "failed":
            log(f"  failed {name}: {t['reason']}")
    return summary
