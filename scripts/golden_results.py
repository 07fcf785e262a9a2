"""Golden results: save a broad float64 set of simulation results, or compare against one.

Purpose: prove that a refactoring of the engine leaves every result unchanged. ``save``
runs a fixed list of small cases (every registered strategy x both links x several
delay sources x chunked / not chunked, plus τ = τ_b = 0 variants, strategy options,
``record_every``, ``slowdown``, a seed and ``lj.sweep``) and writes their arrays to an
.npz file; ``compare`` recomputes every case with the code on PYTHONPATH and checks that

- counts, wall clocks, masks, divergence flags and decoding residuals are identical, and
- losses are bit-identical (otherwise the max abs / rel difference is printed),

and that every case refused (ValueError) by the baseline is still refused, and vice
versa. It prints one line per case, a one-line summary, and exits 1 if anything differs.

Usage (from the repository root; PYTHONPATH selects the code under test):

    JAX_ENABLE_X64=1 PYTHONPATH=<code dir> python scripts/golden_results.py save OUT.npz
    JAX_ENABLE_X64=1 PYTHONPATH=<code dir> python scripts/golden_results.py compare OUT.npz
    ... compare OUT.npz -k lagc      # only the cases whose id contains "lagc"

The script forces float64 (JAX_ENABLE_X64=1) and the CPU backend (JAX_PLATFORMS=cpu)
unless they are set otherwise in the environment; the baseline and the comparison must
run on the same backend and jax version (both recorded in the file and checked).
The whole set takes a few minutes on 2 CPU cores.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import warnings

os.environ.setdefault("JAX_ENABLE_X64", "1")
os.environ.setdefault("JAX_PLATFORMS", "cpu")

import jax  # noqa: E402
import numpy as np  # noqa: E402

import lagc_jax as lj  # noqa: E402

# --------------------------------------------------------------------------- #
# the case list
# --------------------------------------------------------------------------- #
M, S = 6, 1  # grouping needs (S + 1) | M
NUM_TRIALS = 3
NUM_ITERS = 36  # chunk_size 7 gives chunks of 7, 7, 7, 7, 7, 1
CHUNK = 7
TAU, TAU_B = 0.3, 0.2

# fixed here (not read from the registry) so that save and compare run the same cases
STRATEGIES = (
    "gd",
    "fastest-k",
    "gc",
    "grouping",
    "lag-wk",
    "lag-ps",
    "lagc",
    "lagc-ps",
    "g-lag",
    "g-lag-wk",
    "async",
    "k-async",
)
LINKS = ("parallel", "shared")
SLOWDOWN = (1.0, 1.0, 3.0, 1.0, 1.0, 2.0)


def problem():
    return lj.problems.lag_synthetic(M, dim=10)


def delay_model(source):
    """The delay model of a drawn source; None for replayed unit times."""
    return {
        "exp": lj.ShiftedExponential(shift=0.1, rate=1.5),
        "pareto": lj.Pareto(scale=1.0, shape=1.5),
        "markov": lj.MarkovStragglers(
            base=lj.ShiftedExponential(), slow_factor=5.0, p_slow=0.2, p_recover=0.3
        ),
        "replay": None,
    }[source]


def replay_times(num_trials=NUM_TRIALS, num_iters=NUM_ITERS):
    """Replayed unit times (trials, iters, M): numpy, fixed seed, heavy-ish tail."""
    rng = np.random.default_rng(20240607)
    base = 0.1 + rng.exponential(1.0, size=(num_trials, num_iters, M))
    slow = rng.random((num_trials, num_iters, M)) < 0.1
    return np.where(slow, 4.0 * base, base)


def case(
    strategy,
    link="parallel",
    delay="exp",
    tau=TAU,
    tau_b=TAU_B,
    chunk=None,
    options=None,
    record_every=1,
    slowdown=None,
    seed=0,
    sweep=None,
):
    """One case: a dict with a readable, unique id."""
    opts = ",".join(f"{k}={v}" for k, v in sorted((options or {}).items()))
    parts = [
        strategy + (f"[{opts}]" if opts else ""),
        link,
        delay,
        f"tau={tau},{tau_b}",
        f"chunk={chunk}" if chunk else "whole",
    ]
    if record_every != 1:
        parts.append(f"rec={record_every}")
    if slowdown is not None:
        parts.append("slowdown")
    if seed:
        parts.append(f"seed={seed}")
    if sweep:
        parts.append("sweep(" + ",".join(f"{k}={v}" for k, v in sweep.items()) + ")")
    return dict(
        id="|".join(parts),
        strategy=strategy,
        options=options or {},
        link=link,
        delay=delay,
        tau=tau,
        tau_b=tau_b,
        chunk=chunk,
        record_every=record_every,
        slowdown=slowdown,
        seed=seed,
        sweep=sweep,
    )


def build_cases():
    cases = []
    # 1. every strategy x link x delay source, whole run; chunked for replayed unit times
    #    and Markov stragglers (whose state crosses chunks); drawn chunked runs below
    for name in STRATEGIES:
        for link in LINKS:
            for delay in ("exp", "pareto", "replay", "markov"):
                cases.append(case(name, link, delay))
                if delay in ("replay", "markov"):
                    cases.append(case(name, link, delay, chunk=CHUNK))
    cases += [
        case(name, link, delay, chunk=CHUNK)
        for name, link, delay in (
            ("gd", "shared", "exp"),
            ("gc", "shared", "exp"),
            ("lagc-ps", "parallel", "exp"),
            ("g-lag-wk", "parallel", "exp"),
            ("lag-ps", "shared", "exp"),
            ("fastest-k", "parallel", "pareto"),
            ("g-lag", "shared", "pareto"),
            ("k-async", "parallel", "pareto"),
        )
    ]
    # 2. τ = τ_b = 0
    for name in ("gd", "grouping", "lagc", "g-lag-wk", "k-async"):
        for link in LINKS:
            cases.append(case(name, link, "exp", tau=0.0, tau_b=0.0))
        cases.append(case(name, "parallel", "replay", tau=0.0, tau_b=0.0, chunk=CHUNK))
    # 3. strategy options
    cases += [
        case("k-async", "parallel", "exp", options=dict(k=4)),
        case("k-async", "parallel", "replay", options=dict(k=4), chunk=CHUNK),
        case("k-async", "parallel", "pareto", options=dict(k=M)),  # = gd
        case("g-lag-wk", "shared", "exp", options=dict(xi=0.0)),  # = grouping
        case("lag-wk", "parallel", "exp", options=dict(start="lag-reference"), chunk=CHUNK),
        case("lag-ps", "shared", "pareto", options=dict(xi=1.0, history=3)),
        case("lagc", "parallel", "markov", options=dict(xi=0.5, history=4), chunk=CHUNK),
        case("lagc-ps", "shared", "replay", options=dict(start="lag-reference")),
        case("g-lag", "parallel", "exp", options=dict(xi=100.0, history=2)),
    ]
    # 4. record_every > 1 (masks are still per iteration)
    for name in ("g-lag", "lagc", "async"):
        cases.append(case(name, "parallel", "exp", chunk=9, record_every=3))
    cases.append(case("lag-ps", "shared", "markov", record_every=4))
    # 5. persistent slowdown factors, another seed
    for name in ("gc", "g-lag", "lagc-ps", "async"):
        cases.append(case(name, "parallel", "exp", slowdown=SLOWDOWN))
    cases.append(case("g-lag", "shared", "markov", slowdown=SLOWDOWN, chunk=CHUNK))
    cases.append(case("lagc", "shared", "pareto", seed=7))
    cases.append(case("async", "parallel", "exp", seed=7, chunk=CHUNK))
    # 6. sweeps (one vmapped program over 2 points)
    cases += [
        case("gd", "parallel", "exp", sweep=dict(upload_time=(0.0, 0.5))),
        case(
            "gd", "shared", "pareto", sweep=dict(upload_time=(0.1, 0.4), broadcast_time=(0.0, 0.3))
        ),
        case("lag-wk", "parallel", "exp", chunk=CHUNK, sweep=dict(step_size=(0.5, 1.0))),
        case("lag-wk", "shared", "replay", sweep=dict(xi=(0.5, 2.0))),
    ]
    ids = [c["id"] for c in cases]
    assert len(ids) == len(set(ids)), "duplicate case ids"
    return cases


# --------------------------------------------------------------------------- #
# running one case
# --------------------------------------------------------------------------- #
FIELDS = (
    "loss",
    "wall_clock",
    "uploads",
    "downloads",
    "computations",
    "upload_mask",
    "diverged",
    "decoding_residual",
)


def _with_masks(fn, *args, **kwargs):
    """Call simulate/sweep recording masks: record_masks=True, or the newer record=("masks",)."""
    try:
        return fn(*args, record_masks=True, **kwargs)
    except TypeError as error:
        if "record_masks" not in str(error):
            raise
        return fn(*args, record=("masks",), **kwargs)


def run_case(c, prob, unit_times):
    """{field: array} of a case (sweep points prefixed 'p<i>.'), or the refusal message."""
    kwargs = dict(
        num_iters=NUM_ITERS,
        num_trials=NUM_TRIALS,
        seed=c["seed"],
        link=c["link"],
        chunk_size=c["chunk"],
        record_every=c["record_every"],
    )
    if c["slowdown"] is not None:
        kwargs["slowdown"] = np.asarray(c["slowdown"])
    if c["delay"] == "replay":
        kwargs["unit_times"] = unit_times
    delay = delay_model(c["delay"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # diverged trials, large residuals, infinite means
        try:
            strategy = lj.make(c["strategy"], M, S, **c["options"])
            if c["sweep"]:
                knobs = dict(upload_time=c["tau"], broadcast_time=c["tau_b"])
                for name, values in c["sweep"].items():
                    if name == "step_size":  # given as multiples of 1/L
                        values = [v / prob.smoothness for v in values]
                    knobs[name] = list(values)
                results = _with_masks(lj.sweep, prob, strategy, delay, **knobs, **kwargs)
            else:
                results = [
                    _with_masks(
                        lj.simulate,
                        prob,
                        strategy,
                        delay,
                        upload_time=c["tau"],
                        broadcast_time=c["tau_b"],
                        **kwargs,
                    )
                ]
        except ValueError as error:
            return f"refused: {error}"
    arrays = {}
    for i, result in enumerate(results):
        prefix = f"p{i}." if c["sweep"] else ""
        for field in FIELDS:
            value = getattr(result, field, None)
            if value is not None:
                arrays[prefix + field] = np.asarray(value)
    return arrays


# --------------------------------------------------------------------------- #
# save / compare
# --------------------------------------------------------------------------- #
SEP = "::"


def environment():
    return dict(
        jax=jax.__version__,
        backend=jax.default_backend(),
        x64=bool(jax.config.jax_enable_x64),
        lagc_jax=os.path.abspath(lj.__file__),
    )


def run_all(cases, keep_going=False):
    """Yield (case, outcome, seconds); with keep_going, a crash becomes outcome 'error: ...'."""
    prob, unit_times = problem(), replay_times()
    for c in cases:
        start = time.perf_counter()
        try:
            outcome = run_case(c, prob, unit_times)
        except Exception as error:  # noqa: BLE001 -- compare reports it as a difference
            if not keep_going:
                raise
            outcome = f"error: {type(error).__name__}: {error}"
        yield c, outcome, time.perf_counter() - start


def save(path, cases):
    store = {}
    for c, outcome, seconds in run_all(cases):
        if isinstance(outcome, str):
            store[c["id"] + SEP + "__status__"] = np.array(outcome)
            print(f"[refused] {c['id']}  ({outcome[9:80]}...)")
        else:
            store[c["id"] + SEP + "__status__"] = np.array("ok")
            for field, value in outcome.items():
                store[c["id"] + SEP + field] = value
            print(f"[saved  ] {c['id']}  {seconds:.1f} s")
    store["__meta__"] = np.array(json.dumps(dict(environment(), cases=[c["id"] for c in cases])))
    np.savez_compressed(path, **store)
    print(f"wrote {path}")
    return 0


def _same(a, b):
    """Exactly equal: shape, dtype and every bit (NaNs with equal payloads match)."""
    return a.shape == b.shape and a.dtype == b.dtype and a.tobytes() == b.tobytes()


def _loss_difference(a, b):
    """'max abs X, max rel Y' of two loss arrays (finite entries), or why not comparable."""
    if a.shape != b.shape:
        return f"shape {b.shape} != baseline {a.shape}"
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    if not np.array_equal(np.isfinite(a64), np.isfinite(b64)):
        return "non-finite entries differ"
    finite = np.isfinite(a64)
    if not finite.any():
        return f"dtype {b.dtype} vs {a.dtype}" if a.dtype != b.dtype else "only NaN bits differ"
    diff = np.abs(a64[finite] - b64[finite])
    rel = diff / np.maximum(np.abs(a64[finite]), np.finfo(np.float64).tiny)
    return f"max abs {diff.max():.3e}, max rel {rel.max():.3e}"


def compare_case(saved, outcome):
    """(identical?, message) of a recomputed case against its saved arrays."""
    saved = dict(saved)
    status = str(saved.pop("__status__"))
    if isinstance(outcome, str) and outcome.startswith("error"):
        return False, outcome[:300]
    if isinstance(outcome, str) or status != "ok":
        if isinstance(outcome, str) and status != "ok":
            return True, "still refused"
        if status != "ok":
            return False, f"baseline refused, now runs ({status[:60]}...)"
        return False, f"baseline ran, now {outcome[:100]}"
    problems = []
    if set(saved) - set(outcome):
        problems.append(f"missing now: {sorted(set(saved) - set(outcome))}")
    if set(outcome) - set(saved):
        problems.append(f"not in the baseline: {sorted(set(outcome) - set(saved))}")
    loss_note = ""
    for field in sorted(set(saved) & set(outcome)):
        a, b = saved[field], outcome[field]
        if _same(a, b):
            continue
        if field.split(".")[-1] == "loss":
            loss_note += f"; {field}: {_loss_difference(a, b)}"
        else:
            detail = (
                f"shape {b.shape} vs {a.shape}"
                if a.shape != b.shape
                else (
                    f"dtype {b.dtype} vs {a.dtype}"
                    if a.dtype != b.dtype
                    else f"{int(np.sum(a != b))} entries differ"
                )
            )
            problems.append(f"{field} differs ({detail})")
    message = "; ".join(problems) if problems else "counts/clocks/masks identical"
    message += "; loss " + ("bit-identical" if not loss_note else "DIFFERS" + loss_note)
    return not problems and not loss_note, message


def compare(path, cases, filtered):
    with np.load(path) as npz:
        data = {key: npz[key] for key in npz.files}
    meta = json.loads(str(data.pop("__meta__")))
    env = environment()
    for key in ("jax", "backend", "x64"):
        if meta.get(key) != env[key]:
            print(f"WARNING: baseline {key} = {meta.get(key)!r}, now {env[key]!r}")
    by_case = {}
    for key, value in data.items():
        cid, field = key.split(SEP, 1)
        by_case.setdefault(cid, {})[field] = value
    failures = identical = refused = 0
    if not filtered:
        for cid in sorted(set(meta["cases"]) - {c["id"] for c in cases}):
            print(f"[DIFF] {cid}: in the baseline but no longer in this script")
            failures += 1
    for c, outcome, seconds in run_all(cases, keep_going=True):
        if c["id"] not in by_case:
            print(f"[DIFF] {c['id']}: not in the baseline")
            failures += 1
            continue
        ok, message = compare_case(by_case[c["id"]], outcome)
        identical += ok
        refused += ok and isinstance(outcome, str)
        failures += not ok
        print(f"[{'ok' if ok else 'DIFF'}] {c['id']}: {message}  ({seconds:.1f} s)")
    total = len(cases)
    print(
        f"SUMMARY: {total} cases, {identical} bit-identical ({refused} of them refused by "
        f"both), {failures} differ" + (" -- FAILED" if failures else " -- all identical")
    )
    return 1 if failures else 0


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("mode", choices=("save", "compare"))
    parser.add_argument("path", help="the .npz file of golden results")
    parser.add_argument(
        "-k",
        dest="pattern",
        default=None,
        help="only cases whose id contains this substring (compare only)",
    )
    args = parser.parse_args(argv)
    env = environment()
    print(
        f"lagc_jax from {env['lagc_jax']}; jax {env['jax']} on {env['backend']}, x64={env['x64']}"
    )
    if not env["x64"]:
        print("error: float64 is required (JAX_ENABLE_X64=1)", file=sys.stderr)
        return 2
    cases = build_cases()
    if set(lj.names()) - set(STRATEGIES):
        print(
            f"note: registered strategies not covered: {sorted(set(lj.names()) - set(STRATEGIES))}"
        )
    if args.pattern:
        if args.mode == "save":
            parser.error("-k applies to compare only (save writes the whole set)")
        cases = [c for c in cases if args.pattern in c["id"]]
    start = time.perf_counter()
    print(f"{len(cases)} cases")
    code = (
        save(args.path, cases)
        if args.mode == "save"
        else compare(args.path, cases, filtered=bool(args.pattern))
    )
    print(f"elapsed {time.perf_counter() - start:.0f} s")
    return code


if __name__ == "__main__":
    sys.exit(main())
