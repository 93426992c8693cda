"""Per-weight settings for a size budget, from the measured trials.

As apple/ml-stable-diffusion's mixed-bit recipe does from its per-layer PSNR
pre-analysis: every weight starts at its most exact setting, then the move that adds
the least cost per byte saved is taken, again and again, until the weights fit. Each
weight's options are first cut to their lower convex hull (bytes against cost), so
the greedy walk never takes a step that a later, cheaper one dominates. Costs add
across weights (tune/trials.py, tune/cost.py), so the predicted loss of a choice is
their sum.
"""
from __future__ import annotations

import heapq
from dataclasses import dataclass

from kokoro_build.tune.settings import UNCOMPRESSED


@dataclass(frozen=True)
class Option:
    label: str
    bytes: int
    added_cost: float


@dataclass(frozen=True)
class Allocation:
    choices: dict[tuple[str, str], Option]   # (stage, weight) -> chosen option
    weight_bytes: int                        # the tuned weights, compressed as chosen
    fits: bool                               # False: even the smallest options miss the budget

    def added_cost(self, stage: str | None = None) -> float:
        return sum(o.added_cost for (s, _), o in self.choices.items() if stage in (None, s))

    def bits_per_weight(self, elements: dict[tuple[str, str], int]) -> float:
        return 8 * self.weight_bytes / max(sum(elements.values()), 1)


def hull(options: list[Option]) -> list[Option]:
    """The options no other beats on both bytes and cost, on their lower convex hull,
    from most bytes to fewest."""
    def beaten(o: Option) -> bool:
        return any(p.bytes <= o.bytes and p.added_cost <= o.added_cost and
                   (p.bytes, p.added_cost) != (o.bytes, o.added_cost) for p in options)
    frontier = sorted({(o.bytes, o.added_cost): o for o in options if not beaten(o)}.values(),
                      key=lambda o: -o.bytes)
    convex: list[Option] = []
    for option in frontier:
        while len(convex) >= 2 and _slope(convex[-2], convex[-1]) >= _slope(convex[-1], option):
            convex.pop()  # the middle point is above the line: skipping it costs less per byte
        convex.append(option)
    return convex


def _slope(a: Option, b: Option) -> float:
    """Cost added per byte saved going from a to b (b has fewer bytes)."""
    saved = a.bytes - b.bytes
    return (b.added_cost - a.added_cost) / saved if saved > 0 else float("inf")


def allocate(options: dict[tuple[str, str], list[Option]], budget_bytes: int) -> Allocation:
    """`options`: (stage, weight) -> its measured options, the uncompressed one included."""
    paths = {key: hull(opts) for key, opts in options.items()}
    position = {key: 0 for key in paths}
    total = sum(path[0].bytes for path in paths.values())
    moves = [(_slope(path[0], path[1]), key) for key, path in paths.items() if len(path) > 1]
    heapq.heapify(moves)
    while total > budget_bytes and moves:
        _, key = heapq.heappop(moves)
        path, here = paths[key], position[key]
        total -= path[here].bytes - path[here + 1].bytes
        position[key] = here + 1
        if here + 2 < len(path):
            heapq.heappush(moves, (_slope(path[here + 1], path[here + 2]), key))
    choices = {key: paths[key][position[key]] for key in paths}
    return Allocation(choices, total, total <= budget_bytes)


def uncompressed(fp16_bytes: int) -> Option:
    return Option(UNCOMPRESSED, fp16_bytes, 0.0)
