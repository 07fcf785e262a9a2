"""Without x64 the simulator runs in float32 (tests otherwise run in float64)."""

import os
import subprocess
import sys

SCRIPT = """
import numpy as np, lagc_jax as lj
r = lj.simulate(lj.problems.lag_synthetic(6, dim=20), lj.strategies.make("lagc", 6, 1),
                lj.ShiftedExponential(), num_iters=300, num_trials=4)
assert r.config["dtype"] == "float32", r.config["dtype"]
assert not r.diverged.any()
# float32 gap floors near eps·f: relative gap well below 1e-4 but not exact
assert (r.gap[:, -1] < 1e-4 * r.gap[:, 0]).all(), r.gap[:, -1]
print("ok")
"""


def test_float32_run():
    env = {**os.environ, "JAX_ENABLE_X64": "0"}
    out = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, env=env)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


REFUSED = """
import numpy as np, lagc_jax as lj
p = lj.problems.lag_synthetic(30, dim=30)
try:
    lj.simulate(p, lj.make("gc", 30, 10), lj.ShiftedExponential(), num_iters=5, num_trials=2)
except ValueError as error:
    print(error)
r = lj.simulate(p, lj.make("gc", 30, 2), lj.ShiftedExponential(), num_iters=5, num_trials=2)
print("small code runs:", r.config["dtype"], float(r.decoding_residual.max()) < 1e-3)
"""


def test_float32_refuses_a_code_it_cannot_decode():
    """gc at M = 30, S = 10 (max|a| ≈ 7e5) would converge to a wrong point in float32: the
    run is refused before compiling, naming the reason; a small code still runs."""
    env = {**os.environ, "JAX_ENABLE_X64": "0"}
    out = subprocess.run([sys.executable, "-c", REFUSED], capture_output=True, text=True, env=env)
    assert out.returncode == 0, out.stderr
    first, second = out.stdout.strip().splitlines()
    assert first.startswith("gc: decoding weights up to max|a| = 7.11e+05")
    assert "float32 cannot represent this code's decoding" in first
    assert second == "small code runs: float32 True"
