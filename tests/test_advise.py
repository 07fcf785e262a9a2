"""``lagc-jax advise``: ranking on measured times, its figure and its errors."""

import re

import numpy as np
import pytest

from lagc_jax import analysis, cli, delays, strategies
from lagc_jax.studies import advise

# one persistently slow worker (×5) among four; rows = measured steps
SMALL = "w0,w1,w2,w3\n5.0,1.0,1.1,0.9\n5.2,1.2,0.8,1.0\n4.8,0.9,1.0,1.3\n5.1,1.0,1.2,1.1\n"


def table_rows(text):
    return [
        [c.strip() for c in line.strip("|").split("|")]
        for line in text.splitlines()
        if re.match(r"\| \d+ \|", line)
    ]


def test_advise_ranks_strategies_on_a_small_csv(tmp_path, capsys):
    csv = tmp_path / "times.csv"
    csv.write_text(SMALL)
    out = tmp_path / "figs" / "small"
    rc = cli.main(
        [
            "advise",
            "--times",
            str(csv),
            "--problem",
            "lag_synthetic",
            "--trials",
            "24",
            "--iters",
            "60",
            "--stragglers",
            "1,2",
            "--strategies",
            "gd,gc,grouping",
            "--keep-columns",
            "--normalize",
            "none",
            "--quiet",
            "--out",
            str(out),
        ]
    )
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    # --quiet: what was read, no line per simulated strategy
    assert captured.err.splitlines() == [
        f"{csv}: 4 steps × 4 workers (header on line 1); row bootstrap of 4 measured steps, "
        "worker m = column m (columns as measured)"
    ]
    rows = table_rows(captured.out)
    labels = [f"{r[1]} S={r[2]}" for r in rows]
    # grouping S=2 does not apply (3 does not divide 4): skipped; gd ignores S, so gd S=2
    # has the trials of gd S=1 and is listed once
    assert sorted(labels) == ["gc S=1", "gc S=2", "gd S=1", "grouping S=1"]
    assert "gd S=1 = gd S=2" in captured.out
    times = [np.inf if r[3].startswith("not reached") else float(r[3].split()[0]) for r in rows]
    assert times == sorted(times)  # ranked by median wall clock
    assert f"Recommended: {labels[0]} " in captured.out
    # gd waits for the slow worker: the mean row maximum per iteration
    gd = rows[labels.index("gd S=1")]
    iters = float(gd[7].split()[0])
    assert gd[5].split()[0] == f"{32 * 50 * float(gd[4].split()[0]):.3g}"  # bits up: 32·d each
    per_iter = analysis.expected_iteration_time(
        "gd", 4, 0, delays.Empirical(np.loadtxt(csv, delimiter=",", skiprows=1))
    )
    assert per_iter == pytest.approx(np.mean([5.0, 5.2, 4.8, 5.1]))
    # median of 24 sums of `iters` row maxima (sd 0.15 each): SE of the median < 0.2
    assert abs(float(gd[3].split()[0]) - iters * per_iter) < 1.0
    # grouping pairs (w0, w1) and (w2, w3): about 2 × 1.1 per iteration, far below gd
    grouping = rows[labels.index("grouping S=1")]
    assert float(grouping[3].split()[0]) < 0.6 * float(gd[3].split()[0])
    assert labels.index("grouping S=1") < labels.index("gd S=1")
    assert "vs gd gd S=1" in captured.out
    png, md = out.with_name("small.png"), out.with_name("small.md")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "| rank | strategy |" in md.read_text()


def test_delay_from_times_row_bootstrap_or_pooled():
    times = np.array([[1.0, 3.0], [2.0, 6.0]])
    d, note = advise.delay_from_times(times, 2)
    assert not d.pooled and d.shuffle_columns and d.mean == pytest.approx(1.0)
    d, note = advise.delay_from_times(times, 3)
    assert d.pooled and note.startswith("pooled") and "3 workers but 2 measured columns" in note
    d, _ = advise.delay_from_times(times, 2, pooled=True, normalize="none")
    assert d.pooled and d.mean == pytest.approx(3.0)


@pytest.mark.parametrize(
    "argv, match",
    [
        ([], r"--times/--trace: give exactly one"),
        (["--trace", "AR", "--times", "x.csv"], r"--times/--trace: give exactly one"),
        (["--trace", "XY"], r"--trace: name must be one of AR, SE, ST"),
        (["--trace", "ST", "--trials", "0"], r"--trials: must be an integer >= 1, got 0"),
        (["--trace", "ST", "--iters", "-3"], r"--iters: must be an integer >= 1"),
        (["--trace", "ST", "--upload-time", "-1"], r"--upload-time: must be finite and >= 0"),
        (["--trace", "ST", "--latency", "-1"], r"--latency: must be finite and >= 0, got -1"),
        (["--trace", "ST", "--latency", "nan"], r"--latency: must be finite and >= 0, got nan"),
        (["--trace", "ST", "--link", "foo"], r"--link: must be one of parallel, shared, got 'foo'"),
        (["--trace", "ST", "--stragglers", "1,9"], r"--stragglers: each S must be in 0..7"),
        (["--trace", "ST", "--stragglers", "a"], r"--stragglers: must be comma-separated integers"),
        (["--trace", "ST", "--workers", "0"], r"--workers: must be an integer >= 1"),
        (["--trace", "ST", "--target-gap", "0"], r"--target-gap: must be finite and > 0"),
        (["--trace", "SE", "--problem", "lag_synthetic"], r"--problem: num_partitions must be"),
        (["--trace", "ST", "--trials", "abc"], r"argument --trials: invalid int value: 'abc'"),
        (["--trace", "ST", "--problem", "mnist"], r"argument --problem: invalid choice"),
    ],
)
def test_advise_errors_are_one_line_naming_the_flag(argv, match, capsys):
    rc = cli.main(["advise", *argv])  # argparse errors too: main returns the status
    err = capsys.readouterr().err
    assert rc == 2
    assert len(err.strip().splitlines()) == 1, err
    assert re.search(match, err), err


def test_advise_rejects_bad_csv_and_unwritable_out(tmp_path, capsys):
    bad = tmp_path / "bad.csv"
    bad.write_text("1,2,3\n4,5\n")
    assert cli.main(["advise", "--times", str(bad)]) == 2
    assert re.search(r"^lagc-jax advise: --times: .*ragged rows: line 2", capsys.readouterr().err)
    blocker = tmp_path / "file"
    blocker.write_text("")
    good = tmp_path / "good.csv"
    good.write_text(SMALL)
    assert cli.main(["advise", "--times", str(good), "--out", str(blocker / "sub" / "x")]) == 2
    assert "--out: cannot write" in capsys.readouterr().err


def test_run_accepts_problem(tmp_path, capsys):
    pytest.importorskip("sklearn")
    rc = cli.main(
        [
            "run",
            "--problem",
            "diabetes",
            "--strategy",
            "gd",
            "--workers",
            "4",
            "--stragglers",
            "0",
            "--trials",
            "2",
            "--iters",
            "5",
            "--target-gap",
            "10",
            "--out",
            str(tmp_path / "r"),
        ]
    )
    out = capsys.readouterr()
    assert rc == 0 and "| gd |" in out.out and "diabetes(P=4" in out.err


@pytest.mark.slow
def test_advise_every_strategy_on_a_trace(tmp_path, capsys):
    rc = cli.main(
        [
            "advise",
            "--trace",
            "ST",
            "--problem",
            "lag_synthetic",
            "--trials",
            "16",
            "--iters",
            "100",
            "--stragglers",
            "0,1",
            "--upload-time",
            "0.1",
            "--out",
            str(tmp_path / "st"),
        ]
    )
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    # each strategy has at least one (S) whose trials differ from every other's
    assert {r[1] for r in table_rows(captured.out)} == set(strategies.names())


def test_recommendation_names_gd_once_when_it_is_the_runner_up():
    import lagc_jax as lj

    ranked = advise.compare(
        lj.problems.lag_synthetic(4),
        lj.ShiftedExponential(),
        4,
        [1],
        names=["gd", "grouping"],
        num_iters=40,
        num_trials=40,
    )
    assert [c.label for c in ranked] == ["grouping S=1", "gd S=1"]
    text = advise.recommendation(ranked)
    assert text.count("gd S=1") == 1 and "vs the runner-up gd S=1" in text
    med, lo, hi = advise.paired_ratio(ranked[0], ranked[1])
    # Exp(1), M = 4, S = 1: gd 25/12 per iteration, grouping 2·E max of 2 Exp(2) = 1.5; both
    # need the same K iterations. Per-trial ratio of K-sums: sd ≈ 1.39·sqrt((1.42/K)/2.08² +
    # (1.25/K)/1.5²) ≤ 0.45 for K >= 8, so the median of 40 has SE <= 1.25·0.45/sqrt(40) = 0.09
    iters = ranked[0].summary["iterations"][0]
    assert iters == ranked[1].summary["iterations"][0] and iters >= 8
    assert lo <= med <= hi and abs(med - (25 / 12) / 1.5) < 4 * 0.09


def test_latency_adds_to_every_round_of_gd_and_ties_go_to_fewer_bits():
    """gd waits for every worker on a parallel link: each round lasts max X + latency, so on
    the same draws the wall clock to the target grows by latency × iterations, trial by
    trial."""
    import lagc_jax as lj

    run = dict(names=["gd", "grouping"], num_iters=40, num_trials=40)
    problem, delay = lj.problems.lag_synthetic(4), lj.ShiftedExponential()
    plain = {c.name: c for c in advise.compare(problem, delay, 4, [1], **run)}
    late = {c.name: c for c in advise.compare(problem, delay, 4, [1], latency=0.5, **run)}
    for name in ("gd", "grouping"):
        iterations = plain[name].reach["iterations"]
        assert np.isfinite(iterations).all()
        np.testing.assert_array_equal(late[name].reach["iterations"], iterations)
        np.testing.assert_allclose(
            late[name].reach["wall_clock"],
            plain[name].reach["wall_clock"] + 0.5 * iterations,
            rtol=1e-12,
        )
    # the ranking key: wall clock, then bits uploaded, then uploads
    a, b = plain["gd"], plain["grouping"]
    a.summary = dict(
        a.summary, wall_clock=(1.0, 1.0, 1.0), bits_up=(2.0, 2.0, 2.0), uploads=(1.0, 1.0, 1.0)
    )
    b.summary = dict(
        b.summary, wall_clock=(1.0, 1.0, 1.0), bits_up=(1.0, 1.0, 1.0), uploads=(5.0, 5.0, 5.0)
    )
    assert [c.name for c in advise.rank([a, b])] == ["grouping", "gd"]


def test_table_shows_the_final_gap_of_a_strategy_that_does_not_reach():
    never = (np.inf, 3.0, np.inf)
    summary = dict(
        wall_clock=never,
        uploads=never,
        bits_up=never,
        computations=never,
        iterations=never,
        final_gap=(0.0123, 0.01, 0.02),
        reached=0.2,
    )
    stalled = advise.Candidate("fastest-k", 1, summary, {}, result=None)
    table = advise.format_table([stalled], "f − f* ≤ 1e-06")
    assert table.splitlines()[0].endswith("; not reached: the gap at the end of the run")
    assert (
        "| 1 | fastest-k | 1 | not reached; final gap 0.012 [0.01, 0.02] | — | — | — | — | 20% |"
    ) in table
