"""Settled gain of the target compressor and of models for a 1 kHz sine and for white noise at the same RMS
levels: shows whether a model's detector responds to the crest factor (sine 3 dB, Gaussian noise about
12 dB) as the compressor's does. Prints one row per signal and level; gains in dB over the last second.

    python docs/gain-reduction/crest_factor.py MODEL.ts [MODEL.ts ...] [--target zamcomp]
        [--control threshold=-30 --control ratio=4.47 ...]

Controls are in the target's units (dB, :1, ms); unset ones take the target preset's defaults. Each
signal is 2 s long, streamed through each model in 512-sample buffers from its start state.
"""

from __future__ import annotations

import numpy as np

from _probe import open_probe, probe_parser

SAMPLE_RATE = 44100
SECONDS = 2.0
LEVELS_DB = range(-45, -4, 5)


def _settled_gain_db(source: np.ndarray, output: np.ndarray) -> float:
    """Output over input energy in dB, over the second half of the signal (past attack and release)."""
    half = slice(len(source) // 2, None)
    out = np.asarray(output, np.float64).reshape(-1)[half]
    return float(10 * np.log10(np.mean(out ** 2) / np.mean(source[half].astype(np.float64) ** 2)))


def main() -> None:
    probe = open_probe(probe_parser(__doc__.splitlines()[0]).parse_args())
    target, normalised, processors = probe.target, probe.normalised, probe.processors
    rng = np.random.default_rng(0)
    time = np.arange(int(SECONDS * SAMPLE_RATE)) / SAMPLE_RATE
    print(f"{'signal':<8}{'RMS dBFS':>9}{'peak dBFS':>10}{'target dB':>10}"
          + "".join(f"{'model ' + str(k) + ' dB':>12}" for k in range(len(processors))))
    for kind in ("sine", "noise"):
        for level_db in LEVELS_DB:
            rms = 10 ** (level_db / 20)
            source = (np.sqrt(2) * rms * np.sin(2 * np.pi * 1000 * time) if kind == "sine"
                      else rms * rng.standard_normal(len(time))).astype(np.float32)
            gains = [_settled_gain_db(source, target.render(source, SAMPLE_RATE, normalised))]
            gains += [_settled_gain_db(source, p.process(source, SAMPLE_RATE, buffer_size=512, reset=True))
                      for p in processors]
            peak_db = 20 * np.log10(np.abs(source).max())
            print(f"{kind:<8}{level_db:>9d}{peak_db:>10.1f}" + "".join(f"{g:>10.2f}" if i == 0 else f"{g:>12.2f}"
                                                                     for i, g in enumerate(gains)))
    for k, path in enumerate(probe.model_paths):
        print(f"model {k}: {path}")


if __name__ == "__main__":
    main()
