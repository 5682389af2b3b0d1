"""Figures of a training run and its held-out evaluation (PNG files, matplotlib's Agg backend)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from neuralcomp.evaluation import Evaluation, ItemEvaluation, gain_db, gain_window, static_curve

_TARGET, _MODEL = "#1f77b4", "#d62728"


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def loss_curves(metrics_path: Path, out: Path, smoothing: int = 50) -> Path:
    """Training loss (moving average over `smoothing` iterations) and ST/WT validation losses."""
    plt = _pyplot()
    rows = [json.loads(line) for line in metrics_path.read_text().splitlines() if line.strip()]
    train = np.array([(r["iteration"], r["train_total"]) for r in rows if "train_total" in r])
    valid = [r for r in rows if "valid_st" in r]
    fig, ax = plt.subplots(figsize=(8, 4.5))
    if len(train):
        k = min(smoothing, len(train))
        smooth = np.convolve(train[:, 1], np.ones(k) / k, mode="valid")
        ax.plot(train[k - 1:, 0], smooth, color="0.5", label=f"train (mean of {k} iterations)")
    if valid:
        its = [r["iteration"] for r in valid]
        ax.plot(its, [r["valid_st"] for r in valid], "o-", color=_MODEL, label="validation, ST (streamed)")
        ax.plot(its, [r["valid_wt"] for r in valid], "s--", color=_TARGET, label="validation, WT (windowed)")
    ax.set_yscale("log")
    ax.set_xlabel("iteration")
    ax.set_ylabel("loss (100 MAE + ESR + MR-STFT + MR-EESR)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def _loudest_stretch(item: ItemEvaluation, sample_rate: int, seconds: float = 0.1) -> slice:
    """`seconds` of the music section (or of the item) around its loudest part."""
    start, end = item.sections.get("music", (0, len(item.input)))
    n = min(round(seconds * sample_rate), end - start)
    energy = np.convolve(item.input[start:end] ** 2, np.ones(n // 8), mode="valid")
    centre = start + int(np.argmax(energy)) + n // 16
    first = int(np.clip(centre - n // 2, start, end - n))
    return slice(first, first + n)


def item_figure(item: ItemEvaluation, sample_rate: int, out: Path) -> Path:
    """Target vs model: waveforms over 100 ms of loud music, and gain over the whole item."""
    plt = _pyplot()
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(10, 7))
    zoom = _loudest_stretch(item, sample_rate)
    t = np.arange(zoom.start, zoom.stop) / sample_rate
    top.plot(t, item.input[zoom], color="0.75", lw=0.6, label="input")
    top.plot(t, item.target[zoom], color=_TARGET, lw=0.8, label="target (compressor)")
    top.plot(t, item.output[zoom], color=_MODEL, lw=0.8, alpha=0.8, label="model (C++ host, streamed)")
    top.set_xlabel("time (s)")
    top.set_ylabel("amplitude")
    top.set_title(f"item {item.item_id}: ESR {item.esr:.4f} over the whole item")
    top.legend(loc="upper right")
    window = gain_window(sample_rate)
    gain_target, mask = gain_db(item.input, item.target, window)
    gain_model, _ = gain_db(item.input, item.output, window)
    times = (np.arange(len(mask)) + 0.5) * window / sample_rate
    bottom.plot(times, np.where(mask, gain_target, np.nan), color=_TARGET, lw=0.8, label="target")
    bottom.plot(times, np.where(mask, gain_model, np.nan), color=_MODEL, lw=0.8, alpha=0.8, label="model")
    for name, (start, _) in item.sections.items():
        bottom.axvline(start / sample_rate, color="0.6", lw=0.5)
        bottom.text(start / sample_rate, 1.0, f" {name}", fontsize=8, va="top",
                    transform=bottom.get_xaxis_transform())
    bottom.set_xlabel("time (s)")
    bottom.set_ylabel(f"gain (dB, {window}-sample windows)")
    bottom.set_title(f"gain over time: RMS difference {item.gain_reduction_rmse_db:.2f} dB")
    bottom.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def level_curve(input: np.ndarray, output: np.ndarray, window: int,
                floor_db: float = -60.0) -> tuple[np.ndarray, np.ndarray]:
    """A static curve from any audio: the median output level of the windows whose input level falls in
    each 1 dB bin (window RMS in dBFS of a sine peak), bins with at least 5 windows, above `floor_db`."""
    n = min(len(input), len(output)) // window * window
    rms = lambda x: np.sqrt(np.mean(np.asarray(x[:n], np.float64).reshape(-1, window) ** 2, axis=1))  # noqa: E731
    level_in = 20 * np.log10(np.maximum(rms(input), 1e-10)) + 3.01
    level_out = 20 * np.log10(np.maximum(rms(output), 1e-10)) + 3.01
    bins = np.floor(level_in)
    xs, ys = [], []
    for b in np.unique(bins[level_in > floor_db]):
        members = bins == b
        if members.sum() >= 5:
            xs.append(b + 0.5)
            ys.append(float(np.median(level_out[members])))
    return np.array(xs), np.array(ys)


def static_curve_figure(evaluation: Evaluation, out: Path, item: ItemEvaluation | None = None,
                        sample_rate: int | None = None) -> Path | None:
    """Steady-state output level against input level, target vs model: from the tone steps of a rendered
    dataset's source, or (captures, any audio) from 10 ms window levels binned by input level."""
    item = item or evaluation.items[0]
    tones = evaluation.source is not None and "tone_steps" in item.sections
    if not tones and sample_rate is None:
        return None
    plt = _pyplot()
    if tones:
        start = item.sections["tone_steps"][0]
        level_in, target = static_curve(item.input, item.target, evaluation.source, start)
        _, model = static_curve(item.input, item.output, evaluation.source, start)
        title, model_in = "static curve, 1 kHz tone steps", level_in
    else:
        window = gain_window(sample_rate)
        level_in, target = level_curve(item.input, item.target, window)
        model_in, model = level_curve(item.input, item.output, window)
        title = f"level curve: median output of {window}-sample windows per 1 dB of input"
    fig, ax = plt.subplots(figsize=(5.5, 5))
    ax.plot(level_in, level_in, color="0.7", lw=0.8, ls=":", label="unity")
    ax.plot(level_in, target, "o-", color=_TARGET, ms=3, label="target")
    ax.plot(model_in, model, "s-", color=_MODEL, ms=3, alpha=0.8, label="model")
    controls = ", ".join(f"{k} {v:.3g}" for k, v in item.controls.items())
    ax.set_title(f"{title}\nitem {item.item_id}" + (f": {controls}" if controls else ""), fontsize=9)
    ax.set_xlabel("input level (dBFS, sine peak)")
    ax.set_ylabel("output level (dBFS, sine peak)")
    ax.grid(True, alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def evaluation_figures(evaluation: Evaluation, sample_rate: int, folder: Path) -> list[Path]:
    """For every evaluated item: target vs model (waveform and gain over time) and its static curve."""
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for item in evaluation.items:
        written.append(item_figure(item, sample_rate, folder / f"target_vs_model_{item.item_id}.png"))
        curve = static_curve_figure(evaluation, folder / f"static_curve_{item.item_id}.png", item, sample_rate)
        if curve:
            written.append(curve)
    return written
