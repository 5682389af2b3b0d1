"""The metadata an exported model carries (DESIGN.md section 6) and the checks hosts make on it.

Shared by the exporter (writes it) and the hosts (read it); imports no training code.
"""

from __future__ import annotations

import json
from typing import Any

from neuralcomp.errors import ModelFileError

SCHEMA_VERSION = 1
FORMAT_NAME = "neuralcomp-streaming-sptmod"
REQUIRED_KEYS = (
    "format", "schema_version", "torch_version", "sample_rate", "pool_size", "mode", "latency_samples",
    "controls", "state", "model_config",
)


def parse_metadata(text: str, source: str = "model") -> dict[str, Any]:
    """Parse and check metadata JSON; raise ModelFileError saying what is wrong."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ModelFileError(f"{source}: metadata is not valid JSON ({exc})") from exc
    if not isinstance(data, dict) or data.get("format") != FORMAT_NAME:
        raise ModelFileError(f"{source}: not a neuralcomp model (metadata format is not {FORMAT_NAME!r})")
    version = data.get("schema_version")
    if not isinstance(version, int):
        raise ModelFileError(f"{source}: metadata has no integer schema_version")
    if version > SCHEMA_VERSION:
        raise ModelFileError(
            f"{source}: made with metadata schema {version}, newer than this neuralcomp supports "
            f"({SCHEMA_VERSION}); upgrade neuralcomp"
        )
    missing = [k for k in REQUIRED_KEYS if k not in data]
    if missing:
        raise ModelFileError(f"{source}: metadata lacks {', '.join(missing)}")
    return data
