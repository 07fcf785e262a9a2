"""Worst-case decoding quality of cyclic gradient codes: ours vs Tandon et al.'s random B.

For each (M, S), exhaustively over all C(M, S) straggler sets: the worst max|a|,
the worst cond(B_F) and the worst float32 relative decoding error
(lagc_jax.coding.decoding_stats). Tandon's construction is random: the table
gives the median and the best (minimum) of each metric over seeds 0..19. A draw so
ill-conditioned that some straggler set decodes with max|a·B − 1| above float64's
tolerance (decoding_stats refuses it) counts as ∞ in each metric; the last column
counts such draws.

    python scripts/coding_conditioning.py [--seeds 20] [--cases 12,2 20,3 ...]

Prints a markdown table.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from lagc_jax import coding

DEFAULT_CASES = ["10,1", "12,2", "20,3", "30,2", "30,3", "50,2", "50,3"]
METRICS = ("max_abs_weight", "max_condition", "max_float32_error")


def tandon_stats(M: int, S: int, seed: int):
    """decoding_stats of Tandon et al.'s draw ``seed``; None when some straggler set does
    not decode to float64's tolerance (the draw is too ill-conditioned)."""
    try:
        return coding.decoding_stats(coding.tandon_cyclic(M, S, seed), S)
    except ValueError:
        return None


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=20, help="Tandon draws per case")
    parser.add_argument("--cases", nargs="+", default=DEFAULT_CASES, help="M,S pairs")
    args = parser.parse_args(argv)

    print(
        "| M | S | sets | construction | worst max abs(a) | worst cond(B_F) | "
        "worst float32 rel. error | draws not decodable in float64 |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for case in args.cases:
        M, S = (int(v) for v in case.split(","))
        start = time.perf_counter()
        ours = coding.decoding_stats(coding.cyclic_repetition(M, S), S)
        draws = [tandon_stats(M, S, seed) for seed in range(args.seeds)]
        undecodable = sum(d is None for d in draws)
        draws = [dict.fromkeys(METRICS, np.inf) if d is None else d for d in draws]
        rows = {
            "ours (BCH-type)": ([ours[k] for k in METRICS], 0),
            f"Tandon, median of {args.seeds}": (
                [np.median([d[k] for d in draws]) for k in METRICS],
                undecodable,
            ),
            f"Tandon, best of {args.seeds}": ([min(d[k] for d in draws) for k in METRICS], ""),
        }
        for name, ((weight, cond, err), failed) in rows.items():
            print(
                f"| {M} | {S} | {ours['num_sets']} | {name} | {weight:.3g} | {cond:.3g} | "
                f"{err:.2g} | {failed} |"
            )
        print(f"<!-- ({M},{S}) took {time.perf_counter() - start:.1f} s -->")


if __name__ == "__main__":
    main()
