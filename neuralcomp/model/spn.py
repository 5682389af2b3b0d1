"""State Prediction Network (DESIGN.md section 4): predicts every LSTM's (h0, c0) from a lookback
window of input *and target* audio, so it exists only during training."""

from __future__ import annotations

import torch
from torch import nn

from neuralcomp.config import SPNConfig
from neuralcomp.errors import AudioInputError
from neuralcomp.model.film import FiLMGenerator
from neuralcomp.model.lengths import spn_lookback


class _SPNBlock(nn.Module):
    def __init__(self, in_channels: int, config: SPNConfig, num_controls: int) -> None:
        super().__init__()
        self.conv = nn.Conv1d(in_channels, config.channels, config.kernel_size)
        self.activation = nn.PReLU(config.channels)
        self.film = FiLMGenerator(num_controls, config.film_hidden, config.channels) if num_controls else None
        self.pool = nn.AvgPool1d(config.pool_size)

    def forward(self, x: torch.Tensor, controls: torch.Tensor) -> torch.Tensor:
        x = self.activation(self.conv(x))
        if self.film is not None:
            gamma, beta = self.film(controls)
            x = torch.addcmul(beta.unsqueeze(-1), x, gamma.unsqueeze(-1))
        return self.pool(x)


class StatePredictionNetwork(nn.Module):
    """(input, target) lookback window -> initial (h, c) of each ModBlock's LSTM."""

    def __init__(self, config: SPNConfig, num_controls: int, lstm_hidden: int, num_lstms: int) -> None:
        super().__init__()
        self.lookback_samples = spn_lookback(config)
        self.lstm_hidden = lstm_hidden
        self.num_lstms = num_lstms
        self.blocks = nn.ModuleList(
            _SPNBlock(2 if i == 0 else config.channels, config, num_controls) for i in range(config.blocks)
        )
        self.to_state = nn.Linear(config.channels, num_lstms * 2 * lstm_hidden)

    def forward(
        self, input_audio: torch.Tensor, target_audio: torch.Tensor, controls: torch.Tensor, dropout: float = 0.0
    ) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """input/target (batch, 1, lookback_samples) -> per LSTM (h0, c0), each (1, batch, hidden).

        `dropout` (training regularisation, in train mode only) drops each block's output features with
        that probability; 0 skips the call entirely, so the arithmetic and the random stream are untouched."""
        if input_audio.shape[-1] != self.lookback_samples or target_audio.shape != input_audio.shape:
            raise AudioInputError(
                f"SPN needs input and target of exactly {self.lookback_samples} samples, got "
                f"{tuple(input_audio.shape)} and {tuple(target_audio.shape)}"
            )
        x = torch.cat([input_audio, target_audio], dim=1)
        for block in self.blocks:
            x = block(x, controls)
            if dropout > 0.0 and self.training:
                x = nn.functional.dropout(x, dropout, training=True)
        states = self.to_state(x.squeeze(-1)).view(x.shape[0], self.num_lstms, 2, self.lstm_hidden)
        return [
            (states[:, j, 0].unsqueeze(0).contiguous(), states[:, j, 1].unsqueeze(0).contiguous())
            for j in range(self.num_lstms)
        ]
