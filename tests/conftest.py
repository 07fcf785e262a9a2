"""Test configuration: the suite runs in float64 (conformance needs it).

A float32 smoke test runs in a subprocess (tests/test_float32.py).
"""

from pathlib import Path

import jax
import pytest

jax.config.update("jax_enable_x64", True)

SHARED = Path(__file__).resolve().parents[2] / "shared"
REFERENCE = SHARED / "reference"


@pytest.fixture
def reference_dir():
    """../shared/reference, or a skip when this checkout has no shared/ beside it."""
    if not REFERENCE.is_dir():
        pytest.skip(f"reference outputs not found at {REFERENCE} (the ../shared folder is absent)")
    return REFERENCE
