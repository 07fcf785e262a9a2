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
