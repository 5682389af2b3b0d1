"""Hosts that run exported models: the C++ libtorch host (`_cpp_host`, when built) and TorchScript
from Python, behind one pedalboard-style `Processor`. Imports no training code."""

from neuralcomp.host.processor import NonFiniteAudioWarning, Processor, cpp_host_available, load

__all__ = ["NonFiniteAudioWarning", "Processor", "cpp_host_available", "load"]
