"""Release of the target compressor and of models after a level drop: a 1 kHz sine or white noise at
-10 dBFS RMS for 1 s, then at a quiet level for 2 s. Prints the gain (dB, 20 ms windows) at times after
the drop, to show whether a model holds its gain reduction for the compressor's release time.

    python docs/gain-reduction/release.py MODEL.ts [MODEL.ts ...] [--target zamcomp]
        [--quiet -45 --quiet -35] [--control release=500 ...]

Controls are in the target's units (dB, :1, ms); unset ones take the target preset's defaults. Each
signal is streamed through each model in 512-sample buffers from its start state.
"""

from __future__ import annotations

import numpy as np

from _probe import open_probe, probe_parser

SAMPLE_RATE = 44100
LOUD_DB, LOUD_SECONDS, QUIET_SECONDS = -10.0, 1.0, 2.0
WINDOW_SECONDS = 0.02
TIMES_AFTER_DROP = (-0.1, 0.0, 0.02, 0.05, 0.1, 0.2, 0.4, 0.7, 1.0, 1.5, 1.9)


def _gain_db(source: np.ndarray, output: np.ndarray, start_s: float) -> float:
    """Output over input energy in dB over the window starting `start_s` seconds into the signal."""
    window = slice(int(start_s * SAMPLE_RATE), int((start_s + WINDOW_SECONDS) * SAMPLE_RATE))
    out = np.asarray(output, np.float64).reshape(-1)[window]
    return float(10 * np.log10(np.mean(out ** 2) / np.mean(source[window].astype(np.float64) ** 2)))


def main() -> None:
    parser = probe_parser(__doc__.splitlines()[0])
    parser.add_argument("--quiet", type=float, action="append", default=None, metavar="DBFS",
                        help="RMS level after the drop, dBFS (repeatable; default -45 and -35)")
    args = parser.parse_args()
    probe = open_probe(args)
    target, normalised, processors = probe.target, probe.normalised, probe.processors
    time = np.arange(int((LOUD_SECONDS + QUIET_SECONDS) * SAMPLE_RATE)) / SAMPLE_RATE
    for quiet_db in args.quiet or [-45.0, -35.0]:
        envelope = np.where(time < LOUD_SECONDS, 10 ** (LOUD_DB / 20), 10 ** (quiet_db / 20))
        for kind in ("sine", "noise"):
            carrier = (np.sqrt(2) * np.sin(2 * np.pi * 1000 * time) if kind == "sine"
                       else np.random.default_rng(0).standard_normal(len(time)))
            source = (envelope * carrier).astype(np.float32)
            outputs = [target.render(source, SAMPLE_RATE, normalised)]
            outputs += [p.process(source, SAMPLE_RATE, buffer_size=512, reset=True) for p in processors]
            print(f"\n{kind}, {LOUD_DB:g} dBFS for {LOUD_SECONDS:g} s, then {quiet_db:g} dBFS; gain in dB")
            print(f"{'s after drop':>13}{'target':>9}" + "".join(f"{'model ' + str(k):>9}" for k in range(len(processors))))
            for after in TIMES_AFTER_DROP:
                gains = [_gain_db(source, output, LOUD_SECONDS + after) for output in outputs]
                print(f"{after:>13.2f}" + "".join(f"{g:>9.2f}" for g in gains))
    for k, path in enumerate(probe.model_paths):
        print(f"model {k}: {path}")


if __name__ == "__main__":
    main()
