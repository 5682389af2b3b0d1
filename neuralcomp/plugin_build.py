"""`neuralcomp plugin`: build VST3, CLAP and LV2 plugins of one exported model with DPF.

The model is compiled into each plugin binary, so a bundle needs nothing else. Its controls (names,
units, ranges, defaults, log mappings) become parameters, beside input gain, output gain, mix, linked
and bypass. IDs are derived from the model's bytes and the plugin name, so they are stable across
rebuilds and distinct between models. The build runs CMake on cpp_host/plugin (a compiler at export
time; the shipped model takes about a minute on two cores).
"""

from __future__ import annotations

import hashlib
import re
import shutil
import subprocess
import time
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from neuralcomp.errors import ConfigError, ModelFileError, NeuralcompError
from neuralcomp.metadata import parse_metadata

__all__ = ["FORMATS", "PluginIdentity", "build_plugins", "plugin_identity"]

FORMATS = ("vst3", "clap", "lv2")
PLUGIN_SOURCES = Path(__file__).resolve().parents[1] / "cpp_host" / "plugin"
DPF_ROOT = Path("/usr/share/dpf")
# Parameter symbols the plugin itself uses (DPF names the bypass parameter dpf_bypass).
_RESERVED_SYMBOLS = ("input_gain", "output_gain", "mix", "linked", "nonfinite_buffers", "dpf_bypass")


@dataclass(frozen=True)
class PluginIdentity:
    """Names and IDs of one model's plugins."""

    name: str          # display name
    file_name: str     # bundle / binary base name (letters, digits, _ and -)
    digest: str        # sha256 of the model bytes and the name
    unique_id: int     # DPF/VST3 unique id (31 bits)
    clap_id: str
    lv2_uri: str
    model_crc32: int   # checked by the plugin when it loads its embedded model
    channels: int      # audio inputs = outputs: 1 (mono) or 2 (stereo)


def plugin_identity(model_bytes: bytes, name: str, channels: int = 2) -> PluginIdentity:
    """Stable IDs from the model's content, the plugin name and the channel count (1 or 2)."""
    if channels not in (1, 2):
        raise ConfigError(f"plugins are mono (1) or stereo (2), got {channels} channels")
    file_name = re.sub(r"[^A-Za-z0-9_-]+", "_", name).strip("_") or "neuralcomp"
    salt = b"" if channels == 2 else b"\0mono"
    digest = hashlib.sha256(model_bytes + b"\0" + name.encode("utf-8") + salt).hexdigest()
    return PluginIdentity(
        name=name,
        file_name=file_name,
        digest=digest,
        unique_id=int(digest[:8], 16) & 0x7FFFFFFF,
        clap_id=f"org.neuralcomp.{file_name.lower()}.{digest[:12]}",
        lv2_uri=f"urn:neuralcomp:{file_name.lower()}:{digest[:16]}",
        model_crc32=zlib.crc32(model_bytes) & 0xFFFFFFFF,
        channels=channels,
    )


def read_model_metadata(path: Path) -> dict[str, Any]:
    """The metadata JSON of an exported model, read from the archive (no torch needed)."""
    try:
        with zipfile.ZipFile(path) as archive:
            names = [n for n in archive.namelist() if n.endswith("/extra/neuralcomp_metadata.json")]
            if not names:
                raise ModelFileError(f"{path}: not a neuralcomp model (no neuralcomp_metadata.json inside)")
            text = archive.read(names[0]).decode("utf-8")
    except (zipfile.BadZipFile, OSError) as exc:
        raise ModelFileError(f"{path}: not a readable exported model ({exc})") from exc
    return parse_metadata(text, str(path))


def check_model_with_engine(path: Path) -> None:
    """Raise ModelFileError with the engine's reason when the native engine refuses the model."""
    try:
        from neuralcomp.host._native import Host
    except ImportError as exc:
        raise NeuralcompError(f"the native engine's Python module is not built ({exc}); run make build") from exc
    Host(str(path), 1, 64)  # raises ModelFileError with the engine's reason


def _c_string(text: str) -> str:
    out = []
    for byte in text.encode("utf-8"):
        ch = chr(byte)
        if ch in '"\\' or byte < 0x20 or byte >= 0x7F or ch == "?":
            out.append(f"\\{byte:03o}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def _c_float(value: float) -> str:
    text = repr(float(value))
    return text + ("f" if ("." in text or "e" in text) else ".0f")


def _parameter_symbols(names: list[str]) -> list[str]:
    symbols: list[str] = []
    for name in names:
        symbol = re.sub(r"\W", "_", name, flags=re.ASCII)
        if not symbol or symbol[0].isdigit():
            symbol = "c_" + symbol
        if symbol in _RESERVED_SYMBOLS or symbol in symbols:
            raise ConfigError(f"control {name!r} clashes with another parameter symbol ({symbol!r}); "
                              f"rename the control (reserved: {', '.join(_RESERVED_SYMBOLS)})")
        symbols.append(symbol)
    return symbols


def identity_header(identity: PluginIdentity, metadata: dict[str, Any]) -> str:
    """nc_plugin_identity.h: the per-model part of the plugin (names, IDs, controls as parameters)."""
    controls = metadata["controls"]
    symbols = _parameter_symbols([c["name"] for c in controls])
    lines = [
        "// Written by neuralcomp plugin (neuralcomp/plugin_build.py) for one model; do not edit.",
        "#pragma once",
        f"#define DISTRHO_PLUGIN_NAME {_c_string(identity.name)}",
        f"#define DISTRHO_PLUGIN_URI {_c_string(identity.lv2_uri)}",
        f"#define DISTRHO_PLUGIN_CLAP_ID {_c_string(identity.clap_id)}",
        f"#define NC_PLUGIN_LABEL {_c_string(identity.file_name)}",
        f"#define NC_PLUGIN_UNIQUE_ID {identity.unique_id}",
        f"#define NC_PLUGIN_CHANNELS {identity.channels}",
        f"#define NC_PLUGIN_SIDECHAIN {int(metadata.get('sidechain_channels', 0))}  // key channels per audio channel",
        f"#define NC_MODEL_CRC32 0x{identity.model_crc32:08x}u",
        f"#define NC_MODEL_SAMPLE_RATE {int(metadata['sample_rate'])}",
        f"#define NC_MODEL_LATENCY {int(metadata['latency_samples'])}",
        "// NC_CONTROL(name, symbol, unit, minimum, maximum, default, log mapping)",
        "#define NC_PLUGIN_CONTROLS \\",
    ]
    for control, symbol in zip(controls, symbols):
        lines.append(
            f"  NC_CONTROL({_c_string(control['name'])}, {_c_string(symbol)}, {_c_string(control.get('unit', ''))}, "
            f"{_c_float(control['minimum'])}, {_c_float(control['maximum'])}, {_c_float(control['default'])}, "
            f"{1 if control.get('mapping') == 'log' else 0}) \\")
    lines.append("")
    return "\n".join(lines) + "\n"


def _run(command: list[str], log: Path, what: str) -> None:
    with open(log, "a") as stream:
        stream.write("$ " + " ".join(command) + "\n")
        stream.flush()
        result = subprocess.run(command, stdout=stream, stderr=subprocess.STDOUT)
    if result.returncode != 0:
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-30:])
        raise NeuralcompError(f"{what} failed (exit {result.returncode}); full log in {log}:\n{tail}")


def build_plugins(model: Path, out_dir: Path, name: str | None = None, formats: tuple[str, ...] = FORMATS,
                  build_dir: Path | None = None, jobs: int = 2, tools: bool = False, channels: int = 2,
                  check_engine: bool = True, verbose: bool = True) -> dict[str, Path]:
    """Build the plugins of `model` into `out_dir`; returns {format: bundle path}.

    `build_dir` keeps the CMake build (rebuilds are incremental; default: out_dir/.build/NAME, removed
    after success unless given). `tools` also builds the test hosts nc-clap-host and nc-lv2-apply there.
    """
    model = Path(model)
    if not model.is_file():
        raise ModelFileError(f"{model}: no such model file")
    unknown = [f for f in formats if f not in FORMATS]
    if unknown or not formats:
        raise ConfigError(f"formats must be a non-empty subset of {', '.join(FORMATS)}, got {','.join(formats)}")
    metadata = read_model_metadata(model)
    if check_engine:
        check_model_with_engine(model)  # the engine's own reason, before anything is built
    model_bytes = model.read_bytes()
    identity = plugin_identity(model_bytes, name or model.stem, channels)
    _parameter_symbols([c["name"] for c in metadata["controls"]])
    if shutil.which("cmake") is None:
        raise NeuralcompError("cmake is not installed (make system-deps installs the build tools)")
    if not (DPF_ROOT / "cmake" / "DPF-plugin.cmake").is_file():
        raise NeuralcompError(f"DPF is not installed in {DPF_ROOT} (Debian package dpf-source; make system-deps)")
    if not (PLUGIN_SOURCES / "CMakeLists.txt").is_file():
        raise NeuralcompError(f"the plugin sources are not in this installation ({PLUGIN_SOURCES}); "
                              "run from a source checkout of neuralcomp")

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    keep_build = build_dir is not None
    build = Path(build_dir) if build_dir is not None else out_dir / ".build" / identity.file_name
    build.mkdir(parents=True, exist_ok=True)
    header_dir = build / "identity"
    header_dir.mkdir(exist_ok=True)
    header = identity_header(identity, metadata)
    header_path = header_dir / "nc_plugin_identity.h"
    if not header_path.exists() or header_path.read_text() != header:  # unchanged: no rebuild
        header_path.write_text(header)
    log = build / "build.log"
    log.write_text("")
    started = time.monotonic()
    if verbose:
        print(f"building {', '.join(formats)} {'stereo' if channels == 2 else 'mono'} plugins of {model} as "
              f"{identity.name!r} in {build} ...", flush=True)
    _run(["cmake", "-S", str(PLUGIN_SOURCES), "-B", str(build / "cmake"), "-DCMAKE_BUILD_TYPE=Release",
          f"-DNC_PLUGIN_NAME={identity.file_name}", f"-DNC_MODEL_FILE={model.resolve()}",
          f"-DNC_IDENTITY_DIR={header_dir.resolve()}", f"-DNC_FORMATS={';'.join(formats)}",
          f"-DNC_BUILD_TOOLS={'ON' if tools else 'OFF'}"], log, "CMake configure")
    targets = [f"{identity.file_name}-{f}" for f in formats] + (["nc-clap-host", "nc-lv2-apply"] if tools else [])
    _run(["cmake", "--build", str(build / "cmake"), "-j", str(jobs), "--target", *targets], log, "plugin build")

    bin_dir = build / "cmake" / "bin"
    bundles: dict[str, Path] = {}
    for fmt in formats:
        source = bin_dir / f"{identity.file_name}.{fmt}"
        target = out_dir / source.name
        if target.is_dir():
            shutil.rmtree(target)
        elif target.exists():
            target.unlink()
        if source.is_dir():
            shutil.copytree(source, target)
        else:
            shutil.copy2(source, target)
        bundles[fmt] = target
    if not keep_build:
        shutil.rmtree(build, ignore_errors=True)
        if out_dir.joinpath(".build").is_dir() and not any(out_dir.joinpath(".build").iterdir()):
            out_dir.joinpath(".build").rmdir()
    if verbose:
        print(f"built in {time.monotonic() - started:.0f} s:")
        for fmt, path in bundles.items():
            print(f"  {fmt:5s} {path}")
    return bundles
