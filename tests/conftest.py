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


@pytest.fixture(autouse=True, scope="module")
def release_compiled_programs():
    """Drop jax's compiled programs after each test module. A full run compiles thousands
    of programs; kept alive, their code mappings grow toward the kernel's per-process map
    limit (vm.max_map_count, 65530) and XLA's compiler then crashes the process."""
    yield
    jax.clear_caches()
