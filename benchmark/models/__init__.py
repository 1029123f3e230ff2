"""Shared encoders, heads and the method contract every baseline implements."""

from benchmark.errors import MethodError
from benchmark.models.method import BuildContext, FusionMethod

__all__ = ["BuildContext", "FusionMethod", "MethodError"]
