"""Shared encoders, heads and the method contract every baseline implements."""

from benchmark.models.method import BuildContext, FusionMethod, MethodError

__all__ = ["BuildContext", "FusionMethod", "MethodError"]
