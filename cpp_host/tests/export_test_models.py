"""ctest fixture: export the untrained test models with the `neuralcomp export` command line.

Usage: python export_test_models.py OUT_DIR. Writes OUT_DIR/PRESET_MODE_cN.ts for every preset,
mode and control count the engine tests use; all exports run in this one process (torch is imported
once) through the same entry point as the `neuralcomp` command. A file newer than every source it
depends on (the Python packages and model presets) is kept, so a re-run of ctest costs nothing.
"""

from __future__ import annotations

import sys
from pathlib import Path

from neuralcomp.cli import main as neuralcomp_main

REPO_ROOT = Path(__file__).resolve().parents[2]
PRESETS = ("tiny", "sptmod25", "sptmod24", "tcn")
MODES = ("causal", "paper")
CAUSAL_ONLY = ("tcn",)  # no look-ahead frames: a TCN has no paper mode
CONTROL_COUNTS = (0, 7)


def _newest_source_time() -> float:
    """Modification time of the newest file an export depends on (exporter, model code, presets)."""
    sources = [*REPO_ROOT.glob("neuralcomp/**/*.py"), *REPO_ROOT.glob("export/**/*.py"),
               *REPO_ROOT.glob("presets/models/*.json"), Path(__file__)]
    return max(path.stat().st_mtime for path in sources)


def export_all(out_dir: Path) -> None:
    """Export every test model into out_dir that is missing or older than its sources."""
    out_dir.mkdir(parents=True, exist_ok=True)
    newest_source = _newest_source_time()
    for preset in PRESETS:
        for mode in MODES:
            if preset in CAUSAL_ONLY and mode != "causal":
                continue
            for controls in CONTROL_COUNTS:
                path = out_dir / f"{preset}_{mode}_c{controls}.ts"
                if path.is_file() and path.stat().st_mtime > newest_source:
                    print(f"up to date: {path}")
                    continue
                argv = ["export", "--untrained", "--preset", preset, "--mode", mode,
                        "--controls", str(controls), "--seed", "1", "-o", str(path)]
                if neuralcomp_main(argv) != 0:
                    raise SystemExit(f"neuralcomp {' '.join(argv)} failed")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        raise SystemExit("usage: export_test_models.py OUT_DIR")
    export_all(Path(sys.argv[1]))
