"""ctest fixture: export the untrained test models with the `neuralcomp export` command line.

Usage: python export_test_models.py OUT_DIR. Writes OUT_DIR/PRESET_MODE_cN.ts for every preset,
mode and control count the engine tests use, and the keyed models PRESET_MODE_cN_skS.ts (S sidechain
channels; `neuralcomp export --untrained` has no sidechain option, so these go through
export.export_model, the function behind the command); all exports run in this one process (torch is imported
once) through the same entry point as the `neuralcomp` command. A file newer than every source it
depends on (the Python packages and model presets) is kept, so a re-run of ctest costs nothing.
"""

from __future__ import annotations

import sys
from pathlib import Path

from neuralcomp.cli import main as neuralcomp_main

REPO_ROOT = Path(__file__).resolve().parents[2]
PRESETS = ("tiny", "tiny_max", "sptmod25", "sptmod24", "tcn")  # tiny_max: tiny with max frame pooling
MODES = ("causal", "paper")
CAUSAL_ONLY = ("tcn",)  # no look-ahead frames: a TCN has no paper mode
CONTROL_COUNTS = (0, 7)
KEYED = (("tiny", "causal", 7, 1), ("tiny", "paper", 2, 2))  # preset, mode, controls, sidechain channels


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
    for preset, mode, controls, keys in KEYED:
        path = out_dir / f"{preset}_{mode}_c{controls}_sk{keys}.ts"
        if path.is_file() and path.stat().st_mtime > newest_source:
            print(f"up to date: {path}")
            continue
        _export_keyed(preset, mode, controls, keys, path)


def _export_keyed(preset: str, mode: str, controls: int, keys: int, path: Path) -> None:
    """An untrained model keyed by `keys` sidechain channels, seeded like the others."""
    import torch

    from export import export_model
    from neuralcomp.config import generic_controls, load_preset
    from neuralcomp.model import build_model

    torch.manual_seed(1)
    config = load_preset(preset, mode=mode, controls=generic_controls(controls), sidechain=keys)
    export_model(build_model(config).eval(), path, {"untrained": True, "preset": preset, "seed": 1})


if __name__ == "__main__":
    if len(sys.argv) != 2:
        raise SystemExit("usage: export_test_models.py OUT_DIR")
    export_all(Path(sys.argv[1]))
