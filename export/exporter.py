"""Build the streaming module from a trained or untrained model (SPTMod or TCN), attach metadata, save
TorchScript."""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import torch

from export.engine_entry import ENGINE_FILE, engine_entry
from export.streaming import StreamingSPTMod
from export.streaming_tcn import StreamingTCN
from neuralcomp.config import ModelConfig
from neuralcomp.metadata import FORMAT_NAME, SCHEMA_VERSION
from neuralcomp.model.registry import Model
from neuralcomp.model.tcn import TCN

METADATA_FILE = "neuralcomp_metadata.json"


def _state_description(streaming: StreamingSPTMod | StreamingTCN) -> list[dict[str, Any]]:
    """State names and shapes; 'C' is the stream's channel count, 'D' the modulation paths (C, or 1
    in linked mode), 'phase' the samples of the current frame already seen (0 <= phase < P)."""
    if isinstance(streaming, StreamingTCN):  # phase is always 0; each block caches (k - 1) d input samples
        return [{"name": "phase", "shape": [], "dtype": "int64"}] + [
            {"name": f"block{j}.conv_cache", "shape": ["D", block.context, block.in_channels], "dtype": "float32"}
            for j, block in enumerate(streaming.blocks)]
    model_shapes: list[dict[str, Any]] = [{"name": "phase", "shape": [], "dtype": "int64"}]
    paper = streaming.paper_mode
    for j, block in enumerate(streaming.blocks):
        shapes = [
            ["D", block.kernel_size - 1, block.in_channels],
            ["D", 0 if paper else "phase", block.channels],
            ["D", block.hidden],
            ["D", block.hidden],
            ["D", 2, block.modulation_channels],
        ]
        for part, shape in zip(["conv_cache", "pool_partial", "lstm_h", "lstm_c", "modulation_history"], shapes):
            model_shapes.append({"name": f"block{j}.{part}", "shape": shape, "dtype": "float32"})
    model_shapes.append({"name": "pending_input", "shape": ["C", "phase" if paper else 0], "dtype": "float32"})
    queue = ["C", f"{streaming.latency_samples} - phase" if paper else 0]
    model_shapes.append({"name": "output_queue", "shape": queue, "dtype": "float32"})
    if streaming.num_sidechain > 0:  # 'S' = sidechain channels per audio channel
        model_shapes.append({"name": "pending_sidechain", "shape": ["C*S", "phase" if paper else 0],
                             "dtype": "float32"})
    return model_shapes


def build_metadata(config: ModelConfig, provenance: dict[str, Any] | None, streaming: StreamingSPTMod | StreamingTCN,
                   calibration: dict[str, float] | None = None) -> dict[str, Any]:
    """`calibration`: the capture's converter levels (input_dbu_at_0dbfs, output_dbu_at_0dbfs), or None."""
    return {
        "format": FORMAT_NAME,
        "schema_version": SCHEMA_VERSION,
        "torch_version": torch.__version__,
        "sample_rate": config.sample_rate,
        "pool_size": config.pool_size,
        "mode": config.mode,
        "latency_samples": streaming.latency_samples,
        "start_state": {"silence_samples": int(streaming.start_state_samples)},
        "controls": [
            {"name": c.name, "minimum": c.minimum, "maximum": c.maximum, "default": c.default, "unit": c.unit,
             "mapping": c.mapping}
            for c in config.controls
        ],
        "sidechain_channels": getattr(config, "sidechain", 0),  # a TCN has no sidechain input
        "state": _state_description(streaming),
        "model_config": config.to_dict(),
        "provenance": provenance or {},
        "calibration": dict(calibration) if calibration else None,
    }


def build_streaming_module(model: Model, provenance: dict[str, Any] | None = None,
                           calibration: dict[str, float] | None = None) -> torch.jit.ScriptModule:
    """Script the streaming module of `model` (StreamingSPTMod or StreamingTCN; weights copied, the
    training module untouched), reset at the default controls."""
    model = model.eval().cpu().float()
    streaming_type = StreamingTCN if isinstance(model, TCN) else StreamingSPTMod
    placeholder = streaming_type(model, "", 0)
    metadata = build_metadata(model.config, provenance, placeholder, calibration)
    module = streaming_type(model, json.dumps(metadata), SCHEMA_VERSION)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        scripted = torch.jit.script(module)
    with torch.no_grad():
        scripted.reset(1, normalised_defaults(model.config))
    return scripted


def normalised_defaults(config: ModelConfig) -> torch.Tensor:
    return torch.tensor([c.normalise(c.default) for c in config.controls], dtype=torch.float32)


def export_model(model: Model, path: str | Path, provenance: dict[str, Any] | None = None,
                 calibration: dict[str, float] | None = None) -> Path:
    """Write `model` as one streaming TorchScript file (metadata inside, also as an extra file);
    `calibration` records the capture's converter levels for the hosts' level matching."""
    path = Path(path)
    scripted = build_streaming_module(model, provenance, calibration)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.jit.save(scripted, str(tmp), _extra_files={
            METADATA_FILE: scripted.metadata_json,
            ENGINE_FILE: engine_entry(scripted, json.loads(scripted.metadata_json)),
        })
    tmp.replace(path)
    return path
