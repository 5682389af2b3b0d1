"""SPTMod: the model, its State Prediction Network and its length arithmetic."""

from neuralcomp.model.lengths import LengthPlan, plan_lengths, spn_lookback
from neuralcomp.model.sptmod import SPTMod, BlockState

__all__ = ["SPTMod", "BlockState", "LengthPlan", "plan_lengths", "spn_lookback"]
