"""Read a model back from its exported file: rebuild the training-time module (SPTMod or TCN) from the
file's own tensors. `neuralcomp export --from-model` exports it again, so a file written by an older
neuralcomp gains what newer exports carry (the native engine's entry, compact state) and computes bitwise
the same as before; `train --init` fine-tunes from it; the eager bench backend runs it."""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import torch

from neuralcomp.errors import ModelFileError
from neuralcomp.model.registry import Model, model_from_dict
from neuralcomp.model.sptmod import SPTMod
from neuralcomp.model.tcn import TCN


def model_from_exported(path: str | Path) -> tuple[Model, dict[str, Any]]:
    """The model whose streaming export is `path` (its architecture, in eval mode), and the file's provenance."""
    from neuralcomp.host.torchscript_host import load_torchscript

    scripted = load_torchscript(path)
    metadata = json.loads(str(scripted.metadata_json))
    model = model_from_dict(metadata["model_config"]).eval()
    try:
        sources = [getattr(scripted.blocks, str(j)) for j in range(len(model.blocks))]
    except AttributeError as exc:
        raise ModelFileError(f"{path}: fewer blocks than its config's {len(model.blocks)}") from exc
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        if isinstance(model, TCN):
            _copy_tcn(scripted, sources, model)
        else:
            _copy_sptmod(sources, model)
    provenance = dict(metadata.get("provenance") or {})
    provenance["reexported_from"] = {"file": Path(path).name, "torch_version": metadata.get("torch_version")}
    return model, provenance


def _copy_film(film_weights: list[torch.Tensor], mlp: torch.nn.Sequential) -> None:
    """The streaming FiLM MLP (transposed Linear weights, biases, PReLU weights) into a FiLMGenerator's MLP."""
    w0, b0, a0, w1, b1, a1, w2, b2 = film_weights
    for layer, weight, bias in ((mlp[0], w0, b0), (mlp[2], w1, b1), (mlp[4], w2, b2)):
        layer.weight.copy_(weight.t())
        layer.bias.copy_(bias)
    mlp[1].weight.copy_(a0)
    mlp[3].weight.copy_(a1)


def _copy_conv_and_film(source: Any, block: Any) -> None:
    """The parts SPTMod and TCN blocks share: the conv (stored transposed), its PReLU and the FiLM MLP."""
    c, c_in, k = block.channels, block.in_channels, block.kernel_size
    block.conv.weight.copy_(source.conv_weight_t.t().reshape(c, c_in, k))
    block.conv.bias.copy_(source.conv_bias)
    block.activation.weight.copy_(source.prelu_weight)
    if block.film is not None:
        _copy_film(list(source.film_weights), block.film.mlp)


def _copy_sptmod(sources: list[Any], model: SPTMod) -> None:
    for source, block in zip(sources, model.blocks):
        _copy_conv_and_film(source, block)
        c = block.channels
        gates = source.lstm_weight_t.t()  # (4H, c + H) = [W_ih, W_hh]
        block.lstm.weight_ih_l0.copy_(gates[:, :c])
        block.lstm.weight_hh_l0.copy_(gates[:, c:])
        # the file keeps only b_ih + b_hh; b_hh = 0 gives the same sum, bit for bit
        block.lstm.bias_ih_l0.copy_(source.lstm_bias)
        block.lstm.bias_hh_l0.zero_()
        block.projection.weight.copy_(source.projection_weight_t.t())
        block.projection.bias.copy_(source.projection_bias)


def _copy_tcn(scripted: Any, sources: list[Any], model: TCN) -> None:
    for source, block in zip(sources, model.blocks):
        _copy_conv_and_film(source, block)
        if block.residual is not None:
            block.residual.weight.copy_(source.residual_weight_t.t().reshape(block.channels, block.in_channels, 1))
            block.residual.bias.copy_(source.residual_bias)
    channels = model.config.channels  # the gain head is column 0 of a zero-padded matrix
    model.to_gain.weight.copy_(scripted.gain_weight_t[:, 0].reshape(1, channels, 1))
    model.to_gain.bias.copy_(scripted.gain_bias[:1])
