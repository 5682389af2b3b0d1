"""Where a model's gain-reduction error comes from: prints, for the held-out items of one split, the RMS
gain error (10 ms windows, input above -50 dBFS, as `neuralcomp evaluate`) by section of the source signal
and by what the compressor does in the window, and the share of the paper's loss (squared sample error, the
ESR numerator) that each kind of window carries.

    python docs/gain-reduction/breakdown.py MODEL.ts DATASET [--split 0]

Window classes, from the target's gain g (dB) and its change from the previous window:
  * idle:     g > -0.5 dB, the compressor is (almost) not compressing (below threshold, or released);
  * release:  g <= -0.5 dB and rising by more than 0.05 dB per window (recovering towards 0 dB);
  * active:   the rest (holding or deepening gain reduction).
"""

from __future__ import annotations

import argparse

import numpy as np

from neuralcomp.data.dataset import load_dataset
from neuralcomp.evaluation import GAIN_FLOOR_DB, gain_db, gain_window, streamed_aligned
from neuralcomp.host.processor import load


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", help="exported model (.ts)")
    parser.add_argument("dataset", help="dataset folder")
    parser.add_argument("--split", type=int, default=0, help="cross-validation split whose test items are used (default 0)")
    args = parser.parse_args()
    dataset = load_dataset(args.dataset)
    processor = load(args.model)
    specs = {c.name: c for c in dataset.controls}
    window = gain_window(dataset.sample_rate)
    errors, classes, sections, squared = [], [], [], []
    for index in dataset.split(args.split).test:
        item = dataset[index]
        audio, target = item.load()
        for name in processor.control_names:
            processor.set_control(name, specs[name].value_at(item.controls[name]))
        output = streamed_aligned(processor, audio, dataset.sample_rate, 512, item.load_sidechain())
        g_target, loud = gain_db(audio, target, window)
        g_model, _ = gain_db(audio, output, window)
        rising = np.diff(g_target, prepend=g_target[0]) > 0.05
        kind = np.where(g_target > -0.5, "idle", np.where(rising, "release", "active"))
        n = len(g_target) * window
        err2 = ((target[:n] - output[:n]).astype(np.float64) ** 2).reshape(-1, window).sum(axis=1)
        names = np.full(len(g_target), "", dtype=object)
        for s in item.entry.get("sections", []):
            names[s["start"] // window:s["end"] // window] = s["name"]
        errors.append((g_model - g_target)[loud])
        classes.append(kind[loud])
        sections.append(names[loud])
        squared.append(err2[loud])
    error, kind, section, err2 = (np.concatenate(a) for a in (errors, classes, sections, squared))
    rms = lambda e: float(np.sqrt(np.mean(e ** 2))) if len(e) else float("nan")  # noqa: E731
    print(f"{len(error)} windows of {window} samples with input above {GAIN_FLOOR_DB} dBFS; "
          f"RMS gain error {rms(error):.2f} dB, mean {error.mean():+.2f} dB")
    print(f"{'class':<20}{'windows':>9}{'RMS dB':>9}{'mean dB':>9}{'share of sq. error':>20}")
    for label, mask in [(k, kind == k) for k in ("idle", "release", "active")] + \
                       [(s, section == s) for s in dict.fromkeys(section) if s]:
        print(f"{label:<20}{mask.mean():>9.1%}{rms(error[mask]):>9.2f}{error[mask].mean():>+9.2f}"
              f"{err2[mask].sum() / err2.sum():>20.1%}")


if __name__ == "__main__":
    main()
