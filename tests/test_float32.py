"""Without x64 the simulator runs in float32 (tests otherwise run in float64).

Every float32 script below runs in one child process without x64 (started once for the
module: a process start and jax's import cost seconds); each test checks its script's output.
"""

import json
import os
import subprocess
import sys

import pytest

import lagc_jax as lj

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


# The residual form's gap floors by iteration ~250; gd on p is RESOLUTION's program (400 × 2)
FLOOR = """
import dataclasses, numpy as np, lagc_jax as lj
p = lj.problems.lag_synthetic(12, dim=50)
direct = dataclasses.replace(p, quadratic=None)
for name, S in (("gd", 0), ("gc", 2)):
    gaps = [np.abs(lj.simulate(q, lj.make(name, 12, S), lj.ShiftedExponential(), num_iters=400,
                               num_trials=2, seed=1).gap[:, -150:]).min() for q in (p, direct)]
    print(name, gaps[0], gaps[1], float(np.spacing(np.float32(p.optimal_value))))
"""

# Runs each script (argv[1]: a JSON object name -> code) in a fresh namespace and prints one
# JSON object name -> {"stdout": ..., "error": traceback or null}.
RUNNER = """
import contextlib, io, json, sys, traceback
scripts, outputs = json.loads(sys.argv[1]), {}
for name, code in scripts.items():
    printed, error = io.StringIO(), None
    with contextlib.redirect_stdout(printed):
        try:
            exec(compile(code, name, "exec"), {"__name__": name})
        except Exception:
            error = traceback.format_exc()
    outputs[name] = {"stdout": printed.getvalue(), "error": error}
print(json.dumps(outputs))
"""


@pytest.fixture(scope="module")
def float32_child():
    """The scripts' outputs from one child without x64: ``output(name)`` is what a script
    printed; a script that raised fails the test that asks for it, with its traceback."""
    scripts = {"run": SCRIPT, "refused": REFUSED, "resolution": RESOLUTION, "floor": FLOOR}
    env = {**os.environ, "JAX_ENABLE_X64": "0"}
    out = subprocess.run(
        [sys.executable, "-c", RUNNER, json.dumps(scripts)], capture_output=True, text=True, env=env
    )
    assert out.returncode == 0, out.stderr[-3000:]
    outputs = json.loads(out.stdout.strip().splitlines()[-1])

    def output(name):
        assert outputs[name]["error"] is None, outputs[name]["error"]
        return outputs[name]["stdout"].strip()

    return output


def test_float32_run(float32_child):
    assert float32_child("run") == "ok"


REFUSED = """
import numpy as np, lagc_jax as lj
p = lj.problems.lag_synthetic(30, dim=30)
try:
    lj.simulate(p, lj.make("gc", 30, 10), lj.ShiftedExponential(), num_iters=5, num_trials=2)
except ValueError as error:
    print(error)
r = lj.simulate(lj.problems.lag_synthetic(12), lj.make("gc", 12, 2), lj.ShiftedExponential(),
                num_iters=400, num_trials=2)  # FLOOR's program
print("small code runs:", r.config["dtype"], float(r.decoding_residual.max()) < 1e-3)
"""


def test_float32_refuses_a_code_it_cannot_decode(float32_child):
    """gc at M = 30, S = 10 (max|a| ≈ 7e5) would converge to a wrong point in float32: the
    run is refused before compiling, naming the reason; a small code (M = 12, S = 2,
    max|a| ≈ 8.6) still runs."""
    first, second = float32_child("refused").splitlines()
    assert first.startswith("gc: decoding weights up to max|a| = 7.11e+05")
    assert "float32 cannot represent this code's decoding" in first
    assert second == "small code runs: float32 True"


RESOLUTION = """
import warnings, numpy as np, lagc_jax as lj
p = lj.problems.lag_synthetic(12)
r = lj.simulate(p, lj.make("gd", 12), lj.ShiftedExponential(), num_iters=400, num_trials=2)
print("min gap", float(r.gap.min()))
print("reached at", int(r.to_reach(1e-6)["iterations"][0]))
rng = np.random.default_rng(0)
X = rng.standard_normal((60, 4))
y = np.where(X @ np.array([1.0, -1.0, 0.5, 0.0]) + 0.3 * rng.standard_normal(60) > 0, 1.0, -1.0)
logistic = lj.problems.logistic_regression(X, y, num_partitions=6)
r = lj.simulate(logistic, lj.make("gd", 6), lj.ShiftedExponential(), num_iters=3, num_trials=2)
print("resolution", r.config["gap_resolution"] > 0)
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    reach = r.to_reach(1e-12)["iterations"]
print("unresolvable", bool(np.isnan(reach).all()), "resolution of f" in str(caught[-1].message))
for kwargs in (dict(slowdown=np.full(12, 1e-50)),
               dict(unit_times=np.full((2, 3, 12), 1e-46), delay=None),
               dict(upload_factors=np.full(12, 1e-50)),
               dict(delay=lj.ShiftedExponential(rate=1e60))):
    options = dict(delay=lj.ShiftedExponential()) | kwargs
    try:
        lj.simulate(p, lj.make("gd", 12), options.pop("delay"), num_iters=3, num_trials=2,
                    **options)
        print("ran")
    except ValueError as error:
        print(str(error).split(":")[0], "float32" in str(error))
"""


def test_float32_resolves_the_gap_and_refuses_what_it_cannot_represent(float32_child):
    """float32 on lag_synthetic(12): the gap is computed as ½(θ − θ*)ᵀ∇f, not f − f* of
    two rounded numbers (which floored at −1.8e-6 and 'reached' 1e-6 ten iterations
    early): it stays ≥ 0 and the float64 run's iteration is reproduced. A target below
    eps·|f*| of a non-quadratic problem is not claimed; times and factors that float32
    rounds to 0 are refused, naming them."""
    lines = float32_child("resolution").splitlines()
    assert float(lines[0].split()[-1]) >= 0.0
    reference = lj.simulate(
        lj.problems.lag_synthetic(12),
        lj.make("gd", 12),
        lj.ShiftedExponential(),
        num_iters=400,
        num_trials=1,
    )
    assert lines[1] == f"reached at {int(reference.to_reach(1e-6)['iterations'][0])}"
    assert lines[2:] == [
        "resolution True",
        "unresolvable True True",
        "slowdown True",
        "unit_times True",
        "upload_factors True",
        "delay (its mean unit time) True",
    ]


def test_float32_gap_floor_no_worse_than_the_residual_form(float32_child):
    """In float32 the gap floors at the representation of f: the quadratic form's floor is
    no worse than the residual form's (nor than one ulp of f*)."""
    for line in float32_child("floor").splitlines():
        name, quadratic, direct, ulp = line.split()
        assert float(quadratic) <= max(float(direct), float(ulp)), line
