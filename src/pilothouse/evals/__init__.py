"""Evaluation: versioned datasets, evaluators (plugins), experiments, comparison, the CI gate."""

from pilothouse.evals.evaluators import Evaluator, Evaluators, Sample, Score

__all__ = ["Evaluator", "Evaluators", "Sample", "Score"]
