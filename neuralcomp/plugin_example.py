"""`neuralcomp plugin-example`: render music through a model's VST3 plugin in pedalboard beside the compressor
the model was trained on, and plot both (the README's plugin example).

The target is rendered by the model's target preset (e.g. ZamComp) at the same control values, the plugin by
pedalboard.load_plugin, one call each. Writes example.png and example.json (ESR, gain RMS difference).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from neuralcomp.errors import ConfigError
from neuralcomp.evaluation import GAIN_WINDOW_SAMPLES, gain_db, gain_reduction_rmse_db

__all__ = ["DEFAULT_MUSIC", "render_example"]

DEFAULT_MUSIC = Path("/usr/share/games/fretsonfire/data/songs/muldjord/chaos_god/song.ogg")


def render_example(vst3: Path, music: Path, target: str, controls: dict[str, float], out_dir: Path,
                   start_s: float = 30.0, seconds: float = 8.0) -> dict[str, Any]:
    """Render, plot and score one excerpt; returns the figures written to example.json."""
    import pedalboard
    import soundfile as sf

    from neuralcomp.data.targets import PluginTarget
    from neuralcomp.plots import _pyplot

    info = sf.info(str(music))
    rate = int(info.samplerate)
    audio, _ = sf.read(str(music), start=int(start_s * rate), frames=int(seconds * rate), dtype="float32",
                       always_2d=True)
    mono = audio.mean(axis=1).astype(np.float32)
    mono *= np.float32(0.9 / max(np.abs(mono).max(), 1e-9))
    plugin = pedalboard.load_plugin(str(vst3))
    names = {p.name: key for key, p in plugin.parameters.items()}
    for name, value in controls.items():
        if name not in names:
            raise ConfigError(f"the plugin has no parameter {name!r}; it has {sorted(names)}")
        setattr(plugin, names[name], value)
    rendered = plugin.process(np.vstack([mono, mono]), rate)[0]
    compressor = PluginTarget(target)
    normalised = {name: compressor.preset.control(name).to_normalised(v) for name, v in controls.items()}
    reference = compressor.render(mono, rate, normalised)
    reference = np.asarray(reference, np.float32).reshape(-1)[: len(mono)]
    esr = float(np.sum((reference - rendered) ** 2) / np.sum(reference**2))
    rmse = gain_reduction_rmse_db(mono, reference, rendered)

    out_dir.mkdir(parents=True, exist_ok=True)
    plt = _pyplot()
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(10, 6.5))
    loud = int(np.argmax(np.convolve(mono**2, np.ones(2048), "valid")))
    zoom = slice(loud, loud + int(0.1 * rate))
    t = np.arange(zoom.start, zoom.stop) / rate
    top.plot(t, mono[zoom], color="0.75", lw=0.6, label="input")
    top.plot(t, reference[zoom], color="tab:blue", lw=0.8, label=f"target ({target})")
    top.plot(t, rendered[zoom], color="tab:orange", lw=0.8, alpha=0.8, label="neuralcomp plugin (pedalboard)")
    top.set_xlabel("time (s)")
    top.set_ylabel("amplitude")
    top.set_title(f"{music.parent.name}, {seconds:.0f} s from {start_s:.0f} s: ESR {esr:.4f}; "
                  + ", ".join(f"{k} {v:g}" for k, v in controls.items()))
    top.legend(loc="upper right")
    gain_target, mask = gain_db(mono, reference)
    gain_plugin, _ = gain_db(mono, rendered)
    times = (np.arange(len(mask)) + 0.5) * GAIN_WINDOW_SAMPLES / rate
    bottom.plot(times, np.where(mask, gain_target, np.nan), color="tab:blue", lw=0.8, label="target")
    bottom.plot(times, np.where(mask, gain_plugin, np.nan), color="tab:orange", lw=0.8, alpha=0.8, label="plugin")
    bottom.set_xlabel("time (s)")
    bottom.set_ylabel(f"gain (dB, {GAIN_WINDOW_SAMPLES}-sample windows)")
    bottom.set_title(f"gain over time: RMS difference {rmse:.2f} dB")
    bottom.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(out_dir / "example.png", dpi=110)
    plt.close(fig)
    figures = {"music": str(music), "start_s": start_s, "seconds": seconds, "sample_rate": rate,
               "controls": controls, "esr": esr, "gain_reduction_rmse_db": rmse, "plugin": Path(vst3).name}
    (out_dir / "example.json").write_text(json.dumps(figures, indent=2) + "\n")
    return figures
