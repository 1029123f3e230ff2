"""Where FuseBench's own files are: the checkout, its configuration and its schema.

The lowest layer (standard library only), so that every module can name a file of the checkout
without importing the configuration machinery above it (``docs/architecture.md``).
"""

from __future__ import annotations

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
"""The checkout the imported package belongs to (``benchmark/``'s parent)."""
PROFILES_DIR = REPO_ROOT / "workflows" / "config"
"""The configuration profiles: ``default.yaml`` and the files layered on it (``smoke.yaml``, ``paper.yaml``, …)."""
DEFAULT_CONFIG = PROFILES_DIR / "default.yaml"
"""The one place every default lives."""
SCHEMA_PATH = REPO_ROOT / "workflows" / "schemas" / "config.schema.yaml"
"""The JSON schema the merged configuration is validated against."""
