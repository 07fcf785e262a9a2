"""The shipped straggler traces and the CSV loader for measured times."""

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from lagc_jax import datasets

# sha256 of each original trace (shared/traces/compute_*.csv, the step column dropped, as
# float64 bytes), computed when the traces were copied into the package
ORIGINAL_SHA256 = {
    "AR": "e67ceb3a42afb21ccc8989cbb8120587710b6637e005b236fc473645fa0a4e25",
    "SE": "89290605d8ff9569c989309d51ed1d658cc596219a1a0ca01aeae8440fee1444",
    "ST": "f1a39c406fc692b8b3ba8be6dd60869bf50b5811ed17f808346e0d568bd4fe6a",
}
ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("name, shape", [("AR", (44, 16)), ("se", (43, 64)), ("St", (32, 8))])
def test_traces_load_with_documented_shapes(name, shape):
    times = datasets.straggler_trace(name)
    assert times.shape == shape and times.dtype == np.float64
    assert np.all(np.isfinite(times)) and np.all(times > 0)
    digest = hashlib.sha256(np.ascontiguousarray(times).tobytes()).hexdigest()
    assert digest == ORIGINAL_SHA256[name.upper()]  # the packaged copy is the original


def test_traces_show_their_stragglers():
    ar, st = datasets.straggler_trace("AR"), datasets.straggler_trace("ST")
    ratio = ar[:, 0] / np.median(ar, axis=1)  # rank 0 is the slowed worker
    assert 2.2 < ratio.min() and ratio.max() < 2.5
    stage = st[:, 6:].mean() / st[:, :6].mean()  # the last pipeline stage (pp3)
    assert 1.55 < stage < 1.75


def test_unknown_trace_name():
    with pytest.raises(ValueError, match="name must be one of AR, SE, ST"):
        datasets.straggler_trace("XY")


def test_traces_are_package_data_of_a_regular_install(tmp_path):
    """build_py (what a wheel contains) copies the traces, licence and README."""
    build = tmp_path / "build"
    subprocess.run(
        [
            sys.executable,
            "-c",
            "from setuptools import setup; setup()",
            "-q",
            "build_py",
            "--build-lib",
            str(build),
        ],
        cwd=ROOT,
        check=True,
        capture_output=True,
    )
    data = build / "lagc_jax" / "data" / "straggler_traces"
    assert {p.name for p in data.iterdir()} >= {
        "compute_AR.csv",
        "compute_SE.csv",
        "compute_ST.csv",
        "LICENSE",
        "README.md",
    }
    code = (
        "import importlib.resources, lagc_jax.datasets as d; "
        "assert 'lagc_jax/datasets.py' in d.__file__.replace(chr(92), '/'); "
        "f = importlib.resources.files('lagc_jax') / 'data/straggler_traces/LICENSE'; "
        "assert 'Apache License' in f.read_text(); print(d.straggler_trace('SE').shape)"
    )
    env = {**os.environ, "PYTHONPATH": str(build)}
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    assert out.stdout.strip() == "(43, 64)"


def write(tmp_path, text, name="times.csv"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_load_times_csv_formats(tmp_path):
    plain = write(tmp_path, "1,2,3\n4,5,6\n")
    np.testing.assert_array_equal(datasets.load_times_csv(plain), [[1, 2, 3], [4, 5, 6]])
    named = write(tmp_path, "a, b\n\n1.5, 2\n# a comment\n3, 4\n", "named.csv")
    np.testing.assert_array_equal(datasets.load_times_csv(named), [[1.5, 2], [3, 4]])
    stepped = write(tmp_path, "# step,w0,w1\n10,1,2\n11,3,4\n", "stepped.csv")
    np.testing.assert_array_equal(datasets.load_times_csv(stepped), [[1, 2], [3, 4]])
    assert datasets.load_times_csv(stepped, step_column=False).shape == (2, 3)
    assert datasets.load_times_csv(plain, num_workers=2).shape == (2, 3)  # more columns: fine


@pytest.mark.parametrize(
    "text, kwargs, match",
    [
        ("", {}, r"no rows of times \(empty file\?\)"),
        ("# only a comment\nw0,w1\n", {}, r"no rows of times"),
        ("1,2,3\n4,5\n", {}, r"ragged rows: line 2 has 2 fields, the first row has 3"),
        ("1,2\n3,-4\n", {}, r"line 2, column 2: times must be finite and > 0, got '-4'"),
        ("1,0\n", {}, r"line 1, column 2: times must be finite and > 0, got '0'"),
        ("1,nan\n", {}, r"times must be finite and > 0, got 'nan'"),
        ("1,inf\n", {}, r"times must be finite and > 0, got 'inf'"),
        ("w0,w1\n1,fast\n", {}, r"line 2, column 2: 'fast' is not a number"),
        ("1,2\n3,4\n", dict(num_workers=3), r"2 columns of times, fewer than num_workers=3"),
        ("1,2\n", dict(num_workers=0), r"num_workers must be an integer >= 1"),
        ("# step\n1\n2\n", {}, r"no time columns"),
        ("1,2\n", dict(step_column="yes"), r"step_column must be True, False or None"),
    ],
)
def test_load_times_csv_rejects_bad_files(tmp_path, text, kwargs, match):
    path = write(tmp_path, text)
    with pytest.raises(ValueError, match=match) as error:
        datasets.load_times_csv(path, **kwargs)
    if "step_column" not in kwargs and kwargs.get("num_workers") != 0:
        assert str(path) in str(error.value)  # the message names the file


def test_load_times_csv_missing_file(tmp_path):
    with pytest.raises(ValueError, match="cannot read times from"):
        datasets.load_times_csv(tmp_path / "absent.csv")
