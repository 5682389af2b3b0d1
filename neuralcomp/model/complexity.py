"""Parameter counts and multiply-adds per output sample of an SPTMod configuration."""

from __future__ import annotations

from dataclasses import dataclass

from neuralcomp.config import SPTModConfig, TCNConfig


@dataclass(frozen=True)
class Complexity:
    processor_parameters: int
    spn_parameters: int
    conv_macs: float  # per output sample, all ModBlock convolutions
    lstm_macs: float  # per output sample: 4H(c + H) per frame / P
    projection_macs_published: float  # 1x1 convs on the interpolated u, at audio rate (paper form)
    projection_macs_streaming: float  # the same 1x1 at frame rate, then interpolated (this implementation)
    modulation_macs: float  # interpolation and the affine modulations of both paths, per sample

    @property
    def macs_published(self) -> float:
        return self.conv_macs + self.lstm_macs + self.projection_macs_published + self.modulation_macs

    @property
    def macs_streaming(self) -> float:
        return self.conv_macs + self.lstm_macs + self.projection_macs_streaming + self.modulation_macs


def _count(module) -> int:  # noqa: ANN001 - any nn.Module
    return sum(p.numel() for p in module.parameters())


def complexity(config: SPTModConfig | TCNConfig) -> Complexity:
    if isinstance(config, TCNConfig):
        return _tcn_complexity(config)
    from neuralcomp.model.sptmod import SPTMod  # torch import only when counting

    model = SPTMod(config)
    spn_parameters = _count(model.spn) if model.spn is not None else 0
    pool, hidden = config.pool_size, config.lstm_hidden
    conv = lstm = proj = modulation = 0.0
    in_channels = 1
    for block in model.blocks:
        c, n_mod = block.channels, block.modulation_channels
        conv += in_channels * c * block.kernel_size
        lstm += 4 * hidden * (c + hidden) / pool
        proj += hidden * n_mod
        # lerp of n_mod channels (1 MAC each) + a <- alpha*a + delta, m <- alpha'*m + delta'
        modulation += n_mod + n_mod / 2
        in_channels = c
    return Complexity(
        processor_parameters=_count(model) - spn_parameters,
        spn_parameters=spn_parameters,
        conv_macs=conv,
        lstm_macs=lstm,
        projection_macs_published=proj,
        projection_macs_streaming=proj / pool,
        modulation_macs=modulation,
    )


def _tcn_complexity(config: TCNConfig) -> Complexity:
    """A TCN per output sample: convs and residual 1x1 projections (conv_macs), the 1x1 to the gain
    (projection, the same at audio rate in both forms), FiLM's affine and the gain times the input
    (modulation_macs). No LSTM, no SPN; PReLU and residual additions are not multiply-adds."""
    from neuralcomp.model.tcn import TCN  # torch import only when counting

    model = TCN(config)
    conv = film = 0.0
    for block in model.blocks:
        conv += block.in_channels * block.channels * block.kernel_size
        if block.residual is not None:
            conv += block.in_channels * block.channels
        if block.film is not None:
            film += block.channels
    head = float(config.channels)
    return Complexity(processor_parameters=_count(model), spn_parameters=0, conv_macs=conv, lstm_macs=0.0,
                      projection_macs_published=head, projection_macs_streaming=head, modulation_macs=film + 1)
