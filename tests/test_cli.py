"""The lagc-jax command line."""

import math

import numpy as np
import pytest

import lagc_jax
from lagc_jax import cli, strategies
from lagc_jax.results import Result, median_interval


def test_run_writes_results_and_prints_table(tmp_path, capsys):
    stem = tmp_path / "study"
    code = cli.main(
        [
            "run",
            "--strategy",
            "gc",
            "--workers",
            "6",
            "--stragglers",
            "1",
            "--delay",
            "pareto:1,2",
            "--trials",
            "8",
            "--iters",
            "300",
            "--target-gap",
            "1e-4",
            "--out",
            str(stem),
        ]
    )
    assert code == 0
    out = capsys.readouterr().out
    assert "| gc |" in out and "f − f* ≤ 0.0001" in out
    result = Result.load(tmp_path / "study_gc.npz")
    assert result.loss.shape == (8, 301)
    assert result.config["delay"] == {"Pareto": [1.0, 2.0]}
    # the printed median uploads are the median over trials of the saved run
    uploads = np.median(result.to_reach(1e-4)["uploads"])
    assert f"| {uploads:.0f} [" in out
    # every metric present has a column: bits on the wire, 32 bits per coordinate
    assert "| bits down | bits up |" in out
    bits = np.median(result.to_reach(1e-4)["bits_up"])
    assert bits == 32 * 50 * uploads and f"| {bits:.3g} [" in out


@pytest.mark.slow  # every registered strategy compiled and run (about a minute on 2 cores)
def test_run_all_strategies_small(tmp_path, capsys):
    assert (
        cli.main(
            [
                "--workers",
                "4",
                "--stragglers",
                "1",
                "--trials",
                "3",
                "--iters",
                "20",
                "--out",
                str(tmp_path / "all"),
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    for name in (
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
        *strategies.names(),
    ):
        assert f"| {name} |" in out
    assert len(list(tmp_path.glob("all_*.npz"))) == len(strategies.names())


@pytest.mark.parametrize(
    "argv, message",
    [
        (["run", "--strategy", "nope"], "unknown strategy 'nope'"),
        (["run", "--delay", "exp:-1"], "rate must be finite and > 0"),
        (["run", "--workers", "4", "--stragglers", "4"], "stragglers must be an integer in"),
    ],
)
def test_run_reports_bad_input(argv, message, capsys):
    assert cli.main(argv) == 2
    assert message in capsys.readouterr().err


# --------------------------------------------------------------------------- #
# errors: one line on stderr naming the flag, exit status 2, before anything runs
# --------------------------------------------------------------------------- #
@pytest.mark.parametrize(
    "argv, line",
    [
        (["run", "--trials", "0"], "lagc-jax run: --trials must be an integer >= 1, got 0"),
        (["run", "--trials", "x"], "lagc-jax run: --trials must be an integer >= 1, got 'x'"),
        (["run", "--iters", "0"], "lagc-jax run: --iters must be an integer >= 1, got 0"),
        (
            ["run", "--upload-time", "-1"],
            "lagc-jax run: --upload-time must be a finite number >= 0, got '-1'",
        ),
        (
            ["run", "--latency", "-1"],
            "lagc-jax run: --latency must be a finite number >= 0, got '-1'",
        ),
        (
            ["run", "--delay", "weibull:1,-2"],
            "lagc-jax run: --delay: shape must be finite and > 0, got -2.0",
        ),
        (["run", "--delay", "lognormal:0,0"], "lagc-jax run: --delay: sigma must be"),
        (["run", "--delay", "bimodal:1,4,1.5"], "lagc-jax run: --delay: p_slow must be"),
        (
            ["run", "--broadcast-time", "inf"],
            "lagc-jax run: --broadcast-time must be a finite number >= 0, got 'inf'",
        ),
        (
            ["run", "--link", "foo"],
            "lagc-jax run: --link must be one of parallel, shared, got 'foo'",
        ),
        (["run", "--seed", "-1"], "lagc-jax run: --seed must be an integer >= 0, got -1"),
        (
            ["run", "--seed", str(2**63)],
            f"lagc-jax run: --seed must be an integer in [0, 2**63 - 1], got {2**63}",
        ),
        (
            ["run", "--float32", "--seed", str(2**32)],
            f"lagc-jax run: --seed must be an integer in [0, 2**32 - 1], got {2**32}",
        ),
        (["run", "--xi", "nan"], "lagc-jax run: --xi must be a finite number >= 0, got 'nan'"),
        (
            ["run", "--target-gap", "0"],
            "lagc-jax run: --target-gap must be a finite number > 0, got '0'",
        ),
        (["run", "--workers", "0"], "lagc-jax run: --workers must be an integer >= 1, got 0"),
        (
            ["run", "--workers", "4", "--stragglers", "4"],
            "lagc-jax run: --stragglers must be an integer in [0, --workers - 1 = 3], got 4",
        ),
        (
            ["run", "--delay", "weibull:1"],
            "lagc-jax run: --delay: delay must be 'exp:RATE[,SHIFT]'",
        ),
        (
            ["run", "--strategy", "grouping", "--workers", "5", "--stragglers", "1"],
            "lagc-jax run: --strategy grouping: fractional repetition needs",
        ),
        (["table", "--trials", "1"], "lagc-jax table: --trials must be an integer >= 2, got 1"),
        (["table", "--link", "x"], "lagc-jax: unrecognized arguments: --link x"),
        (
            ["table", "--upload-time", "-2"],
            "lagc-jax table: --upload-time must be a finite number >= 0, got '-2'",
        ),
        (["run", "--bits", "0"], "lagc-jax run: --bits must be an integer >= 1, got 0"),
        (
            ["run", "--deadline", "0"],
            "lagc-jax run: --deadline must be a finite number > 0, got '0'",
        ),
        (
            ["run", "--straggle-probability", "1"],
            "lagc-jax run: --straggle-probability must be a number in [0, 1), got '1'",
        ),
        (
            ["run", "--strategy", "gd", "--bits", "4"],
            "lagc-jax run: --bits does not apply to strategy 'gd' (it has no bits option)",
        ),
        (
            ["run", "--strategy", "qgd", "--deadline", "2"],
            "lagc-jax run: --deadline does not apply to strategy 'qgd' (it has no deadline option)",
        ),
        (
            ["run", "--strategy", "deadline", "--straggle-probability", "0.1"],
            "lagc-jax run: --straggle-probability does not apply to strategy 'deadline' (it has no "
            "straggle_probability option)",
        ),
        (
            [
                "run",
                "--strategy",
                "sgc",
                "--workers",
                "4",
                "--stragglers",
                "1",
                "--deadline",
                "0.5",
                "--upload-time",
                "1",
            ],
            "lagc-jax run: --strategy sgc: --deadline 0.5: every message misses it (P(2·X + link time "
            "> T) = 1); raise it or give --straggle-probability",
        ),
    ],
)
def test_bad_input_is_one_line_naming_the_flag(argv, line, capsys):
    assert cli.main(argv) == 2
    captured = capsys.readouterr()
    assert captured.err.startswith(line) and captured.err.count("\n") == 1, captured.err
    assert "Traceback" not in captured.err and captured.out == ""


def test_links_match_the_engine():
    from lagc_jax import timing

    assert cli.run.LINKS is timing.LINKS


def test_unwritable_out_is_reported_before_simulating(tmp_path, capsys, monkeypatch):
    import lagc_jax

    blocker = tmp_path / "file"
    blocker.write_text("")
    ran = []
    monkeypatch.setattr(lagc_jax, "simulate", lambda *a, **k: ran.append(1))
    assert cli.main(["run", "--strategy", "gd", "--out", str(blocker / "sub" / "run")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"lagc-jax run: --out: cannot write to {blocker / 'sub'}")
    assert err.count("\n") == 1 and not ran


def test_strategies_that_do_not_apply_are_skipped_with_a_note(tmp_path, capsys, monkeypatch):
    """M = 5, S = 1: (S + 1) does not divide M, so grouping, g-lag, g-lag-wk do not apply.
    (The runs themselves are replaced by a recorder: test_run_all_strategies_small runs them.)"""
    import lagc_jax
    from lagc_jax.studies import paper as study
    from test_results import small_result

    ran, tabled = [], []
    monkeypatch.setattr(
        lagc_jax, "simulate", lambda p, s, *a, **k: ran.append(s.name) or small_result()
    )
    monkeypatch.setattr(study, "iteration_table", lambda *a, names, **k: tabled.extend(names) or [])
    monkeypatch.setattr(study, "format_iteration_table", lambda rows, header: header)
    assert (
        cli.main(
            [
                "run",
                "--workers",
                "5",
                "--stragglers",
                "1",
                "--trials",
                "2",
                "--iters",
                "5",
                "--out",
                str(tmp_path / "r"),
            ]
        )
        == 0
    )
    captured = capsys.readouterr()
    notes = [line for line in captured.err.splitlines() if "note: skipping" in line]
    fractional = ["grouping", "g-lag", "g-lag-wk", "erasurehead"]  # in registration order
    assert [note.split()[4].rstrip(":") for note in notes] == [
        n for n in fractional if n in strategies.names()
    ]
    applicable = [n for n in strategies.names() if n not in fractional]
    for name in applicable:
        assert f"| {name} |" in captured.out
    assert "| grouping |" not in captured.out
    assert len(list(tmp_path.glob("r_*.npz"))) == len(applicable)
    assert (
        cli.main(
            [
                "table",
                "--workers",
                "5",
                "--stragglers",
                "1",
                "--trials",
                "2",
                "--iters",
                "3",
                "--strategy",
                "all",
            ]
        )
        == 0
    )
    captured = capsys.readouterr()
    assert captured.err.count("note: skipping") == len(notes)
    assert ran == applicable and tabled == applicable


def test_dotted_out_stem_keeps_its_dots(tmp_path, capsys):
    assert (
        cli.main(
            [
                "run",
                "--strategy",
                "gd",
                "--workers",
                "4",
                "--stragglers",
                "1",
                "--trials",
                "2",
                "--iters",
                "5",
                "--out",
                str(tmp_path / "pareto_1.5"),
            ]
        )
        == 0
    )
    assert (tmp_path / "pareto_1.5_gd.npz").exists() and (tmp_path / "pareto_1.5_gd.json").exists()


def test_ctrl_c_stops_cleanly_and_keeps_written_files(tmp_path):
    """SIGINT while simulating: exit 130, one line, no traceback, no crash (3 tries, the signal
    0, 0.2 and 0.4 s after the first strategy's Result is saved, i.e. its .npz is written:
    Result.save writes the .json first and the .npz last)."""
    import signal
    import subprocess
    import sys
    import time

    for attempt in range(3):
        stem = tmp_path / f"try{attempt}" / "run"
        child = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "lagc_jax.cli",
                "run",
                "--workers",
                "4",
                "--stragglers",
                "1",
                "--trials",
                "20",
                "--iters",
                "20000",
                "--out",
                str(stem),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**__import__("os").environ, "JAX_PLATFORMS": "cpu"},
        )
        deadline = time.monotonic() + 120
        # wait until a strategy's Result is saved: simulation is under way
        while not list(stem.parent.glob("run_*.npz")) and time.monotonic() < deadline:
            assert child.poll() is None, child.communicate()
            time.sleep(0.05)
        assert list(stem.parent.glob("run_*.npz"))
        time.sleep(0.2 * attempt)
        child.send_signal(signal.SIGINT)
        out, err = child.communicate(timeout=60)
        assert child.returncode == 130, (child.returncode, err[-2000:])
        assert "Traceback" not in err
        assert (
            err.strip().splitlines()[-1]
            == "lagc-jax run: interrupted; files already written are kept"
        )
        assert (stem.parent / "run_gd.npz").exists() and (stem.parent / "run_gd.json").exists()
        assert not list(stem.parent.glob("*.tmp"))


def test_ctrl_c_during_garbage_collection_still_interrupts(tmp_path, capsys):
    """A KeyboardInterrupt raised inside a gc callback (jax has one) is dropped by Python
    with an 'Exception ignored' report; the CLI still stops, status 130, and prints no
    such report."""
    import gc
    import signal

    before, fired = signal.getsignal(signal.SIGINT), []

    def interrupt_once(phase, info):
        # once the CLI's handler is installed: Ctrl-C while the collector runs
        if not fired and phase == "start" and signal.getsignal(signal.SIGINT) is not before:
            fired.append(True)
            signal.raise_signal(signal.SIGINT)

    gc.callbacks.insert(0, interrupt_once)
    try:
        status = cli.main(
            [
                "run",
                "--strategy",
                "gd",
                "--workers",
                "4",
                "--stragglers",
                "1",
                "--trials",
                "2",
                "--iters",
                "5",
                "--out",
                str(tmp_path / "r"),
            ]
        )
    finally:
        gc.callbacks.remove(interrupt_once)
    err = capsys.readouterr().err
    assert fired and status == 130
    assert "Exception ignored" not in err and "Traceback" not in err
    assert (
        err.strip().splitlines()[-1] == "lagc-jax run: interrupted; files already written are kept"
    )
    assert signal.getsignal(signal.SIGINT) is before  # restored for the caller


# --------------------------------------------------------------------------- #
# bits, gradient error, final gaps; options passed to the strategies that have them
# --------------------------------------------------------------------------- #
def table_row(out, name):
    line = next(row for row in out.splitlines() if row.startswith(f"| {name} |"))
    return [c.strip() for c in line.strip("|").split("|")]


def test_stalled_strategy_shows_its_final_gap_and_error_and_figures(tmp_path, capsys):
    """fastest-k with a constant step does not reach 1e-6: its row shows the median gap at
    the end [interval], "—" for the quantities to the target, and its mean gradient error."""
    stem = tmp_path / "stall"
    assert (
        cli.main(
            [
                "run",
                "--strategy",
                "fastest-k",
                "--workers",
                "4",
                "--stragglers",
                "1",
                "--trials",
                "5",
                "--iters",
                "30",
                "--grad-error",
                "--figures",
                "--out",
                str(stem),
            ]
        )
        == 0
    )
    captured = capsys.readouterr()
    header = captured.out.splitlines()[2]
    assert header == (
        "| strategy | wall clock | uploads | computations | iterations | bits down "
        "| bits up | grad error | reached | diverged |"
    )
    assert "not reached: the gap at the end of the run" in captured.out.splitlines()[0]
    r = Result.load(tmp_path / "stall_fastest-k.npz")
    final = np.sort(r.gap[:, -1])
    assert final[0] > 1e-6  # no trial reaches the target
    med, lo, hi = median_interval(final)
    assert med == final[2]  # 5 trials: the middle one
    row = table_row(captured.out, "fastest-k")
    assert row[1] == f"not reached; final gap {med:.2g} [{lo:.2g}, {hi:.2g}]"
    assert row[2:7] == ["—"] * 5
    eta = np.sort(np.mean(r.grad_error[:, 1:], axis=1))  # per trial, its mean over rounds
    assert row[7].startswith(f"{eta[2]:.3g} [") and row[8:] == ["0%", "0"]
    for figure in ("stall_bits.png", "stall_grad_error.png"):
        assert (tmp_path / figure).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert f"wrote {tmp_path / figure}" in captured.err


def test_bits_reach_the_quantized_strategies(tmp_path, capsys):
    """--bits b: a qgd message is b·d + 32 bits (MODEL.md §9); the column is its bits to
    the target."""
    stem = tmp_path / "q"
    assert (
        cli.main(
            [
                "run",
                "--strategy",
                "qgd",
                "--bits",
                "8",
                "--workers",
                "4",
                "--stragglers",
                "1",
                "--trials",
                "3",
                "--iters",
                "40",
                "--target-gap",
                "1e-3",
                "--out",
                str(stem),
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    r = Result.load(tmp_path / "q_qgd.npz")
    d = 50
    np.testing.assert_array_equal(r.bits_up, (8 * d + 32) * r.uploads)
    np.testing.assert_array_equal(r.bits_down, 32 * d * r.downloads)
    bits = np.median(r.to_reach(1e-3)["bits_up"])
    assert np.isfinite(bits) and table_row(out, "qgd")[6].startswith(f"{bits:.3g} [")


def recorded(monkeypatch):
    """Replace simulate by a recorder of the strategies built (nothing is simulated)."""
    from test_results import small_result

    built = []
    monkeypatch.setattr(
        lagc_jax, "simulate", lambda p, s, *a, **k: built.append(s) or small_result()
    )
    return built


def test_deadline_alone_gives_sgc_the_probability_of_missing_it(tmp_path, capsys, monkeypatch):
    """Exponential(1) unit times, load S + 1 = 3, link time τ + latency = 0.75, T = 3:
    p = P(3X + 0.75 > 3) = exp(-0.75)."""
    built = recorded(monkeypatch)
    base = [
        "run",
        "--workers",
        "4",
        "--stragglers",
        "2",
        "--upload-time",
        "0.5",
        "--latency",
        "0.25",
        "--out",
        str(tmp_path / "r"),
    ]
    assert cli.main([*base, "--strategy", "sgc", "--deadline", "3"]) == 0
    err = capsys.readouterr().err
    sgc = built[-1]
    assert float(sgc.aggregate.straggle_probability) == pytest.approx(math.exp(-0.75), rel=1e-9)
    assert float(sgc.wait.deadline) == 3.0
    assert (
        f"lagc-jax run: note: sgc gets straggle_probability {math.exp(-0.75):.4g} = "
        "P(3·X + link time > --deadline 3)"
    ) in err
    # a given p is used as it is, without a note
    assert (
        cli.main([*base, "--strategy", "sgc", "--deadline", "3", "--straggle-probability", "0.1"])
        == 0
    )
    assert float(built[-1].aggregate.straggle_probability) == 0.1
    assert "note" not in capsys.readouterr().err
    # with every strategy: --deadline goes to deadline and sgc, with a note naming them
    built.clear()
    assert cli.main([*base, "--deadline", "3"]) == 0
    err = capsys.readouterr().err
    assert (
        "note: --deadline applies only to deadline, sgc (the others have no deadline option)" in err
    )
    by_name = {s.name: s for s in built}
    assert float(by_name["deadline"].wait.deadline) == 3.0
    assert float(by_name["sgc"].aggregate.straggle_probability) == pytest.approx(math.exp(-0.75))


def test_user_factory_with_a_deadline_keeps_its_own_probability(tmp_path, capsys, monkeypatch):
    """A user factory gets the options given (and accepted), nothing computed for it."""
    built, calls = recorded(monkeypatch), []

    def user_sgc(num_workers, stragglers, deadline=1.0, straggle_probability=0.5, bits=32):
        calls.append((deadline, straggle_probability, bits))
        return strategies.make("gd", num_workers, stragglers)

    strategies.register("user-sgc", user_sgc)
    try:
        base = [
            "run",
            "--strategy",
            "user-sgc",
            "--workers",
            "4",
            "--stragglers",
            "1",
            "--out",
            str(tmp_path / "r"),
        ]
        assert cli.main([*base, "--deadline", "2", "--bits", "6"]) == 0
        assert cli.main([*base, "--straggle-probability", "0.2"]) == 0
    finally:
        strategies.unregister("user-sgc")
    assert calls == [(2.0, 0.5, 6), (1.0, 0.2, 32)] and len(built) == 2
    assert "note" not in capsys.readouterr().err
