"""Preference objectives (DPO, ORPO, SimPO, KTO): their losses (`losses`), the per-sequence
log-probs of a pass (`logps`) and the optimizer step the loop calls for them (`step`)."""
from .step import metric_values, precompute_reference, preference_evaluate, preference_step, step_counts

__all__ = ["metric_values", "precompute_reference", "preference_evaluate", "preference_step", "step_counts"]
