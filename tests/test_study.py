"""The reproduction study (lagc-jax reproduce) and the per-iteration table (lagc-jax table)."""

import math
import re

import numpy as np
import pytest

from lagc_jax import analysis, cli, delays, plotting, strategies
from lagc_jax.studies import paper as study
from lagc_jax.studies import statistics
from lagc_jax.results import Result, median_interval

# A small grid of the full study, compiled once for the module (about 40 programs: the
# module's time is their compilation). The main study runs the paper's ten strategies (the
# colour test needs them all in the figures) and the asynchronous ones, in registry order,
# on both distributions; the other registered strategies would only add programs, the
# default study runs them (test_the_default_study_runs_every_registered_strategy) and other
# modules run each of them. A two-point S sweep of the strategies with an analysis, a
# two-point τ sweep on both links and the k sweep's two ends (k = 1 is async, k = M is gd;
# each k is a program of its own).
SMALL = dict(
    workers=6,
    stragglers=1,
    trials=24,
    iters=150,
    strategies=(
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
    ),
    s_values=(0, 1),
    s_sweep_iters=150,
    taus=(0.0, 1.0),
    tau_strategies=("gd", "lag-wk", "g-lag"),
    s_sweep_strategies=("gd", "gc", "grouping"),
    k_values=(1, 6),
    async_step_grid=(0.5, 1.0),
)


@pytest.fixture(scope="module")
def study_out(tmp_path_factory):
    root = tmp_path_factory.mktemp("reproduce")
    config = study.StudyConfig.quick(**SMALL)
    out = study.reproduce(config, root / "figures", root / "runs", log=lambda m: None)
    out["root"] = root
    return out


def test_outputs_exist(study_out):
    figures = study_out["root"] / "figures"
    for name in (
        "convergence_exponential.png",
        "convergence_pareto.png",
        "tradeoff.png",
        "iteration_time_vs_S.png",
        "sweep_S.png",
        "sweep_tau.png",
        "table.md",
        "table.csv",
        "sweep_S.csv",
        "sweep_tau.csv",
        "async_k.png",
        "sweep_k.csv",
    ):
        assert (figures / name).stat().st_size > 0, name
    for dist in ("exponential", "pareto"):
        for name in SMALL["strategies"]:
            assert (study_out["root"] / "runs" / f"main_{dist}_{name}.npz").exists()
            assert (study_out["root"] / "runs" / f"main_{dist}_{name}.json").exists()
    assert set(study_out["figures"]) == {str(p) for p in figures.glob("*.png")}


def test_table_matches_saved_results(study_out):
    csv_rows = study.read_table_csv(study_out["table_csv"])
    md = study_out["table_md"].read_text()
    assert set(csv_rows) == {"exponential", "pareto"}
    for dist, rows in csv_rows.items():
        assert list(rows) == list(SMALL["strategies"])
        unit = study.mean_unit_time(study.DISTRIBUTIONS[dist])
        section = md.split(f"## {dist}")[1].split("##")[0]
        for name, row in rows.items():
            assert f"| {name} |" in section
            r = Result.load(study_out["root"] / "runs" / f"main_{dist}_{name}.npz")
            assert r.num_trials == SMALL["trials"] and r.config["seed"] == 0
            reach = r.to_reach(1e-6)
            uploads = median_interval(reach["uploads"])
            assert row["uploads_median"] == uploads[0]
            assert (row["uploads_lo"], row["uploads_hi"]) == uploads[1:]
            if math.isfinite(uploads[0]):
                assert row["uploads_median"] == np.median(reach["uploads"])
            wall = median_interval(reach["wall_clock"])
            assert row["wall_clock_median"] == pytest.approx(wall[0] / unit, rel=1e-9)
            comp = median_interval(reach["computations"])
            assert row["computations_median"] == comp[0]
            assert row["reached"] == pytest.approx(np.mean(~np.isnan(reach["wall_clock"])))
            assert row["diverged"] == r.diverged.sum()
    # fastest-k is approximate: it never reaches 1e-6; exact ones all do
    for dist, rows in csv_rows.items():
        assert rows["fastest-k"]["reached"] == 0
        for name in ("gd", "gc", "grouping", "lag-wk", "lag-ps", "g-lag-wk"):
            assert rows[name]["reached"] == 1, (dist, name)


def test_common_random_numbers(study_out):
    """gd, grouping and gc wall clocks at k = 1 are functions of the same draws."""
    runs = study_out["root"] / "runs"
    gd = Result.load(runs / "main_exponential_gd.npz")
    lag_wk = Result.load(runs / "main_exponential_lag-wk.npz")
    # lag-wk waits for all M messages at τ = 0, like gd: identical iteration times
    np.testing.assert_allclose(gd.wall_clock, lag_wk.wall_clock, rtol=1e-12)


def test_conclusion_lines_name_argmin(study_out):
    csv_rows = study.read_table_csv(study_out["table_csv"])
    md = study_out["table_md"].read_text()
    for dist, rows in csv_rows.items():
        med = {n: r["wall_clock_median"] for n, r in rows.items()}
        fastest = min(med, key=med.get)
        up = {n: (r["uploads_median"], r["wall_clock_median"]) for n, r in rows.items()}
        fewest = min(up, key=up.get)
        line = next(row for row in md.splitlines() if row.startswith(f"- **{dist}**"))
        assert re.search(rf"fastest: \*\*{re.escape(fastest)}\*\*", line), line
        assert re.search(rf"fewest uploads: \*\*{re.escape(fewest)}\*\*", line), line
        assert study.conclusions(study_out["tables"][dist]) == {
            "fastest": fastest,
            "fewest_uploads": fewest,
        }


def test_s_sweep_analytic_vs_monte_carlo(study_out):
    rows = [r for r in study_out["s_sweep"] if r["strategy"] in analysis.NON_LAZY_STRATEGIES]
    checked = 0
    for r in rows:
        delay = study.DISTRIBUTIONS[r["distribution"]]
        expected = analysis.expected_iteration_time(
            r["strategy"], SMALL["workers"], r["S"], delay
        ) / study.mean_unit_time(delay)
        assert r["analytic_iteration_time"] == pytest.approx(expected, rel=1e-12)
        # Pareto(shape 1.5): the iteration time has infinite variance unless the
        # wait rule discards the largest draw (S ≥ 1, and never for gd): the
        # standard error is then meaningless, so only finite-variance cases count.
        if r["distribution"] == "pareto" and (r["S"] == 0 or r["strategy"] == "gd"):
            continue
        assert r["mc_iteration_time_se"] > 0
        z = (r["mc_iteration_time"] - expected) / r["mc_iteration_time_se"]
        assert abs(z) < 4, r
        checked += 1
    assert checked >= 10
    # S = 0: gc and grouping are gd (same delays, same iteration time)
    s0 = {(r["distribution"], r["strategy"]): r["mc_iteration_time"] for r in rows if r["S"] == 0}
    for dist in ("exponential", "pareto"):
        assert s0[(dist, "gc")] == pytest.approx(s0[(dist, "gd")], rel=1e-12)
        assert s0[(dist, "grouping")] == pytest.approx(s0[(dist, "gd")], rel=1e-12)


def test_tau_sweep_rows(study_out):
    rows = study_out["tau_sweep"]
    assert {(r["link"], r["tau"], r["strategy"]) for r in rows} == {
        (link, tau, name)
        for link in ("parallel", "shared")
        for tau in (0.0, 1.0)
        for name in SMALL["tau_strategies"]
    }
    by = {(r["link"], r["tau"], r["strategy"]): r for r in rows}
    for name in SMALL["tau_strategies"]:
        # τ = 0: both links are the same run; uploads to target do not depend on τ
        assert (
            by[("shared", 0.0, name)]["wall_clock_median"]
            == by[("parallel", 0.0, name)]["wall_clock_median"]
        )
        assert (
            by[("parallel", 1.0, name)]["uploads_median"]
            == by[("parallel", 0.0, name)]["uploads_median"]
        )
        # uploads take time: slower with τ > 0, and the shared link is the slower one
        assert (
            by[("parallel", 1.0, name)]["wall_clock_median"]
            > by[("parallel", 0.0, name)]["wall_clock_median"]
        )
        assert (
            by[("shared", 1.0, name)]["wall_clock_median"]
            >= by[("parallel", 1.0, name)]["wall_clock_median"]
        )
    # gd pays τ on every iteration: its time grows by ≈ τ·E[X] per iteration (parallel link)
    iters = study.read_table_csv(study_out["table_csv"])["exponential"]["gd"]["iterations_median"]
    grow = (
        by[("parallel", 1.0, "gd")]["wall_clock_median"]
        - by[("parallel", 0.0, "gd")]["wall_clock_median"]
    )
    assert grow == pytest.approx(iters, rel=0.05)


def test_one_colour_per_strategy_across_figures(study_out):
    builtin = strategies.names()[:10]
    palette = {name: plotting.color(name).lower() for name in builtin}
    seen = {}
    for path, colors in study_out["figures"].items():
        strategy_lines = {k: v for k, v in colors.items() if k in palette}
        assert strategy_lines, path
        for name, color in strategy_lines.items():
            assert color == palette[name], (path, name)
            seen.setdefault(name, set()).add(color)
    assert set(seen) == set(builtin)
    assert all(len(c) == 1 for c in seen.values())
    assert len(set(palette.values())) == len(palette)


def test_the_default_study_runs_every_registered_strategy():
    """The fixture's study runs a subset; `lagc-jax reproduce` (full or --quick) runs all."""
    for config in (study.StudyConfig.full(), study.StudyConfig.quick()):
        assert config.strategies == strategies.names()


def test_on_grid_and_band():
    r = Result(
        iterations=np.arange(3),
        loss=np.array([[3.0, 2.0, 1.0], [3.0, 1.5, np.nan]]),
        gap=np.array([[2.0, 1.0, 0.0], [2.0, 0.5, np.nan]]),
        wall_clock=np.array([[0.0, 1.0, 2.0], [0.0, 2.0, 4.0]]),
        uploads=np.array([[0, 4, 8], [0, 2, 4]]),
        downloads=np.zeros((2, 3), int),
        computations=np.zeros((2, 3), int),
        diverged=np.array([False, True]),
        optimal_value=1.0,
    )
    g = statistics.on_grid(r, "uploads", [0, 3, 4, 9])
    np.testing.assert_array_equal(g, [[2.0, 2.0, 1.0, 0.0], [2.0, 0.5, np.inf, np.inf]])
    np.testing.assert_array_equal(statistics.on_grid(r, "wall_clock", [1.5]), [[1.0], [2.0]])
    np.testing.assert_array_equal(statistics.running_fraction(r, "uploads", [0, 5, 9]), [1, 0.5, 0])
    np.testing.assert_array_equal(statistics.band(g, (0.5,))[0], [2.0, 0.5, 1.0, 0.0])


def test_reproduce_cli_wiring(monkeypatch, tmp_path):
    seen = {}

    def fake(config, out, runs):
        seen.update(config=config, out=out, runs=runs)
        (tmp_path / "table.md").write_text("table\n")
        return {"table_md": tmp_path / "table.md"}

    monkeypatch.setattr(study, "reproduce", fake)
    assert (
        cli.main(
            [
                "reproduce",
                "--quick",
                "--out",
                str(tmp_path),
                "--trials",
                "7",
                "--s-values",
                "0,1",
                "--taus",
                "0,0.5",
            ]
        )
        == 0
    )
    c = seen["config"]
    assert (c.trials, c.iters, c.s_values, c.taus) == (7, 300, (0, 1), (0.0, 0.5))
    assert seen["out"] == str(tmp_path) and seen["runs"] == "results/reproduce"
    assert cli.main(["reproduce"]) == 0
    assert seen["config"] == study.StudyConfig.full()
    assert seen["config"].trials == 1000 and seen["config"].workers == 12


def _parse_table(text):
    rows = {}
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 7 and cells[1] in study.QUANTITIES:
            rows[(cells[0], cells[1])] = cells
    return rows


def test_table_command_against_analysis(study_out, capsys):
    """`lagc-jax table --strategy NAME` for each strategy of the study fixture, on its shapes
    (the compiled programs are reused). That the table's default runs every registered
    strategy that applies: test_cli.py::test_strategies_that_do_not_apply_are_skipped_with_a_note.
    """
    M, S, trials, iters = SMALL["workers"], SMALL["stragglers"], SMALL["trials"], SMALL["iters"]
    rows = {}
    for name in SMALL["strategies"]:
        argv = ["table", "--strategy", name, "--workers", str(M), "--stragglers", str(S)]
        argv += ["--delay", "exp:2,0.5", "--trials", str(trials), "--iters", str(iters)]
        assert cli.main(argv) == 0
        rows.update(_parse_table(capsys.readouterr().out))
    delay = delays.ShiftedExponential(shift=0.5, rate=2.0)
    assert {name for name, _ in rows} == set(SMALL["strategies"])
    for name in analysis.NON_LAZY_STRATEGIES:
        costs = analysis.expected_iteration_costs(name, M, S, delay)
        for q in study.QUANTITIES:
            cells = rows[(name, q)]
            assert float(cells[2]) == pytest.approx(costs[q], abs=5e-5)
            assert cells[3] == "exact"
            assert abs(float(cells[6])) < 4, cells
    for cells in rows.values():
        if cells[3] == "none":  # no analysis (async, k-async): Monte Carlo only
            assert cells[2] == "nan" and cells[6] == "—", cells
            continue
        if cells[3] == "bound":
            assert cells[6] == "bound holds"
            assert float(cells[4]) <= float(cells[2]) + 1e-9
        else:
            assert abs(float(cells[6])) < 4, cells
    # lag-ps and g-lag at τ = 0 ask fewer workers: their mean time is below gd / grouping
    assert float(rows[("lag-ps", "time")][4]) < float(rows[("gd", "time")][4])


def test_iteration_table_lazy_given_n(study_out):
    """Lazy rows: the analytic value is the conditional analysis averaged over observed n."""
    rows = study.iteration_table(
        SMALL["workers"],
        SMALL["stragglers"],
        delays.ShiftedExponential(),
        trials=SMALL["trials"],
        iters=SMALL["iters"],
        seed=3,
        names=("g-lag", "lag-wk"),
    )
    by = {(r["strategy"], r["quantity"]): r for r in rows}
    for name in ("g-lag", "lag-wk"):
        assert by[(name, "uploads")]["analytic"] == pytest.approx(by[(name, "uploads")]["mc_mean"])
        assert by[(name, "uploads")]["se"] == 0  # delay-independent triggers
        assert abs(by[(name, "time")]["z"]) < 4


def test_table_command_bad_input(capsys):
    assert cli.main(["table", "--delay", "exp:-1"]) == 2
    assert "rate must be finite" in capsys.readouterr().err
    assert cli.main(["table", "--strategy", "nope"]) == 2


def test_async_in_the_main_study_and_the_k_sweep(study_out):
    """async and k-async (k = M − S) run in the main study with ⌈iters·M/k⌉ updates; the
    k sweep's k = M row at α = 1/L is gd's main run (same delays, same iterates)."""
    M, S, iters = SMALL["workers"], SMALL["stragglers"], SMALL["iters"]
    runs = study_out["root"] / "runs"
    k_async = Result.load(runs / "main_exponential_k-async.npz")
    assert k_async.iterations[-1] == -(-iters * M // (M - S))
    assert (np.diff(k_async.uploads, axis=1) == M - S).all()
    one = Result.load(runs / "main_pareto_async.npz")
    assert one.iterations[-1] == iters * M and (np.diff(one.uploads, axis=1) == 1).all()
    rows = study_out["k_sweep"]
    assert {(r["distribution"], r["k"], r["step_size_times_L"]) for r in rows} == {
        (d, k, a)
        for d in ("exponential", "pareto")
        for k in SMALL["k_values"]
        for a in SMALL["async_step_grid"]
    }
    for dist in ("exponential", "pareto"):
        gd = Result.load(runs / f"main_{dist}_gd.npz")
        unit = study.mean_unit_time(study.DISTRIBUTIONS[dist])
        row = next(
            r for r in rows if (r["distribution"], r["k"], r["step_size_times_L"]) == (dist, M, 1.0)
        )
        wall = median_interval(gd.to_reach(study.ASYNC_TARGET_GAP)["wall_clock"])
        assert row["wall_clock_median"] == pytest.approx(wall[0] / unit, rel=1e-12)
        assert row["final_gap_median"] == pytest.approx(np.median(gd.gap[:, -1]), rel=1e-9)
        assert row["reached_target"] == 1.0
        # k = 1 with a constant step hovers above f*: it ends far above gd's gap
        async_row = next(
            r for r in rows if (r["distribution"], r["k"], r["step_size_times_L"]) == (dist, 1, 1.0)
        )
        assert async_row["final_gap_lo"] > 1e3 * row["final_gap_hi"]
    best = study.best_step_rows(rows)
    assert len(best) == 2 * len(SMALL["k_values"])
    for r in best:
        same = [o for o in rows if (o["distribution"], o["k"]) == (r["distribution"], r["k"])]
        assert r["wall_clock_median"] == min(o["wall_clock_median"] for o in same)
    md = study_out["table_md"].read_text()
    assert "## Asynchronous baselines" in md and "| 1 | 1" in md
