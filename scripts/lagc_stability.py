"""LAGC's stability against the size of the decoding weights (MODEL.md §6, issue 3).

LAGC decodes stale coded gradients of different ages, so large decoding
weights amplify staleness. For random Tandon et al. codes and for the library's
default cyclic code, at M = 12, S = 2 on lag_synthetic(12), this prints the
worst max|a| over straggler sets, the fraction of diverged trials and the median
final gap, for ξ = 1 and ξ = 0.1. Usage: python scripts/lagc_stability.py [--trials N]
"""

import argparse
import warnings

import jax
import numpy as np

jax.config.update("jax_enable_x64", True)

import lagc_jax as lj  # noqa: E402
from lagc_jax import coding  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=100)
    parser.add_argument("--iters", type=int, default=1500)
    parser.add_argument("--tandon-seeds", type=int, default=8)
    args = parser.parse_args()
    M, S = 12, 2
    problem = lj.problems.lag_synthetic(M)
    codes = [("default cyclic_repetition", coding.cyclic_repetition(M, S))]
    codes += [(f"Tandon seed {s}", coding.tandon_cyclic(M, S, s)) for s in range(args.tandon_seeds)]
    print(
        f"lagc on {problem.name}, M={M}, S={S}, Exponential(1), {args.trials} trials × "
        f"{args.iters} iterations, float64\n"
    )
    print("| code | worst max\\|a\\| | ξ | diverged | median final gap | uploads / gc's |")
    print("|---|---|---|---|---|---|")
    for label, B in codes:
        max_a = coding.decoding_stats(B, S)["max_abs_weight"]
        for xi in (1.0, 0.1):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                r = lj.simulate(
                    problem,
                    lj.strategies.make("lagc", M, S, encoding=B, xi=xi),
                    lj.ShiftedExponential(),
                    num_iters=args.iters,
                    num_trials=args.trials,
                    record_every=args.iters,
                )
            saved = r.uploads[:, -1].mean() / ((M - S) * args.iters)  # gc uploads M−S a round
            print(
                f"| {label} | {max_a:.3g} | {xi:g} | {r.diverged.mean():.0%} | "
                f"{np.median(r.gap[:, -1]):.2e} | {saved:.1%} |"
            )


if __name__ == "__main__":
    main()
