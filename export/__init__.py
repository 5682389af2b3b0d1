"""Streaming export: turns an SPTMod into one TorchScript file that a host runs buffer by buffer."""

from export.exporter import SCHEMA_VERSION, export_model, build_streaming_module
from export.streaming import StreamingSPTMod

__all__ = ["SCHEMA_VERSION", "StreamingSPTMod", "build_streaming_module", "export_model"]
