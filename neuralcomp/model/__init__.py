"""The models: SPTMod (with its State Prediction Network and length arithmetic) and the TCN baseline."""

from neuralcomp.model.lengths import LengthPlan, plan_lengths, spn_lookback
from neuralcomp.model.registry import Model, build_model, model_from_dict
from neuralcomp.model.sptmod import SPTMod, BlockState
from neuralcomp.model.tcn import TCN, ConvCacheState

__all__ = ["SPTMod", "BlockState", "TCN", "ConvCacheState", "Model", "build_model", "model_from_dict",
           "LengthPlan", "plan_lengths", "spn_lookback"]
