"""Progress of `lagc-jax study`: a bar over points of different lengths, lines, --quiet."""

import io

from lagc_jax import cli
from lagc_jax.cli.progress import Progress

STUDY = """
[study]
name = "tiny"
trials = 4
iterations = 10
targets = [0.5]
[[grid]]
strategies = ["gd", "grouping"]
workers = 4
stragglers = 1
[[grid]]
strategies = ["gd"]
workers = 4
seed = 1
"""


def test_progress_over_points_of_different_lengths():
    out, ticks = io.StringIO(), iter(range(0, 1000, 10))
    progress = Progress(2, [10, 30], stream=out, clock=lambda: float(next(ticks)), every=15)
    assert progress.total == 40
    progress.start("a")  # t = 0
    progress.report(10, 10)  # t = 10
    progress.finish("ok")  # t = 20
    progress.start("b")  # t = 30
    progress.report(10, 30)  # t = 40: 10 s since the last line, none
    progress.report(20, 30)  # t = 50: 20 s, a line; 30 of 40 done in 50 s, 10 left: ETA 0:17
    progress.note("a note")
    assert out.getvalue().splitlines() == [
        "  a (1/2): 10 iterations in 20 s; ok",
        "  b (2/2): 20/30 iterations, 20 s; total 30/40, ETA 0:17",
        "a note",
    ]


def test_progress_refuses_counts_that_do_not_match_the_points():
    try:
        Progress(3, [10, 20])
    except ValueError as error:
        assert "2 counts for 3 points" in str(error)
    else:
        raise AssertionError("no ValueError")


def test_study_lines_and_quiet(tmp_path, capsys):
    path = tmp_path / "tiny.toml"
    path.write_text(STUDY)
    assert cli.main(["study", str(path), "--out", str(tmp_path / "loud")]) == 0
    loud = capsys.readouterr()
    lines = loud.err.splitlines()
    assert lines[0] == "study tiny: 3 points; 0 done, 3 to run"
    assert [line.split("]")[0].strip() for line in lines[1:4]] == ["[1/3", "[2/3", "[3/3"]
    assert lines[-1].startswith("wrote ") and "summary.md" in lines[-1]
    assert cli.main(["study", str(path), "--out", str(tmp_path / "quiet"), "--quiet"]) == 0
    quiet = capsys.readouterr()
    assert quiet.err == "" and quiet.out == loud.out and quiet.out.startswith("group 1 ")
    # a rerun skips the points done and says so
    assert cli.main(["study", str(path), "--out", str(tmp_path / "loud")]) == 0
    assert capsys.readouterr().err.splitlines()[0] == "study tiny: 3 points; 3 done, 0 to run"
