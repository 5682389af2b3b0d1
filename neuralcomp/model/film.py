"""FiLM conditioning: user controls -> per-channel scale and shift."""

from __future__ import annotations

import torch
from torch import nn


class FiLMGenerator(nn.Module):
    """(gamma, beta) = MLP(p): Linear(n, h) -> PReLU -> Linear(h, h) -> PReLU -> Linear(h, 2c)."""

    def __init__(self, num_controls: int, hidden: int, channels: int) -> None:
        super().__init__()
        self.channels = channels
        self.mlp = nn.Sequential(
            nn.Linear(num_controls, hidden),
            nn.PReLU(hidden),
            nn.Linear(hidden, hidden),
            nn.PReLU(hidden),
            nn.Linear(hidden, 2 * channels),
        )

    def forward(self, controls: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """controls (batch, n) -> gamma, beta, each (batch, channels)."""
        gamma_beta = self.mlp(controls)
        return gamma_beta[:, : self.channels], gamma_beta[:, self.channels :]
