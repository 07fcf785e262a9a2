"""Sweeps, checkpoint/resume and sharding over devices: invariances of results."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import lagc_jax as lj
from lagc_jax import engine, strategies
from lagc_jax.problems import lag_synthetic

from helpers import SMALL_PROBLEM, SMALL_RUN, SMALL_STRAGGLERS, SMALL_WORKERS, assert_same_run

EXP = lj.ShiftedExponential(rate=1.0)


@pytest.mark.parametrize("name", ["gc", "lag-ps"])
def test_sweep_points_equal_separate_runs(name):
    """(The separate runs are the modules' shared small runs: test_strategy_battery.py's
    programs.)"""
    problem = SMALL_PROBLEM
    strategy = strategies.make(name, SMALL_WORKERS, SMALL_STRAGGLERS)
    step_sizes = [0.5 / problem.smoothness, 1.0 / problem.smoothness]
    taus = [0.0, 0.7]
    kw = dict(num_iters=24, **SMALL_RUN)
    swept = lj.sweep(problem, strategy, EXP, step_size=step_sizes, upload_time=taus, **kw)
    for point, (alpha, tau) in enumerate(zip(step_sizes, taus)):
        single = lj.simulate(problem, strategy, EXP, step_size=alpha, upload_time=tau, **kw)
        assert_same_run(swept[point], single, rtol=1e-12)
        np.testing.assert_array_equal(swept[point].upload_mask, single.upload_mask)
        assert swept[point].config["upload_time"] == tau


def test_sweep_over_xi_and_delay_parameters_does_not_recompile():
    problem = lag_synthetic(6, dim=12)
    strategy = strategies.make("lag-wk", 6)
    kwargs = dict(num_iters=10, num_trials=2)
    first = lj.sweep(
        problem, strategy, [lj.Pareto(1.0, 2.0), lj.Pareto(1.0, 3.0)], xi=[0.0, 1.0], **kwargs
    )
    size = engine._run_chunk._cache_size()
    second = lj.sweep(
        problem, strategy, [lj.Pareto(2.0, 1.5), lj.Pareto(1.0, 4.0)], xi=[0.5, 2.0], **kwargs
    )
    assert engine._run_chunk._cache_size() == size
    # ξ = 0: every worker uploads every iteration; larger ξ uploads less
    assert first[0].uploads[0, -1] == 6 * 10 > first[1].uploads[0, -1]
    # common random numbers: Pareto(2, 1.5) draws are 2·exp(E/1.5), Pareto(1, 3) are exp(E/3)
    assert not np.allclose(second[0].wall_clock, first[0].wall_clock)


def test_sweep_validation():
    problem = lag_synthetic(4, dim=8)
    with pytest.raises(ValueError, match="share one length"):
        lj.sweep(
            problem,
            strategies.make("gd", 4),
            EXP,
            num_iters=2,
            num_trials=1,
            step_size=[0.1, 0.2],
            upload_time=[0.0, 1.0, 2.0],
        )
    with pytest.raises(ValueError, match="xi does not apply"):
        lj.sweep(problem, strategies.make("gd", 4), EXP, num_iters=2, num_trials=1, xi=[0.0, 1.0])
    with pytest.raises(ValueError, match="scalar knobs"):
        lj.simulate(
            problem,
            strategies.make("gd", 4),
            EXP,
            num_iters=2,
            num_trials=1,
            upload_time=[0.0, 1.0],
        )


@pytest.mark.parametrize("name", ["lagc", "g-lag"])
def test_checkpointed_run_resumes_after_interruption(tmp_path, name):
    """Four chunks of 8 (the modules' shared small runs)."""
    problem = SMALL_PROBLEM
    strategy = strategies.make(name, SMALL_WORKERS, SMALL_STRAGGLERS)
    kwargs = dict(num_iters=32, **SMALL_RUN)
    whole = lj.simulate(problem, strategy, EXP, **kwargs)

    class Interrupt(Exception):
        pass

    def stop_after_two_chunks(done, total):
        if done == 16:
            raise Interrupt

    with pytest.raises(Interrupt):
        lj.simulate(
            problem,
            strategy,
            EXP,
            checkpoint_dir=tmp_path,
            progress=stop_after_two_chunks,
            **kwargs,
        )
    seen = []
    resumed = lj.simulate(
        problem,
        strategy,
        EXP,
        checkpoint_dir=tmp_path,
        progress=lambda done, total: seen.append(done),
        **kwargs,
    )
    assert seen == [24, 32]  # only the two missing chunks ran
    assert_same_run(whole, resumed, rtol=0)
    np.testing.assert_array_equal(whole.upload_mask, resumed.upload_mask)
    with pytest.raises(ValueError, match="different run"):
        lj.simulate(problem, strategy, EXP, checkpoint_dir=tmp_path, seed=1, **kwargs)


def sharded_runs(names):
    """The runs compared across device counts: for each strategy a sweep of two points (one
    program), 7 trials (padded to 8 on 4 devices), chunked; iterates batched over the trials
    (gc, lagc) or computed once (lag-ps)."""
    p = lag_synthetic(6, dim=12)
    out = {}
    for name in names:
        points = lj.sweep(
            p,
            strategies.make(name, 6, 1 if name != "lag-ps" else 0),
            lj.Pareto(1.0, 2.0),
            num_iters=15,
            num_trials=7,
            upload_time=[0.2, 1.0],
            chunk_size=5,
        )
        for point, r in enumerate(points):
            for f in ("loss", "wall_clock", "uploads", "computations"):
                out[f"{name}/{point}/{f}"] = getattr(r, f)
    return out


SHARDED = """
import sys, numpy as np, jax
jax.config.update("jax_enable_x64", True)
assert len(jax.devices()) == 4, jax.devices()
sys.path.insert(0, {tests!r})
from test_scale import sharded_runs
np.savez({path!r}, **sharded_runs({names!r}))
"""


@pytest.mark.parametrize(
    "names",
    [
        ("gc",),
        # slow: iterates computed once (lag-ps) are sharded on 4 devices by
        # test_open_engine.py::test_metrics_and_draws_identical_on_four_devices (gd) and
        # test_multiprocess.py (lag-wk); lagc's are batched over the trials, as gc's, and
        # lagc moves between device counts in test_checkpoints.py (1 and 2 devices)
        pytest.param(("lag-ps", "lagc"), marks=pytest.mark.slow),
    ],
    ids=",".join,
)
def test_results_identical_on_one_and_four_devices(tmp_path, names):
    """One device here, four in a child process."""
    one = sharded_runs(names)
    env = {
        **os.environ,
        "XLA_FLAGS": "--xla_force_host_platform_device_count=4",
        "JAX_PLATFORMS": "cpu",
    }
    code = SHARDED.format(
        tests=str(Path(__file__).resolve().parent), path=str(tmp_path / "four.npz"), names=names
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert out.returncode == 0, out.stderr[-3000:]
    four = np.load(tmp_path / "four.npz")
    assert set(four.files) == set(one)
    for key in one:
        if key.endswith(("uploads", "computations")):
            np.testing.assert_array_equal(one[key], four[key], err_msg=key)
        else:
            np.testing.assert_allclose(one[key], four[key], rtol=1e-12, err_msg=key)
