"""`neuralcomp plugin`, `bench-plugin` and `plugin-example`: build a model's VST3/CLAP/LV2 plugins (DPF),
measure them beside the native engine, and render the README's example."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from neuralcomp.cli.arguments import parse_control, parse_sizes
from neuralcomp.errors import ConfigError, NeuralcompError

_FORMATS = ("vst3", "clap", "lv2")


def _parse_formats(text: str) -> tuple[str, ...]:
    formats = tuple(f.strip().lower() for f in text.split(",") if f.strip())
    bad = [f for f in formats if f not in _FORMATS]
    if bad or not formats:
        raise argparse.ArgumentTypeError(f"formats are a comma-separated subset of {','.join(_FORMATS)}, got {text!r}")
    return formats


def cmd_plugin(args: argparse.Namespace) -> int:
    from neuralcomp.plugin_build import build_plugins

    if args.tools and args.build_dir is None:
        raise ConfigError("--tools needs --build-dir (the test hosts stay in BUILD_DIR/cmake)")
    build_plugins(args.model, args.output, name=args.name, formats=args.formats, build_dir=args.build_dir,
                  jobs=args.jobs, tools=args.tools, channels=args.channels)
    return 0


def _print_rows(title: str, rows: list[dict[str, float]]) -> None:
    print(title)
    print(f"{'buffer':>7} {'engine us':>10} {'plugin us':>10} {'overhead us':>12} {'engine RTF':>11} {'plugin RTF':>11}")
    for r in rows:
        print(f"{r['buffer']:>7d} {r['engine_us']:>10.1f} {r['plugin_us']:>10.1f} {r['overhead_us']:>12.1f} "
              f"{r['engine_rtf']:>11.4f} {r['plugin_rtf']:>11.4f}")


def cmd_bench_plugin(args: argparse.Namespace) -> int:
    from neuralcomp.plugin_bench import bench_clap, bench_plugin

    if (args.clap is None) != (args.clap_host is None):
        raise NeuralcompError("--clap and --clap-host go together")
    rows = bench_plugin(args.model, args.plugin, args.buffers, args.seconds)
    _print_rows(f"{args.plugin} in pedalboard vs the native engine from Python (stereo, one thread, "
                "the model's rate, best of 3):", rows)
    if args.clap is not None:
        _print_rows(f"{args.clap} in nc-clap-host vs the engine's C API (C++, same conditions):",
                    bench_clap(args.model, args.clap, args.clap_host, args.buffers, args.seconds))
    return 0


def cmd_plugin_example(args: argparse.Namespace) -> int:
    from neuralcomp.plugin_example import DEFAULT_MUSIC, render_example

    controls = dict(args.control or [("threshold", -30.0), ("ratio", 4.0), ("attack", 5.0), ("release", 50.0)])
    figures = render_example(args.plugin, args.music or DEFAULT_MUSIC, args.target, controls, args.out, args.start, args.seconds)
    print(f"ESR {figures['esr']:.4f}, gain RMS difference {figures['gain_reduction_rmse_db']:.2f} dB; "
          f"wrote {args.out / 'example.png'}")
    return 0


def add_commands(sub: Any) -> None:
    """Register this group's verbs on the `neuralcomp` subparsers."""
    p = sub.add_parser(
        "plugin", help="build VST3, CLAP and LV2 plugins of a model (DPF; needs a compiler)",
        description="Build plugins of one exported model: NAME.vst3/, NAME.clap and NAME.lv2/ with the model "
        "inside. Parameters are the model's controls plus input gain, output gain, mix, linked and bypass.")
    p.add_argument("model", type=Path, help="exported model file (.ts)")
    p.add_argument("-o", "--output", type=Path, required=True, help="directory the bundles are written to")
    p.add_argument("--name", help="plugin name shown by hosts (default: the model file's stem); the bundles "
                   "are named after it, characters other than letters, digits, _ and - becoming _")
    p.add_argument("--formats", type=_parse_formats, default=_FORMATS,
                   help="comma-separated subset of vst3,clap,lv2 (default: all three)")
    p.add_argument("--build-dir", type=Path,
                   help="keep the CMake build here for fast rebuilds (default: a temporary one under OUTPUT)")
    p.add_argument("--channels", type=int, choices=[1, 2], default=2,
                   help="audio channels in and out: 2 stereo (default; unlinked or linked) or 1 mono")
    p.add_argument("--jobs", type=int, default=2, help="parallel compile jobs (default 2)")
    p.add_argument("--tools", action="store_true",
                   help="also build the test hosts nc-clap-host and nc-lv2-apply in BUILD_DIR/cmake (needs --build-dir)")
    p.set_defaults(func=cmd_plugin)

    p = sub.add_parser("bench-plugin", help="a model's plugin (pedalboard, CLAP) vs the bare native engine")
    p.add_argument("model", type=Path, help="exported model file (.ts) the plugin was built from")
    p.add_argument("plugin", type=Path, help="the plugin's VST3 bundle (NAME.vst3)")
    p.add_argument("--buffers", type=parse_sizes, default=[64, 512], help="buffer sizes in samples (default 64,512)")
    p.add_argument("--seconds", type=float, default=2.0, help="seconds of audio per measurement (default 2)")
    p.add_argument("--clap", type=Path, help="the plugin's CLAP binary, for the C++ comparison")
    p.add_argument("--clap-host", type=Path,
                   help="nc-clap-host (`neuralcomp plugin --build-dir D --tools` builds it in D/cmake)")
    p.set_defaults(func=cmd_bench_plugin)

    p = sub.add_parser("plugin-example", help="render music through a model's VST3 plugin and its target")
    p.add_argument("plugin", type=Path, help="the model's VST3 bundle (NAME.vst3)")
    p.add_argument("--out", type=Path, default=Path("docs/plugins"), help="output folder (default docs/plugins)")
    # default resolved in the command: importing plugin_example here would import torch for every verb
    p.add_argument("--music", type=Path, help="a music file (default: a Debian fretsonfire song)")
    p.add_argument("--target", default="zamcomp", help="target preset the model imitates (default zamcomp)")
    p.add_argument("--control", type=parse_control, action="append", metavar="NAME=VALUE",
                   help="control value in its unit (default threshold=-30 ratio=4 attack=5 release=50)")
    p.add_argument("--start", type=float, default=30.0, help="excerpt start in seconds (default 30)")
    p.add_argument("--seconds", type=float, default=8.0, help="excerpt length in seconds (default 8)")
    p.set_defaults(func=cmd_plugin_example)
