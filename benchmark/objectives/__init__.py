"""Pretraining and fine-tuning objectives shared by the baselines."""

from benchmark.objectives.contrastive import ImageTextContrastive, info_nce

__all__ = ["ImageTextContrastive", "info_nce"]
