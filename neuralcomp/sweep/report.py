"""The paper's tables from a sweep folder: median and MAD over splits of the ST validation loss per
(N, B, L), rows B and columns L (with Lc = N*L), one table per N (its Tables 1-4); training time by
its definition (Tables 5-6); the WT-ST gap (exposure bias); accuracy against real-time cost with the
Pareto front. Markdown, CSV, JSON, heat maps and the loss-against-Lc plot.

Training time (paper section 3): the iterations a run needs to come within 5 % of its own minimum
validation loss, times the seconds per iteration that `bench-train` measures for the same model and
(N, B, L) on the report's device (measured once per setting, cached in REPORT/bench_train.json).
MAD is the median of the absolute deviations from the median.
"""

from __future__ import annotations

import csv
import json
import shutil
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from neuralcomp.sweep.runner import SWEEP_FILE, TRIALS_DIR
from neuralcomp.sweep.spec import SweepError, TrialSpec
from neuralcomp.sweep.trial import TRIAL_FILE, read_status

WITHIN = 0.05  # "within 5 % of the minimum validation loss"
TNBL = ("subsequences", "batch_size", "length")


@dataclass(frozen=True)
class TrialRow:
    """One finished trial, as the report sees it."""

    trial_id: str
    group: str  # every swept setting but N, B, L, split and seed
    subsequences: int
    batch_size: int
    length: int
    split: int
    seed: int
    valid_st: float  # best ST validation loss
    valid_wt: float  # WT validation loss at the same validation
    iterations_to_within: int  # first validation within 5 % of the run's minimum ST loss
    macs_per_sample: float
    us_per_buffer: float  # median µs per 64-sample buffer, one thread (robust to a busy machine)
    cost_backend: str
    model: str

    @property
    def lc(self) -> int:
        return self.subsequences * self.length


def median_mad(values: list[float]) -> tuple[float, float]:
    """Median, and the median absolute deviation from it (the paper's MAD)."""
    data = np.asarray(values, dtype=np.float64)
    median = float(np.median(data))
    return median, float(np.median(np.abs(data - median)))


def iterations_to_within(validations: list[tuple[int, float]], within: float = WITHIN) -> int:
    """First validation iteration whose ST loss is within `within` of the run's minimum."""
    best = min(v for _, v in validations)
    return next(i for i, v in validations if v <= best * (1 + within))


def _validations(trial_dir: Path) -> list[tuple[int, float, float]]:
    rows = []
    with open(trial_dir / "metrics.jsonl") as f:
        for line in f:
            row = json.loads(line)
            if "valid_st" in row and np.isfinite(row["valid_st"]):
                rows.append((int(row["iteration"]), float(row["valid_st"]), float(row["valid_wt"])))
    return rows


def _group(setting: dict[str, Any]) -> str:
    rest = {k: v for k, v in setting.items() if k not in (*TNBL, "split", "seed")}
    return ", ".join(f"{k}={v}" for k, v in sorted(rest.items())) or "all"


def load_trials(sweep_dir: Path) -> tuple[list[TrialRow], list[dict[str, Any]]]:
    """Finished trials as rows, and the failed trials with their reasons."""
    rows, failed = [], []
    for folder in sorted((sweep_dir / TRIALS_DIR).glob("*")):
        status = read_status(folder)
        if status is None:
            continue
        if status["status"] == "failed":
            failed.append({"trial_id": folder.name, "reason": status.get("reason", "")})
        if status["status"] != "done":
            continue
        trial = TrialSpec.from_dict(json.loads((folder / TRIAL_FILE).read_text()))
        validations = _validations(folder)
        if not validations:
            continue
        best = min(validations, key=lambda v: v[1])
        t, cost = trial.training, status["cost"]
        rows.append(TrialRow(folder.name, _group(trial.setting), t["subsequences"], t["batch_size"], t["length"],
                             trial.split, t["seed"], best[1], best[2],
                             iterations_to_within([(i, st) for i, st, _ in validations]),
                             cost["macs_per_sample"], cost["us_per_buffer_p50"], cost["backend"],
                             status["result"]["model"]))
    return rows, failed


def seconds_per_iteration(sweep_dir: Path, rows: list[TrialRow], cache: Path, device: str | None, groups: int,
                          log: Callable[[str], None]) -> dict[tuple[str, int, int, int], float]:
    """`bench-train` seconds per iteration per (group, N, B, L) on `device`, cached in `cache`."""
    import torch

    from neuralcomp.data.dataset import load_dataset
    from neuralcomp.model import build_model
    from neuralcomp.training.bench import bench_training

    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    stored = json.loads(cache.read_text()) if cache.is_file() else {}
    dataset = load_dataset(json.loads((sweep_dir / SWEEP_FILE).read_text())["dataset"])
    keyed = {"sidechain": dataset.sidechain_channels} if dataset.sidechain_channels else {}  # as its trials train
    result = {}
    for row in rows:
        key = (row.group, row.subsequences, row.batch_size, row.length)
        name = f"{device}|{key[0]}|{key[1]}|{key[2]}|{key[3]}"
        if name not in stored:
            trial = TrialSpec.from_dict(json.loads((sweep_dir / TRIALS_DIR / row.trial_id / TRIAL_FILE).read_text()))
            torch.manual_seed(0)
            model = build_model(trial.model_config(dataset.controls).with_changes(**keyed))
            bench = bench_training(model, row.subsequences, row.batch_size, row.length, device=device, groups=groups)
            stored[name] = bench.seconds_per_iteration
            log(f"  bench-train {row.group} N={key[1]} B={key[2]} L={key[3]} on {device}: "
                f"{bench.seconds_per_iteration:.3f} s/it")
            cache.write_text(json.dumps(stored, indent=2))
        result[key] = stored[name]
    return result


def summarise_settings(rows: list[TrialRow], seconds: dict[tuple[str, int, int, int], float]) -> list[dict[str, Any]]:
    """Per (group, N, B, L): median and MAD of the ST loss and of the WT-ST gap, median training time."""
    cells: dict[tuple[str, int, int, int], list[TrialRow]] = {}
    for row in rows:
        cells.setdefault((row.group, row.subsequences, row.batch_size, row.length), []).append(row)
    out = []
    for key in sorted(cells):
        members = cells[key]
        median, mad = median_mad([r.valid_st for r in members])
        gap_median, gap_mad = median_mad([r.valid_st - r.valid_wt for r in members])
        out.append({"group": key[0], "N": key[1], "B": key[2], "L": key[3], "Lc": key[1] * key[3],
                    "runs": len(members), "median_valid_st": median, "mad_valid_st": mad,
                    "seconds_per_iteration": seconds[key],
                    "median_training_time_s": float(np.median([r.iterations_to_within * seconds[key]
                                                               for r in members])),
                    "median_wt_st_gap": gap_median, "mad_wt_st_gap": gap_mad,
                    "median_us_per_buffer": float(np.median([r.us_per_buffer for r in members])),
                    "macs_per_sample": members[0].macs_per_sample})
    return out


QUANTITIES = [("median_valid_st", "Median validation (ST) loss", "{:.4g}"),
              ("mad_valid_st", "MAD of the validation (ST) loss", "{:.3g}"),
              ("median_training_time_s", "Median training time (seconds; iterations to within 5 % of the "
                                         "run's minimum x seconds per iteration)", "{:.4g}"),
              ("median_wt_st_gap", "Median WT-ST gap (ST loss - WT loss at the best validation)", "{:.3g}"),
              ("mad_wt_st_gap", "MAD of the WT-ST gap", "{:.3g}")]


def paper_tables(settings: list[dict[str, Any]], quantity: str, fmt: str) -> dict[str, dict[int, str]]:
    """Markdown tables in the paper's layout: per group, one per N; rows B; columns L, then Lc."""
    tables: dict[str, dict[int, str]] = {}
    for group in sorted({s["group"] for s in settings}):
        mine = [s for s in settings if s["group"] == group]
        lengths = sorted({s["L"] for s in mine})
        for n in sorted({s["N"] for s in mine}):
            cell = {(s["B"], s["L"]): s[quantity] for s in mine if s["N"] == n}
            lines = ["| B \\ L | " + " | ".join(str(length) for length in lengths) + " |",
                     "|---:|" + "---:|" * len(lengths),
                     "| *Lc* | " + " | ".join(f"*{n * length}*" for length in lengths) + " |"]
            for b in sorted({s["B"] for s in mine}):
                values = [fmt.format(cell[(b, length)]) if (b, length) in cell else "" for length in lengths]
                lines.append(f"| {b} | " + " | ".join(values) + " |")
            tables.setdefault(group, {})[n] = "\n".join(lines)
    return tables


def pareto_front(rows: list[TrialRow]) -> list[TrialRow]:
    """Trials no other trial beats on both ST loss and µs per buffer, cheapest first."""
    front = [r for r in rows if not any((o.valid_st <= r.valid_st and o.us_per_buffer <= r.us_per_buffer)
                                        and (o.valid_st < r.valid_st or o.us_per_buffer < r.us_per_buffer)
                                        for o in rows)]
    return sorted(front, key=lambda r: r.us_per_buffer)


def _plots(settings: list[dict[str, Any]], rows: list[TrialRow], front: list[TrialRow], out: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths = []
    for group in sorted({s["group"] for s in settings}):
        mine = [s for s in settings if s["group"] == group]
        suffix = "" if group == "all" else "_" + "".join(c if c.isalnum() else "_" for c in group)
        ns, bs, ls = (sorted({s[k] for s in mine}) for k in ("N", "B", "L"))
        for quantity, title, fmt in QUANTITIES[:3]:
            fig, axes = plt.subplots(1, len(ns), figsize=(4.2 * len(ns), 3.6), squeeze=False)
            for ax, n in zip(axes[0], ns):
                grid = np.full((len(bs), len(ls)), np.nan)
                for s in mine:
                    if s["N"] == n:
                        grid[bs.index(s["B"]), ls.index(s["L"])] = s[quantity]
                image = ax.imshow(grid, cmap="viridis_r", aspect="auto")
                for (i, j), value in np.ndenumerate(grid):
                    if np.isfinite(value):
                        ax.text(j, i, fmt.format(value), ha="center", va="center", fontsize=7, color="white")
                ax.set_xticks(range(len(ls)), [str(v) for v in ls])
                ax.set_yticks(range(len(bs)), [str(v) for v in bs])
                ax.set_xlabel("L")
                ax.set_ylabel("B")
                ax.set_title(f"N = {n}")
                fig.colorbar(image, ax=ax)
            fig.suptitle(f"{title.split(' (')[0]} ({group})", fontsize=10)
            fig.tight_layout()
            paths.append(out / f"heatmap_{quantity}{suffix}.png")
            fig.savefig(paths[-1], dpi=110)
            plt.close(fig)
        fig, ax = plt.subplots(figsize=(7, 4.5))
        markers = "os^Dv"
        for b in bs:
            points = sorted((s["Lc"], s["N"], s["median_valid_st"]) for s in mine if s["B"] == b)
            line, = ax.plot([p[0] for p in points], [p[2] for p in points], label=f"B = {b}")
            for lc, n, value in points:
                ax.plot(lc, value, markers[(n - 1) % len(markers)], color=line.get_color())
        ax.set_xscale("log", base=2)
        ax.set_xlabel("Lc = N x L (samples); marker: o N=1, s N=2, ^ N=3")
        ax.set_ylabel("median validation (ST) loss")
        ax.set_title(f"Median validation loss against Lc ({group})")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
        fig.tight_layout()
        paths.append(out / f"loss_vs_lc{suffix}.png")
        fig.savefig(paths[-1], dpi=110)
        plt.close(fig)
    fig, ax = plt.subplots(figsize=(7, 4.5))
    ax.scatter([r.us_per_buffer for r in rows], [r.valid_st for r in rows], s=14, alpha=0.6, label="trials")
    ax.plot([r.us_per_buffer for r in front], [r.valid_st for r in front], "r-o", label="Pareto front")
    ax.set_xlabel(f"µs per 64-sample buffer ({rows[0].cost_backend} host, one thread)")
    ax.set_ylabel("validation (ST) loss")
    ax.set_title("Accuracy against real-time cost")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    paths.append(out / "pareto.png")
    fig.savefig(paths[-1], dpi=110)
    plt.close(fig)
    return paths


def write_report(sweep_dir: str | Path, out: str | Path, device: str | None = None, bench_groups: int = 1,
                 log: Callable[[str], None] = print) -> list[Path]:
    """Write report.md, report.csv, report.json, the plots and the Pareto-optimal models into `out`."""
    sweep_dir, out = Path(sweep_dir), Path(out)
    if not (sweep_dir / SWEEP_FILE).is_file():
        raise SweepError(f"{sweep_dir} is not a sweep folder (no {SWEEP_FILE}); run neuralcomp sweep first")
    rows, failed = load_trials(sweep_dir)
    if not rows:
        raise SweepError(f"{sweep_dir} has no finished trial with a validation yet")
    out.mkdir(parents=True, exist_ok=True)
    recorded = json.loads((sweep_dir / SWEEP_FILE).read_text())
    dataset, search = recorded["dataset"], recorded["sweep"].get("search", "grid")
    settings: list[dict[str, Any]] = []
    if search == "grid":  # a search samples scattered points: no (N, B, L) tables, no per-setting bench
        seconds = seconds_per_iteration(sweep_dir, rows, out / "bench_train.json", device, bench_groups, log)
        settings = summarise_settings(rows, seconds)
    front = pareto_front(rows)
    pareto_dir = out / "pareto_models"
    pareto_dir.mkdir(exist_ok=True)
    for row in front:
        shutil.copyfile(row.model, pareto_dir / f"{row.trial_id}.ts")

    md = [f"# Sweep report: {sweep_dir}", "", f"Dataset: `{dataset}`. {len(rows)} finished trials, "
          f"{len(failed)} failed."]
    if settings:
        md[-1] += (" Median and MAD over cross-validation splits (and seeds) per (N, B, L); rows B, columns L "
                   "with Lc = N x L below them, one table per N (the paper's Tables 1-6 layout; the paper "
                   "prints losses x10, this report prints them as they are).")
    md.append("")
    for quantity, title, fmt in QUANTITIES:
        for group, per_n in paper_tables(settings, quantity, fmt).items():
            md += [f"## {title}" + ("" if group == "all" else f" [{group}]"), ""]
            for n, table in per_n.items():
                md += [f"N = {n}", "", table, ""]
    md += ["## Accuracy against real-time cost: Pareto front", "",
           "| trial | ST loss | µs / 64-sample buffer | multiply-adds / sample | model |", "|---|---:|---:|---:|---|"]
    md += [f"| {r.trial_id} | {r.valid_st:.4g} | {r.us_per_buffer:.1f} | {r.macs_per_sample:,.0f} | "
           f"pareto_models/{r.trial_id}.ts |" for r in front]
    if search != "grid":
        md += ["", "## Trials", "", "| trial | setting | ST loss | WT loss | µs / 64-sample buffer | "
               "multiply-adds / sample |", "|---|---|---:|---:|---:|---:|"]
        md += [f"| {r.trial_id} | {r.group} | {r.valid_st:.4g} | {r.valid_wt:.4g} | {r.us_per_buffer:.1f} | "
               f"{r.macs_per_sample:,.0f} |" for r in sorted(rows, key=lambda r: r.valid_st)]
    if failed:
        md += ["", "## Failed trials", ""] + [f"- {f['trial_id']}: {f['reason']}" for f in failed]
    paths = [out / "report.md", out / "report.csv", out / "report.json"]
    paths[0].write_text("\n".join(md) + "\n")
    table = settings or [asdict(r) for r in rows]  # per (N, B, L) setting, or per trial for a search
    with open(paths[1], "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(table[0]))
        writer.writeheader()
        writer.writerows(table)
    paths[2].write_text(json.dumps({"dataset": dataset, "search": search, "within": WITHIN, "settings": settings,
                                    "trials": [asdict(r) for r in rows], "failed": failed,
                                    "pareto": [r.trial_id for r in front]}, indent=2))
    return paths + _plots(settings, rows, front, out) + [pareto_dir]
