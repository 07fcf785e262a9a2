"""Studies as files (lagc_jax.studies.files, ``lagc-jax study``): the schema's checks, rows
against direct runs read with plain NumPy, the summary against NumPy statistics, resume
after an interrupt, shards merged, and the shipped studies against the grids they replace."""

import csv
import dataclasses
import json
import math
import tomllib

import numpy as np
import pytest

import lagc_jax as lj
from lagc_jax import cli
from lagc_jax.studies import files as study_files
from lagc_jax.studies import paper as study
from lagc_jax.studies import statistics
from lagc_jax.studies.files import Study, load_study, parse_study, run_study

# Four points on common random numbers per delay: gd and grouping (S = 1), Exp(1) and
# 1 + Exp(1) (E[X] = 2), τ = 0.5·E[X]; run in checkpointed chunks of 10 iterations.
TINY_TOML = """
[study]
name = "tiny"
trials = 6
iterations = 20
targets = [0.1, 1e-3]
chunk_size = 10

[[grid]]
strategies = ["gd", "grouping"]
workers = 4
stragglers = 1
delay = ["exp:1", "exp:1,1"]
upload_time = 0.5
"""
TINY = tomllib.loads(TINY_TOML)
MEAN_UNIT_TIME = {"exp:1": 1.0, "exp:1,1": 2.0}


def quiet(message):
    pass


@pytest.fixture(scope="module")
def tiny_done(tmp_path_factory):
    """The tiny study run once, uninterrupted, with its report written."""
    out = tmp_path_factory.mktemp("tiny_done")
    study_ = parse_study(TINY)
    run_study(study_, out, log=quiet)
    study_files.write_report(study_, out, log=quiet)
    return study_, out


def read_csv(path):
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


# --------------------------------------------------------------------------- #
# rows and summary against independent computations
# --------------------------------------------------------------------------- #
def first_reach(result, target):
    """Plain NumPy: each trial's values at the first record with gap <= target (NaN: never)."""
    out = {
        q: np.full(result.num_trials, np.nan)
        for q in ("iterations", "wall_clock", "uploads", "computations", "bits_up")
    }
    for i in range(result.num_trials):
        hits = np.flatnonzero(result.gap[i] <= target)
        if hits.size:
            k = hits[0]
            out["iterations"][i] = result.iterations[k]
            for q in ("wall_clock", "uploads", "computations", "bits_up"):
                out[q][i] = getattr(result, q)[i, k]
    return out


def test_rows_are_the_runs_read_at_each_target(tiny_done):
    study_, out = tiny_done
    rows = read_csv(out / "table.csv")
    assert len(rows) == 4 * 6 and [r["trial"] for r in rows[:6]] == [str(i) for i in range(6)]
    problem = lj.problems.lag_synthetic(4)
    for name in ("gd", "grouping"):
        for spec, mean in MEAN_UNIT_TIME.items():
            mine = [r for r in rows if r["strategy"] == name and r["delay"] == spec]
            assert len(mine) == 6 and {r["upload_time"] for r in mine} == {repr(0.5 * mean)}
            result = lj.simulate(
                problem,
                lj.make(name, 4, 1),
                lj.delays.parse_delay(spec),
                num_iters=20,
                num_trials=6,
                upload_time=0.5 * mean,
                chunk_size=10,
            )
            for target in (0.1, 1e-3):
                expected = first_reach(result, target)
                assert np.isfinite(expected["wall_clock"]).any()
                for q, values in expected.items():
                    got = np.array([float(r[f"{q}_to_{target:g}"]) for r in mine])
                    np.testing.assert_array_equal(got, values, err_msg=f"{name} {spec} {q}")
            assert [float(r["final_gap"]) for r in mine] == result.gap[:, -1].tolist()
            assert [float(r["initial_gap"]) for r in mine] == result.gap[:, 0].tolist()
            assert {float(r["mean_unit_time"]) for r in mine} == {mean}


def numpy_median_interval(values):
    x = np.sort(np.where(np.isnan(values), np.inf, values))
    n = len(x)
    half = 1.959963984540054 * math.sqrt(n) / 2
    lo, hi = max(math.floor(n / 2 - half), 0), min(math.ceil(n / 2 + half), n - 1)
    return np.median(x), x[lo], x[hi]


def test_summary_is_numpy_statistics_of_the_rows(tiny_done):
    scipy_stats = pytest.importorskip("scipy.stats")
    study_, out = tiny_done
    rows = read_csv(out / "table.csv")
    summary = read_csv(out / "summary.csv")
    assert len(summary) == 4 * 2
    for s in summary:
        mine = [r for r in rows if r["point"] == s["point"]]
        mean = MEAN_UNIT_TIME[s["delay"]]
        assert float(s["upload_time"]) == 0.5  # back in units of E[X]
        target = float(s["target"])
        for q in ("iterations", "wall_clock", "uploads", "computations", "bits_up"):
            x = np.array([float(r[f"{q}_to_{target:g}"]) for r in mine])
            x = x / mean if q == "wall_clock" else x
            np.testing.assert_allclose(
                [float(s[f"{q}_{k}"]) for k in ("median", "lo", "hi")],
                numpy_median_interval(x),
                rtol=1e-15,
            )
            if np.isfinite(x).all():
                t = scipy_stats.t.ppf(0.975, len(x) - 1)
                half = t * x.std(ddof=1) / math.sqrt(len(x))
                np.testing.assert_allclose(
                    [float(s[f"{q}_{k}"]) for k in ("mean", "mean_lo", "mean_hi")],
                    [x.mean(), x.mean() - half, x.mean() + half],
                    rtol=1e-12,
                    atol=1e-12,
                )
        reached = np.array([r[f"wall_clock_to_{target:g}"] != "nan" for r in mine])
        assert float(s["reached"]) == reached.mean()
    # ranks and paired ratios within each (group, target): the two strategies on one delay
    for spec in MEAN_UNIT_TIME:
        for target in ("0.1", "0.001"):
            pair = sorted(
                (s for s in summary if s["delay"] == spec and s["target"] == target),
                key=lambda s: float(s["wall_clock_median"]),
            )
            assert [s["rank"] for s in pair] == ["1", "2"] and pair[0]["group"] == pair[1]["group"]
            best, other = [
                np.array(
                    [
                        float(r[f"wall_clock_to_{float(target):g}"])
                        for r in rows
                        if r["point"] == s["point"]
                    ]
                )
                for s in pair
            ]
            ratio = np.where(np.isnan(other), np.inf, other) / best
            np.testing.assert_allclose(
                [float(pair[1][f"ratio_to_best_{k}"]) for k in ("median", "lo", "hi")],
                numpy_median_interval(ratio),
                rtol=1e-15,
            )
    assert {s["group"] for s in summary} == {"1", "2"}


@pytest.mark.parametrize("confidence", [0.9, 0.95, 0.99])
def test_student_t_quantile_matches_scipy(confidence):
    scipy_stats = pytest.importorskip("scipy.stats")
    for dof in (*range(1, 41), 99, 999):
        assert statistics.student_t_quantile(confidence, dof) == pytest.approx(
            scipy_stats.t.ppf((1 + confidence) / 2, dof), rel=1e-9
        )


def test_mean_interval_edge_cases():
    assert statistics.mean_interval([1.0, np.nan]) == (math.inf, math.inf, math.inf)
    mean, lo, hi = statistics.mean_interval([2.0])
    assert mean == 2.0 and math.isnan(lo) and math.isnan(hi)
    assert statistics.mean_interval([3.0, 3.0, 3.0]) == (3.0, 3.0, 3.0)


def test_report_files(tiny_done):
    study_, out = tiny_done
    for name in ("table.csv", "summary.csv", "summary.md", "wall_clock.png", "study.json"):
        assert (out / name).stat().st_size > 0, name
    md = (out / "summary.md").read_text()
    assert md.count("## Group") == 4 and "| 1 | " in md and "× best" in md
    assert Study.from_dict(json.loads((out / "study.json").read_text())) == study_
    assert not (out / "checkpoints").exists() or not any((out / "checkpoints").iterdir())


def test_parquet_table_equals_the_csv(tiny_done):
    pyarrow_parquet = pytest.importorskip("pyarrow.parquet")
    study_, out = tiny_done
    table = pyarrow_parquet.read_table(out / "table.parquet").to_pylist()
    rows, _ = study_files.read_rows(out, study_)
    assert len(table) == len(rows)
    for a, b in zip(table, rows):
        assert a.keys() == b.keys()
        for key in a:
            assert a[key] == b[key] or (
                isinstance(a[key], float) and math.isnan(a[key]) and math.isnan(b[key])
            ), key


# --------------------------------------------------------------------------- #
# resume, reruns, shards
# --------------------------------------------------------------------------- #
def test_interrupted_study_resumes_with_identical_rows(tiny_done, tmp_path):
    """Ctrl-C in the second point, after its first chunk: the first point's rows and the
    second's committed chunk are kept; the rerun runs only what is left."""
    study_, done = tiny_done
    second = study_.points[1]

    def interrupt(point, iterations_done, total):
        if point == second and iterations_done == 10:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_study(study_, tmp_path, log=quiet, progress=interrupt)
    assert [p.name for p in (tmp_path / "points").iterdir()] == [f"{study_.points[0].id}.csv"]
    assert (tmp_path / "checkpoints" / second.id / "manifest.json").exists()

    calls = []
    ran = run_study(
        study_, tmp_path, log=quiet, progress=lambda point, d, t: calls.append((point.label, d))
    )["ran"]
    assert ran == [p.id for p in study_.points[1:]]
    assert calls[0] == (second.label, 20)  # resumed after the committed chunk
    study_files.write_report(study_, tmp_path, log=quiet)
    assert (tmp_path / "table.csv").read_text() == (done / "table.csv").read_text()
    assert not (tmp_path / "checkpoints" / second.id).exists()


def test_rerun_skips_done_points_and_an_edited_file_runs_only_its_new_points(tiny_done, tmp_path):
    study_, done = tiny_done
    for path in (done / "points").iterdir():
        (tmp_path / "points").mkdir(exist_ok=True)
        (tmp_path / "points" / path.name).write_bytes(path.read_bytes())
    assert run_study(study_, tmp_path, log=quiet)["ran"] == []
    edited = {**TINY, "grid": [{**TINY["grid"][0], "delay": ["exp:1", "exp:1,1", "exp:2"]}]}
    bigger = parse_study(edited)
    new = [p.id for p in bigger.points if p.delay == "exp:2"]
    assert len(new) == 2 and run_study(bigger, tmp_path, log=quiet)["ran"] == new


def test_shards_merged_equal_an_unsharded_run(tiny_done, tmp_path, capsys):
    study_, done = tiny_done
    path = tmp_path / "tiny.toml"
    path.write_text(TINY_TOML)
    shards = [tmp_path / "shard0", tmp_path / "shard1"]
    for i, out in enumerate(shards):
        assert cli.main(["study", str(path), "--shard", f"{i}/2", "--out", str(out)]) == 0
        ids = sorted(p.name[:-4] for p in (out / "points").iterdir())
        assert ids == sorted(p.id for p in study_.points[i::2])
        assert not (out / "table.csv").exists()
    merged = tmp_path / "merged"
    assert cli.main(["study-merge", *map(str, shards), "--out", str(merged)]) == 0
    for name in ("table.csv", "summary.csv", "summary.md"):
        assert (merged / name).read_text() == (done / name).read_text(), name
    best = capsys.readouterr().out.splitlines()
    assert len(best) == 4 and all(
        line.startswith("group ") and "runner-up" in line for line in best
    ), best
    # the merged folder is a complete study folder: a rerun runs nothing
    assert cli.main(["study", str(path), "--out", str(merged), "--list"]) == 0
    listed = capsys.readouterr().out.splitlines()
    assert len(listed) == 4 and all("\tdone\t" in line for line in listed)


def test_merge_refuses_folders_of_other_studies(tiny_done, tmp_path, capsys):
    study_, done = tiny_done
    other = parse_study({**TINY, "study": {**TINY["study"], "trials": 5}})
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "study.json").write_text(json.dumps(other.to_dict()))
    assert (
        cli.main(["study-merge", str(done), str(tmp_path / "other"), "--out", str(tmp_path / "m")])
        == 2
    )
    err = capsys.readouterr().err
    assert err.startswith("lagc-jax study-merge: ") and "another study" in err
    assert err.count("\n") == 1
    assert cli.main(["study-merge", str(tmp_path), "--out", str(tmp_path / "m")]) == 2
    assert "not a study folder" in capsys.readouterr().err


# --------------------------------------------------------------------------- #
# bad study files: a ValueError naming the key, before anything runs
# --------------------------------------------------------------------------- #
def with_study(**changes):
    return {**TINY, "study": {**TINY["study"], **changes}}


def with_grid(**changes):
    return {**TINY, "grid": [{**TINY["grid"][0], **changes}]}


def without(table, key):
    document = {**TINY, table: dict(TINY[table] if table == "study" else TINY[table][0])}
    del document[table][key]
    return document


BAD = [
    (with_study(trials=-1), "study.trials: must be integers >= 1, got -1"),
    (with_study(trials="40"), "study.trials: must be integers >= 1, got '40'"),
    (with_study(iterations=[10, 20]), "study.iterations: must be a single value"),
    (with_study(trails=3), "study.trails: unknown key; valid keys: name, description"),
    ({**TINY, "grids": []}, "file.grids: unknown key; valid keys: study, grid"),
    ({"study": TINY["study"]}, "grid: missing"),
    (without("study", "iterations"), "grid[0].iterations: missing"),
    (without("grid", "workers"), "grid[0].workers: missing"),
    (with_grid(worker=4), "grid[0].worker: unknown key"),
    (
        with_grid(strategies=["gd", "gdd"]),
        "grid[0].strategies[1].name: unknown strategy 'gdd'; valid: gd, ",
    ),
    (with_grid(strategies=[3]), "grid[0].strategies[0]: must be a strategy name or a table"),
    (with_grid(strategies=[]), "grid[0].strategies: must name at least one strategy"),
    (
        with_grid(strategies=[{"name": "gd", "xi": 1.0}]),
        "grid[0].strategies[0].xi: strategy 'gd' has no option 'xi'",
    ),
    (
        with_grid(strategies=["gd", {"name": "lag-wk", "xi": -1.0}]),
        "grid[0].strategies[1]: 'lag-wk' applies to no point of this grid (xi must be",
    ),
    (
        with_grid(strategies=[{"name": "lag-wk", "xi": {"a": 1}}]),
        "grid[0].strategies[0].xi: an option must be a number",
    ),
    (
        with_grid(strategies=[{"name": "gd", "iterations": 0}]),
        "grid[0].strategies[0].iterations: must be integers >= 1",
    ),
    (
        with_grid(strategies=["gd", "async"], link="shared"),
        "grid[0].strategies[1]: 'async' applies to no point of this grid (link 'shared' does not",
    ),
    (with_grid(workers=5), "grid[0].strategies[1]: 'grouping' applies to no point of this grid"),
    (with_grid(workers=0), "grid[0].workers: must be integers >= 1, got 0"),
    (with_grid(stragglers=-1), "grid[0].stragglers: must be integers >= 0, got -1"),
    (
        with_grid(stragglers=[1, 4]),
        "grid[0].stragglers: 4 applies to no point of this grid "
        "(stragglers S = 4 must be < workers M = 4)",
    ),
    (
        with_grid(stragglers=4),
        "grid[0]: no point of this grid applies (stragglers S = 4 must be < workers M = 4)",
    ),
    (with_grid(delay="expo:1"), "grid[0].delay: delay must be "),
    (with_grid(delay=1.0), "grid[0].delay: must be strings such as 'exp:1'"),
    (with_grid(delay="trace:XX"), "grid[0].delay: name must be one of AR, SE, ST"),
    (
        with_grid(delay="trace:AR,shuffle"),
        "grid[0].delay: delay 'trace:AR,shuffle': must be trace:NAME optionally followed by one of",
    ),
    (
        with_grid(delay=["exp:1", "trace:AR"]),
        "grid[0].delay: 'trace:AR' applies to no point of "
        "this grid (delay 'trace:AR' replays 16 columns",
    ),
    (with_grid(delay="times:missing.csv"), "grid[0].delay: "),
    (
        with_grid(delay="pareto:1,0.8"),
        "grid[0].delay: 'pareto:1,0.8' has an infinite mean unit "
        'time; set study.time_unit = "raw"',
    ),
    (with_grid(link="wifi"), "grid[0].link: must be one of parallel, shared, got 'wifi'"),
    (
        with_grid(problem="mnist"),
        "grid[0].problem: must be one of breast_cancer, diabetes, lag_synthetic, got 'mnist'",
    ),
    (with_grid(upload_time=-1.0), "grid[0].upload_time: must be finite numbers >= 0, got -1.0"),
    (with_grid(latency=math.inf), "grid[0].latency: must be finite numbers >= 0, got inf"),
    (with_grid(step_size_times_L=0.0), "grid[0].step_size_times_L: must be finite numbers > 0"),
    (with_grid(seed=-1), "grid[0].seed: must be integers in [0, 9223372036854775807], got -1"),
    (with_grid(trials=0), "grid[0].trials: must be integers >= 1, got 0"),
    (with_study(targets=[]), "study.targets: must hold at least one target gap"),
    (with_study(targets=[0.0]), "study.targets: must be finite numbers > 0, got 0.0"),
    (with_study(targets=[1e-3, 1e-3]), "study.targets: must be distinct"),
    (
        with_study(target_scale="relative"),
        "study.target_scale: must be one of absolute, initial_gap, got 'relative'",
    ),
    (with_study(time_unit="seconds"), "study.time_unit: must be one of mean, raw"),
    (
        with_study(record_every=3, chunk_size=9),
        "grid[0]: study.record_every = 3 must divide the iterations, got 20",
    ),
    (
        with_study(record_every=2, chunk_size=5),
        "study.chunk_size: must be a multiple of study.record_every = 2, got 5",
    ),
    (with_study(name=""), "study.name: must be a non-empty string of letters"),
    (with_study(name="../up"), "study.name: must be a non-empty string of letters"),
    ({**TINY, "grid": "gd"}, "grid: must be one or more [[grid]] tables"),
]


@pytest.mark.filterwarnings("ignore::lagc_jax.delays.InfiniteMeanWarning")
@pytest.mark.parametrize("document, message", BAD, ids=[m[:40] for _, m in BAD])
def test_bad_study_is_a_value_error_naming_the_key(document, message):
    with pytest.raises(ValueError) as error:
        parse_study(document)
    assert str(error.value).startswith(message), str(error.value)


def test_bad_files_and_names(tmp_path):
    path = tmp_path / "broken.toml"
    path.write_text("[study]\ntrials = \n")
    with pytest.raises(ValueError, match=r"broken.toml: not valid TOML: .*line 2"):
        load_study(path)
    path.write_text(TINY_TOML.replace("trials = 6", "trials = -6"))
    with pytest.raises(ValueError, match=r"broken.toml: study.trials: must be integers >= 1"):
        load_study(path)
    with pytest.raises(
        ValueError,
        match="'nope' is neither a file nor a shipped study "
        r"\(shipped: reproduce, trace_study\)",
    ):
        load_study("nope")


@pytest.mark.parametrize(
    "argv, line",
    [
        (["study", "nope"], "lagc-jax study: study: 'nope' is neither a file nor a shipped study"),
        (
            ["study", "trace_study", "--shard", "2/2"],
            "lagc-jax study: --shard must be i/n with integers 0 <= i < n, got '2/2'",
        ),
        (["study", "trace_study", "--shard", "x"], "lagc-jax study: --shard must be i/n"),
        (["study-merge"], "lagc-jax study-merge: the following arguments are required: DIR"),
    ],
)
def test_cli_errors_are_one_line(argv, line, capsys):
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith(line) and err.count("\n") == 1 and "Traceback" not in err, err


def test_cli_bad_file_is_one_line_naming_the_key(tmp_path, capsys):
    path = tmp_path / "bad.toml"
    path.write_text(TINY_TOML.replace('"grouping"', '{name = "grouping", xi = 1}'))
    assert cli.main(["study", str(path), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err == (
        f"lagc-jax study: {path}: grid[0].strategies[1].xi: strategy 'grouping' has "
        "no option 'xi'\n"
    )
    assert not (tmp_path / "out").exists()


# --------------------------------------------------------------------------- #
# the shipped studies
# --------------------------------------------------------------------------- #
# scripts/trace_study.py's grid before it became the shipped study file
TRACE_ITERATIONS = {"AR": 600, "SE": 300, "ST": 1000}
TRACE_WORKERS = {"AR": 16, "SE": 64, "ST": 8}
PLAIN = ("gd", "lag-wk", "lag-ps")
TOLERANT = ("fastest-k", "gc", "grouping", "lagc", "lagc-ps", "g-lag", "g-lag-wk")


def test_shipped_trace_study_is_the_scripts_grid():
    s = load_study("trace_study")
    got = {
        (
            p.strategy,
            p.options,
            p.stragglers,
            p.workers,
            p.delay,
            p.iterations,
            p.trials,
            p.seed,
            p.problem,
            p.link,
            p.upload_time,
            p.broadcast_time,
            p.step_size_times_L,
        )
        for p in s.points
    }
    expected = {
        (
            name,
            "{}",
            S,
            TRACE_WORKERS[trace],
            delay,
            TRACE_ITERATIONS[trace],
            40,
            0,
            "breast_cancer",
            "parallel",
            0.0,
            0.0,
            1.0,
        )
        for trace in TRACE_ITERATIONS
        for delay in (f"trace:{trace}", "exp:1")
        for names, stragglers in ((PLAIN, (0,)), (TOLERANT, (1, 3)))
        for name in names
        for S in stragglers
    }
    assert got == expected and len(s.points) == 102 and not s.skipped
    assert {(p.targets, p.target_scale) for p in s.points} == {((1e-6,), "initial_gap")}


def test_trace_study_file_gives_the_scripts_numbers(tmp_path):
    """A point of the shipped file (grouping, S = 1, on trace ST), shortened, against the
    script's own pipeline (advise.compare on the Empirical model it built): the same numbers."""
    pytest.importorskip("sklearn")
    from lagc_jax import datasets, delays
    from lagc_jax.studies import advise

    shipped = load_study("trace_study")
    points = [
        dataclasses.replace(p, trials=4, iterations=60, targets=(1e-2,))
        for p in shipped.points
        if (p.delay, p.strategy, p.stragglers) == ("trace:ST", "grouping", 1)
    ]
    short = dataclasses.replace(shipped, points=tuple(points))
    run_study(short, tmp_path, log=quiet)
    rows, missing = study_files.read_rows(tmp_path, short)
    assert not missing
    model = delays.Empirical(
        delays.normalize_samples(datasets.straggler_trace("ST")), shuffle_columns=True
    )
    problem = datasets.breast_cancer(8)
    [candidate] = advise.compare(
        problem, model, 8, [1], names=["grouping"], num_iters=60, num_trials=4, seed=0
    )
    result = candidate.result
    reach = result.to_reach(1e-2 * float(np.mean(result.gap[:, 0])))
    assert len(points) == 1 and len(rows) == 4 and np.isfinite(reach["wall_clock"]).all()
    for q in ("iterations", "wall_clock", "uploads", "computations", "bits_up"):
        np.testing.assert_array_equal([r[f"{q}_to_0.01"] for r in rows], reach[q])


def test_shipped_reproduce_study_is_the_reproduce_grid():
    """Every run of `lagc-jax reproduce` (StudyConfig.full()) is a point of reproduce.toml,
    and every point is one of its runs (up to the runs reproduce reuses: strategies that
    ignore S, and the shared link at τ = 0, which it takes from the parallel one)."""
    config = study.StudyConfig.full()
    specs = {"exponential": "exp:1", "pareto": "pareto:1,1.5"}
    for dist, spec in specs.items():
        assert lj.delays.parse_delay(spec) == study.DISTRIBUTIONS[dist]

    def key(name, options, S, dist, tau, link, trials, iterations, alpha=1.0):
        independent = name in study.S_INDEPENDENT
        return (
            name,
            tuple(sorted(options.items())),
            None if independent else S,
            specs[dist],
            float(tau) * study.mean_unit_time(study.DISTRIBUTIONS[dist]),
            link if tau else "parallel",
            trials,
            iterations,
            alpha,
        )

    M, S0, iters = config.workers, config.stragglers, config.iters
    expected = set()
    for dist in config.distributions:
        for name in config.strategies:
            options = study.strategy_options(name, M, S0)
            expected.add(
                key(
                    name,
                    options,
                    S0,
                    dist,
                    0,
                    "parallel",
                    config.trials,
                    study.study_updates(name, M, S0, iters),
                )
            )
        for S in config.s_values:
            for name in dict.fromkeys((*study.NON_LAZY, *config.s_sweep_strategies)):
                expected.add(
                    key(
                        name,
                        {},
                        S,
                        dist,
                        0,
                        "parallel",
                        config.sweep_trial_count,
                        config.s_sweep_iters,
                    )
                )
        for k in config.k_values:
            for alpha in config.async_step_grid:
                expected.add(
                    key(
                        "k-async",
                        {"k": k},
                        0,
                        dist,
                        0,
                        "parallel",
                        config.sweep_trial_count,
                        -(-iters * M // k),
                        alpha,
                    )
                )
    for dist in config.tau_distributions:
        for link in config.links:
            for tau in config.taus:
                for name in config.tau_strategies:
                    expected.add(
                        key(name, {}, S0, dist, tau, link, config.sweep_trial_count, iters)
                    )
    spec_to_dist = {v: k for k, v in specs.items()}
    got = set()
    s = load_study("reproduce")
    for p in s.points:
        assert p.workers == M and p.problem == "lag_synthetic" and p.seed == config.seed
        unit = study.mean_unit_time(study.DISTRIBUTIONS[spec_to_dist[p.delay]])
        got.add(
            key(
                p.strategy,
                json.loads(p.options),
                p.stragglers,
                spec_to_dist[p.delay],
                p.upload_time / unit,
                p.link,
                p.trials,
                p.iterations,
                p.step_size_times_L,
            )
        )
    assert got == expected
    assert set(s.points[0].targets) == {config.target_gap, config.async_target_gap}
