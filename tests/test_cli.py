"""The lagc-jax command line."""

import numpy as np
import pytest

from lagc_jax import cli
from lagc_jax.results import Result


def test_run_writes_results_and_prints_table(tmp_path, capsys):
    stem = tmp_path / "study"
    code = cli.main(["run", "--strategy", "gc", "--workers", "6", "--stragglers", "1",
                     "--delay", "pareto:1,2", "--trials", "8", "--iters", "300",
                     "--target-gap", "1e-4", "--out", str(stem)])
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


def test_run_all_strategies_small(tmp_path, capsys):
    assert cli.main(["--workers", "4", "--stragglers", "1", "--trials", "3", "--iters", "20",
                     "--out", str(tmp_path / "all")]) == 0
    out = capsys.readouterr().out
    for name in ("gd", "fastest-k", "gc", "grouping", "lag-wk", "lag-ps", "lagc", "lagc-ps",
                 "g-lag", "g-lag-wk", "async", "k-async"):
        assert f"| {name} |" in out
    assert len(list(tmp_path.glob("all_*.npz"))) == 12


@pytest.mark.parametrize("argv, message", [
    (["run", "--strategy", "nope"], "unknown strategy 'nope'"),
    (["run", "--delay", "exp:-1"], "rate must be finite and > 0"),
    (["run", "--workers", "4", "--stragglers", "4"], "stragglers must be an integer in"),
])
def test_run_reports_bad_input(argv, message, capsys):
    assert cli.main(argv) == 2
    assert message in capsys.readouterr().err


# --------------------------------------------------------------------------- #
# errors: one line on stderr naming the flag, exit status 2, before anything runs
# --------------------------------------------------------------------------- #
@pytest.mark.parametrize("argv, line", [
    (["run", "--trials", "0"], "lagc-jax run: --trials must be an integer >= 1, got 0"),
    (["run", "--trials", "x"], "lagc-jax run: --trials must be an integer >= 1, got 'x'"),
    (["run", "--iters", "0"], "lagc-jax run: --iters must be an integer >= 1, got 0"),
    (["run", "--upload-time", "-1"],
     "lagc-jax run: --upload-time must be a finite number >= 0, got '-1'"),
    (["run", "--latency", "-1"], "lagc-jax run: --latency must be a finite number >= 0, got '-1'"),
    (["run", "--delay", "weibull:1,-2"], "lagc-jax run: --delay: shape must be finite and > 0, got -2.0"),
    (["run", "--delay", "lognormal:0,0"], "lagc-jax run: --delay: sigma must be"),
    (["run", "--delay", "bimodal:1,4,1.5"], "lagc-jax run: --delay: p_slow must be"),
    (["run", "--broadcast-time", "inf"],
     "lagc-jax run: --broadcast-time must be a finite number >= 0, got 'inf'"),
    (["run", "--link", "foo"], "lagc-jax run: --link must be one of parallel, shared, got 'foo'"),
    (["run", "--seed", "-1"], "lagc-jax run: --seed must be an integer >= 0, got -1"),
    (["run", "--seed", str(2**63)],
     f"lagc-jax run: --seed must be an integer in [0, 2**63 - 1], got {2**63}"),
    (["run", "--float32", "--seed", str(2**32)],
     f"lagc-jax run: --seed must be an integer in [0, 2**32 - 1], got {2**32}"),
    (["run", "--xi", "nan"], "lagc-jax run: --xi must be a finite number >= 0, got 'nan'"),
    (["run", "--target-gap", "0"], "lagc-jax run: --target-gap must be a finite number > 0, got '0'"),
    (["run", "--workers", "0"], "lagc-jax run: --workers must be an integer >= 1, got 0"),
    (["run", "--workers", "4", "--stragglers", "4"],
     "lagc-jax run: --stragglers must be an integer in [0, --workers - 1 = 3], got 4"),
    (["run", "--delay", "weibull:1"], "lagc-jax run: --delay: delay must be 'exp:RATE[,SHIFT]'"),
    (["run", "--strategy", "grouping", "--workers", "5", "--stragglers", "1"],
     "lagc-jax run: --strategy grouping: fractional repetition needs"),
    (["table", "--trials", "1"], "lagc-jax table: --trials must be an integer >= 2, got 1"),
    (["table", "--link", "x"], "lagc-jax: unrecognized arguments: --link x"),
    (["table", "--upload-time", "-2"],
     "lagc-jax table: --upload-time must be a finite number >= 0, got '-2'"),
])
def test_bad_input_is_one_line_naming_the_flag(argv, line, capsys):
    assert cli.main(argv) == 2
    captured = capsys.readouterr()
    assert captured.err.startswith(line) and captured.err.count("\n") == 1, captured.err
    assert "Traceback" not in captured.err and captured.out == ""


def test_links_match_the_engine():
    from lagc_jax import timing
    assert cli.LINKS == timing.LINKS


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
    from lagc_jax import study
    from test_results import small_result

    ran, tabled = [], []
    monkeypatch.setattr(lagc_jax, "simulate", lambda p, s, *a, **k: ran.append(s.name) or small_result())
    monkeypatch.setattr(study, "iteration_table", lambda *a, names, **k: tabled.extend(names) or [])
    monkeypatch.setattr(study, "format_iteration_table", lambda rows, header: header)
    assert cli.main(["run", "--workers", "5", "--stragglers", "1", "--trials", "2",
                     "--iters", "5", "--out", str(tmp_path / "r")]) == 0
    captured = capsys.readouterr()
    notes = [l for l in captured.err.splitlines() if "note: skipping" in l]
    assert [l.split()[4].rstrip(":") for l in notes] == ["grouping", "g-lag", "g-lag-wk"]
    applicable = ["gd", "fastest-k", "gc", "lag-wk", "lag-ps", "lagc", "lagc-ps", "async",
                  "k-async"]
    for name in applicable:
        assert f"| {name} |" in captured.out
    assert "| grouping |" not in captured.out
    assert len(list(tmp_path.glob("r_*.npz"))) == len(applicable)
    assert cli.main(["table", "--workers", "5", "--stragglers", "1", "--trials", "2",
                     "--iters", "3", "--strategy", "all"]) == 0
    captured = capsys.readouterr()
    assert captured.err.count("note: skipping") == 3
    assert ran == applicable and tabled == applicable


def test_dotted_out_stem_keeps_its_dots(tmp_path, capsys):
    assert cli.main(["run", "--strategy", "gd", "--workers", "4", "--stragglers", "1",
                     "--trials", "2", "--iters", "5", "--out", str(tmp_path / "pareto_1.5")]) == 0
    assert (tmp_path / "pareto_1.5_gd.npz").exists() and (tmp_path / "pareto_1.5_gd.json").exists()


def test_ctrl_c_stops_cleanly_and_keeps_written_files(tmp_path):
    """SIGINT while simulating: exit 130, one line, no traceback, no crash (3 tries)."""
    import signal
    import subprocess
    import sys
    import time

    for attempt in range(3):
        stem = tmp_path / f"try{attempt}" / "run"
        child = subprocess.Popen(
            [sys.executable, "-m", "lagc_jax.cli", "run", "--workers", "4", "--stragglers", "1",
             "--trials", "20", "--iters", "20000", "--out", str(stem)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env={**__import__("os").environ, "JAX_PLATFORMS": "cpu"})
        deadline = time.monotonic() + 120
        # wait until a strategy's file is written: simulation is under way
        while not list(stem.parent.glob("run_*.npz")) and time.monotonic() < deadline:
            assert child.poll() is None, child.communicate()
            time.sleep(0.05)
        assert list(stem.parent.glob("run_*.npz"))
        time.sleep(0.2 * attempt)
        child.send_signal(signal.SIGINT)
        out, err = child.communicate(timeout=60)
        assert child.returncode == 130, (child.returncode, err[-2000:])
        assert "Traceback" not in err
        assert err.strip().splitlines()[-1] == "lagc-jax run: interrupted; files already written are kept"
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
        status = cli.main(["run", "--strategy", "gd", "--workers", "4", "--stragglers", "1",
                           "--trials", "2", "--iters", "5", "--out", str(tmp_path / "r")])
    finally:
        gc.callbacks.remove(interrupt_once)
    err = capsys.readouterr().err
    assert fired and status == 130
    assert "Exception ignored" not in err and "Traceback" not in err
    assert err.strip().splitlines()[-1] == "lagc-jax run: interrupted; files already written are kept"
    assert signal.getsignal(signal.SIGINT) is before  # restored for the caller
