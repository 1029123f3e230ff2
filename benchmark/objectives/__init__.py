"""Pretraining and fine-tuning objectives shared by the baselines.

``itc`` image–text contrastive · ``itm`` image–text matching with hard negatives ·
``mlm`` masked language modelling · ``mim`` masked image modelling.
"""

from benchmark.objectives.contrastive import ImageTextContrastive, info_nce
from benchmark.objectives.masking import mask_tokens, mim_loss, mlm_loss, random_patch_mask
from benchmark.objectives.matching import itm_loss, itm_loss_swap, sample_negatives

__all__ = [
    "ImageTextContrastive",
    "info_nce",
    "itm_loss",
    "itm_loss_swap",
    "mask_tokens",
    "mim_loss",
    "mlm_loss",
    "random_patch_mask",
    "sample_negatives",
]
