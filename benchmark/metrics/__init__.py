"""Metrics with reference definitions: recall@K (CLIP_benchmark/LAVIS), COCO mAP, robustness."""
