"""No silent wrong answers at the edges: measured-time files, ratio prints, --import, --k/--xi.

Every test here provokes a fault that once gave a wrong answer without a word (or a
traceback); none of them compiles a simulation.
"""

import importlib.resources
import re
import sys

import numpy as np
import pytest

import lagc_jax
from lagc_jax import cli, datasets, strategies
from lagc_jax.studies import advise


def write(tmp_path, text, name="times.csv", encoding="utf-8"):
    path = tmp_path / name
    path.write_text(text, encoding=encoding)
    return path


def unwritable(tmp_path):
    """An --out stem that cannot be written (a file stands where its folder should be)."""
    blocker = tmp_path / "blocker"
    blocker.write_text("")
    return str(blocker / "sub" / "out")


def one_line(err):
    assert err.count("\n") == 1 and err.endswith("\n"), err
    assert "Traceback" not in err
    return err.strip()


# --------------------------------------------------------------------------- #
# A. measured-time files
# --------------------------------------------------------------------------- #
def test_byte_order_mark_is_stripped(tmp_path):
    """Excel's "CSV UTF-8" starts with U+FEFF: the first row is data, `step` is a name."""
    plain = write(tmp_path, "\ufeff1.5,2\n3,4\n", encoding="utf-8")
    np.testing.assert_array_equal(datasets.load_times_csv(plain), [[1.5, 2], [3, 4]])
    named = write(tmp_path, "\ufeffstep,w0,w1\n7,1,2\n9,3,4\n", "named.csv")
    np.testing.assert_array_equal(datasets.load_times_csv(named), [[1, 2], [3, 4]])
    # the same file written with Python's utf-8-sig codec
    sig = write(tmp_path, "step,w0,w1\n7,1,2\n9,3,4\n", "sig.csv", encoding="utf-8-sig")
    np.testing.assert_array_equal(datasets.load_times_csv(sig), [[1, 2], [3, 4]])


@pytest.mark.parametrize(
    "text, where",
    [
        ("1.0,l.2,3\n1,2,3\n", r"line 1, column 2: 'l\.2' is not a number"),
        ("1.0,1.2,3x\n1,2,3\n", r"line 1, column 3: '3x' is not a number"),
        ("# measured\n\n0.9,,1.1\n1,2,3\n", r"line 3, column 2: '' is not a number"),
    ],
)
def test_typo_in_the_first_row_is_an_error_not_a_header(tmp_path, text, where):
    path = write(tmp_path, text)
    with pytest.raises(ValueError, match=where) as error:
        datasets.load_times_csv(path)
    assert str(path) in str(error.value) and "\n" not in str(error.value)


def test_comments_never_replace_the_header(tmp_path):
    after_header = write(tmp_path, "step,w0,w1\n# w0 is the slow one\n1,2,3\n2,4,5\n", "a.csv")
    np.testing.assert_array_equal(datasets.load_times_csv(after_header), [[2, 3], [4, 5]])
    stepped_comment = write(tmp_path, "w0,w1,w2\n# step,a,b\n5,2,3\n7,4,5\n", "b.csv")
    np.testing.assert_array_equal(datasets.load_times_csv(stepped_comment), [[5, 2, 3], [7, 4, 5]])
    between_rows = write(tmp_path, "w0,w1\n1,2\n# step,x\n3,4\n", "c.csv")
    np.testing.assert_array_equal(datasets.load_times_csv(between_rows), [[1, 2], [3, 4]])


def test_a_commented_header_of_the_right_width_still_names_the_columns(tmp_path):
    """The shipped traces' layout (`# step,rank0,...`), and docs/API.md's example."""
    path = write(tmp_path, "# step,w0,w1,w2\n1,0.9,1.0,3.1\n2,1.1,1.0,2.9\n")
    np.testing.assert_array_equal(datasets.load_times_csv(path), [[0.9, 1.0, 3.1], [1.1, 1.0, 2.9]])
    # a free-text comment is not a header: it does not name the data's columns
    notes = write(tmp_path, "# measured on 16 GPUs, seconds per step\n1.5,2.5\n3,4\n", "n.csv")
    np.testing.assert_array_equal(datasets.load_times_csv(notes), [[1.5, 2.5], [3, 4]])


@pytest.mark.parametrize(
    "name", ["step", "Step", "STEP", "iteration", "Iteration", "iter", "round", " Round "]
)
def test_step_index_column_is_recognised_by_name(tmp_path, name):
    path = write(tmp_path, f"{name},w0,w1\n1,2,3\n2,4,5\n")
    np.testing.assert_array_equal(datasets.load_times_csv(path), [[2, 3], [4, 5]])
    assert datasets.load_times_csv(path, step_column=False).shape == (2, 3)  # kept on request
    last = write(tmp_path, f"w0,w1,{name}\n2,3,1\n4,5,2\n", "last.csv")
    np.testing.assert_array_equal(datasets.load_times_csv(last), [[2, 3], [4, 5]])


def test_two_step_columns_are_refused(tmp_path):
    path = write(tmp_path, "step,iteration,w0\n1,1,2\n2,2,3\n")
    with pytest.raises(ValueError, match=r"two step index columns .*'step'.*'iteration'"):
        datasets.load_times_csv(path)


@pytest.mark.parametrize(
    "text",
    [
        "0,1.0,2.0\n1,1.1,2.1\n2,0.9,2.2\n",  # a 0-based index, no header
        "1,1.0,2.0\n2,1.1,2.1\n3,0.9,2.2\n",  # a 1-based index, no header
        ",w0,w1\n0,1.0,2.0\n1,1.1,2.1\n",  # pandas' to_csv: an unnamed index column
        "# run 3\n1,1.0,2.0\n\n2,1.1,2.1\n",
    ],
)
def test_unnamed_index_column_is_refused_with_a_hint(tmp_path, text):
    path = write(tmp_path, text)
    with pytest.raises(
        ValueError,
        match=r"column 1 looks like a step index .*name it 'step'"
        r".*step_column",
    ) as error:
        datasets.load_times_csv(path)
    assert str(path) in str(error.value) and "\n" not in str(error.value)
    dropped = datasets.load_times_csv(path, step_column=True)  # "yes: drop it"
    assert dropped.shape == (len(dropped), 2)
    if re.search(r"^0,", text, flags=re.M):  # kept as a worker, 0 is not a time
        with pytest.raises(ValueError, match=r"column 1: times must be finite and > 0, got '0'"):
            datasets.load_times_csv(path, step_column=False)
    else:  # "no: it is a worker"
        np.testing.assert_array_equal(
            datasets.load_times_csv(path, step_column=False)[:, 1:], dropped
        )


def test_times_that_merely_look_like_integers_are_kept(tmp_path):
    """Not consecutive from 0 or 1, or a single row: data, not an index."""
    for text, shape in (
        ("2,1,2\n3,1,2\n4,1,2\n", (3, 3)),
        ("1,2,3\n4,5,6\n", (2, 3)),
        ("1,5\n", (1, 2)),
        ("1.0,5\n2.0,6\n", (2, 2)),
        ("w0,w1\n1,5\n2,6\n", (2, 2)),
    ):
        assert datasets.load_times_csv(write(tmp_path, text)).shape == shape, text


def test_header_naming_another_number_of_columns_is_refused(tmp_path):
    path = write(tmp_path, "w0,w1\n1,2,3\n4,5,6\n")
    with pytest.raises(ValueError, match=r"the header \(line 1\) names 2 columns, the rows have 3"):
        datasets.load_times_csv(path)


@pytest.mark.parametrize(
    "text, match",
    [
        # a commented header meant to name the step column, but of another width
        (
            "# step,w0\n1,2,3\n3,4,5\n",
            r"line 1 looks like a commented header \(its first name is 'step'\) but names 2 columns, "
            r"the rows have 3",
        ),
        # semicolons: one field of names, then nothing that reads as numbers
        ("w0;w1\n1;2\n", r"line 2, column 1: '1;2' is not a number"),
        (
            "0;1;2\n",
            r"no rows of times after the header on line 1 \(fields separated by commas\?\)",
        ),
        (
            "step,0,1\n1,2,3\n",
            r"line 1, column 1: 'step' is not a number \(a header row names "
            r"every column, none with a number\)",
        ),
    ],
)
def test_other_ambiguous_layouts_are_refused(tmp_path, text, match):
    with pytest.raises(ValueError, match=match):
        datasets.load_times_csv(write(tmp_path, text))


def test_names_with_commas_in_parentheses_are_one_column(tmp_path):
    """The shipped traces name ranks `rank0(dp0,pp0)`: one name, not two."""
    path = write(tmp_path, "step,rank0(dp0,pp0),rank1(dp1,pp0)\n1,2,3\n2,3,4\n")
    np.testing.assert_array_equal(datasets.load_times_csv(path), [[2, 3], [3, 4]])


@pytest.mark.parametrize("name, shape", [("AR", (44, 16)), ("SE", (43, 64)), ("ST", (32, 8))])
def test_shipped_traces_load_exactly_as_before(name, shape):
    """Each packaged file: its `# step,...` header names the step column, which is dropped."""
    text = (
        importlib.resources.files("lagc_jax")
        .joinpath("data", "straggler_traces", f"compute_{name}.csv")
        .read_text(encoding="utf-8")
    )
    expected = np.loadtxt(text.splitlines(), delimiter=",", comments="#")[:, 1:]
    times = datasets.straggler_trace(name)
    assert times.shape == shape == expected.shape
    np.testing.assert_array_equal(times, expected)
    _, layout = datasets._read_times(text, f"compute_{name}.csv", None, None)
    assert (
        layout == f"compute_{name}.csv: {shape[0]} steps × {shape[1]} workers "
        "(header on line 1; column 1 'step' dropped as the step index)"
    )


def test_layout_report_names_shape_header_and_dropped_column():
    _, layout = datasets._read_times("1,2\n3,4\n5,6\n", "f.csv", None, None)
    assert layout == "f.csv: 3 steps × 2 workers (no header)"
    _, layout = datasets._read_times("w0,iter,w1\n1,1,2\n3,2,4\n", "g.csv", None, None)
    assert layout == (
        "g.csv: 2 steps × 2 workers (header on line 1; column 2 'iter' dropped as the step index)"
    )
    _, layout = datasets._read_times("1,5,6\n2,7,8\n", "h.csv", None, True)
    assert layout == "h.csv: 2 steps × 2 workers (no header; column 1 dropped: step_column=True)"


def test_advise_prints_the_shape_and_layout_it_read(tmp_path, capsys, monkeypatch):
    path = write(tmp_path, "round,w0,w1,w2,w3\n1,5,1,1.1,0.9\n2,5.2,1.2,0.8,1\n3,4.8,0.9,1,1.3\n")

    def stop(*args, **kwargs):  # no simulation: the report comes before it
        raise SystemExit(3)

    monkeypatch.setattr(advise, "compare", stop)
    assert (
        cli.main(
            [
                "advise",
                "--times",
                str(path),
                "--problem",
                "lag_synthetic",
                "--out",
                str(tmp_path / "a"),
            ]
        )
        == 3
    )
    err = capsys.readouterr().err
    assert (
        f"{path}: 3 steps × 4 workers (header on line 1; column 1 'round' dropped as the "
        "step index); row bootstrap"
    ) in err


@pytest.mark.parametrize(
    "text, match",
    [
        ("1,1.0,2.0\n2,1.1,2.1\n3,0.9,2.2\n", r"column 1 looks like a step index"),
        ("\ufeff1.0,l.2\n1,2\n", r"line 1, column 2: 'l\.2' is not a number"),
        ("w0,w1\n1,2,3\n", r"the header \(line 1\) names 2 columns"),
    ],
)
def test_advise_refuses_an_ambiguous_file_in_one_line(tmp_path, capsys, text, match):
    path = write(tmp_path, text)
    # an unwritable --out: were the file accepted, advise would stop there, not simulate
    assert cli.main(["advise", "--times", str(path), "--out", unwritable(tmp_path)]) == 2
    err = one_line(capsys.readouterr().err)
    assert err.startswith(f"lagc-jax advise: --times: {path}: ") and re.search(match, err), err


# --------------------------------------------------------------------------- #
# B. ratios printed by advise: never "inf×" or "nan×"
# --------------------------------------------------------------------------- #
def candidate(name, wall_clocks, dtype=np.float64):
    reach = np.asarray(wall_clocks, dtype=dtype)
    finite = np.where(np.isnan(reach), np.inf, reach)
    med = float(np.median(finite))
    summary = dict(
        wall_clock=(med, float(finite.min()), float(finite.max())),
        uploads=(1.0, 1.0, 1.0),
        computations=(1.0, 1.0, 1.0),
        iterations=(1.0, 1.0, 1.0),
        reached=float(np.mean(np.isfinite(reach))),
    )
    return advise.Candidate(name, 1, summary, {"wall_clock": reach}, result=None)


def no_bad_ratio(text):
    assert not re.search(r"(inf|nan|∞)\s*×", text, flags=re.I), text
    assert "nan" not in text.lower(), text


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_both_zero_wall_clocks_print_both_0(dtype):
    """Target met at the start (f(θ⁰) − f* ≤ target): every wall clock is 0."""
    ranked = [candidate("grouping", [0.0] * 5, dtype), candidate("gd", [0.0] * 5, dtype)]
    text = advise.recommendation(ranked)
    no_bad_ratio(text)
    assert "vs the runner-up gd S=1: both 0" in text


def test_zero_against_positive_wall_clock_prints_no_ratio():
    ranked = [
        candidate("grouping", [0.0, 0.0, 0.0, 1.0, 1.0]),
        candidate("gd", [2.0, 2.0, 3.0, 3.0, 3.0]),
    ]
    text = advise.recommendation(ranked)
    no_bad_ratio(text)
    assert "vs the runner-up gd S=1: ratio —" in text
    assert "the recommended one's median wall clock is 0" in text


def test_runner_up_that_never_reached_prints_a_phrase_not_inf():
    ranked = [
        candidate("grouping", [1.0, 1.0, 1.2, 1.1, 0.9]),
        candidate("gd", [np.nan, np.nan, np.nan, 2.0, np.nan]),
    ]
    text = advise.recommendation(ranked)
    no_bad_ratio(text)
    assert "vs the runner-up gd S=1: did not reach the target in most trials" in text


def test_finite_ratios_still_print_as_before():
    ranked = [
        candidate("grouping", [1.0, 1.0, 1.0, 1.0, 1.0]),
        candidate("gd", [2.0, 2.0, 2.0, 2.0, np.nan]),
    ]
    text = advise.recommendation(ranked)
    assert "its wall clock is 2.000× [2.000, ∞] the recommended one's" in text


# --------------------------------------------------------------------------- #
# C. --import failures, advise --import, --k / --xi that do not apply
# --------------------------------------------------------------------------- #
@pytest.fixture
def cleanup_registry():
    before = set(strategies.names())
    modules = set(sys.modules)
    yield
    for name in set(strategies.names()) - before:
        strategies.unregister(name)
    for name in set(sys.modules) - modules:
        if name.startswith("user_"):
            del sys.modules[name]


@pytest.mark.parametrize("command", ["run", "advise"])
@pytest.mark.parametrize(
    "source, line, what",
    [
        ("x = 1\ndef f(:\n    pass\n", 2, "SyntaxError: "),
        ("import math\n\nraise RuntimeError('boom')\n", 3, "RuntimeError: boom"),
        (
            "def helper():\n    return 1 / 0\n\n\nhelper()\n",
            2,
            "ZeroDivisionError: division by zero",
        ),
        ("import no_such_module_xyz_123\n", 1, "ModuleNotFoundError: No module named"),
    ],
)
def test_import_of_a_broken_file_is_one_line_with_file_and_line(
    tmp_path, capsys, cleanup_registry, command, source, line, what
):
    path = write(tmp_path, source, "user_broken.py")
    extra = ["--trace", "ST"] if command == "advise" else []
    assert cli.main([command, "--import", str(path), *extra, "--out", unwritable(tmp_path)]) == 2
    err = one_line(capsys.readouterr().err)
    assert err.startswith(f"lagc-jax {command}: --import: {path}:{line}: {what}"), err
    assert "user_broken" not in sys.modules


def test_import_of_a_broken_module_by_name_names_its_file(
    tmp_path, capsys, monkeypatch, cleanup_registry
):
    write(tmp_path, "A = 1\n\nassert A == 2, 'A must be 2'\n", "user_mod_xyz.py")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))
    assert cli.main(["run", "--import", "user_mod_xyz", "--out", unwritable(tmp_path)]) == 2
    err = one_line(capsys.readouterr().err)
    assert err.startswith(
        f"lagc-jax run: --import: {tmp_path / 'user_mod_xyz.py'}:3: AssertionError: A must be 2"
    ), err


def test_import_of_a_missing_module_is_still_one_line(capsys):
    assert cli.main(["run", "--import", "no_such_module_xyz", "--iters", "5"]) == 2
    err = one_line(capsys.readouterr().err)
    assert err.startswith("lagc-jax run: --import: cannot import 'no_such_module_xyz'")


USER_GD = """
import lagc_jax as lj
lj.register("user-gd", lambda M, S: lj.strategies.make("gd", M, S), replace=True)
"""


def test_advise_accepts_import(tmp_path, capsys, cleanup_registry):
    path = write(tmp_path, USER_GD, "user_gd_module.py")
    # the name is known once imported; the unwritable --out stops advise before simulating
    assert (
        cli.main(
            [
                "advise",
                "--import",
                str(path),
                "--trace",
                "ST",
                "--strategies",
                "user-gd",
                "--out",
                unwritable(tmp_path),
            ]
        )
        == 2
    )
    err = one_line(capsys.readouterr().err)
    assert err.startswith("lagc-jax advise: --out: cannot write"), err


@pytest.mark.parametrize(
    "argv, line",
    [
        (
            ["--strategy", "gd", "--k", "3"],
            "lagc-jax run: --k does not apply to strategy 'gd' (it has no k option)",
        ),
        (
            ["--strategy", "gc", "--xi", "2"],
            "lagc-jax run: --xi does not apply to strategy 'gc' (it has no xi option)",
        ),
        (
            ["--strategy", "lagc", "--k", "3"],
            "lagc-jax run: --k does not apply to strategy 'lagc' (it has no k option)",
        ),
        (
            ["--strategy", "k-async", "--xi", "1"],
            "lagc-jax run: --xi does not apply to strategy 'k-async' (it has no xi option)",
        ),
    ],
)
def test_k_and_xi_for_a_strategy_without_them_are_refused(tmp_path, capsys, argv, line):
    assert cli.main(["run", *argv, "--out", unwritable(tmp_path)]) == 2
    assert one_line(capsys.readouterr().err) == line


class _Recorded:
    """What cmd_run needs of a Result, without simulating."""

    def save(self, stem):
        return f"{stem}.npz"

    def summary(self, target_gap):
        one = (1.0, 1.0, 1.0)
        return dict(
            wall_clock=one, uploads=one, computations=one, iterations=one, reached=1.0, diverged=0
        )


@pytest.fixture
def recorded_runs(monkeypatch):
    ran = []
    monkeypatch.setattr(lagc_jax, "simulate", lambda p, s, *a, **k: ran.append(s) or _Recorded())
    return ran


def test_user_factory_gets_k_and_xi_only_when_given_and_accepted(
    tmp_path, capsys, cleanup_registry, recorded_runs
):
    calls = []

    def with_k(M, S, k=1):
        calls.append(("with-k", k))
        return strategies.make("gd", M, S)

    def lazy_without_xi(M, S):  # says lazy, has no xi option
        calls.append(("lazy-no-xi", None))
        return strategies.make("gd", M, S)

    strategies.register("user-with-k", with_k)
    strategies.register("user-lazy-no-xi", lazy_without_xi, lazy=True)
    out = ["--workers", "4", "--stragglers", "1", "--out", str(tmp_path / "r")]
    assert cli.main(["run", "--strategy", "user-with-k", *out]) == 0
    assert calls == [("with-k", 1)]  # its own default, not M − S
    assert cli.main(["run", "--strategy", "user-with-k", "--k", "2", *out]) == 0
    assert calls[-1] == ("with-k", 2)
    capsys.readouterr()
    assert cli.main(["run", "--strategy", "user-lazy-no-xi", "--xi", "3", *out]) == 2
    assert one_line(capsys.readouterr().err) == (
        "lagc-jax run: --xi does not apply to strategy 'user-lazy-no-xi' (it has no xi option)"
    )
    # with every strategy: --xi goes to those with an xi option; the rest run without it
    calls.clear()
    recorded_runs.clear()
    assert cli.main(["run", "--xi", "3", *out]) == 0
    err = capsys.readouterr().err
    assert "user-lazy-no-xi" in [s.name for s in recorded_runs]
    assert ("lazy-no-xi", None) in calls and "skipping user-lazy-no-xi" not in err
    assert re.search(
        r"note: --xi applies only to lag-wk, lag-ps, lagc, lagc-ps, g-lag, g-lag-wk\b", err
    ), err
    lazy = {
        s.name: s
        for s in recorded_runs
        if strategies.info(s.name).lazy and s.name != "user-lazy-no-xi"
    }
    assert lazy and all(getattr(s.trigger, "xi", 3.0) == 3.0 for s in lazy.values())


def test_builtin_k_async_keeps_k_equal_m_minus_s(tmp_path, recorded_runs):
    out = ["--workers", "5", "--stragglers", "2", "--out", str(tmp_path / "r")]
    assert cli.main(["run", "--strategy", "k-async", *out]) == 0
    assert cli.main(["run", "--strategy", "k-async", "--k", "2", *out]) == 0
    assert [s.k for s in recorded_runs] == [3, 2]


def test_advise_gives_k_only_to_the_builtin_k_async(monkeypatch, cleanup_registry):
    """advise maps S to k = M − S for k-async; a user factory keeps its own k default."""
    calls = []

    def with_k(M, S, k=1):
        calls.append(k)
        return strategies.make("gd", M, S)

    strategies.register("user-with-k", with_k)
    built = []

    class Stop(Exception):
        pass

    def stop(problem, strategy, *args, **kwargs):
        built.append(strategy)
        raise Stop

    monkeypatch.setattr(advise, "simulate", stop)
    for name in ("user-with-k", "k-async"):
        with pytest.raises(Stop):
            advise.compare(None, None, 5, [2], names=[name], num_iters=1, num_trials=1)
    assert calls == [1] and built[1].k == 3
