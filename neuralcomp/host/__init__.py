"""Hosts that run exported models behind one pedalboard-style `Processor`: the native engine
(`_native`, no torch), the libtorch C++ host (`_cpp_host`) and TorchScript from Python.
Imports no training code, and no torch unless a TorchScript backend is opened."""

from neuralcomp.host.processor import (
    NonFiniteAudioWarning,
    Processor,
    cpp_host_available,
    load,
    native_engine_available,
)

__all__ = ["NonFiniteAudioWarning", "Processor", "cpp_host_available", "load", "native_engine_available"]
