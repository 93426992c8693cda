"""A fast subset of the conformance run (benchmarks/mil_conformance.py): coremltools'
own op tests, with our evaluator making the prediction, for op types our artifacts use.
The whole table is in BENCHMARKS.md."""
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))

# (test file under coremltools/converters/mil/mil/ops/tests, -k expression, op types it must cover)
SUBSET = [
    ("iOS14/test_activation.py", "TestGeLU or TestLeakyReLU or TestSiLU or TestELU or TestReLU or TestSoftmax",
     {"gelu", "leaky_relu", "silu", "elu", "relu", "softmax"}),
]


@pytest.mark.parametrize("path, keyword, covers", SUBSET, ids=[s[0] for s in SUBSET])
def test_the_evaluator_agrees_with_coremltools_op_tests(path, keyword, covers):
    import mil_conformance
    rows = {r["op"]: r for r in mil_conformance.run([str(mil_conformance.coremltools_tests() / path)], keyword)}
    overall = rows.pop("all cases")
    assert overall["cases"] > 0 and covers <= rows.keys(), rows.keys()
    wrong = {op: r for op, r in rows.items() if r["wrong"] or r["error"]}
    assert not wrong, wrong
