"""Typed errors: every failure a user can cause has its own class and a message that names the problem."""


class NeuralcompError(Exception):
    """Base class of every error neuralcomp raises on purpose."""


class ConfigError(NeuralcompError, ValueError):
    """A model configuration or preset is invalid."""


class AudioInputError(NeuralcompError, ValueError):
    """Audio given to a model has the wrong shape, dtype, sample rate or length."""


class ControlError(NeuralcompError, ValueError):
    """A control name is unknown or its value is outside the control's range."""


class ModelFileError(NeuralcompError):
    """A model file is missing, truncated, foreign, or from a newer schema than this host supports."""


class StateError(NeuralcompError, ValueError):
    """A state snapshot does not fit the model it is restored into."""


class LiveAudioError(NeuralcompError):
    """The live audio path cannot run: no devices, an unknown device, or settings a device refuses."""


class TrainingDivergedError(NeuralcompError):
    """Training produced a non-finite loss (NaN or Inf): the run cannot continue."""


class OutputPathError(NeuralcompError, ValueError):
    """An output file cannot be written: its folder is missing, or its format is not one neuralcomp can write."""


class TrainingInterrupted(NeuralcompError):
    """Training stopped on Ctrl-C at an iteration boundary, after saving a checkpoint to resume from."""

    def __init__(self, iteration: int, checkpoint: str) -> None:
        super().__init__(f"training interrupted at iteration {iteration}; {checkpoint} holds it: run the same "
                         "command again to continue (`neuralcomp train` needs --resume)")
        self.iteration = iteration
        self.checkpoint = checkpoint
