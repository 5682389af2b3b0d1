"""TBPTT training of SPTMod. So far: the loss (100·MAE + ESR + MR-STFT + MR-EESR)."""

from neuralcomp.training.loss import CompressorLoss, LossConfig

__all__ = ["CompressorLoss", "LossConfig"]
