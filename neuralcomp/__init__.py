"""neuralcomp: neural models of audio compressors (SPTMod) that stream bit-exactly in real time."""

from neuralcomp.errors import (
    AudioInputError,
    ConfigError,
    ControlError,
    ModelFileError,
    NeuralcompError,
    StateError,
)
from neuralcomp.host import NonFiniteAudioWarning, Processor, load

__version__ = "0.1.0"

__all__ = [
    "AudioInputError", "ConfigError", "ControlError", "ModelFileError", "NeuralcompError", "StateError",
    "NonFiniteAudioWarning", "Processor", "load", "__version__",
]
