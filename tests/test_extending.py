"""docs/EXTENDING.md: the two user strategies, written outside the package, run everywhere."""

import re
import sys
from pathlib import Path

import numpy as np
import pytest

import lagc_jax as lj
from lagc_jax import cli, strategies

from helpers import assert_same_run

DOC = Path(__file__).resolve().parents[1] / "docs" / "EXTENDING.md"
USER_NAMES = ("first-groups", "lag-wk-bounded")


def doc_blocks():
    return re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.S)


@pytest.fixture(scope="module")
def user_code():
    """Execute every block of the page in one namespace (as a user's script would)."""
    namespace = {"__name__": "user_strategies"}
    for index, block in enumerate(doc_blocks()):
        exec(compile(block, f"docs/EXTENDING.md block {index}", "exec"), namespace)
    yield namespace
    for name in USER_NAMES:
        strategies.unregister(name)


def test_page_has_the_two_examples(user_code):
    assert len(doc_blocks()) >= 5
    assert {"first-groups", "lag-wk-bounded"} <= set(lj.names())


def test_first_groups_counts_and_time_match_its_definition(user_code):
    """Per round: uploads k, downloads M, computations M(S+1), Δ = τ_b + the k-th group's
    first arrival, checked against numpy on replayed unit times with τ > 0."""
    M, S, k, K, T = 12, 2, 3, 25, 6
    G, size = M // (S + 1), S + 1
    times = np.random.default_rng(0).exponential(size=(T, K, M))
    tau, tau_b = 0.3, 0.1
    r = lj.simulate(
        lj.problems.lag_synthetic(M),
        lj.make("first-groups", M, S, groups=k),
        num_iters=K,
        num_trials=T,
        unit_times=times,
        upload_time=tau,
        broadcast_time=tau_b,
        record_masks=True,
    )
    arrivals = size * times + tau  # load S+1, every message an upload
    group_first = arrivals.reshape(T, K, G, size).min(axis=-1)
    expected = tau_b + np.sort(group_first, axis=-1)[..., k - 1]
    np.testing.assert_allclose(np.diff(r.wall_clock, axis=1), expected, rtol=1e-12)
    np.testing.assert_array_equal(np.diff(r.uploads, axis=1), k)
    np.testing.assert_array_equal(np.diff(r.downloads, axis=1), M)
    np.testing.assert_array_equal(np.diff(r.computations, axis=1), M * size)
    assert r.upload_mask.shape == (T, K, M) and (r.upload_mask.sum(-1) == k).all()


def test_first_groups_with_all_groups_is_grouping(user_code):
    p = lj.problems.lag_synthetic(12)
    kw = dict(num_iters=40, num_trials=5, seed=3, upload_time=0.2, link="shared")
    assert_same_run(
        lj.simulate(p, lj.make("first-groups", 12, 2, groups=4), lj.ShiftedExponential(), **kw),
        lj.simulate(p, lj.make("grouping", 12, 2), lj.ShiftedExponential(), **kw),
    )


def test_first_groups_rejects_bad_options(user_code):
    with pytest.raises(ValueError, match=r"groups must be an integer in \[1, G = 4\]"):
        lj.make("first-groups", 12, 2, groups=5)
    with pytest.raises(ValueError, match="option 'k' does not apply to strategy 'first-groups'"):
        lj.make("first-groups", 12, 2, k=2)


def test_lag_wk_bounded_limits(user_code):
    """C = 0 uploads as gd; a huge C is lag-wk exactly; C = 2 never skips 3 rounds in a row.
    On the page's problem, delay and run sizes: gd, C = 0 and lag-wk reuse its programs."""
    p, delay, kw = user_code["problem"], user_code["delay"], user_code["run"]
    M, K = p.num_partitions, kw["num_iters"]
    gd = lj.simulate(p, lj.make("gd", M), delay, **kw)
    zero = lj.simulate(p, lj.make("lag-wk-bounded", M, max_skips=0), delay, **kw)
    np.testing.assert_array_equal(zero.uploads, gd.uploads)
    np.testing.assert_allclose(zero.loss, gd.loss, rtol=1e-12)
    huge = lj.simulate(p, lj.make("lag-wk-bounded", M, max_skips=10**6), delay, **kw)
    assert_same_run(huge, lj.simulate(p, lj.make("lag-wk", M), delay, **kw))
    two = lj.simulate(p, lj.make("lag-wk-bounded", M, max_skips=2), delay, record_masks=True, **kw)
    masks = two.upload_mask[0]
    for worker in masks.T:
        skips = 0
        for uploaded in worker:
            skips = 0 if uploaded else skips + 1
            assert skips <= 2
    # invariants, not one run's count: every worker uploads at least once per 3 rounds
    assert M * (K // 3) <= two.uploads[0, -1] <= gd.uploads[0, -1]


def test_user_strategies_run_through_the_cli(user_code, tmp_path, monkeypatch, capsys):
    """`lagc-jax run --import FILE.py --strategy NAME` with the page's code as a user file
    (the command line in this process: the file registers the strategies anew)."""
    module = tmp_path / "my_strategies.py"
    # the definitions only (blocks that register), not the demonstrations
    module.write_text("\n".join(b for b in doc_blocks() if "lj.register(" in b))
    monkeypatch.chdir(tmp_path)
    try:
        for name in USER_NAMES:
            code = cli.main(
                [
                    "run",
                    "--import",
                    str(module),
                    "--strategy",
                    name,
                    "--workers",
                    "6",
                    "--stragglers",
                    "1",
                    "--trials",
                    "4",
                    "--iters",
                    "30",
                    "--target-gap",
                    "1e-2",
                    "--out",
                    str(tmp_path / "run"),
                ]
            )
            out = capsys.readouterr()
            assert code == 0, out.err
            assert f"| {name} |" in out.out
            assert (tmp_path / f"run_{name}.npz").exists()
    finally:
        sys.modules.pop("my_strategies", None)


def test_cli_import_errors_are_one_line(tmp_path, capsys):
    assert cli.main(["run", "--import", "no_such_module_xyz", "--iters", "5"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("lagc-jax run: --import: cannot import 'no_such_module_xyz'")
    assert "\n" not in err


def test_make_refuses_a_factory_that_ignores_num_workers():
    """A factory that builds a fixed size would otherwise simulate another M silently."""

    def fixed_size(num_workers, stragglers):
        return lj.make("gd", 4)

    lj.register("fixed-size", fixed_size, replace=True)
    try:
        assert lj.make("fixed-size", 4).num_workers == 4
        with pytest.raises(
            ValueError, match="asked for num_workers=6 but returned a strategy of 4 workers"
        ):
            lj.make("fixed-size", 6)
    finally:
        lj.strategies.unregister("fixed-size")
