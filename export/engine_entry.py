"""The native engine's entry inside an exported `.ts` archive (layout: docs/engine-format.md).

The engine never runs code from the file: it reads this entry, a little header, a JSON index and
little-endian float32 data, taken from the scripted streaming module's own tensors, so the engine
computes with exactly the numbers the TorchScript module holds.
"""

from __future__ import annotations

import json
import struct
import zipfile
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import torch

ENGINE_FILE = "neuralcomp_engine.bin"
ENGINE_MAGIC = b"NCENGINE"
ENGINE_FORMAT_VERSION = 1
_HEADER = struct.Struct("<8sIIII")  # magic, format version, index bytes, data bytes, crc32(index + data)
_BLOCK_PARTS = ("conv_weight_t", "conv_bias", "prelu_weight", "lstm_weight_t", "lstm_bias",
                "projection_weight_t", "projection_bias")
_TCN_BLOCK_PARTS = ("conv_weight_t", "conv_bias", "prelu_weight")
_TCN_RESIDUAL_PARTS = ("residual_weight_t", "residual_bias")
_FILM_PARTS = ("film0_weight_t", "film0_bias", "film0_prelu", "film1_weight_t", "film1_bias", "film1_prelu",
               "film2_weight_t", "film2_bias")


def _blocks(scripted: torch.jit.ScriptModule) -> list[Any]:
    """The streaming blocks of a scripted or loaded StreamingSPTMod (a loaded ModuleList has no len)."""
    return [module for _, module in scripted.blocks.named_children()]


def _is_tcn(scripted: torch.jit.ScriptModule) -> bool:
    return hasattr(scripted, "architecture") and str(scripted.architecture) == "tcn"


def engine_tensors(scripted: torch.jit.ScriptModule) -> dict[str, torch.Tensor]:
    """The tensors the engine needs, by entry name, taken from the scripted module itself."""
    if _is_tcn(scripted):
        return _tcn_tensors(scripted)
    tensors: dict[str, torch.Tensor] = {"interp_weights": scripted.interp_weights}
    for j, block in enumerate(_blocks(scripted)):
        for part in _BLOCK_PARTS:
            tensors[f"block{j}.{part}"] = getattr(block, part)
        if block.has_film:
            for part, tensor in zip(_FILM_PARTS, block.film_weights):
                tensors[f"block{j}.{part}"] = tensor
    return tensors


def _tcn_tensors(scripted: torch.jit.ScriptModule) -> dict[str, torch.Tensor]:
    """A StreamingTCN's tensors; gain_scale holds the float32 the module multiplies the sigmoid by."""
    tensors: dict[str, torch.Tensor] = {}
    for j, block in enumerate(_blocks(scripted)):
        for part in _TCN_BLOCK_PARTS:
            tensors[f"block{j}.{part}"] = getattr(block, part)
        if block.has_residual_projection:
            for part in _TCN_RESIDUAL_PARTS:
                tensors[f"block{j}.{part}"] = getattr(block, part)
        if block.has_film:
            for part, tensor in zip(_FILM_PARTS, block.film_weights):
                tensors[f"block{j}.{part}"] = tensor
    tensors["gain_weight"] = scripted.gain_weight_t.select(1, 0)  # column 0; the others are padding
    tensors["gain_bias"] = scripted.gain_bias.narrow(0, 0, 1)
    tensors["gain_scale"] = torch.tensor([float(scripted.max_gain)], dtype=torch.float32)
    return tensors


def _tcn_index(scripted: torch.jit.ScriptModule, metadata: dict[str, Any]) -> dict[str, Any]:
    config = metadata["model_config"]
    blocks = [{"in_channels": int(b.in_channels), "channels": int(b.channels), "kernel_size": int(b.kernel_size),
               "dilation": int(b.dilation), "residual_projection": bool(b.has_residual_projection),
               "film_hidden": int(config["film_hidden"]) if b.has_film else 0}
              for b in _blocks(scripted)]
    return {"architecture": "tcn", "sample_rate": int(metadata["sample_rate"]), "pool_size": 1, "mode": "causal",
            "start_state_samples": int(metadata["start_state"]["silence_samples"]),
            "controls": metadata["controls"], "blocks": blocks, "tensors": []}


def engine_entry(scripted: torch.jit.ScriptModule, metadata: dict[str, Any]) -> bytes:
    """Serialise the engine entry of a scripted StreamingSPTMod or StreamingTCN with its metadata."""
    if _is_tcn(scripted):
        return _serialise(_tcn_index(scripted, metadata), engine_tensors(scripted))
    config = metadata["model_config"]
    blocks = []
    for block in _blocks(scripted):
        blocks.append({
            "in_channels": int(block.in_channels), "channels": int(block.channels),
            "kernel_size": int(block.kernel_size), "modulates_next": bool(block.modulates_next),
            "film_hidden": int(config["film_hidden"]) if block.has_film else 0,
        })
    index: dict[str, Any] = {
        "architecture": "sptmod",
        "sample_rate": int(metadata["sample_rate"]),
        "pool_size": int(metadata["pool_size"]),
        "mode": metadata["mode"],
        "lstm_hidden": int(config["lstm_hidden"]),
        "start_state_samples": int(metadata["start_state"]["silence_samples"]),
        "controls": metadata["controls"],
        "blocks": blocks,
        "tensors": [],
    }
    if config.get("pooling", "average") == "max":  # frames reduced by their maximum (average: no key)
        index["pooling"] = "max"
    if int(config.get("sidechain", 0)) > 0:  # the modulation path starts as [x; S key channels]
        index["sidechain"] = int(config["sidechain"])
    return _serialise(index, engine_tensors(scripted))


def _serialise(index: dict[str, Any], tensors: dict[str, torch.Tensor]) -> bytes:
    """Header, JSON index (tensor offsets filled in here) and float32 data."""
    chunks: list[bytes] = []
    offset = 0
    for name, tensor in tensors.items():
        values = tensor.detach().cpu().contiguous().numpy().astype("<f4", copy=False)
        index["tensors"].append({"name": name, "shape": list(values.shape), "offset": offset})
        chunks.append(values.tobytes())
        offset += values.size
    index_bytes = json.dumps(index, separators=(",", ":")).encode()
    index_bytes += b" " * (-len(index_bytes) % 4)  # float data starts 4-byte aligned
    data = b"".join(chunks)
    crc = zlib.crc32(index_bytes + data)
    return _HEADER.pack(ENGINE_MAGIC, ENGINE_FORMAT_VERSION, len(index_bytes), len(data), crc) + index_bytes + data


def read_engine_entry(path: str | Path) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """(index, tensors by name) of the engine entry in an exported file: for tests and inspection."""
    with zipfile.ZipFile(path) as archive:
        name = next((n for n in archive.namelist() if n.endswith("/extra/" + ENGINE_FILE)), None)
        if name is None:
            raise KeyError(f"{path} has no {ENGINE_FILE} entry (exported before the native engine)")
        raw = archive.read(name)
    magic, version, index_length, data_length, crc = _HEADER.unpack_from(raw)
    if magic != ENGINE_MAGIC or version != ENGINE_FORMAT_VERSION:
        raise ValueError(f"{path}: not an engine entry of format {ENGINE_FORMAT_VERSION}")
    body = raw[_HEADER.size:_HEADER.size + index_length + data_length]
    if zlib.crc32(body) != crc:
        raise ValueError(f"{path}: engine entry checksum mismatch")
    index = json.loads(body[:index_length])
    data = np.frombuffer(body[index_length:], dtype="<f4")
    tensors = {}
    for t in index["tensors"]:
        count = int(np.prod(t["shape"], dtype=np.int64))
        tensors[t["name"]] = data[t["offset"]:t["offset"] + count].reshape(t["shape"])
    return index, tensors
