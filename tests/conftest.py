"""Test configuration: the suite runs in float64 (conformance needs it).

A float32 smoke test runs in a subprocess (tests/test_float32.py).
"""

import os
import shutil
import tempfile
from pathlib import Path

# One BLAS thread (set before numpy loads; subprocesses inherit it): the tests' matrices are
# small, and OpenBLAS threads spinning on a shared two-core machine made small solves
# take 0.02-6 s from run to run.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import jax  # noqa: E402
import pytest

jax.config.update("jax_enable_x64", True)


def _share_one_compilation_cache() -> str | None:
    """One persistent compilation cache for the session and every subprocess its tests
    start (they inherit the environment). The suite compiles the same programs many
    times: in every test module (the in-memory caches are cleared after each, below) and
    in every CLI, checkpoint and multi-process child; a compile costs about a second on
    two cores, a cache hit milliseconds. A cache directory the caller set is used and
    kept; otherwise a temporary one, removed at the end (returned)."""
    given = os.environ.get("JAX_COMPILATION_CACHE_DIR")
    owned = None if given else tempfile.mkdtemp(prefix="lagc_jax_tests_xla_cache_")
    settings = {
        "jax_compilation_cache_dir": given or owned,
        # cache every program, however small or quick to compile
        "jax_persistent_cache_min_compile_time_secs": 0,
        "jax_persistent_cache_min_entry_size_bytes": 0,
    }
    for name, value in settings.items():
        os.environ[name.upper()] = str(value)  # for the subprocesses
        jax.config.update(name, value)  # this process imported jax already
    return owned


_OWNED_CACHE = _share_one_compilation_cache()


def pytest_sessionfinish(session, exitstatus):
    if _OWNED_CACHE:
        shutil.rmtree(_OWNED_CACHE, ignore_errors=True)


REFERENCE = Path(__file__).parent / "data" / "reference"


@pytest.fixture
def reference_dir():
    """The original authors' outputs the conformance tests compare with (tests/data/reference,
    part of the repository; their origin in tests/data/README.md). A missing file fails."""
    return REFERENCE


@pytest.fixture(autouse=True, scope="module")
def release_compiled_programs():
    """Drop jax's compiled programs after each test module. A full run compiles thousands
    of programs; kept alive, their code mappings grow toward the kernel's per-process map
    limit (vm.max_map_count, 65530) and XLA's compiler then crashes the process. It costs
    no measurable time: a program another module compiled comes back from the persistent
    cache (seven modules in one process: 111 s of CPU with it, 112 s without, mean of two)."""
    yield
    jax.clear_caches()
