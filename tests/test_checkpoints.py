"""Checkpoints: a resumed run equals an uninterrupted one, whatever happened in between.

The fault-injection test SIGKILLs a child process at random points of a checkpointed
run (inside chunks, between file writes, during the manifest commit) and resumes until
the run completes; the final Result must be bit-identical to an uninterrupted run.
The other tests each provoke one fault directly.
"""

import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import jax.numpy as jnp
import numpy as np
import optax
import pytest

import lagc_jax as lj
from lagc_jax import checkpoints, problems, strategies
from lagc_jax.problems import lag_synthetic

from helpers import SMALL_RUN

EXP = lj.ShiftedExponential(rate=1.0)
FIELDS = ("loss", "gap", "wall_clock", "uploads", "downloads", "computations", "diverged")


class Interrupt(Exception):
    pass


def stop_at(iteration):
    def progress(done, total):
        if done == iteration:
            raise Interrupt

    return progress


def assert_identical(a, b):
    for name in FIELDS:
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)


def run(problem, directory=None, **kwargs):
    """lagc in four chunks of 8 iterations (the modules' shared small runs)."""
    options = dict(num_iters=32, **SMALL_RUN)
    options.update(kwargs)
    return lj.simulate(
        problem, strategies.make("lagc", 6, 1), EXP, checkpoint_dir=directory, **options
    )


def manifest(directory):
    return json.loads((directory / checkpoints.MANIFEST).read_text())


# --------------------------------------------------------------------------- #
# fault injection: SIGKILL at random points
# --------------------------------------------------------------------------- #
KILLED_ITERS, KILLED_CHUNK, KILLS = 64, 4, 3


def killed_run(checkpoint_dir, progress):
    """The run the fault-injection test kills (in a child) and runs uninterrupted (here)."""
    p = lag_synthetic(4, dim=10)
    delay = lj.MarkovStragglers(lj.ShiftedExponential(1.0), 4.0, 0.2, 0.3)
    return lj.simulate(
        p,
        strategies.make("lagc", 4, 1),
        delay,
        num_iters=KILLED_ITERS,
        num_trials=3,
        chunk_size=KILLED_CHUNK,
        record_masks=True,
        optimizer=optax.sgd(0.5 / p.smoothness, momentum=0.3),
        checkpoint_dir=checkpoint_dir,
        progress=progress,
    )


CHILD = """
import sys, jax
jax.config.update("jax_enable_x64", True)
sys.path.insert(0, {tests!r})
from test_checkpoints import killed_run
print("started", flush=True)
r = killed_run(sys.argv[1], lambda done, total: print("done", done, flush=True))
r.save(sys.argv[2])
""".format(tests=str(Path(__file__).resolve().parent))


def start_child(directory, out):
    """The child, its stderr in a file: a pipe nobody reads would block it once full
    (XLA logs a line per program loaded from the compilation cache on some CPUs)."""
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    log = tempfile.TemporaryFile("w+")
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(directory), str(out)],
        stdout=subprocess.PIPE,
        stderr=log,
        text=True,
        env=env,
    )
    child.log = log
    return child


def stderr_of(child) -> str:
    child.log.seek(0)
    return child.log.read()[-3000:]


def test_sigkill_at_random_points_then_resume_is_bit_identical(tmp_path, request):
    """Kill a checkpointed run (16 chunks of 4 iterations) 3 times at random points,
    resuming each time: after a random number of committed chunks (spread over the run), a
    random delay of up to a few chunk durations lands the kill inside loading, computing,
    writing a chunk or carry file, or committing the manifest. The final Result equals the
    uninterrupted run."""
    times = []  # one per chunk
    whole = killed_run(None, lambda done, total: times.append(time.monotonic()))
    chunk_time = float(np.median(np.diff(times)))

    rng = random.Random(0)
    directory, kills, progress = tmp_path / "ckpt", 0, []
    while True:
        child = start_child(directory, tmp_path / "resumed")
        request.addfinalizer(child.kill)  # never leave a child behind when an assert fails
        assert child.stdout.readline() == "started\n"
        if kills < KILLS:
            done = manifest(directory)["done"] if (directory / checkpoints.MANIFEST).exists() else 0
            left = (KILLED_ITERS - done) // KILLED_CHUNK  # chunks to go
            for _ in range(rng.randint(0, min(left // (KILLS - kills), left - 1))):
                assert child.stdout.readline().startswith("done")
            time.sleep(rng.uniform(0.0, 3 * chunk_time))
            child.send_signal(signal.SIGKILL)
            child.wait()
            kills += 1
            if (directory / checkpoints.MANIFEST).exists():
                progress.append(manifest(directory)["done"])
            continue
        child.communicate(timeout=120)
        assert child.returncode == 0, stderr_of(child)
        break
    resumed = lj.Result.load(tmp_path / "resumed")
    assert_identical(whole, resumed)
    np.testing.assert_array_equal(whole.upload_mask, resumed.upload_mask)
    assert whole.uploads[0, -1] > 0 and np.all(np.isfinite(whole.loss))
    assert progress == sorted(progress)  # committed iterations never go back
    assert len(set(progress)) >= 2  # kills landed at several points of the run
    # the directory holds exactly the manifest and the files it names
    names = {p.name for p in directory.iterdir()}
    m = manifest(directory)
    assert names == {checkpoints.MANIFEST, m["carry"]["file"], *(c["file"] for c in m["chunks"])}
    assert m["done"] == KILLED_ITERS and len(m["chunks"]) == KILLED_ITERS // KILLED_CHUNK


# --------------------------------------------------------------------------- #
# one test per fault
# --------------------------------------------------------------------------- #
def test_other_data_under_the_same_problem_name_is_rejected(tmp_path):
    p = lag_synthetic(6, dim=10)
    X, y = p.examples
    other = problems.linear_regression(X * 1.001, y, name=p.name)  # same name, other data
    with pytest.raises(Interrupt):
        run(p, tmp_path, progress=stop_at(16))
    with pytest.raises(ValueError, match="different run"):
        run(other, tmp_path)


def test_any_other_knob_is_rejected(tmp_path):
    p = lag_synthetic(6, dim=10)
    with pytest.raises(Interrupt):
        run(p, tmp_path, progress=stop_at(16), optimizer=optax.sgd(0.01, momentum=0.3))
    for change in (
        dict(seed=1),
        dict(num_trials=4),
        dict(chunk_size=16),
        dict(upload_time=0.5),
        dict(step_size=0.01),
        dict(optimizer=optax.sgd(0.01, momentum=0.5)),
        dict(optimizer=optax.adam(0.01)),
        dict(record_every=2),
        dict(delay=lj.ShiftedExponential(rate=2.0)),
    ):
        options = dict(optimizer=optax.sgd(0.01, momentum=0.3))
        options.update(change)
        delay = options.pop("delay", EXP)
        with pytest.raises(ValueError, match="different run"):
            lj.simulate(
                p,
                strategies.make("lagc", 6, 1),
                delay,
                checkpoint_dir=tmp_path,
                **{**dict(num_iters=32, **SMALL_RUN), **options},
            )
    # the same configuration (a fresh but equal optimizer object) resumes
    seen = []
    run(
        p,
        tmp_path,
        optimizer=optax.sgd(0.01, momentum=0.3),
        progress=lambda done, total: seen.append(done),
    )
    assert seen == [24, 32]


def interrupted_after_first_chunk(problem, strategy, directory, **kwargs):
    """Run with a checkpoint and stop after the first chunk is committed."""

    def stop(done, total):
        raise Interrupt

    with pytest.raises(Interrupt):
        lj.simulate(
            problem,
            strategy,
            EXP,
            num_iters=12,
            num_trials=2,
            chunk_size=6,
            checkpoint_dir=directory,
            progress=stop,
            **kwargs,
        )


def slowest_two(arrivals, participating):
    """A named wait function (edited below by redefinition)."""
    used = arrivals >= jnp.sort(arrivals)[-2]
    return used, jnp.max(arrivals)


def slowest_three(arrivals, participating):
    used = arrivals >= jnp.sort(arrivals)[-3]
    return used, jnp.max(arrivals)


slowest_three.__name__ = slowest_three.__qualname__ = "slowest_two"  # only the body differs


@strategies.pytree_dataclass
class HalfSum:
    """A user aggregator whose body the test edits (a subclass with another __call__)."""

    def __call__(self, delivered):
        used = delivered.used[:, None]
        return jnp.sum(jnp.where(used, delivered.messages, 0.0), axis=0) * 2.0, jnp.zeros(())


@strategies.pytree_dataclass
class ThirdSum(HalfSum):
    def __call__(self, delivered):
        used = delivered.used[:, None]
        return jnp.sum(jnp.where(used, delivered.messages, 0.0), axis=0) * 3.0, jnp.zeros(())


ThirdSum.__name__ = ThirdSum.__qualname__ = "HalfSum"  # only the body differs


def with_wait(wait, aggregate=None):
    M = 4
    return strategies.Strategy(
        strategies.placement.identity(M),
        strategies.NoTrigger(),
        wait,
        aggregate or strategies.ScaledSum(2.0),
        name="user",
    )


@pytest.mark.parametrize("case", ["lambda", "named function", "aggregator", "optimizer"])
def test_resume_refused_when_code_inside_the_run_changed(tmp_path, case):
    """Checkpoints know behaviour, not names: an edited lambda, function body, aggregator
    or optimizer factory is refused on resume (the traced program differs); the same
    code resumes."""
    p = lag_synthetic(4, dim=6)
    wait_a = strategies.WaitFunction(lambda a, part: slowest_two(a, part), delay_dependent=True)
    wait_b = strategies.WaitFunction(lambda a, part: slowest_three(a, part), delay_dependent=True)
    before, after, options_before, options_after = {
        "lambda": (with_wait(wait_a), with_wait(wait_b), {}, {}),
        "named function": (
            with_wait(strategies.WaitFunction(slowest_two, True)),
            with_wait(strategies.WaitFunction(slowest_three, True)),
            {},
            {},
        ),
        "aggregator": (with_wait(wait_a, HalfSum()), with_wait(wait_a, ThirdSum()), {}, {}),
        "optimizer": (
            strategies.make("gd", 4),
            strategies.make("gd", 4),
            dict(
                optimizer=lambda learning_rate: optax.adam(learning_rate),
                optimizer_args=dict(learning_rate=0.01),
            ),
            dict(
                optimizer=lambda learning_rate: optax.nadam(learning_rate),
                optimizer_args=dict(learning_rate=0.01),
            ),
        ),
    }[case]
    interrupted_after_first_chunk(p, before, tmp_path, **options_before)
    with pytest.raises(ValueError, match="its program differs"):
        lj.simulate(
            p,
            after,
            EXP,
            num_iters=12,
            num_trials=2,
            chunk_size=6,
            checkpoint_dir=tmp_path,
            **options_after,
        )
    seen = []  # the unchanged code resumes after the committed chunk
    lj.simulate(
        p,
        before,
        EXP,
        num_iters=12,
        num_trials=2,
        chunk_size=6,
        checkpoint_dir=tmp_path,
        progress=lambda done, total: seen.append(done),
        **options_before,
    )
    assert seen == [12]


def test_kill_between_carry_and_manifest_resumes_from_the_committed_chunk(tmp_path, monkeypatch):
    p = lag_synthetic(6, dim=10)
    whole = run(p)
    real = checkpoints.atomic_write

    def die_before_third_manifest(path, write):
        if path.name == checkpoints.MANIFEST and path.exists() and manifest(tmp_path)["done"] == 16:
            raise Interrupt  # the chunk and carry of iterations 16-24 are written, not committed
        real(path, write)

    monkeypatch.setattr(checkpoints, "atomic_write", die_before_third_manifest)
    with pytest.raises(Interrupt):
        run(p, tmp_path)
    monkeypatch.setattr(checkpoints, "atomic_write", real)
    assert manifest(tmp_path)["done"] == 16
    assert len(list(tmp_path.glob("carry_*.npz"))) == 2  # the uncommitted carry is there too
    seen = []
    resumed = run(p, tmp_path, progress=lambda done, total: seen.append(done))
    assert seen == [24, 32]
    assert_identical(whole, resumed)
    assert len(list(tmp_path.glob("carry_*.npz"))) == 1  # leftovers removed at the next commit


def interrupted(tmp_path):
    p = lag_synthetic(6, dim=10)
    with pytest.raises(Interrupt):
        run(p, tmp_path, progress=stop_at(24))
    return p, manifest(tmp_path)


def test_deleted_chunk_is_detected(tmp_path):
    p, m = interrupted(tmp_path)
    (tmp_path / m["chunks"][1]["file"]).unlink()
    with pytest.raises(ValueError, match=f"{m['chunks'][1]['file']} is missing"):
        run(p, tmp_path)


def test_stale_chunk_is_detected(tmp_path):
    """A chunk file of the same name from another run (valid npz, other numbers)."""
    p, m = interrupted(tmp_path)
    name = m["chunks"][0]["file"]
    with np.load(tmp_path / name) as z:
        arrays = {k: z[k] for k in z.files}
    arrays["record:duration"] = arrays["record:duration"] * 2
    np.savez(tmp_path / name, **arrays)
    with pytest.raises(ValueError, match=f"{name} is stale or corrupt"):
        run(p, tmp_path)


@pytest.mark.parametrize("damage", ["empty", "truncated", "garbage"])
@pytest.mark.parametrize("which", ["carry", "chunk", "manifest"])
def test_corrupt_file_gives_a_value_error_naming_it(tmp_path, damage, which):
    p, m = interrupted(tmp_path)
    name = {
        "carry": m["carry"]["file"],
        "chunk": m["chunks"][2]["file"],
        "manifest": checkpoints.MANIFEST,
    }[which]
    path = tmp_path / name
    data = path.read_bytes()
    path.write_bytes(
        {"empty": b"", "truncated": data[: len(data) // 2], "garbage": b"\x00garbage" * 10}[damage]
    )
    with pytest.raises(ValueError, match=name.replace(".", r"\.")):
        run(p, tmp_path)


def device_count_run(directory, progress=None):
    """The run moved between device counts: 3 trials, padded to 4 on 2 devices."""
    return run(lag_synthetic(6, dim=10), directory, progress=progress)


RESUME = """
import sys, jax
jax.config.update("jax_enable_x64", True)
assert len(jax.devices()) == 2, jax.devices()
sys.path.insert(0, {tests!r})
from test_checkpoints import device_count_run

def stop(done, total):
    if done == int(sys.argv[2]):
        raise SystemExit(3)

device_count_run(sys.argv[1], stop)
""".format(tests=str(Path(__file__).resolve().parent))


def on_two_devices(directory, stop):
    env = {
        **os.environ,
        "XLA_FLAGS": "--xla_force_host_platform_device_count=2",
        "JAX_PLATFORMS": "cpu",
    }
    return subprocess.run(
        [sys.executable, "-c", RESUME, str(directory), str(stop)],
        capture_output=True,
        text=True,
        env=env,
    )


def test_resume_on_another_device_count(tmp_path):
    """3 trials are padded to 4 on 2 devices; files hold the 3 real trials, so a run
    moves between device counts (1 -> 2 -> 1: the two-device chunks in a child process)
    and ends with the uninterrupted run's numbers."""
    directory = tmp_path / "run"
    with pytest.raises(Interrupt):
        device_count_run(directory, stop_at(8))
    out = on_two_devices(directory, 16)
    assert out.returncode == 3, out.stderr[-3000:]
    assert manifest(directory)["done"] == 16
    seen = []
    a = device_count_run(directory, lambda done, total: seen.append(done))
    assert seen == [24, 32]
    b = device_count_run(None)  # uninterrupted, one device
    np.testing.assert_array_equal(a.upload_mask, b.upload_mask)
    for field in ("uploads", "downloads", "computations"):
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field), err_msg=field)
    for field in ("loss", "wall_clock"):  # batches of 3 vs 4 trials may round differently
        np.testing.assert_allclose(getattr(a, field), getattr(b, field), rtol=1e-12)


def test_fingerprint_sees_every_array_leaf_and_the_tree_structure():
    import jax.numpy as jnp

    base = {"a": np.arange(3.0), "b": (jnp.ones(2), 1)}
    key = checkpoints.fingerprint(strategy_arrays=base)
    assert key == checkpoints.fingerprint(
        strategy_arrays={"a": np.arange(3.0), "b": (jnp.ones(2), 1)}
    )
    assert key != checkpoints.fingerprint(
        strategy_arrays={"a": np.arange(3.0), "b": (jnp.ones(2) * 2, 1)}
    )
    assert key != checkpoints.fingerprint(
        strategy_arrays={"a": np.arange(3.0), "b": [jnp.ones(2), 1]}
    )
    assert key != checkpoints.fingerprint(
        strategy_arrays={"a": np.arange(3.0, dtype=np.float32), "b": (jnp.ones(2), 1)}
    )
    assert checkpoints.fingerprint(optimizer=optax.adam) == checkpoints.fingerprint(
        optimizer=optax.adam
    )
