"""Any JAX model: a one-hidden-layer tanh MLP (non-convex) through problems.from_loss (issue 6).

The parameters are a pytree {W1, b1, w2, b2}; from_loss flattens them, splits the
rows into P = M partitions and estimates L, L_p (largest |Hessian eigenvalue| at θ⁰)
and f* (best loss of gradient descent): both are ESTIMATES, recorded as
``config["optimum_estimated"]``, and every gap printed here is relative to the
estimated f* (it may become negative). Step α = 0.5/L: at α = 1/L the MLP's
gradient descent sits at the edge of stability (the loss oscillates), where
round-off differences between gd and gc's decoded sums grow.
Usage: python scripts/example_mlp.py [--trials T] [--iters K]
"""

import argparse
import warnings

import jax
import jax.numpy as jnp
import numpy as np

jax.config.update("jax_enable_x64", True)

import lagc_jax as lj  # noqa: E402
from lagc_jax import problems  # noqa: E402


def mlp_loss(params, example):
    x, t = example
    out = jnp.tanh(x @ params["W1"] + params["b1"]) @ params["w2"] + params["b2"]
    return 0.5 * (out - t) ** 2


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=100)
    parser.add_argument("--iters", type=int, default=1000, help="a multiple of 10")
    parser.add_argument("--workers", type=int, default=6)
    parser.add_argument("--hidden", type=int, default=8)
    args = parser.parse_args()
    M, S, H = args.workers, 1, args.hidden
    rng = np.random.default_rng(0)
    X = rng.standard_normal((300, 3))
    y = np.sin(2 * X[:, 0]) * np.cos(X[:, 1]) + 0.1 * rng.standard_normal(300)
    k1, k2 = jax.random.split(jax.random.key(0))
    params = {
        "W1": jax.random.normal(k1, (3, H)) / np.sqrt(3),
        "b1": jnp.zeros(H),
        "w2": jax.random.normal(k2, (H,)) / np.sqrt(H),
        "b2": jnp.zeros(()),
    }
    problem = problems.from_loss(mlp_loss, params, (X, y), M, optimum_steps=3000, name="mlp")
    alpha = 0.5 / problem.smoothness
    f0 = problem.loss(problem.initial_params())
    print(
        f"MLP 3-{H}-1 tanh, d = {problem.dim} parameters, 300 rows in P = M = {M} partitions, "
        f"S = {S}, Exponential(1) unit times, {args.trials} trials × {args.iters} iterations"
    )
    print(
        f"L ≈ {problem.smoothness:.2f} (estimated at θ⁰), α = 0.5/L; f(θ⁰) = {f0:.3f}; "
        f"f* ≈ {problem.optimal_value:.4f} (ESTIMATED: best of 3000 GD steps, "
        f"Problem.estimated = {problem.estimated})\n"
    )
    target = 0.5
    print(
        f"| strategy | final gap to estimated f* | final wall clock | final uploads | "
        f"wall clock to gap ≤ {target:g} | uploads to gap ≤ {target:g} | diverged | "
        "config optimum_estimated |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for name, s, opts in (
        ("gd", 0, {}),
        ("gc", S, {}),
        ("grouping", S, {}),
        ("lag-wk", 0, {}),
        ("lag-ps", 0, {}),
        ("g-lag", S, {"xi": 1.0}),
        ("g-lag", S, {}),
    ):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            r = lj.simulate(
                problem,
                lj.strategies.make(name, M, s, **opts),
                lj.ShiftedExponential(),
                num_iters=args.iters,
                num_trials=args.trials,
                step_size=alpha,
                record_every=10,
            )
        label = name + (f" (ξ={opts['xi']:g})" if opts else " (default ξ)" if "lag" in name else "")
        reach = r.summary(target)  # medians over trials; inf when most never reach it
        print(
            f"| {label} | {np.median(r.gap[:, -1]):.4g} | {np.median(r.wall_clock[:, -1]):.1f} | "
            f"{np.median(r.uploads[:, -1]):.0f} | {reach['wall_clock'][0]:.1f} | "
            f"{reach['uploads'][0]:.0f} | {r.diverged.sum()}/{r.num_trials} | "
            f"{r.config['optimum_estimated']} |"
        )


if __name__ == "__main__":
    main()
