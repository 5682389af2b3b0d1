"""`neuralcomp` command line: dataset, train, export, process, info, bench, bench-train, complexity, live, demo."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path


from neuralcomp.errors import NeuralcompError
from neuralcomp.live import add_live_command, parse_control


def _parse_sizes(text: str) -> list[int]:
    try:
        sizes = [int(s) for s in text.split(",") if s]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"buffer sizes are comma-separated integers, got {text!r}") from exc
    if not sizes or min(sizes) < 1:
        raise argparse.ArgumentTypeError("buffer sizes must be >= 1")
    return sizes


def _parse_backends(text: str) -> list[str]:
    backends = [b for b in text.split(",") if b]
    unknown = set(backends) - {"cpp", "python", "eager"}
    if unknown or not backends:
        raise argparse.ArgumentTypeError(f"backends are cpp, python, eager; got {text!r}")
    return backends


def _build_untrained(preset: str, mode: str | None, controls: int, seed: int):
    import torch

    from neuralcomp.config import generic_controls, load_preset
    from neuralcomp.model import SPTMod

    overrides = {"controls": generic_controls(controls)}
    if mode:
        overrides["mode"] = mode
    torch.manual_seed(seed)
    return SPTMod(load_preset(preset, **overrides))


def cmd_export(args: argparse.Namespace) -> int:
    from export import export_model

    if args.checkpoint:
        from neuralcomp.model.checkpoint import load_model

        model, extra = load_model(args.checkpoint)
        if args.mode and args.mode != model.config.mode:
            raise NeuralcompError(f"the checkpoint was trained in {model.config.mode} mode; it cannot be exported as {args.mode}")
        provenance = {"checkpoint": str(args.checkpoint), **extra}
    elif args.untrained:
        model = _build_untrained(args.preset, args.mode, args.controls, args.seed)
        provenance = {"untrained": True, "preset": args.preset, "seed": args.seed}
    else:
        raise NeuralcompError("give --checkpoint CKPT, or --untrained for a randomly initialised preset")
    path = export_model(model, args.output, provenance)
    print(f"wrote {path} ({model.config.name}, {model.config.mode} mode, {model.config.num_controls} controls)")
    return 0


def _open(args: argparse.Namespace):
    from neuralcomp import load

    processor = load(args.model, backend=args.backend)
    for name, value in getattr(args, "control", None) or []:
        processor.set_control(name, value)
    return processor


def cmd_process(args: argparse.Namespace) -> int:
    import soundfile as sf

    from neuralcomp.errors import AudioInputError

    processor = _open(args)
    try:
        audio, rate = sf.read(args.input, dtype="float32", always_2d=True)
    except (RuntimeError, sf.LibsndfileError) as exc:
        raise AudioInputError(f"cannot read {args.input}: {exc}") from exc
    start = time.perf_counter()
    out = processor.process(audio.T.copy(), rate, buffer_size=args.buffer)
    elapsed = time.perf_counter() - start
    sf.write(args.output, out.T, rate, subtype="FLOAT")
    seconds = audio.shape[0] / rate
    print(f"{args.output}: {audio.shape[0]} frames x {audio.shape[1]} ch, buffer {args.buffer or 'whole file'}, "
          f"backend {processor.backend}, latency {processor.latency_samples} samples, "
          f"real-time factor {elapsed / seconds:.3f}")
    if processor.nonfinite_buffers:
        print(f"warning: {processor.nonfinite_buffers} buffer(s) had NaN/Inf input and were muted", file=sys.stderr)
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    processor = _open(args)
    meta = processor.metadata
    if args.json:
        print(json.dumps(meta, indent=2))
        return 0
    config = meta["model_config"]
    print(f"model        {args.model}")
    print(f"architecture {config['name']}: channels {config['channels']}, kernels {config['kernel_sizes']}, "
          f"P={meta['pool_size']}, H={config['lstm_hidden']}")
    print(f"mode         {meta['mode']} (latency {meta['latency_samples']} samples)")
    print(f"sample rate  {meta['sample_rate']} Hz; schema {meta['schema_version']}; torch {meta['torch_version']}")
    print(f"backend      {processor.backend}")
    for c in meta["controls"]:
        print(f"control      {c['name']}: [{c['minimum']:g}, {c['maximum']:g}] {c['unit']}, default {c['default']:g}, "
              f"{c.get('mapping', 'linear')} mapping")
    for s in meta["state"]:
        print(f"state        {s['name']}: {s['shape']} {s['dtype']}")
    print(f"provenance   {json.dumps(meta.get('provenance', {}))}")
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from neuralcomp.bench import latency_report, write_report
    from neuralcomp.host.processor import cpp_host_available

    backends = list(args.backends)
    if "cpp" in backends and not cpp_host_available():
        print("note: C++ host not built (make build); leaving it out", file=sys.stderr)
        backends.remove("cpp")

    def progress(r) -> None:
        print(f"  {r.backend:6s} {r.sample_rate:6d} Hz {r.buffer_size:5d}: p50 {r.p50_us:8.1f} us  "
              f"rtf {r.real_time_factor:.3f}  misses {r.deadline_misses}", file=sys.stderr)

    report = latency_report(args.model, backends, args.buffers, args.rates, args.seconds, progress)
    print(report.to_markdown())
    if args.out:
        for path in write_report(report, args.out):
            print(f"wrote {path}", file=sys.stderr)
    return 0


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
    from neuralcomp.model import SPTMod
    from neuralcomp.training.bench import bench_training, format_rows

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    rows = []
    for preset in args.presets.split(","):
        for n, b, length in args.settings:
            torch.manual_seed(0)
            model = SPTMod(load_preset(preset, controls=generic_controls(args.controls)))
            rows.append(bench_training(model, n, b, length, device=device, groups=args.groups))
            r = rows[-1]
            print(f"  {preset} N={n} B={b} L={length}: {r.seconds_per_iteration:.3f} s/it", file=sys.stderr)
    print(f"training throughput, {device}, torch threads {torch.get_num_threads()}\n")
    print(format_rows(rows))
    return 0


def cmd_dataset_build(args: argparse.Namespace) -> int:
    from neuralcomp.data import dataset as ds
    from neuralcomp.data.source import DEFAULT_MUSIC_DIR, SourceConfig
    from neuralcomp.data.targets import PluginTarget, load_target_preset

    target = PluginTarget(load_target_preset(args.target))
    settings = ds.sampled_settings(args.sampling, target, args.items, args.seed)
    music = None if args.synthetic_music else (args.music or DEFAULT_MUSIC_DIR)
    path = ds.build_dataset(args.output, target, settings, SourceConfig(seed=args.seed), music,
                            allow_synthetic_music=args.synthetic_music, overwrite=args.overwrite)
    print(f"wrote {path}: {len(settings)} items ({args.sampling}) from {args.target}")
    return 0


def _parse_control_spec(text: str):
    """NAME:MIN:MAX[:UNIT[:log]] -> ControlSpec with its default mid-range."""
    from neuralcomp.config import ControlSpec
    from neuralcomp.errors import ConfigError

    parts = text.split(":")
    try:
        name, lo, hi = parts[0], float(parts[1]), float(parts[2])
        unit = parts[3] if len(parts) > 3 else ""
        mapping = parts[4] if len(parts) > 4 else "linear"
        spec = ControlSpec(name, lo, hi, lo, unit, mapping)
        return ControlSpec(name, lo, hi, spec.value_at(0.5), unit, mapping)
    except (IndexError, ValueError, ConfigError) as exc:
        raise argparse.ArgumentTypeError(f"a control is NAME:MIN:MAX[:UNIT[:log]], got {text!r} ({exc})") from exc


def cmd_dataset_capture(args: argparse.Namespace) -> int:
    from neuralcomp.data import dataset as ds
    from neuralcomp.data.hardware import InterfaceConfig, capture_dataset
    from neuralcomp.data.source import DEFAULT_MUSIC_DIR, SourceConfig, make_source

    controls = args.control or []
    if controls:
        settings = ds.sampled_settings(args.sampling, controls, args.items, args.seed).items
    else:
        settings = tuple({} for _ in range(args.items))
    device = int(args.device) if args.device and args.device.isdigit() else args.device
    interface = InterfaceConfig(device, args.rate, args.out_channel, args.in_channel, args.blocksize)
    print(f"capturing {len(settings)} takes of about 96 s each: output channel {args.out_channel} -> unit -> "
          f"input channel {args.in_channel}", file=sys.stderr)
    sources = [make_source(SourceConfig(sample_rate=args.rate, seed=args.seed + i), args.music or DEFAULT_MUSIC_DIR).audio
               for i in range(len(settings))]
    path, report = capture_dataset(args.output, sources, settings, controls, interface,
                                   ask_user=lambda text: input(f"{text}, then press Enter "),
                                   log=lambda line: print(line, file=sys.stderr), overwrite=args.overwrite)
    print(report.format())
    print(f"wrote {path}")
    return 0


def cmd_dataset_import(args: argparse.Namespace) -> int:
    from neuralcomp.data.captures import import_captures

    path, report = import_captures(args.folder, args.output, overwrite=args.overwrite)
    print(report.format())
    print(f"wrote {path}")
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from neuralcomp.training.run import train_and_export
    from neuralcomp.training.trainer import TrainingConfig

    overrides = {k: v for k, v in {"max_iterations": args.max_iterations, "length": args.length,
                                   "batch_size": args.batch_size, "subsequences": args.subsequences,
                                   "validate_every": args.validate_every, "checkpoint_every": args.checkpoint_every,
                                   "seed": args.seed}.items() if v is not None}
    config = TrainingConfig.from_preset(args.training, **overrides)
    result = train_and_export(args.dataset, args.out, config, args.preset, args.mode, args.split, args.device,
                              args.resume, log=lambda line: print(line, file=sys.stderr),
                              progress_bar=not args.no_progress and sys.stderr.isatty())
    print(json.dumps(result.to_dict(), indent=2))
    print(f"wrote {result.model_path}; TensorBoard logs in {Path(args.out) / 'tensorboard'}")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from neuralcomp import load
    from neuralcomp.data.dataset import load_dataset
    from neuralcomp.evaluation import evaluate

    dataset = load_dataset(args.dataset)
    test = dataset.split(args.split).test
    processor = load(args.model, backend=args.backend)
    evaluation = evaluate(processor, dataset, test, args.buffer)
    report = evaluation.to_dict()
    for item in report["items"]:
        controls = ", ".join(f"{k} {v:.3g}" for k, v in item["controls"].items())
        print(f"  {item['item']}: ST ESR {item['st_esr']:.4f}, gain error {item['gain_reduction_rmse_db']:.2f} dB "
              f"RMS ({controls})")
    print(f"mean over {len(report['items'])} held-out items ({processor.backend} host, {args.buffer}-sample "
          f"buffers): ST ESR {report['st_esr']:.4f}, gain error {report['gain_reduction_rmse_db']:.2f} dB RMS")
    if args.out:
        args.out.write_text(json.dumps(report, indent=2))
        print(f"wrote {args.out}")
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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="neuralcomp", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("export", help="write a streaming TorchScript model")
    p.add_argument("--checkpoint", type=Path, help="trained checkpoint to export")
    p.add_argument("--untrained", action="store_true", help="export a randomly initialised preset")
    p.add_argument("--preset", default="sptmod25", help="model preset (presets/models/NAME.json)")
    p.add_argument("--mode", choices=["causal", "paper"], help="interpolation mode (default: causal)")
    p.add_argument("--controls", type=int, default=0, help="number of controls of an untrained model")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("-o", "--output", type=Path, required=True)
    p.set_defaults(func=cmd_export)

    def model_args(p: argparse.ArgumentParser) -> None:
        p.add_argument("model", type=Path)
        p.add_argument("--backend", choices=["auto", "cpp", "python"], default="auto")

    p = sub.add_parser("process", help="render a file through a model")
    model_args(p)
    p.add_argument("input", type=Path)
    p.add_argument("output", type=Path)
    p.add_argument("--buffer", type=int, default=None, help="host buffer size in samples (default: whole file)")
    p.add_argument("--control", type=parse_control, action="append", metavar="NAME=VALUE")
    p.set_defaults(func=cmd_process)

    p = sub.add_parser("info", help="show a model's metadata")
    model_args(p)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_info)

    p = sub.add_parser("bench", help="latency report: per-buffer time, real-time factor, deadline misses")
    p.add_argument("model", type=Path)
    p.add_argument("--backends", type=_parse_backends, default=["cpp", "python", "eager"],
                   help="comma-separated: cpp, python, eager (default: all)")
    p.add_argument("--buffers", type=_parse_sizes, default=[16, 32, 64, 128, 256, 512, 1024, 2048, 4096])
    p.add_argument("--rates", type=_parse_sizes, default=[44100, 48000, 96000], help="host sample rates")
    p.add_argument("--seconds", type=float, default=1.0, help="audio per case")
    p.add_argument("--out", type=Path, help="write latency.json, latency.md and latency.png here")
    p.set_defaults(func=cmd_bench)

    p = sub.add_parser("dataset", help="build a dataset from a plugin, or import hardware captures")
    dsub = p.add_subparsers(dest="dataset_command", required=True)
    q = dsub.add_parser("build", help="render the source signal through a target plugin")
    q.add_argument("output", type=Path)
    q.add_argument("--target", default="zamcomp", help="target preset (presets/targets/NAME.json)")
    q.add_argument("--sampling", choices=["snapshot", "grid", "lhs"], default="snapshot")
    q.add_argument("--items", type=int, default=16)
    q.add_argument("--music", type=Path, help="folder of music files (default: Debian's fretsonfire songs)")
    q.add_argument("--synthetic-music", action="store_true", help="no real music (tests only)")
    q.add_argument("--seed", type=int, default=0)
    q.add_argument("--overwrite", action="store_true")
    q.set_defaults(func=cmd_dataset_build)
    q = dsub.add_parser("capture", help="play the source through a hardware unit and record it (sounddevice)")
    q.add_argument("output", type=Path)
    q.add_argument("--control", type=_parse_control_spec, action="append", metavar="NAME:MIN:MAX[:UNIT[:log]]",
                   help="a knob of the unit (repeat); you set it by hand before each take")
    q.add_argument("--sampling", choices=["snapshot", "lhs"], default="snapshot")
    q.add_argument("--items", type=int, default=16)
    q.add_argument("--device", help="sounddevice device name or index (default: the default device)")
    q.add_argument("--rate", type=int, default=44100)
    q.add_argument("--out-channel", type=int, default=1, help="interface output feeding the unit (1-based)")
    q.add_argument("--in-channel", type=int, default=1, help="interface input recording the unit (1-based)")
    q.add_argument("--blocksize", type=int, default=512)
    q.add_argument("--music", type=Path, help="folder of music files (default: Debian's fretsonfire songs)")
    q.add_argument("--seed", type=int, default=0)
    q.add_argument("--overwrite", action="store_true")
    q.set_defaults(func=cmd_dataset_capture)
    q = dsub.add_parser("import", help="import recorded input/output pairs (hardware captures)")
    q.add_argument("folder", type=Path)
    q.add_argument("output", type=Path)
    q.add_argument("--overwrite", action="store_true")
    q.set_defaults(func=cmd_dataset_import)

    p = sub.add_parser("train", help="train SPTMod with TBPTT on a dataset split, export the best model")
    p.add_argument("dataset", type=Path)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--preset", default="tiny")
    p.add_argument("--mode", choices=["causal", "paper"], default="causal")
    p.add_argument("--training", default="paper", help="training preset (presets/training/NAME.json)")
    p.add_argument("--split", type=int, default=0)
    p.add_argument("--max-iterations", type=int)
    p.add_argument("--length", type=int, help="L")
    p.add_argument("--batch-size", type=int, help="B")
    p.add_argument("--subsequences", type=int, help="N")
    p.add_argument("--validate-every", type=int)
    p.add_argument("--checkpoint-every", type=int)
    p.add_argument("--seed", type=int)
    p.add_argument("--device", help="cpu or cuda (default: cuda when available)")
    p.add_argument("--resume", action="store_true", help="continue from OUT/last.ckpt")
    p.add_argument("--no-progress", action="store_true", help="log lines instead of a progress bar")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("evaluate", help="held-out figures of a model on a dataset split, streamed through a host")
    model_args(p)
    p.add_argument("dataset", type=Path)
    p.add_argument("--split", type=int, default=0)
    p.add_argument("--buffer", type=int, default=512)
    p.add_argument("--out", type=Path, help="write the figures as JSON here")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("bench-train", help="training throughput: seconds per iteration for (N, B, L) settings")
    p.add_argument("--presets", default="sptmod25,sptmod24")
    p.add_argument("--settings", type=_parse_settings, default=[(1, 16, 16384), (1, 64, 32768), (3, 64, 32768)],
                   help="N,B,L;N,B,L... (default: the paper's three)")
    p.add_argument("--controls", type=int, default=7)
    p.add_argument("--groups", type=int, default=2, help="timed TBPTT groups per setting (after one warm-up)")
    p.add_argument("--device", help="cpu or cuda (default: cuda when available)")
    p.set_defaults(func=cmd_bench_train)

    p = sub.add_parser("complexity", help="parameters and multiply-adds per sample of a preset")
    p.add_argument("--preset", default="sptmod25")
    p.add_argument("--controls", type=int, default=7)
    p.set_defaults(func=cmd_complexity)

    p = sub.add_parser("demo", help="the main job: ZamComp -> dataset -> TBPTT training -> export -> held-out report")
    p.add_argument("--out", type=Path, default=Path("out/demo"))
    p.add_argument("--max-iterations", type=int, help="shorter or longer training than the demo preset")
    p.add_argument("--device", help="cpu or cuda (default: cuda when available)")
    p.set_defaults(func=cmd_demo)

    add_live_command(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (NeuralcompError, ImportError) as exc:
        print(f"neuralcomp {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
