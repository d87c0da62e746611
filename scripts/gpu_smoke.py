"""The CuPy path against NumPy on a production-shape matrix, in about a minute (scripts/gpu-check.sh).

Prints what ``optimizer.compute.choose`` picks; whether the device gives the same fitness for the
same portfolios twice and in another row order; the largest relative difference from the host
per metric; seconds per batch on host and device for batch sizes 1 to 65,536; swap moves; and the
top pairs with blocks of 256 and 2,048. Without a usable device it says why and exits 0.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from functools import partial
from typing import Any

import numpy as np

from algorithms.correlation import top_pairs, unit_columns
from algorithms.fitness import METRICS, Objective
from algorithms.operators import random_subsets, random_swaps
from algorithms.problem import Problem
from optimizer.compute import choose
from optimizer.config import load_config
from optimizer.synthetic import generate_pnl

STRATEGIES, DAYS, SIZE = 25_544, 82, 35


def best_of(fn: Callable[[], Any], repeats: int = 3) -> float:
    fn()  # warm: kernels compiled, memory pooled
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> int:
    choice = choose(load_config(overrides=["COMPUTE.backend=cupy"]), STRATEGIES, DAYS, 100)
    print(f"choose(): {choice.name} {choice.device or ''} fallback: {choice.fallback}")
    if not choice.on_gpu:
        print("no usable GPU: nothing more to measure")
        return 0
    cupy = choice.xp
    pnl = generate_pnl(STRATEGIES, DAYS, seed=1)
    units, nonconstant = unit_columns(np, pnl)
    rng = np.random.default_rng(0)
    population = random_subsets(rng, STRATEGIES, SIZE, 5000)

    for metric in METRICS:
        host = Problem.from_pnl(pnl, units, nonconstant, SIZE, Objective(metric, 10.0))
        device = host.on(cupy)
        on_host, first, second = host.evaluate(population), device.evaluate(population), device.evaluate(population)
        shuffle = rng.permutation(len(population))
        shuffled = np.empty_like(first)
        shuffled[shuffle] = device.evaluate(population[shuffle])
        scale = np.maximum(np.abs(on_host), 1e-300)
        print(
            f"{metric:15s} repeat equal: {np.array_equal(first, second)}  reordered equal: "
            f"{np.array_equal(first, shuffled)}  bit-identical to host: {np.array_equal(first, on_host)}  "
            f"max rel diff: {float(np.max(np.abs(first - on_host) / scale)):.3g}"
        )

    host = Problem.from_pnl(pnl, units, nonconstant, SIZE, Objective())
    device = host.on(cupy)
    print("batch size   host s   device s   (metric ratio, n = 35)")
    for batch in (1, 64, 100, 1000, 65_536):
        rows = random_subsets(rng, STRATEGIES, SIZE, batch)
        print(
            f"{batch:>10,}  {best_of(partial(host.evaluate, rows)):.5f}  {best_of(partial(device.evaluate, rows)):.5f}"
        )
    members = population[0]
    out_pos, incoming = random_swaps(rng, members, STRATEGIES, 10_000)
    print(
        f"10,000 swap moves: host {best_of(lambda: host.evaluate_swaps(members, out_pos, incoming)):.4f} s, "
        f"device {best_of(lambda: device.evaluate_swaps(members, out_pos, incoming)):.4f} s"
    )
    expected = [(p.first, p.second) for p in top_pairs(units, 20)]
    for block in (256, 2048):
        pairs = top_pairs(units, 20, block=block, xp=cupy)
        seconds = best_of(partial(top_pairs, units, 20, block=block, xp=cupy), repeats=1)
        same = [(p.first, p.second) for p in pairs] == expected
        print(f"top 20 pairs on the device, blocks of {block}: {seconds:.3f} s, same pairs as the host: {same}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
