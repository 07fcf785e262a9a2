#!/usr/bin/env python
"""Benchmark lagc_jax against two NumPy implementations of the same model; write BENCHMARKS.md.

    python scripts/benchmark.py            # full grid (~30-60 min on 2 CPU cores)
    python scripts/benchmark.py --quick    # a small subset (~3 min)
    python scripts/benchmark.py --approximate  # only MODEL.md §10's strategies against gc
    python scripts/benchmark.py --bits     # only qgd and laq (MODEL.md §9) against lag-wk
    git worktree add ../baseline <commit>  # then, to time an older lagc_jax side by side:
    python scripts/benchmark.py --baseline ../baseline

Every configuration is run, in this one process, by

* lagc_jax (``lagc_jax.simulate``, end to end: validation, the compiled run, results),
* a NumPy loop over trials and iterations (``numpy_reference.run_loop``), and
* NumPy vectorised over trials (``numpy_reference.run_vectorised``),

on ``lag_synthetic(M, dim=d)`` (n = d rows per partition, P = M) with
ShiftedExponential(rate 1) unit times, default step size 1/L, τ = τ_b = 0. Before any
timing, the three implementations are checked to agree on replayed unit times in
float64 (identical counts; loss and wall clock to 1e-6).

Reported per configuration: trial-iterations per second, speedups, compile time
(first call minus the steady-state median), peak memory, and the fraction of the
machine's dense matmul rate (measured in the same run) achieved on the FLOPs of the
algorithm lagc_jax uses (quadratic problems: gradients from the Hessians, 2(d+1)·d
per gradient vector). Also: scaling curves (trial-iterations/s and peak memory
against trials, with the NumPy implementations; a PNG beside the report), what is
invariant across device counts and chunkings (measured in subprocesses with 1 and
4 host devices), and, with ``--baseline DIR``, the same runs of the lagc_jax in DIR
(a git worktree of an older commit), timed in alternating subprocesses. The script
only uses portable JAX APIs, so it runs unchanged on a GPU; the device is recorded.
"""

from __future__ import annotations

import argparse
import collections
import datetime
import functools
import glob
import gzip
import importlib
import json
import math
import os
import platform
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

import lagc_jax as lj
from lagc_jax import engine, problems, strategies

sys.path.insert(0, str(Path(__file__).resolve().parent))
import numpy_reference as ref  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DELAY_DEPENDENT = ("fastest-k", "gc", "lagc")
DELAY_INDEPENDENT = ("gd", "lag-wk", "g-lag")

FULL = dict(
    Ms=(12, 48),
    ds=(50, 200),
    trials=(100, 1000, 10000),
    names=ref.STRATEGIES,
    flop_budget=3e11,
    reps=3,
    loop_seconds=1.0,
    float64=[
        (M, d, 1000, name) for M in (12, 48) for d in (50, 200) for name in ("fastest-k", "lagc")
    ],
    batched=[(M, d, 1000, name) for M in (12, 48) for d in (50, 200) for name in DELAY_INDEPENDENT],
    profiles=[
        (M, d, 1000, name) for M in (12, 48) for d in (50, 200) for name in ("fastest-k", "lagc")
    ]
    + [(12, 50, 1000, "gc"), (12, 50, 1000, "lagc-ps")],
    scaling=dict(names=("gd", "fastest-k", "lagc"), trials=(10, 100, 1000, 10_000, 100_000)),
    baseline_rounds=5,
    baseline_reps=5,
    baseline_interleaved=40,
)
QUICK = dict(
    Ms=(12,),
    ds=(50,),
    trials=(100, 1000),
    names=("gd", "fastest-k", "lagc"),
    flop_budget=6e10,
    reps=3,
    loop_seconds=0.5,
    float64=[(12, 50, 1000, "lagc")],
    batched=[(12, 50, 1000, "gd")],
    profiles=[(12, 50, 1000, "lagc")],
    scaling=dict(names=("fastest-k",), trials=(10, 100, 1000)),
    baseline_rounds=1,
    baseline_reps=3,
    baseline_interleaved=6,
)
# The point of the speed target (issue 11): M = 12, d = 50, 1000 trials, K = 100, float32.
BASELINE_POINT = dict(M=12, d=50, T=1000, K=100)
SPEED_WORK_BASELINE = "01512da"  # the commit before the speed work, whose target was 2x
BASELINE_NAMES = ("fastest-k", "gc", "lagc", "lagc-ps", "gd", "lag-wk", "g-lag")
# The approximate strategies of MODEL.md §10 against gc (issue 22), at BASELINE_POINT with
# S = 2: (label, name, options). Load S + 1 = 3 except deadline (load 1); Exp(1) unit
# times, so T = 1 lets about 7.6 of 12 arrive and T = 5 at load 3 gives p = e^(-5/3).
APPROXIMATE_ROWS = (
    ("gc", "gc", {}),
    ("deadline T=1", "deadline", {"deadline": 1.0}),
    ("erasurehead k=6", "erasurehead", {"k": 6}),
    ("erasurehead k=M−S", "erasurehead", {}),
    ("sgc T=5", "sgc", {"deadline": 5.0}),
    ("graph-gc optimal", "graph-gc", {}),
    ("graph-gc fixed", "graph-gc", {"decoder": "fixed"}),
)
# Communication in bits (issue 21, MODEL.md §9): qgd and laq (b = 4) within BITS_TARGET× of
# lag-wk's time per trial-iteration at BASELINE_POINT.
BITS_NAMES = ("lag-wk", "qgd", "laq")
BITS_TARGET = 1.5


def stragglers(name: str, M: int) -> int:
    """S = 2 at M = 12; S = 3 at M = 48 ((S+1) | M for g-lag); 0 where S has no role."""
    if name in ("gd", "lag-wk"):
        return 0
    return 2 if M == 12 else 3


def gradient_flops(M: int, d: int) -> float:
    """FLOPs per trial-iteration of lagc_jax's algorithm on lag_synthetic (a quadratic
    problem, n = d rows, P = M): M gradient vectors (partition gradients, or coded
    messages straight from the combined Hessians) and ∇f for the loss, each one row of
    [θ, 1] @ [H; −b], 2(d+1)·d FLOPs. (The residual form would need 4·n·d per partition.)"""
    return 2.0 * (d + 1) * d * (M + 1)


def num_iters(M, d, T, budget) -> int:
    """Iterations for a run of about ``budget`` gradient FLOPs, a multiple of 10 in [10, 100]."""
    return int(min(100, max(10, budget / (T * gradient_flops(M, d)) // 10 * 10)))


def scaling_iters(T: int) -> int:
    """Iterations per run in the scaling curves: about 10⁶ trial-iterations, 10 to 100."""
    return int(min(100, max(10, 1_000_000 // T)))


# --------------------------------------------------------------------------- #
# environment
# --------------------------------------------------------------------------- #
def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def environment() -> dict:
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, text=True, capture_output=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "lagc_jax"], cwd=ROOT, text=True, capture_output=True
        ).stdout.strip()
        commit = f"{commit}{' (lagc_jax/ modified)' if dirty else ''}"
    except OSError:
        commit = "unknown"
    import jaxlib

    affinity = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "command": " ".join(shlex.quote(a) for a in [Path(sys.executable).name] + sys.argv),
        "devices": ", ".join(str(d) for d in jax.devices()),
        "backend": jax.default_backend(),
        "cpu": cpu_model(),
        "cores": f"{os.cpu_count()} logical, {affinity} usable",
        "versions": (
            f"python {platform.python_version()}, jax {jax.__version__}, jaxlib "
            f"{jaxlib.__version__}, numpy {np.__version__}, lagc_jax {lj.__version__}"
        ),
        "commit": commit,
        "load_start": " ".join(f"{v:.2f}" for v in os.getloadavg()),
    }


# --------------------------------------------------------------------------- #
# timing helpers
# --------------------------------------------------------------------------- #
def timed(fn):
    start = time.perf_counter()
    out = fn()
    jax.block_until_ready(out) if isinstance(out, jax.Array) else None
    return time.perf_counter() - start, out


def matmul_rates(dtype) -> dict:
    """Dense N×N matmul FLOP rates (median of 3 after a warm-up), jnp.dot and numpy."""
    rates = {}
    for N in (1024, 2048, 4096):
        a = jnp.asarray(np.random.default_rng(0).standard_normal((N, N)), dtype)
        dot = jax.jit(jnp.dot)
        dot(a, a).block_until_ready()
        ts = []
        for _ in range(3):
            t = time.perf_counter()
            dot(a, a).block_until_ready()
            ts.append(time.perf_counter() - t)
        rates[("jnp.dot", N)] = 2 * N**3 / np.median(ts)
        an = np.asarray(a)
        an @ an
        ts = []
        for _ in range(3):
            t = time.perf_counter()
            an @ an
            ts.append(time.perf_counter() - t)
        rates[("numpy", N)] = 2 * N**3 / np.median(ts)
    return rates


class CaptureRunChunk:
    """Records the (static, args) of engine._run_chunk calls, to lower the same program."""

    def __enter__(self):
        self.calls = []
        self.original = engine._run_chunk

        def spy(static, *args):
            self.calls.append((static, args))
            return self.original(static, *args)

        engine._run_chunk = spy
        return self

    def __exit__(self, *exc):
        engine._run_chunk = self.original

    def compiled(self):
        static, args = self.calls[-1]
        return self.original.lower(static, *args).compile(), args


def memory_bytes(compiled) -> tuple[int, int, int]:
    """(peak bytes of the compiled program, bytes of its outputs = records + final carry,
    bytes of its temporaries), from XLA's buffer assignment."""
    ma = compiled.memory_analysis()
    peak = (
        ma.argument_size_in_bytes
        + ma.output_size_in_bytes
        + ma.temp_size_in_bytes
        - ma.alias_size_in_bytes
    )
    return int(peak), int(ma.output_size_in_bytes), int(ma.temp_size_in_bytes)


def numpy_peak(fn) -> tuple[float, int]:
    """(seconds, tracemalloc peak bytes) of one call."""
    tracemalloc.start()
    tracemalloc.reset_peak()
    t = time.perf_counter()
    fn()
    seconds = time.perf_counter() - t
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return seconds, peak


def mem_available() -> float:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable"):
                return float(line.split()[1]) * 1024
    except OSError:
        pass
    return 8e9


# --------------------------------------------------------------------------- #
# profile: device time by category
# --------------------------------------------------------------------------- #
CATEGORIES = (
    "gradient matmuls",
    "wait rule (order statistics)",
    "random unit times",
    "loop control",
    "other (elementwise, reductions, small dots)",
)


def _source_frames(hlo_text: str) -> dict:
    """stack_frame_id -> innermost lagc_jax 'file.function' (from the HLO's stack frame tables)."""
    tables, current = collections.defaultdict(dict), None
    for line in hlo_text.splitlines():
        if line in ("FileNames", "FunctionNames", "FileLocations", "StackFrames"):
            current = line
            continue
        m = re.match(r"^(\d+) (.*)$", line) if current else None
        if not m:
            current = None if current and not line.strip() == "" else current
            continue
        tables[current][int(m.group(1))] = m.group(2)

    def field(text, name):
        value = re.search(rf"{name}=(\d+)", text)
        return int(value.group(1)) if value else None

    labels = {}
    for frame_id in tables["StackFrames"]:
        frame, seen = frame_id, set()
        while frame and frame not in seen:
            seen.add(frame)
            entry = tables["StackFrames"].get(frame, "")
            location = tables["FileLocations"].get(field(entry, "file_location_id"), "")
            path = tables["FileNames"].get(field(location, "file_name_id"), "").strip('"')
            function = (
                tables["FunctionNames"].get(field(location, "function_name_id"), "").strip('"')
            )
            if "/lagc_jax/" in path:
                labels[frame_id] = f"{Path(path).stem}.{function.replace('<locals>.', '')}"
                break
            parent = field(entry, "parent_frame_id")
            frame = None if parent == frame else parent
    return labels


def _hlo_index(hlo_text: str) -> dict:
    index = {}
    pattern = re.compile(r"^\s*(?:ROOT\s+)?%?([\w.\-]+)\s*=\s*(\(.*?\)|\S+)\s+([a-z][\w\-]*)\(")
    for line in hlo_text.splitlines():
        m = pattern.match(line)
        if not m:
            continue
        op_name = re.search(r'op_name="([^"]*)"', line)
        frame = re.search(r"stack_frame_id=(\d+)", line)
        index[m.group(1)] = dict(
            shape=m.group(2),
            opcode=m.group(3),
            line=line,
            op_name=op_name.group(1) if op_name else "",
            frame=int(frame.group(1)) if frame else None,
        )
    return index


def _elements(shape: str) -> int:
    dims = re.match(r"\w+\[([\d,]*)\]", shape)
    if not dims:
        return 0
    return math.prod(int(v) for v in dims.group(1).split(",") if v)


def _category(info: dict, big: int, source: str) -> str:
    line, op_name, opcode = info["line"], info["op_name"], info["opcode"]
    if (
        opcode == "sort"
        or "TopK" in line
        or "top_k" in op_name
        or source.startswith(("wait.wait", "wait._fastest", "wait._sort_key"))
    ):
        return CATEGORIES[1]
    if any(
        k in op_name for k in ("threefry", "random_bits", "_uniform", "_exponential", "fold_in")
    ) or source.startswith("random_words."):
        return CATEGORIES[2]
    if (
        (opcode == "dot" or "ynn_fusion" in line or "__onednn" in line)
        and "dot_general" in op_name
        and _elements(info["shape"]) >= big
    ):
        return CATEGORIES[0]
    if opcode in ("while", "conditional", "call"):
        return CATEGORIES[3]
    return CATEGORIES[4]


def profile(compiled, args, big: int) -> dict:
    """Exclusive device time per category over one call of the compiled program."""
    text = compiled.as_text()
    index, frames = _hlo_index(text), _source_frames(text)
    compiled(*args)
    with tempfile.TemporaryDirectory() as tmp:
        jax.profiler.start_trace(tmp)
        jax.block_until_ready(compiled(*args))
        jax.profiler.stop_trace()
        events = []
        for path in glob.glob(f"{tmp}/**/*.trace.json.gz", recursive=True):
            with gzip.open(path) as f:
                events += [
                    e
                    for e in json.load(f)["traceEvents"]
                    if e.get("ph") == "X" and e.get("name") in index
                ]
    totals, sources = collections.Counter(), collections.Counter()

    def account(event, exclusive):
        info = index[event["name"]]
        source = frames.get(info["frame"], "engine / other")
        category = _category(info, big, source)
        totals[category] += exclusive
        if category == CATEGORIES[4]:
            sources[source] += exclusive

    by_thread = collections.defaultdict(list)
    for e in events:
        by_thread[(e.get("pid"), e.get("tid"))].append(e)
    for thread in by_thread.values():
        thread.sort(key=lambda e: (e["ts"], -e["dur"]))
        stack = []  # [end, event, child time]
        for e in thread:
            while stack and stack[-1][0] <= e["ts"]:
                end, parent, child = stack.pop()
                account(parent, parent["dur"] - child)
            if stack:
                stack[-1][2] += e["dur"]
            stack.append([e["ts"] + e["dur"], e, 0.0])
        while stack:
            end, parent, child = stack.pop()
            account(parent, parent["dur"] - child)
    total = sum(totals.values())
    shares = {c: totals[c] / total if total else float("nan") for c in CATEGORIES}
    shares["other by source"] = [(label, t / total) for label, t in sources.most_common(6)]
    return shares


# --------------------------------------------------------------------------- #
# the measurements
# --------------------------------------------------------------------------- #
class Bench:
    def __init__(self, grid, log):
        self.grid, self.log = grid, log
        self._problems, self._loop_rates = {}, {}

    def problem(self, M, d):
        if (M, d) not in self._problems:
            self._problems[(M, d)] = problems.lag_synthetic(M, dim=d)
        return self._problems[(M, d)]

    def compiled(self, M, d, T, name, K=100):
        """(compiled program, arguments) of ``simulate``'s chunk for one strategy (float32)."""
        strategy = strategies.make(name, M, stragglers(name, M))
        with CaptureRunChunk() as capture:
            lj.simulate(
                self.problem(M, d),
                strategy,
                lj.ShiftedExponential(),
                num_iters=K,
                num_trials=T,
                seed=0,
            )
        return capture.compiled()

    def loop_rate(self, M, d, name, K, dtype):
        """Trial-iterations per second and peak bytes of the NumPy loop, on a subsample."""
        key = (M, d, name, np.dtype(dtype).name)
        if key not in self._loop_rates:
            setup = ref.setup(self.problem(M, d), name, M, stragglers(name, M), dtype)
            t, _ = timed(lambda: ref.run_loop(setup, 5, 1))
            iters = int(min(K, max(10, self.grid["loop_seconds"] / 2 / max(t / 5, 1e-9))))
            trials = 2
            rates = []
            for _ in range(3):
                t, _ = timed(lambda: ref.run_loop(setup, iters, trials, seed=1))
                rates.append(trials * iters / t)
            _, peak = numpy_peak(lambda: ref.run_loop(setup, iters, trials, seed=1))
            self._loop_rates[key] = (float(np.median(rates)), peak, trials, iters)
        return self._loop_rates[key]

    def run(self, M, d, T, name, dtype=np.float32, vectorised=True, keep_compiled=False, K=None):
        grid = self.grid
        K = K or num_iters(M, d, T, grid["flop_budget"])
        problem = self.problem(M, d)
        S = stragglers(name, M)
        strategy = strategies.make(name, M, S)
        delay = lj.ShiftedExponential()

        def run_jax():
            return lj.simulate(problem, strategy, delay, num_iters=K, num_trials=T, seed=0)

        with CaptureRunChunk() as capture:
            first, result = timed(run_jax)
        compiled, args = capture.compiled()
        peak, outputs, temps = memory_bytes(compiled)
        row = dict(
            M=M,
            d=d,
            T=T,
            K=K,
            name=name,
            S=S,
            dtype=np.dtype(dtype).name,
            batched=strategy.delay_dependent,
            jax_first=first,
            jax_peak=peak,
            jax_outputs=outputs,
            jax_temps=temps,
            uploads=float(result.uploads[:, -1].mean()),
        )
        if keep_compiled:
            row["_compiled"] = (compiled, args)
        else:
            del compiled, args

        vec_T, vec_K = T, K
        setup = None
        if vectorised:
            setup = ref.setup(problem, name, M, S, dtype)
            need = 14.0 * T * M * d * np.dtype(dtype).itemsize
            if need > 0.4 * mem_available():  # subsample trials rather than swap
                vec_T = max(100, int(T * 0.4 * mem_available() / need) // 100 * 100)
            _, row["vec_peak"] = numpy_peak(lambda: ref.run_vectorised(setup, vec_K, vec_T))
        # consecutive blocks (alternating single calls slows lagc_jax: thread pools interfere)
        jax_times = [timed(run_jax)[0] for _ in range(grid["reps"])]
        vec_times = [
            timed(lambda: ref.run_vectorised(setup, vec_K, vec_T, seed=1))[0]
            for _ in range(grid["reps"] if vectorised else 0)
        ]
        row["jax_time"] = float(np.median(jax_times))
        row["jax_rate"] = T * K / row["jax_time"]
        row["compile"] = max(0.0, first - row["jax_time"])
        if vectorised:
            row["vec_T"] = vec_T
            row["vec_rate"] = vec_T * vec_K / float(np.median(vec_times))
        row["loop_rate"], row["loop_peak"], row["loop_T"], row["loop_K"] = self.loop_rate(
            M, d, name, K, dtype
        )
        row["load"] = os.getloadavg()[0]
        self.log(
            f"  {name:9s} M={M:2d} d={d:3d} T={T:5d} K={K:3d} {row['dtype']}"
            f": jax {1e6 / row['jax_rate']:.3f} us/ti"
            f" (compile {row['compile']:.2f}s)"
            + (f", numpy-vec {1e6 / row['vec_rate']:.3f}" if vectorised else "")
            + f", loop {1e6 / row['loop_rate']:.1f}"
        )
        return row


def theta_once_vs_batched(bench, M, d, T, name):
    """The compiled run of a delay-independent strategy as lagc_jax runs it (θ unbatched),
    and the same program fed a carry broadcast over trials (θ batched, as for a
    delay-dependent strategy). Returns (once, batched) dicts of rate and peak bytes."""
    grid = bench.grid
    K = num_iters(M, d, T, grid["flop_budget"])
    problem = bench.problem(M, d)
    strategy = strategies.make(name, M, stragglers(name, M))
    with CaptureRunChunk() as capture:
        lj.simulate(problem, strategy, lj.ShiftedExponential(), num_iters=K, num_trials=T)
    static, args = capture.calls[-1]
    data, traced, carry, keys, replayed, k0 = args
    forced = static._replace(delay_dependent=True)
    iterates, delay_state = carry[:3], carry[3]  # the delay state is per trial already
    wide = jax.tree_util.tree_map(
        lambda a: jnp.array(jnp.broadcast_to(a, (T,) + a.shape)), iterates
    ) + (delay_state,)
    variants = {
        "once": (static, args),
        "batched": (forced, (data, traced, wide, keys, replayed, k0)),
    }
    out = {}
    results = {}
    for label, (st, ar) in variants.items():
        fn = capture.original
        results[label] = jax.block_until_ready(fn(st, *ar))  # compile
        ts = []
        for _ in range(grid["reps"]):
            t = time.perf_counter()
            jax.block_until_ready(fn(st, *ar))
            ts.append(time.perf_counter() - t)
        peak, _, _ = memory_bytes(fn.lower(st, *ar).compile())
        out[label] = dict(
            rate=T * K / float(np.median(ts)), peak=peak, T=T, K=K, M=M, d=d, name=name
        )
    # Same trajectories either way? Records by name per block (f, or the gap f − f* where
    # the program computes it: quadratic problems). In float32 the batched and unbatched
    # products round differently, which an ill-conditioned problem (M = 48: L ≈ 5e10) or a
    # lazy trigger near its threshold amplifies: reported, not asserted.
    once_records, batched_records = (results[label][1] for label in ("once", "batched"))
    loss_a, loss_b = (
        np.asarray(r["first_gap"]) + problem.optimal_value
        if "first_gap" in r
        else np.asarray(r["first_loss"])
        for r in (once_records, batched_records)
    )
    out["once"]["loss_rel"] = float(np.max(np.abs(loss_a - loss_b) / np.abs(loss_a)))
    out["once"]["counts_equal"] = all(
        np.array_equal(np.asarray(once_records[n]), np.asarray(batched_records[n]))
        for n in ("uploads", "downloads", "computations")
    )
    bench.log(
        f"  {name:9s} M={M:2d} d={d:3d} T={T:5d}: compiled run θ once "
        f"{1e6 / out['once']['rate']:.3f} us/ti, θ batched {1e6 / out['batched']['rate']:.3f}"
    )
    return out["once"], out["batched"]


def time_simulate(M, d, T, K, names, reps) -> dict:
    """µs per trial-iteration of ``simulate`` with whichever lagc_jax this process imports
    (median of ``reps`` calls after a warm-up), for --baseline's subprocesses."""
    problem = problems.lag_synthetic(M, dim=d)
    us, cpu_us = {}, {}
    for name in names:
        strategy = lj.make(name, M, stragglers(name, M))

        def call(strategy=strategy):
            return lj.simulate(
                problem, strategy, lj.ShiftedExponential(), num_iters=K, num_trials=T, seed=0
            )

        call()
        wall, cpu = [], []
        for _ in range(reps):
            start = time.process_time()
            wall.append(timed(call)[0])
            cpu.append(time.process_time() - start)
        us[name] = 1e6 * float(np.median(wall)) / (T * K)
        cpu_us[name] = 1e6 * float(np.median(cpu)) / (T * K)
    return {"module": lj.__file__, "us": us, "cpu_us": cpu_us}


def compare_with_baseline(baseline, rounds, reps, log) -> dict:
    """Time BASELINE_NAMES at BASELINE_POINT with this tree's lagc_jax and the one in
    ``baseline``, in alternating subprocesses (one lagc_jax per process); medians over
    rounds. Each subprocess imports lagc_jax from its tree (checked)."""
    trees = {"current": ROOT, "baseline": Path(baseline).resolve()}
    commit = (
        subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=trees["baseline"],
            text=True,
            capture_output=True,
        ).stdout.strip()
        or "unknown"
    )
    spec = json.dumps(dict(BASELINE_POINT, names=BASELINE_NAMES, reps=reps))
    times = {label: collections.defaultdict(list) for label in trees}
    cpu_times = {label: collections.defaultdict(list) for label in trees}
    for r in range(rounds):
        for label in ("current", "baseline") if r % 2 == 0 else ("baseline", "current"):
            tree = trees[label]
            env = dict(os.environ, PYTHONPATH=str(tree))
            out = subprocess.run(
                [sys.executable, str(Path(__file__).resolve()), "--time-simulate", spec],
                env=env,
                text=True,
                capture_output=True,
                cwd=tree,
            )
            if out.returncode:
                raise RuntimeError(f"--time-simulate in {tree} failed:\n{out.stderr[-3000:]}")
            data = json.loads(out.stdout.strip().splitlines()[-1])
            if not Path(data["module"]).resolve().is_relative_to(tree):
                raise RuntimeError(f"{label}: imported lagc_jax from {data['module']}, not {tree}")
            for name, us in data["us"].items():
                times[label][name].append(us)
                cpu_times[label][name].append(data["cpu_us"][name])
            log(
                f"  round {r + 1} {label}: "
                + ", ".join(f"{n} {u:.3f}" for n, u in data["us"].items())
                + " us/ti"
            )
    rows = []
    for name in BASELINE_NAMES:
        now, then = (float(np.median(times[label][name])) for label in ("current", "baseline"))
        cpu_now, cpu_then = (
            float(np.median(cpu_times[label][name])) for label in ("current", "baseline")
        )
        rows.append(
            dict(
                name=name,
                now=now,
                then=then,
                speedup=then / now,
                cpu_speedup=cpu_then / cpu_now,
                delay_dependent=bool(lj.make(name, 12, stragglers(name, 12)).delay_dependent),
                spread={
                    label: (min(times[label][name]), max(times[label][name])) for label in trees
                },
            )
        )
    return dict(commit=commit, rounds=rounds, reps=reps, rows=rows)


def import_as(tree, alias: str):
    """The lagc_jax package of ``tree`` imported under the name ``alias`` (a copy in a
    temporary folder, its absolute ``lagc_jax`` imports renamed), beside this process's
    own lagc_jax."""
    source = Path(tree).resolve() / "lagc_jax"
    folder = Path(tempfile.mkdtemp(prefix="lagc_jax_baseline_"))
    shutil.copytree(source, folder / alias, ignore=shutil.ignore_patterns("__pycache__"))
    absolute = re.compile(r"^(\s*)(from|import)\s+lagc_jax\b", re.M)
    for path in (folder / alias).rglob("*.py"):
        path.write_text(absolute.sub(rf"\1\2 {alias}", path.read_text()))
    sys.path.insert(0, str(folder))
    try:
        return importlib.import_module(alias)
    finally:
        sys.path.remove(str(folder))


def compare_interleaved(baseline, reps, log) -> dict:
    """Time BASELINE_NAMES at BASELINE_POINT with this tree's lagc_jax and the one in
    ``baseline`` in ONE process, calls interleaved (old, new, new, old, ...): a change in the
    machine's load hits both alike, so on a shared machine the paired ratios (median over
    ``reps`` of old/new of adjacent calls) are steadier than subprocess rounds."""
    old = import_as(baseline, "lagc_jax_baseline")
    P = BASELINE_POINT
    calls = {}
    for label, lib in (("baseline", old), ("current", lj)):
        problem = lib.problems.lag_synthetic(P["M"], dim=P["d"])
        for name in BASELINE_NAMES:
            strategy = lib.make(name, P["M"], stragglers(name, P["M"]))
            calls[label, name] = functools.partial(
                lib.simulate,
                problem,
                strategy,
                lib.ShiftedExponential(),
                num_iters=P["K"],
                num_trials=P["T"],
                seed=0,
            )
    for call in calls.values():  # compile, then warm
        call()
        call()
    wall = collections.defaultdict(list)
    cpu = collections.defaultdict(list)
    for r in range(reps):
        for name in BASELINE_NAMES:
            for label in ("baseline", "current") if r % 2 == 0 else ("current", "baseline"):
                start = time.process_time()
                wall[label, name].append(timed(calls[label, name])[0])
                cpu[label, name].append(time.process_time() - start)
    rows = []
    for name in BASELINE_NAMES:
        then, now = (np.array(wall[label, name]) for label in ("baseline", "current"))
        cpu_then, cpu_now = (np.array(cpu[label, name]) for label in ("baseline", "current"))
        rows.append(
            dict(
                name=name,
                then=1e6 * float(np.median(then)) / (P["T"] * P["K"]),
                now=1e6 * float(np.median(now)) / (P["T"] * P["K"]),
                paired=float(np.median(then / now)),
                cpu_paired=float(np.median(cpu_then / cpu_now)),
            )
        )
        log(f"  {name}: paired speedup {rows[-1]['paired']:.3f} (CPU {rows[-1]['cpu_paired']:.3f})")
    return dict(reps=reps, rows=rows)


def scaling(bench, names, trials, log) -> list[dict]:
    """lagc_jax, NumPy-vectorised and the NumPy loop against the number of trials."""
    rows = []
    for name in names:
        for T in trials:
            rows.append(bench.run(12, 50, T, name, K=scaling_iters(T)))
    return rows


def approximate_rows(rounds, reps, log) -> list[dict]:
    """µs per trial-iteration of ``simulate`` for APPROXIMATE_ROWS at BASELINE_POINT
    (float32), wall clock and process CPU time, each the median over ``rounds`` rounds
    (the order of the rows reversed every other round) of medians of ``reps`` calls after
    a warm-up; with the ratio to gc's."""
    P = BASELINE_POINT
    problem = problems.lag_synthetic(P["M"], dim=P["d"])
    delay = lj.ShiftedExponential()
    calls = {}
    for label, name, options in APPROXIMATE_ROWS:
        options = dict(options)
        if name == "sgc":
            options["straggle_probability"] = lj.analysis.straggle_probability(
                delay, options["deadline"], load=3
            )
        strategy = lj.make(name, P["M"], 2, **options)
        calls[label] = (
            strategy,
            lambda s=strategy: lj.simulate(
                problem, s, delay, num_iters=P["K"], num_trials=P["T"], seed=0
            ),
        )
        calls[label][1]()  # compile
    wall, cpu = collections.defaultdict(list), collections.defaultdict(list)
    for r in range(rounds):
        for label in list(calls) if r % 2 == 0 else list(calls)[::-1]:
            w, c = [], []
            for _ in range(reps):
                start = time.process_time()
                w.append(timed(calls[label][1])[0])
                c.append(time.process_time() - start)
            wall[label].append(1e6 * float(np.median(w)) / (P["T"] * P["K"]))
            cpu[label].append(1e6 * float(np.median(c)) / (P["T"] * P["K"]))
        log(
            f"  round {r + 1}: " + ", ".join(f"{k} {v[-1]:.3f}" for k, v in wall.items()) + " us/ti"
        )
    rows = []
    for label, (strategy, _) in calls.items():
        us, cpu_us = float(np.median(wall[label])), float(np.median(cpu[label]))
        rows.append(
            dict(
                label=label,
                us=us,
                cpu_us=cpu_us,
                ratio=us / np.median(wall["gc"]),
                cpu_ratio=cpu_us / np.median(cpu["gc"]),
                loads=sorted(set(strategy.placement.support_loads)),
                batched=bool(strategy.delay_dependent),
            )
        )
    return rows


def bits_rows(rounds, reps, log) -> list[dict]:
    """µs per trial-iteration of ``simulate`` for BITS_NAMES at BASELINE_POINT (float32,
    Exp(1) unit times), wall clock and process CPU time, each the median over ``rounds``
    rounds (in alternating order) of medians of ``reps`` calls after a warm-up; with the
    ratio to lag-wk's."""
    P = BASELINE_POINT
    problem, delay = problems.lag_synthetic(P["M"], dim=P["d"]), lj.ShiftedExponential()
    calls = {
        name: (
            lambda s=lj.make(name, P["M"]): lj.simulate(
                problem, s, delay, num_iters=P["K"], num_trials=P["T"], seed=0
            )
        )
        for name in BITS_NAMES
    }
    for call in calls.values():
        call()  # compile
    wall, cpu = collections.defaultdict(list), collections.defaultdict(list)
    for r in range(rounds):
        for name in BITS_NAMES if r % 2 == 0 else BITS_NAMES[::-1]:
            w, c = [], []
            for _ in range(reps):
                start = time.process_time()
                w.append(timed(calls[name])[0])
                c.append(time.process_time() - start)
            wall[name].append(1e6 * float(np.median(w)) / (P["T"] * P["K"]))
            cpu[name].append(1e6 * float(np.median(c)) / (P["T"] * P["K"]))
        log(
            f"  round {r + 1}: "
            + ", ".join(f"{n} {wall[n][-1]:.3f}" for n in BITS_NAMES)
            + " us/ti"
        )
    us = {name: float(np.median(wall[name])) for name in BITS_NAMES}
    cpu_us = {name: float(np.median(cpu[name])) for name in BITS_NAMES}
    return [
        dict(
            name=name,
            us=us[name],
            cpu_us=cpu_us[name],
            ratio=us[name] / us["lag-wk"],
            cpu_ratio=cpu_us[name] / cpu_us["lag-wk"],
        )
        for name in BITS_NAMES
    ]


def bits_table(rows) -> list[str]:
    """The markdown table of :func:`bits_rows`, and the verdict on BITS_TARGET."""
    lines = [
        "| strategy | µs/trial-iter | × lag-wk | CPU µs/trial-iter | CPU × lag-wk |",
        "|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['name']} | {r['us']:.3f} | {r['ratio']:.2f} | {r['cpu_us']:.3f} | "
            f"{r['cpu_ratio']:.2f} |"
        )
    worst = max(r["ratio"] for r in rows)
    return lines + [
        "",
        f"qgd and laq within {BITS_TARGET}× of lag-wk: "
        f"{'yes' if worst <= BITS_TARGET else 'NO'} (worst {worst:.2f}×).",
    ]


def approximate_table(rows) -> list[str]:
    """The markdown table of :func:`approximate_rows`."""
    lines = [
        "| strategy | load | θ | µs/trial-iter | × gc | CPU µs/trial-iter | CPU × gc |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['label']} | {', '.join(map(str, r['loads']))} | "
            f"{'batched' if r['batched'] else 'once'} | {r['us']:.3f} | "
            f"{r['ratio']:.2f} | {r['cpu_us']:.3f} | {r['cpu_ratio']:.2f} |"
        )
    return lines


def plot_scaling(rows, path):
    """Trial-iterations/s (log–log) and peak memory against trials; one colour per strategy."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    names = list(dict.fromkeys(r["name"] for r in rows))
    colours = dict(zip(names, plt.rcParams["axes.prop_cycle"].by_key()["color"]))
    for name in names:
        sel = sorted((r for r in rows if r["name"] == name), key=lambda r: r["T"])
        T = [r["T"] for r in sel]
        c = colours[name]
        left.plot(T, [r["jax_rate"] for r in sel], "o-", color=c, label=f"{name} lagc_jax")
        left.plot(
            [r["vec_T"] for r in sel],
            [r["vec_rate"] for r in sel],
            "s--",
            color=c,
            label=f"{name} NumPy vectorised",
        )
        left.plot(T, [r["loop_rate"] for r in sel], ":", color=c, label=f"{name} NumPy loop")
        right.plot(T, [r["jax_peak"] for r in sel], "o-", color=c, label=f"{name} lagc_jax")
        right.plot(
            [r["vec_T"] for r in sel],
            [r["vec_peak"] for r in sel],
            "s--",
            color=c,
            label=f"{name} NumPy vectorised",
        )
    left.set(
        xscale="log",
        yscale="log",
        xlabel="trials",
        ylabel="trial-iterations per second",
        title="Throughput (M = 12, d = 50, float32)",
    )
    right.set(
        xscale="log",
        yscale="log",
        xlabel="trials",
        ylabel="peak memory (bytes)",
        title="Peak memory",
    )
    left.legend(fontsize=7, ncol=1)
    right.legend(fontsize=7)
    for ax in (left, right):
        ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


INVARIANCE_NAMES = ("fastest-k", "gc", "lagc", "lagc-ps")


def invariance_run() -> dict:
    """Results of INVARIANCE_NAMES on all of this process's devices, unchunked and chunked
    (for --invariance's subprocesses)."""
    M, d, T, K = 12, 50, 64, 60
    problem = problems.lag_synthetic(M, dim=d)
    out = {"devices": jax.device_count(), "dtype": str(jnp.asarray(0.0).dtype)}
    for name in INVARIANCE_NAMES:
        strategy = lj.make(name, M, stragglers(name, M))
        for chunk in (None, 7):
            r = lj.simulate(
                problem,
                strategy,
                lj.ShiftedExponential(),
                num_iters=K,
                num_trials=T,
                seed=3,
                chunk_size=chunk,
            )
            out[f"{name}/{chunk}"] = {
                f: np.asarray(getattr(r, f)).tolist()
                for f in ("loss", "wall_clock", "uploads", "computations")
            }
    return out


def invariance(log) -> list[dict]:
    """Compare results across 1 and 4 host devices and chunkings, float32 and float64."""
    runs = {}
    for x64 in (False, True):
        for devices in (1, 4):
            env = dict(
                os.environ,
                XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}",
                JAX_ENABLE_X64="1" if x64 else "0",
                PYTHONPATH=str(ROOT),
            )
            out = subprocess.run(
                [sys.executable, str(Path(__file__).resolve()), "--invariance-run"],
                env=env,
                text=True,
                capture_output=True,
            )
            if out.returncode:
                raise RuntimeError(f"--invariance-run failed:\n{out.stderr[-3000:]}")
            data = json.loads(out.stdout.strip().splitlines()[-1])
            assert data["devices"] == devices
            runs[(x64, devices)] = data
    rows = []
    for x64 in (False, True):
        for name in INVARIANCE_NAMES:
            ref_ = runs[(x64, 1)][f"{name}/None"]
            for label, other in (
                ("4 devices", runs[(x64, 4)][f"{name}/None"]),
                ("chunks of 7 iterations", runs[(x64, 1)][f"{name}/7"]),
            ):
                loss_a, loss_b = np.asarray(ref_["loss"]), np.asarray(other["loss"])
                clock_a, clock_b = np.asarray(ref_["wall_clock"]), np.asarray(other["wall_clock"])
                row = dict(
                    dtype="float64" if x64 else "float32",
                    name=name,
                    against=label,
                    loss_identical=bool(np.array_equal(loss_a, loss_b)),
                    loss_rel=float(np.max(np.abs(loss_a - loss_b) / np.abs(loss_a))),
                    counts_identical=all(
                        np.array_equal(ref_[f], other[f]) for f in ("uploads", "computations")
                    ),
                    clock_identical=bool(np.array_equal(clock_a, clock_b)),
                    clock_rel=float(np.max(np.abs(clock_a - clock_b)) / np.max(np.abs(clock_a))),
                )
                rows.append(row)
                log(
                    f"  {row['dtype']} {name} vs {label}: loss max rel diff {row['loss_rel']:.1e}"
                    f", counts {'identical' if row['counts_identical'] else 'DIFFER'}"
                    f", clock max rel diff {row['clock_rel']:.1e}"
                )
    return rows


def agreement(log) -> list[dict]:
    """lagc_jax vs both NumPy implementations on replayed unit times, float64."""
    rows = []
    with jax.enable_x64(True):
        for M, S, d, ties in ((12, 2, 50, False), (12, 2, 16, True), (6, 1, 8, False)):
            problem = problems.lag_synthetic(M, dim=d)
            T, K = 3, 40
            rng = np.random.default_rng(7)
            unit_times = (
                rng.integers(1, 4, (T, K, M)).astype(float)
                if ties
                else rng.exponential(size=(T, K, M))
            )
            for name in ref.STRATEGIES:
                s = 0 if name in ("gd", "lag-wk") else S
                result = lj.simulate(
                    problem,
                    strategies.make(name, M, s),
                    num_iters=K,
                    num_trials=T,
                    unit_times=unit_times,
                )
                setup = ref.setup(problem, name, M, s, np.float64)
                loop = ref.run_loop(setup, K, T, unit_times)
                vec = ref.run_vectorised(setup, K, T, unit_times)
                issues = ref.compare_with(result, loop) + ref.compare_with(result, vec)
                max_rel = max(
                    float(np.max(np.abs(result.loss - r["loss"]) / np.abs(r["loss"])))
                    for r in (loop, vec)
                )
                rows.append(
                    dict(
                        M=M,
                        S=s,
                        d=d,
                        ties=ties,
                        name=name,
                        ok=not issues,
                        issues="; ".join(issues),
                        max_rel=max_rel,
                        uploads=int(result.uploads[:, -1].sum()),
                    )
                )
                log(
                    f"  agreement {name} M={M} S={s} d={d}{' ties' if ties else ''}: "
                    f"{'ok' if not issues else issues} (max rel loss diff {max_rel:.1e})"
                )
    return rows


# --------------------------------------------------------------------------- #
# report
# --------------------------------------------------------------------------- #
def _fmt_bytes(b):
    for unit in ("B", "KB", "MB", "GB"):
        if b < 1024 or unit == "GB":
            return f"{b:.0f} {unit}" if unit == "B" else f"{b:.1f} {unit}"
        b /= 1024


def _us(rate):
    return 1e6 / rate


def _mem_ratio(row):
    """The run's own memory (temporaries + outputs) over its outputs (records + carry)."""
    return (row["jax_temps"] + row["jax_outputs"]) / row["jax_outputs"]


def flop_fraction(row, machine):
    if not row["batched"]:
        return None
    return gradient_flops(row["M"], row["d"]) * row["jax_rate"] / machine[row["dtype"]]


def write_report(
    path,
    env,
    agree,
    rates,
    machine,
    rows,
    f64_rows,
    batched_rows,
    profiles,
    grid,
    quick,
    elapsed,
    baseline=None,
    scale_rows=(),
    plot=None,
    invariant=(),
    approximate=(),
    bits=(),
):
    L = []
    add = L.append
    add("# BENCHMARKS")
    add("")
    add(
        f"Written by `scripts/benchmark.py` in one run{' (`--quick` subset)' if quick else ''}; "
        "every number below comes from that run. Do not edit by hand: rerun the script."
    )
    add("")
    add("## Run")
    add("")
    for key, label in (
        ("command", "command"),
        ("date", "date"),
        ("devices", "jax devices"),
        ("cpu", "CPU"),
        ("cores", "cores"),
        ("versions", "versions"),
        ("commit", "commit"),
        ("load_start", "load average at start"),
    ):
        add(f"- {label}: `{env[key]}`" if key == "command" else f"- {label}: {env[key]}")
    add(f"- load average at end: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    add(f"- duration: {elapsed / 60:.1f} min")
    add("")
    add(
        f"Timings are medians of {grid['reps']} consecutive calls per implementation, after a "
        "warm-up call (lagc_jax's first call compiles). lagc_jax and NumPy are timed in "
        "consecutive blocks, not alternating single calls: alternating slowed lagc_jax by up to "
        "30 % (the two libraries' thread pools interfere). The machine may be shared with other "
        "work (see the load averages; *load* = 1-minute load average after the row, 2 cores): ratios "
        "are more stable than absolute rates, and a NumPy block that shares the cores with "
        "another process can slow down several-fold (OpenBLAS threads spin)."
    )
    add("")
    add("## What is measured")
    add("")
    add(
        "- Problem: `lag_synthetic(M, dim=d)` (P = M partitions of n = d rows), unit times "
        "ShiftedExponential(rate 1), step 1/L, τ = τ_b = 0, parallel links, records every "
        "iteration. S = 2 at M = 12, S = 3 at M = 48 (gd, lag-wk: S = 0). K iterations per run "
        "are chosen per configuration (same K for lagc_jax and NumPy-vectorised)."
    )
    add(
        "- **lagc_jax**: `lagc_jax.simulate(...)` end to end (validation, one compiled run, "
        "host-side assembly of the Result). *compile* = first call − median steady-state call."
    )
    add(
        "- **NumPy loop**: `scripts/numpy_reference.py:run_loop`, a loop over trials and "
        "iterations with NumPy inside an iteration. Its rate does not depend on the number of "
        "trials, so it is measured once per (M, d, strategy) on a subsample (2 trials × the "
        "iterations in the *loop sample* column) and reported per trial-iteration."
    )
    add(
        "- **NumPy vectorised**: `run_vectorised`, one loop over iterations with a leading trial "
        "axis on every array (θ batched for every strategy)."
    )
    add(
        "- Both NumPy implementations draw their unit times with NumPy's generator (the same "
        "amount of random numbers as lagc_jax draws with threefry)."
    )
    add(
        "- **Peak memory**: NumPy: `tracemalloc` peak of one call. lagc_jax: XLA's buffer "
        "assignment of the compiled program (`compiled.memory_analysis()`): *peak* = arguments "
        "(problem data, decoding table, keys) + temporaries + outputs − aliased, the device "
        "memory the run holds; *outputs* = recorded per-iteration values + final carry (θ, lazy "
        "state). Outputs grow with K, temporaries do not, so the ratio falls for longer runs."
    )
    add(
        "- **FLOP fraction**: the FLOPs of lagc_jax's algorithm × trial-iterations/s, divided "
        "by the machine's dense matmul rate measured below (best of jnp.dot and numpy matmul). "
        "lag_synthetic is quadratic, so lagc_jax computes from the partition Hessians "
        "(`Problem.quadratic`): per trial-iteration M gradient vectors — partition gradients, "
        "or coded messages straight from the combined Hessians Σ_p B_mp H_p — and ∇f for the "
        "loss, each a row of [θ, 1] @ [H; −b]: 2(d+1)·d·(M+1) FLOPs (the residual form would "
        "need 4·n·d·P, ≈ 2× more at n = d; the NumPy implementations use the residual form, "
        "as a researcher would). Only for rows whose θ is batched over trials: for gd, lag-wk "
        "and g-lag the iterates do not depend on the delays and lagc_jax computes θ once for "
        "all trials."
    )
    add("")
    add("## Agreement (float64, replayed unit times)")
    add("")
    n_ok = sum(r["ok"] for r in agree)
    add(
        f"{n_ok} of {len(agree)} configurations agree: identical uploads, downloads and "
        "computations per iteration, loss and wall clock to 1e-6 relative (the *ties* case "
        "replays integer unit times, so the wait rules break ties by worker index)."
    )
    add("")
    add("| strategy | M | S | d | ties | total uploads | max rel. loss diff | agree |")
    add("|---|---|---|---|---|---|---|---|")
    for r in agree:
        add(
            f"| {r['name']} | {r['M']} | {r['S']} | {r['d']} | {'yes' if r['ties'] else 'no'} | "
            f"{r['uploads']} | {r['max_rel']:.1e} | {'yes' if r['ok'] else 'NO: ' + r['issues']} |"
        )
    add("")
    add("## Dense matmul rate (same run)")
    add("")
    add("| dtype | N | jnp.dot GFLOP/s | numpy GFLOP/s |")
    add("|---|---|---|---|")
    for dtype, table in rates.items():
        for N in sorted({n for (_, n) in table}):
            add(
                f"| {dtype} | {N} | {table[('jnp.dot', N)] / 1e9:.0f} | {table[('numpy', N)] / 1e9:.0f} |"
            )
    add("")
    add(
        "Machine rate used for the FLOP fraction (best of the above): "
        + ", ".join(f"{k} {v / 1e9:.0f} GFLOP/s" for k, v in machine.items())
        + "."
    )
    add("")

    def table(rows_, title, note=""):
        add(f"## {title}")
        add("")
        if note:
            add(note)
            add("")
        add(
            "| strategy | M | d | trials | K | dtype | lagc_jax µs/trial-iter | trial-iter/s | "
            "× NumPy loop | × NumPy vectorised | compile s | FLOP fraction | lagc_jax peak | "
            "lagc_jax (temporaries + outputs) / outputs | NumPy-vec peak | "
            "NumPy loop µs/trial-iter (sample) | load |"
        )
        add("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
        for r in rows_:
            frac = flop_fraction(r, machine)
            vec = (
                f"{r['jax_rate'] / r['vec_rate']:.1f}"
                + (f" (on {r['vec_T']} trials)" if r.get("vec_T", r["T"]) != r["T"] else "")
                if "vec_rate" in r
                else "—"
            )
            label = r["name"] + ("" if r["batched"] else " (θ once)")
            add(
                f"| {label} | {r['M']} | {r['d']} | {r['T']} | {r['K']} | {r['dtype']} | "
                f"{_us(r['jax_rate']):.3f} | {r['jax_rate']:.3g} | {r['jax_rate'] / r['loop_rate']:.0f} | "
                f"{vec} | {r['compile']:.2f} | {'—' if frac is None else f'{100 * frac:.0f} %'} | "
                f"{_fmt_bytes(r['jax_peak'])} | "
                f"{_fmt_bytes(r['jax_temps'] + r['jax_outputs'])} / {_fmt_bytes(r['jax_outputs'])}"
                f" = {_mem_ratio(r):.1f}× | "
                f"{_fmt_bytes(r['vec_peak']) if 'vec_peak' in r else '—'} | "
                f"{_us(r['loop_rate']):.1f} ({r['loop_T']}×{r['loop_K']}) | {r['load']:.1f} |"
            )
        add("")

    table(rows, "Results, float32 (the main target)")
    if f64_rows:
        table(
            f64_rows,
            "Results, float64 (JAX_ENABLE_X64; NumPy in float64 too)",
            "FLOP fractions here are relative to the float64 matmul rate.",
        )

    if batched_rows:
        add("## Delay-independent trajectories: computing θ once")
        add("")
        add(
            "gd, lag-wk and g-lag iterate independently of the delays, so lagc_jax keeps θ "
            "unbatched across trials (one gradient evaluation per iteration for all trials; "
            "only unit times, wait rule and counts are per trial). Below, the compiled run "
            "(`engine._run_chunk`, without simulate's host-side work) as lagc_jax runs it, and "
            "the same program fed a carry broadcast over trials, so that θ and the lazy state "
            "are batched as for a delay-dependent strategy. The two compute the same "
            "trajectories up to float32 rounding (batched and unbatched products round "
            "differently): the last columns compare their records."
        )
        add("")
        add(
            "| strategy | M | d | trials | K | θ once µs/trial-iter | θ batched µs/trial-iter | "
            "saving | peak memory once / batched | max rel. loss diff | counts equal |"
        )
        add("|---|---|---|---|---|---|---|---|---|---|---|")
        for once, forced in batched_rows:
            add(
                f"| {once['name']} | {once['M']} | {once['d']} | {once['T']} | {once['K']} | "
                f"{_us(once['rate']):.3f} | {_us(forced['rate']):.3f} | "
                f"{once['rate'] / forced['rate']:.0f}× | "
                f"{_fmt_bytes(once['peak'])} / {_fmt_bytes(forced['peak'])} | "
                f"{once['loss_rel']:.1e} | {'yes' if once['counts_equal'] else 'no'} |"
            )
        add("")

    # linearity in trials
    add("## Time against trials")
    add("")
    add("lagc_jax µs per trial-iteration by number of trials (flat = linear time):")
    add("")
    Ts = sorted({r["T"] for r in rows})
    add("| strategy | M | d | " + " | ".join(f"T = {T}" for T in Ts) + " |")
    add("|---|---|---|" + "---|" * len(Ts))
    groups = collections.OrderedDict()
    for r in rows:
        groups.setdefault((r["name"], r["M"], r["d"]), {})[r["T"]] = r
    for (name, M, d), byT in groups.items():
        add(
            f"| {name} | {M} | {d} | "
            + " | ".join(f"{_us(byT[T]['jax_rate']):.3f}" if T in byT else "—" for T in Ts)
            + " |"
        )
    add("")

    if profiles:
        add("## Profile: where lagc_jax's device time goes")
        add("")
        add(
            "Exclusive time of the compiled program's operations (jax.profiler trace of one "
            "call), by category: *gradient matmuls* = the product [θ, 1] @ [H; −b] giving the "
            "partition gradients or coded messages; *wait rule* = the order statistics of the "
            "arrivals (top_k and the masks around it); *random unit times* = threefry and the exponential "
            "transform; *loop control* = the scan's while loops; *other* = every fused "
            "elementwise/reduction op and small dot (coding, triggers, decoding, loss, updates)."
        )
        add("")
        add(
            "| strategy | M | d | trials | "
            + " | ".join(CATEGORIES)
            + " | largest parts of *other*, by lagc_jax function |"
        )
        add("|---|---|---|---|" + "---|" * (len(CATEGORIES) + 1))
        for (M, d, T, name), shares in profiles:
            add(
                f"| {name} | {M} | {d} | {T} | "
                + " | ".join(f"{100 * shares[c]:.0f} %" for c in CATEGORIES)
                + " | "
                + ", ".join(f"`{label}` {100 * v:.0f} %" for label, v in shares["other by source"])
                + " |"
            )
        add("")
        add(
            "Functions: `strategies.worker_trigger` = ‖g_m − ĝ_m‖² of every worker; "
            "`lazy.*` = the triggers' bookkeeping and stored-gradient update (`commit`); "
            "`aggregate.*` = the server's combination (decoding weights and sum); "
            "`problems.gradient_oracle.*` = the loss (its own (d+1) × d product) and the "
            "elementwise parts of the gradients; `timing.*` = arrivals; "
            "`coding.*` = decoding-table lookup; `engine.*` = optimizer update and accumulators."
        )
        add("")

    if baseline:
        add("## Against the previous lagc_jax (same machine, same run)")
        add("")
        P = BASELINE_POINT
        add(
            f"`simulate` at M = {P['M']}, d = {P['d']}, {P['T']} trials, K = {P['K']}, float32, "
            f"of this tree and of commit {baseline['commit']} (a `git worktree`, passed as "
            f"`--baseline`), each in its own subprocess, {baseline['rounds']} alternating rounds "
            f"of median-of-{baseline['reps']} calls; the table gives the medians over rounds "
            "(min–max over rounds in brackets)."
        )
        add("")
        add(
            "| strategy | θ | previous µs/trial-iter | now µs/trial-iter | speedup | "
            "CPU-time speedup |"
        )
        add("|---|---|---|---|---|---|")
        for r in baseline["rows"]:
            lo_then, hi_then = r["spread"]["baseline"]
            lo_now, hi_now = r["spread"]["current"]
            add(
                f"| {r['name']} | {'batched' if r['delay_dependent'] else 'once'} | "
                f"{r['then']:.3f} ({lo_then:.3f}–{hi_then:.3f}) | "
                f"{r['now']:.3f} ({lo_now:.3f}–{hi_now:.3f}) | {r['speedup']:.2f}× | "
                f"{r['cpu_speedup']:.2f}× |"
            )
        add("")
        inter = baseline["interleaved"]
        add(
            f"The same calls in one process, the two packages' calls interleaved ({inter['reps']} "
            "pairs per strategy, alternating which goes first), so a change in the machine's "
            "load hits both alike: the median over pairs of the previous call's time over the "
            "current one's."
        )
        add("")
        add("| strategy | previous µs/trial-iter | now µs/trial-iter | paired speedup | CPU |")
        add("|---|---|---|---|---|")
        for r in inter["rows"]:
            add(
                f"| {r['name']} | {r['then']:.3f} | {r['now']:.3f} | {r['paired']:.2f}× | "
                f"{r['cpu_paired']:.2f}× |"
            )
        add("")

    if scale_rows:
        add("## Scaling with the number of trials")
        add("")
        add(
            "M = 12, d = 50, float32, K = 10⁶/trials iterations (10 to 100). Trial-iterations "
            "per second and peak memory (lagc_jax: XLA's buffer assignment; NumPy: tracemalloc) "
            f"against trials; the NumPy loop's rate does not depend on trials. Figure: `{plot}`."
        )
        add("")
        add(f"![scaling]({plot})")
        add("")
        add(
            "| strategy | trials | K | lagc_jax trial-iter/s | NumPy-vec trial-iter/s | NumPy loop "
            "trial-iter/s | × NumPy-vec | lagc_jax peak | NumPy-vec peak |"
        )
        add("|---|---|---|---|---|---|---|---|---|")
        for r in scale_rows:
            subsample = "" if r["vec_T"] == r["T"] else f" (on {r['vec_T']} trials)"
            add(
                f"| {r['name']} | {r['T']} | {r['K']} | {r['jax_rate']:.3g} | "
                f"{r['vec_rate']:.3g}{subsample} | "
                f"{r['loop_rate']:.3g} | {r['jax_rate'] / r['vec_rate']:.1f} | "
                f"{_fmt_bytes(r['jax_peak'])} | {_fmt_bytes(r['vec_peak'])} |"
            )
        add("")

    if invariant:
        add("## What is invariant across devices and chunkings")
        add("")
        add(
            "Each strategy run with 64 trials × 60 iterations (M = 12, d = 50) in subprocesses "
            "with 1 and 4 host devices (`--xla_force_host_platform_device_count`), and with "
            "1 device in chunks of 7 iterations, compared with the 1-device unchunked run:"
        )
        add("")
        add(
            "| dtype | strategy | compared with | losses | max rel. loss diff | uploads and "
            "computations | wall clock |"
        )
        add("|---|---|---|---|---|---|---|")
        for r in invariant:
            clock = "identical" if r["clock_identical"] else f"max rel diff {r['clock_rel']:.1e}"
            add(
                f"| {r['dtype']} | {r['name']} | {r['against']} | "
                f"{'bit-identical' if r['loss_identical'] else 'differ'} | {r['loss_rel']:.1e} | "
                f"{'identical' if r['counts_identical'] else 'DIFFER'} | "
                f"{clock} |"
            )
        add("")

    if approximate:
        add("## Approximate strategies (MODEL.md §10) against gc")
        add("")
        P = BASELINE_POINT
        add(
            f"`simulate` at M = {P['M']}, S = 2, d = {P['d']}, {P['T']} trials, K = {P['K']}, "
            "float32, Exp(1) unit times; medians over alternating rounds of medians of "
            "consecutive calls (wall clock, and the process's CPU time, less sensitive to "
            "other work on the machine). *× gc*: the ratio to gc's time (below 1: faster)."
        )
        add("")
        for line in approximate_table(approximate):
            add(line)
        add("")

    if bits:
        add("## Communication in bits (MODEL.md §9): qgd and laq against lag-wk")
        add("")
        P = BASELINE_POINT
        add(
            f"`simulate` at M = {P['M']}, d = {P['d']}, {P['T']} trials, K = {P['K']}, "
            "float32, Exp(1) unit times, b = 4 bits (all three compute θ once for all "
            "trials); medians over alternating rounds of medians of consecutive calls."
        )
        add("")
        for line in bits_table(bits):
            add(line)
        add("")

    add("## Targets")
    add("")
    for line in targets(rows, machine, profiles, quick, baseline):
        add(f"- {line}")
    add("")
    Path(path).write_text("\n".join(L) + "\n")


def _profile_text(profiles, name, us, machine=None, needed=None, M=12, d=50):
    """'Profile of X's u µs: …' from the profile of ``name`` at M, d, 1000 trials. With
    ``needed`` (the µs a target asks for) and the machine's matmul rates: how fast the
    gradient product runs, and how much of the target it leaves for everything else."""
    shares = next(
        (sh for (M_, d_, T, n), sh in profiles if (M_, d_, T, n) == (M, d, 1000, name)), None
    )
    if shares is None:
        return ""
    parts = ", ".join(f"{c} {shares[c] * us:.2f} µs" for c in CATEGORIES if shares[c] >= 0.02)
    other = ", ".join(f"`{label}` {100 * v:.0f} %" for label, v in shares["other by source"][:4])
    text = f" Profile of {name}'s {us:.2f} µs: {parts}; largest parts of *other*: {other}."
    if needed is None or not machine:
        return text
    product = shares[CATEGORIES[0]] * us
    rate = 2.0 * (d + 1) * d * M / (product * 1e-6)  # the (d+1) × M·d product per trial
    rest = us - product
    return text + (
        f" The gradient product runs at {rate / 1e9:.0f} GFLOP/s ({100 * rate / machine['float32']:.0f} % "
        f"of the measured matmul rate), so the target ({needed:.2f} µs) leaves "
        f"{needed - product:.2f} µs for everything else, which takes {rest:.2f} µs "
        f"({rest / max(needed - product, 1e-9):.1f}× that): random unit times "
        f"{shares[CATEGORIES[2]] * us:.2f} µs (jax.random's threefry draws, bit for bit), "
        f"the rest the fused elementwise and reduction passes listed, each over the trials' "
        f"(M, d) arrays or (M,) vectors."
    )


def verdict(ok) -> str:
    return "**met**" if ok else "**missed**"


def baseline_targets(baseline, profiles=(), machine=None) -> list[str]:
    """The targets against the ``--baseline`` commit: the speed work's 2x against the commit
    before it (SPEED_WORK_BASELINE), else not slower (subprocess rounds within 5 % noise,
    and paired speedups of interleaved calls >= 0.97).

    >>> rows = [dict(name="gc", speedup=1.0, then=0.4, now=0.4, delay_dependent=True),
    ...         dict(name="gd", speedup=0.9, then=0.06, now=0.066, delay_dependent=False)]
    >>> paired = {"rows": [dict(name="gc", paired=1.0), dict(name="gd", paired=0.9)]}
    >>> lines = baseline_targets(dict(commit="43f76bd", rows=rows, interleaved=paired))
    >>> [line.split(":")[1].split()[0] for line in lines]
    ['**met**', '**missed**', '**missed**']
    >>> baseline_targets(dict(commit="01512da", rows=rows, interleaved=paired))[0][:60]
    'delay-dependent strategies ≥ 2× faster than commit 01512da ('
    """
    out = []
    dependent = [r for r in baseline["rows"] if r["delay_dependent"]]
    independent = [r for r in baseline["rows"] if not r["delay_dependent"]]
    worst = min(r["speedup"] for r in dependent)
    # the 2x target of the speed work holds against the commit before it; against any
    # other commit the target is not to be slower
    if baseline["commit"].startswith(SPEED_WORK_BASELINE):
        wanted, goal, noise = 2.0, "≥ 2× faster than", ""
    else:
        wanted, goal, noise = 0.95, "at least as fast as", ", within 5 % timing noise"
    text = (
        f"delay-dependent strategies {goal} commit {baseline['commit']} (M = 12, d = 50, "
        f"1000 trials, float32, subprocess rounds{noise}): "
        f"{verdict(worst >= wanted)} — "
        + ", ".join(
            f"{r['name']} {r['speedup']:.2f}× ({r['then']:.3f} → {r['now']:.3f} µs)"
            for r in dependent
        )
        + "."
    )
    for r in dependent:
        if r["speedup"] < wanted:
            text += _profile_text(profiles, r["name"], r["now"], machine, r["then"] / wanted)
    out.append(text)
    paired = baseline["interleaved"]["rows"]
    out.append(
        f"every timed strategy at least as fast as commit {baseline['commit']} (one "
        f"process, interleaved calls, paired speedup ≥ 0.97): "
        f"{verdict(min(r['paired'] for r in paired) >= 0.97)} — "
        + ", ".join(f"{r['name']} {r['paired']:.2f}×" for r in paired)
        + "."
    )
    slowest = min(r["speedup"] for r in independent)
    out.append(
        f"delay-independent strategies at least as fast as commit {baseline['commit']} "
        f"(subprocess rounds, within 5 % timing noise): {verdict(slowest >= 0.95)} — "
        + ", ".join(f"{r['name']} {r['speedup']:.2f}×" for r in independent)
        + "."
    )
    return out


def targets(rows, machine, profiles, quick, baseline=None):
    if baseline:
        out = baseline_targets(baseline, profiles, machine)
    else:
        out = [
            "speed against a previous commit: not measured in this run (pass "
            "`--baseline DIR`, a `git worktree` of that commit)."
        ]
    sel = [r for r in rows if r["M"] == 12 and r["d"] == 50 and r["T"] == 1000 and r["batched"]]
    if sel:
        loop = min(r["jax_rate"] / r["loop_rate"] for r in sel)
        vec = min(r["jax_rate"] / r["vec_rate"] for r in sel if "vec_rate" in r)
        out.append(
            f"delay-dependent strategies at M = 12, d = 50, 1000 trials ≥ 50× the NumPy loop: "
            f"{verdict(loop >= 50)}, and ≥ 3× NumPy vectorised: {verdict(vec >= 3)} — "
            + ", ".join(
                f"{r['name']} {r['jax_rate'] / r['loop_rate']:.0f}× / "
                f"{r['jax_rate'] / r['vec_rate']:.1f}×"
                for r in sel
            )
            + "."
            + "".join(
                _profile_text(
                    profiles,
                    r["name"],
                    1e6 / r["jax_rate"],
                    machine,
                    min(1e6 / r["loop_rate"] / 50, 1e6 / r["vec_rate"] / 3),
                )
                for r in sel
                if r["jax_rate"] < max(50 * r["loop_rate"], 3 * r["vec_rate"])
            )
        )
    sel = [r for r in rows if r["d"] == 200 and r["batched"] and r["T"] >= 1000]
    if sel:
        fr = {(r["name"], r["M"], r["T"]): flop_fraction(r, machine) for r in sel}
        lo = min(fr.values())
        out.append(
            f"≥ 50 % of the matmul rate at d = 200 on the algorithm's FLOPs "
            f"(delay-dependent strategies, ≥ 1000 trials): {verdict(lo >= 0.5)} — range "
            f"{100 * lo:.0f}–{100 * max(fr.values()):.0f} %"
            + (
                "; below 50 %: "
                + ", ".join(
                    f"{n} M={M} T={T} {100 * f:.0f} %" for (n, M, T), f in fr.items() if f < 0.5
                )
                if lo < 0.5
                else ""
            )
            + "."
            + "".join(
                _profile_text(
                    profiles,
                    r["name"],
                    1e6 / r["jax_rate"],
                    machine,
                    1e6 * gradient_flops(r["M"], 200) / (0.5 * machine[r["dtype"]]),
                    M=r["M"],
                    d=200,
                )
                for r in sel
                if r["T"] == 1000 and fr[(r["name"], r["M"], r["T"])] < 0.5
            )
        )
    worst = max(rows, key=lambda r: r["compile"])
    out.append(
        f"compile ≤ 10 s per strategy: {verdict(worst['compile'] <= 10)} — at most "
        f"{worst['compile']:.1f} s ({worst['name']} M={worst['M']} d={worst['d']} T={worst['T']})."
    )
    worst = max(rows, key=_mem_ratio)
    over = [r for r in rows if _mem_ratio(r) > 2]
    out.append(
        f"peak memory ≤ 2× (recorded outputs + carry), counting the run's temporaries and "
        f"outputs (the problem data and decoding table are inputs, included in the *peak* "
        f"column): {verdict(not over)} — worst {_mem_ratio(worst):.1f}× ({worst['name']} "
        f"M={worst['M']} d={worst['d']} T={worst['T']})"
        + (
            f"; {len(over)} of {len(rows)} rows exceed 2×: "
            + ", ".join(
                f"{r['name']} M={r['M']} d={r['d']} T={r['T']} {_mem_ratio(r):.1f}×"
                for r in over[:8]
            )
            + (" …" if len(over) > 8 else "")
            + ". The per-iteration temporaries (gradients or coded messages (T, M, d), "
            "the stored gradients' update) are as large as a lazy "
            "carry, and larger than the outputs of a strategy without lazy state, whose "
            "outputs are only 5 numbers per trial and iteration plus θ"
            if over
            else ""
        )
        + "."
    )
    Ts = sorted({r["T"] for r in rows})
    if len(Ts) >= 2:
        big, mid = Ts[-1], Ts[-2]
        ratios = []
        for r in rows:
            if r["T"] == big:
                other = [
                    q
                    for q in rows
                    if q["T"] == mid
                    and q["name"] == r["name"]
                    and q["M"] == r["M"]
                    and q["d"] == r["d"]
                ]
                if other:
                    ratios.append(other[0]["jax_rate"] / r["jax_rate"])
        if ratios:
            ok = max(ratios) <= 1.3
            out.append(
                f"time (at most) linear in trials: {verdict(ok)} — µs per trial-iteration at "
                f"T = {big} is {min(ratios):.2f}–{max(ratios):.2f}× that at T = {mid}"
                f" (smaller T pays fixed per-call costs, see the table above)."
            )
    return out


# --------------------------------------------------------------------------- #
def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a small subset (~2 min)")
    parser.add_argument("--output", default=str(ROOT / "BENCHMARKS.md"))
    parser.add_argument("--reps", type=int, default=None, help="timed repetitions per row")
    parser.add_argument(
        "--baseline",
        metavar="DIR",
        help="a checkout (git worktree) of an older "
        "commit: time its lagc_jax side by side with this tree's",
    )
    parser.add_argument("--time-simulate", metavar="JSON", help=argparse.SUPPRESS)
    parser.add_argument("--invariance-run", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument(
        "--approximate",
        action="store_true",
        help="only the approximate strategies against gc (MODEL.md §10): print their table",
    )
    parser.add_argument(
        "--bits",
        action="store_true",
        help="only qgd and laq against lag-wk (MODEL.md §9): print their table",
    )
    args = parser.parse_args(argv)
    if args.time_simulate:  # a subprocess of --baseline
        spec = json.loads(args.time_simulate)
        print(
            json.dumps(
                time_simulate(
                    spec["M"], spec["d"], spec["T"], spec["K"], spec["names"], spec["reps"]
                )
            )
        )
        return 0
    if args.approximate:
        begin = time.perf_counter()
        rows = approximate_rows(
            3,
            args.reps or 3,
            lambda msg: print(f"[{time.perf_counter() - begin:7.1f}s] {msg}", flush=True),
        )
        print("\n".join(approximate_table(rows)))
        return 0
    if args.bits:
        begin = time.perf_counter()
        rows = bits_rows(
            3,
            args.reps or 3,
            lambda msg: print(f"[{time.perf_counter() - begin:7.1f}s] {msg}", flush=True),
        )
        print("\n".join(bits_table(rows)))
        return 0
    if args.invariance_run:  # a subprocess of the invariance check
        print(json.dumps(invariance_run()))
        return 0
    if args.baseline and not (Path(args.baseline) / "lagc_jax" / "__init__.py").is_file():
        parser.error(
            f"--baseline {args.baseline}: no lagc_jax/ package there (make one with "
            "`git worktree add DIR COMMIT`)"
        )
    if jax.config.jax_enable_x64:
        parser.error(
            "run with JAX_ENABLE_X64 unset: float32 is the main target; float64 rows "
            "are run inside the script"
        )
    grid = dict(QUICK if args.quick else FULL)
    if args.reps:
        grid["reps"] = args.reps
    start = time.perf_counter()

    def log(msg):
        print(f"[{time.perf_counter() - start:7.1f}s] {msg}", flush=True)

    env = environment()
    log(f"devices {env['devices']}; {env['cpu']}; {env['cores']}")
    log("agreement check (float64, replayed unit times)")
    agree = agreement(log)
    if not all(r["ok"] for r in agree):
        log("AGREEMENT FAILED: the comparison would not be honest; writing the report anyway")
    log("dense matmul rates")
    rates = {"float32": matmul_rates(jnp.float32)}
    with jax.enable_x64(True):
        rates["float64"] = matmul_rates(jnp.float64)
    machine = {dtype: max(table.values()) for dtype, table in rates.items()}
    log("  " + ", ".join(f"{k} {v / 1e9:.0f} GFLOP/s" for k, v in machine.items()))

    bench = Bench(grid, log)
    rows, profiles_wanted, compiled_for_profile = [], set(grid["profiles"]), {}
    for M in grid["Ms"]:
        for d in grid["ds"]:
            for name in grid["names"]:
                for T in grid["trials"]:
                    keep = (M, d, T, name) in profiles_wanted
                    row = bench.run(M, d, T, name, keep_compiled=keep)
                    if keep:
                        compiled_for_profile[(M, d, T, name)] = row.pop("_compiled")
                    rows.append(row)
    f64_rows = []
    if grid["float64"]:
        log("float64 rows")
        with jax.enable_x64(True):
            for M, d, T, name in grid["float64"]:
                f64_rows.append(bench.run(M, d, T, name, dtype=np.float64))
    batched_rows = []
    if grid["batched"]:
        log("delay-independent strategies: θ once vs θ batched (compiled runs)")
        for M, d, T, name in grid["batched"]:
            batched_rows.append(theta_once_vs_batched(bench, M, d, T, name))
    log("scaling with the number of trials")
    scale_rows = scaling(bench, grid["scaling"]["names"], grid["scaling"]["trials"], log)
    plot = Path(args.output).with_name(Path(args.output).stem + "_scaling.png")
    plot_scaling(scale_rows, plot)
    log("approximate strategies (MODEL.md §10) against gc")
    approximate = approximate_rows(grid["baseline_rounds"], grid["baseline_reps"], log)
    log("qgd and laq (MODEL.md §9) against lag-wk")
    bits = bits_rows(grid["baseline_rounds"], grid["baseline_reps"], log)
    log("invariance across 1 and 4 host devices and chunkings (subprocesses)")
    invariant = invariance(log)
    baseline = None
    if args.baseline:
        log(f"against {args.baseline} (alternating subprocesses)")
        baseline = compare_with_baseline(
            args.baseline, grid["baseline_rounds"], grid["baseline_reps"], log
        )
        log(f"against {args.baseline} (one process, calls interleaved)")
        baseline["interleaved"] = compare_interleaved(
            args.baseline, grid["baseline_interleaved"], log
        )
    profiles = []
    for key in grid["profiles"]:
        M, d, T, name = key
        log(f"profile {name} M={M} d={d} T={T}")
        # strategies outside the timed grid (lagc-ps has no NumPy implementation) are
        # compiled here
        compiled, cargs = compiled_for_profile.pop(key, None) or bench.compiled(M, d, T, name)
        big = T * M * d // 4  # the gradient products output (T, P·n) and (P, T, d)
        profiles.append((key, profile(compiled, cargs, big)))
        del compiled, cargs
    write_report(
        args.output,
        env,
        agree,
        rates,
        machine,
        rows,
        f64_rows,
        batched_rows,
        profiles,
        grid,
        args.quick,
        time.perf_counter() - start,
        baseline=baseline,
        scale_rows=scale_rows,
        plot=plot.name,
        invariant=invariant,
        approximate=approximate,
        bits=bits,
    )
    log(f"wrote {args.output}")
    return 0 if all(r["ok"] for r in agree) else 1


if __name__ == "__main__":
    sys.exit(main())
