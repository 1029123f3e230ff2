"""Content hashes of configuration slices: equal objects, equal hashes, on every machine.

A stage spec's hash names the job's result and decides whether it re-runs; a data build's hash
names its folder. Standard library only, so the lowest layers (the synthetic data builder) can use
it (``docs/architecture.md``).
"""

from __future__ import annotations

import hashlib
import json
from typing import Any


def canonical_json(obj: Any) -> str:
    """JSON with sorted keys and no whitespace: equal objects give equal strings."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def config_hash(obj: Any) -> str:
    """Short content hash (sha256, 16 hex digits) of any JSON-serialisable object."""
    return hashlib.sha256(canonical_json(obj).encode()).hexdigest()[:16]
