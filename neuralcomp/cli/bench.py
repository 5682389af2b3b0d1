"""`neuralcomp bench`, `bench-train`, `complexity` and `demo`: measure hosts and training, run the main job."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from neuralcomp.cli.arguments import parse_sizes
from neuralcomp.errors import NeuralcompError


_BENCH_BACKENDS = ("native", "torchscript", "cpp", "python", "eager")


def _parse_backends(text: str) -> list[str]:
    backends = [b for b in text.split(",") if b]
    unknown = set(backends) - set(_BENCH_BACKENDS)
    if unknown or not backends:
        raise argparse.ArgumentTypeError(f"backends are {', '.join(_BENCH_BACKENDS)}; got {text!r}")
    return ["torchscript" if b == "cpp" else b for b in backends]


def cmd_bench(args: argparse.Namespace) -> int:
    from neuralcomp.bench import latency_report, write_report
    from neuralcomp.host.processor import cpp_host_available, native_engine_available

    backends = list(args.backends)
    for backend, built in (("native", native_engine_available()), ("torchscript", cpp_host_available())):
        if backend in backends and not built:
            print(f"note: the {backend} backend is not built (make build); leaving it out", file=sys.stderr)
            backends.remove(backend)

    backends = _runnable_backends(args.model, backends)

    def progress(r) -> None:
        print(f"  {r.backend:11s} {r.sample_rate:6d} Hz {r.buffer_size:5d}: p50 {r.p50_us:8.1f} us  "
              f"rtf {r.real_time_factor:.3f}  misses {r.deadline_misses}", file=sys.stderr)

    report = latency_report(args.model, backends, args.buffers, args.rates, args.seconds, progress)
    print(report.to_markdown())
    if args.out:
        for path in write_report(report, args.out):
            print(f"wrote {path}", file=sys.stderr)
    return 0


def _runnable_backends(model: Path, backends: list[str]) -> list[str]:
    """The backends that can open `model`; one that refuses it (the native engine and a keyed model) is left
    out with a note. NeuralcompError when none can."""
    from neuralcomp.errors import ModelFileError
    from neuralcomp.host.processor import load

    kept, refusals = [], []
    for backend in backends:
        try:
            if backend != "eager":
                load(model, backend=backend)
        except ModelFileError as exc:
            refusals.append(str(exc))
            print(f"note: the {backend} backend cannot run this model ({exc}); leaving it out", file=sys.stderr)
            continue
        kept.append(backend)
    if not kept:
        raise NeuralcompError(f"no backend asked for can run {model}: {'; '.join(refusals) or 'none given'}")
    return kept


def _parse_settings(text: str) -> list[tuple[int, int, int]]:
    try:
        settings = [tuple(int(v) for v in part.split(",")) for part in text.split(";") if part]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"settings are N,B,L;N,B,L..., got {text!r}") from exc
    if not settings or any(len(s) != 3 or min(s) < 1 for s in settings):
        raise argparse.ArgumentTypeError(f"settings are N,B,L;N,B,L... with positive integers, got {text!r}")
    return settings


def cmd_bench_train(args: argparse.Namespace) -> int:
    import torch

    from neuralcomp.config import generic_controls, load_preset
    from neuralcomp.model import build_model
    from neuralcomp.training.bench import bench_training, format_rows

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    rows = []
    for preset in args.presets.split(","):
        for n, b, length in args.settings:
            torch.manual_seed(0)
            model = build_model(load_preset(preset, controls=generic_controls(args.controls)))
            rows.append(bench_training(model, n, b, length, device=device, groups=args.groups))
            r = rows[-1]
            print(f"  {preset} N={n} B={b} L={length}: {r.seconds_per_iteration:.3f} s/it", file=sys.stderr)
    print(f"training throughput, {device}, torch threads {torch.get_num_threads()}\n")
    print(format_rows(rows))
    return 0


def cmd_complexity(args: argparse.Namespace) -> int:
    from neuralcomp.config import generic_controls, load_preset
    from neuralcomp.model.complexity import complexity

    config = load_preset(args.preset, controls=generic_controls(args.controls))
    c = complexity(config)
    print(f"{config.name} with {args.controls} controls")
    print(f"  parameters: processor {c.processor_parameters:,}, SPN {c.spn_parameters:,}")
    print(f"  multiply-adds per output sample: conv {c.conv_macs:,.0f}, LSTM {c.lstm_macs:,.0f}, modulation "
          f"{c.modulation_macs:,.0f}")
    print(f"    1x1 projection at audio rate (published form) {c.projection_macs_published:,.0f} -> "
          f"total {c.macs_published:,.0f}")
    print(f"    1x1 projection at frame rate (this implementation) {c.projection_macs_streaming:,.0f} -> "
          f"total {c.macs_streaming:,.0f}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from neuralcomp.demo import DemoConfig, run_demo

    overrides = {"max_iterations": args.max_iterations} if args.max_iterations else {}
    config = DemoConfig(training_overrides=overrides, device=args.device)
    report = run_demo(args.out, config, log=lambda line: print(line, file=sys.stderr),
                      progress_bar=sys.stderr.isatty())
    print(f"held-out ({len(report['items'])} items, streamed through the {report['backend']} host):")
    for name, aim in report["aims"].items():
        print(f"  {name:24s} {report[name]:.4f}  (aim < {aim['aim']}: {'reached' if aim['reached'] else 'not reached'})")
    print("  loss terms: " + ", ".join(f"{k} {v:.4f}" for k, v in report["loss_terms"].items()))
    print(f"  streamed in {report['buffer_size']}-sample buffers == one offline call: {report['streamed_equals_offline']}")
    print("  stages: " + ", ".join(f"{k} {v:.0f} s" for k, v in report["seconds"].items()))
    print(f"wrote {Path(args.out) / 'report.json'}, plots and held-out audio in {args.out}")
    return 0 if report["streamed_equals_offline"] else 1


def add_commands(sub: Any) -> None:
    """Register `bench`, `bench-train`, `complexity` and `demo`."""
    p = sub.add_parser("bench", help="latency report: per-buffer time, real-time factor, deadline misses")
    p.add_argument("model", type=Path, help="exported model (.ts)")
    p.add_argument("--backends", type=_parse_backends, default=["native", "torchscript", "python", "eager"],
                   help="comma-separated: native, torchscript (alias cpp), python, eager (default: all)")
    p.add_argument("--buffers", type=parse_sizes, default=[16, 32, 64, 128, 256, 512, 1024, 2048, 4096],
                   help="comma-separated buffer sizes in samples (default: 16 to 4096, powers of 2)")
    p.add_argument("--rates", type=parse_sizes, default=[44100, 48000, 96000], help="host sample rates")
    p.add_argument("--seconds", type=float, default=1.0, help="audio per case")
    p.add_argument("--out", type=Path, help="write latency.json, latency.md and latency.png here")
    p.set_defaults(func=cmd_bench)

    p = sub.add_parser("bench-train", help="training throughput: seconds per iteration for (N, B, L) settings")
    p.add_argument("--presets", default="sptmod25,sptmod24", help="comma-separated model presets (default: sptmod25,sptmod24)")
    p.add_argument("--settings", type=_parse_settings, default=[(1, 16, 16384), (1, 64, 32768), (3, 64, 32768)],
                   help="N,B,L;N,B,L... (default: the paper's three)")
    p.add_argument("--controls", type=int, default=7, help="number of controls of the timed models (default: 7)")
    p.add_argument("--groups", type=int, default=2, help="timed TBPTT groups per setting (after one warm-up)")
    p.add_argument("--device", help="cpu or cuda (default: cuda when available)")
    p.set_defaults(func=cmd_bench_train)

    p = sub.add_parser("complexity", help="parameters and multiply-adds per sample of a preset")
    p.add_argument("--preset", default="sptmod25", help="model preset (presets/models/NAME.json; default: sptmod25)")
    p.add_argument("--controls", type=int, default=7, help="number of controls (default: 7)")
    p.set_defaults(func=cmd_complexity)

    p = sub.add_parser("demo", help="the main job: ZamComp -> dataset -> TBPTT training -> export -> held-out report")
    p.add_argument("--out", type=Path, default=Path("out/demo"), help="output folder; rerun to continue (default: out/demo)")
    p.add_argument("--max-iterations", type=int,
                   help="training iterations, shorter or longer than the demo preset (default: its 3,000)")
    p.add_argument("--device", help="cpu or cuda (default: cuda when available)")
    p.set_defaults(func=cmd_demo)
