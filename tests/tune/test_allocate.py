"""Allocation on synthetic sensitivities where the right answer is known."""
from kokoro_build.tune.allocate import Option, allocate, hull


def test_hull_drops_dominated_and_non_convex_options():
    options = [Option("fp16", 100, 0.0), Option("pal8", 50, 0.0), Option("int8", 51, 0.001),
               Option("pal6", 38, 0.01), Option("pal4", 25, 0.5), Option("pal3", 19, 0.6), Option("pal2", 13, 5.0)]
    # fp16 and int8: more bytes than pal8, no less error; pal4: above the pal6-pal3 line
    assert [o.label for o in hull(options)] == ["pal8", "pal6", "pal3", "pal2"]


def test_allocation_compresses_the_insensitive_weight_first():
    robust = [Option("fp16", 100, 0.0), Option("pal6", 40, 0.001), Option("pal2", 15, 0.002)]
    fragile = [Option("fp16", 100, 0.0), Option("pal6", 40, 0.5), Option("pal2", 15, 9.0)]
    choice = allocate({("s", "robust"): robust, ("s", "fragile"): fragile}, budget_bytes=120)
    assert choice.fits and choice.weight_bytes <= 120
    assert choice.choices[("s", "robust")].label == "pal2"
    assert choice.choices[("s", "fragile")].label == "fp16"
    assert choice.added_cost() == 0.002


def test_allocation_says_when_nothing_fits():
    only = [Option("fp16", 100, 0.0), Option("pal2", 15, 1.0)]
    choice = allocate({("s", "w"): only}, budget_bytes=10)
    assert not choice.fits and choice.choices[("s", "w")].label == "pal2"


def test_a_generous_budget_changes_nothing():
    options = [Option("fp16", 100, 0.0), Option("pal6", 40, 0.1)]
    choice = allocate({("s", "w"): options}, budget_bytes=1000)
    assert choice.choices[("s", "w")].label == "fp16" and choice.added_cost() == 0.0
