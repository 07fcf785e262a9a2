"""Two JAX processes on 127.0.0.1 (CPU, gloo collectives, two host devices each) shard the
trials over their four devices; the result equals a single-process run bit for bit."""

import os
import socket
import subprocess
import sys

import numpy as np

import lagc_jax as lj

from helpers import SMALL_RUN

# The modules' shared small run (its one-process programs are test_strategy_battery.py's):
# 3 trials, padded to 4 on the 4 devices; chunked
RUN = dict(num_iters=32, upload_time=0.1, **SMALL_RUN)
FIELDS = ("loss", "wall_clock", "uploads", "downloads", "computations", "upload_mask")

WORKER = """
import sys
import jax
jax.config.update("jax_enable_x64", True)
jax.config.update("jax_cpu_collectives_implementation", "gloo")
jax.distributed.initialize(coordinator_address="127.0.0.1:" + sys.argv[2], num_processes=2,
                           process_id=int(sys.argv[1]))
import numpy as np, lagc_jax as lj
assert jax.process_count() == 2 and jax.device_count() == 4 and jax.local_device_count() == 2
p = lj.problems.lag_synthetic(6, dim=10)
out = {{}}
for name in ("gc", "lag-wk"):  # iterates batched over trials, and computed once
    r = lj.simulate(p, lj.make(name, 6, 1), lj.ShiftedExponential(), **{run!r})
    for field in {fields!r}:
        out[f"{{name}}_{{field}}"] = getattr(r, field)
np.savez(sys.argv[3], **out)
""".format(run=RUN, fields=FIELDS)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_processes_equal_one(tmp_path):
    port = str(free_port())
    env = {
        **os.environ,
        "XLA_FLAGS": "--xla_force_host_platform_device_count=2",
        "JAX_PLATFORMS": "cpu",
    }
    outputs = [tmp_path / f"process{i}.npz" for i in range(2)]
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, str(i), port, str(outputs[i])],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(2)
    ]
    try:
        results = [w.communicate(timeout=300) for w in workers]
    finally:
        for w in workers:
            w.kill()
    for w, (_, err) in zip(workers, results):
        assert w.returncode == 0, err[-3000:]
    p = lj.problems.lag_synthetic(6, dim=10)
    for i in range(2):  # every process holds the whole result
        got = np.load(outputs[i])
        for name in ("gc", "lag-wk"):
            single = lj.simulate(p, lj.make(name, 6, 1), lj.ShiftedExponential(), **RUN)
            for field in FIELDS:
                np.testing.assert_array_equal(
                    got[f"{name}_{field}"],
                    getattr(single, field),
                    err_msg=f"process {i} {name} {field}",
                )
