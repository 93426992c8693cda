"""Conformance: our MIL evaluator held to coremltools' own MIL op unit tests.

    .venv/bin/python benchmarks/mil_conformance.py [TEST_FILE_OR_NODE ...] [--json OUT] [-k EXPR]

coremltools ships its op tests in the wheel (coremltools/converters/mil/mil/ops/tests/
iOS14 ... iOS18). Each builds a small program, converts it, and compares Core ML's
prediction with numpy-computed expected outputs; off macOS that comparison is skipped.
This runner keeps everything of those tests except the prediction: `compare_backend`
runs the *saved package* in our evaluator instead, under coremltools' own tolerances
(its fp16 widening included). Only ML Program (mlprogram) cases run, fp16 and fp32.

Each case is classified per op type of its program:
- right: every output within tolerance;
- wrong: an output out of tolerance, or of another shape;
- off-expectation: out of tolerance, but ours equals float64 arithmetic on the values the
  program stores (within an ulp of the op's output type) and the case's expectation does not
  (stored_reference.py: one-op conv, conv_transpose and instance_norm programs);
- refused: our evaluator refused the program by name (MilEvalError: an op it has no
  kernel for, or an input Core ML leaves undefined, such as an out-of-range index);
  a case that expects the prediction to fail, and passes because ours refused, is right;
- error: anything else raised while our evaluator ran (a bug of ours);
cases that fail before the comparison (in coremltools' own conversion) are not counted.

Prints a Markdown table per op type and overall; `--json` writes the rows and the node
id of every case that is not right, and rewrites the file as cases finish, so a run cut
short by a timeout keeps what it measured.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from collections import Counter, defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# coremltools' test matrix, read at import of its testing_reqs: ML Programs only, fp16 and fp32
os.environ.setdefault("PYMIL_TEST_TARGETS", "mlprogram")
os.environ.setdefault("INCLUDE_MIL_FP32_UNIT_TESTS", "1")

STATUSES = ("right", "wrong", "off-expectation", "refused", "error")
RESULTS: dict[str, dict] = {}  # test node id -> {"ops": [...], "status": ...}
_CURRENT: dict = {}


def _op_types(program) -> list[str]:
    """The op types a case tests: its program's, without const and, beside others, the
    casts that coremltools wraps fp16 programs in."""
    from kokoro_build.verify.mil_eval import _walk
    types = {op.op_type for f in program.functions.values() for op in _walk(f) if op.op_type != "const"}
    return sorted(types - {"cast"} or types)


def _evaluator_compare(mlmodel, input_key_values, expected_outputs, dtype="fp32", atol=1e-04, rtol=1e-05,
                       also_compare_shapes=True, state=None, allow_mismatch_ratio=0.0):
    """coremltools' compare_backend, with the prediction made by our evaluator."""
    import numpy as np
    import pytest

    from kokoro_build.verify.kernels import MilEvalError
    from kokoro_build.verify.mil_eval import MilEvaluator

    record = _CURRENT.setdefault("record", {"ops": [], "status": None})
    if state is not None:
        record["status"] = "refused"
        pytest.skip("stateful model: the evaluator runs no states")
    try:
        # always as the program types its values: a case at fp32 precision may still hold
        # fp16 tensors (its x and weights), which Core ML stores as half; the fp32 mode
        # would keep them exact and miss an expectation rounded to half
        evaluator = MilEvaluator(mlmodel.package_path, "fp16")
    except Exception as error:
        record["status"] = "error"
        raise AssertionError(f"evaluator could not load the package: {error}") from error
    record["ops"] = _op_types(evaluator.program)
    # as coremltools' run_core_ml_predict feeds Core ML: every array as float32
    feed = {}
    for name, value in input_key_values.items():
        value = np.asarray(value)
        feed[name] = value.astype(np.float32) if value.shape else np.array([value], np.float32)
    try:
        outputs = evaluator.run(feed)
    except MilEvalError as error:
        record["status"] = "refused"
        raise
    except Exception:
        record["status"] = "error"
        raise
    if mlmodel.compute_unit.name != "CPU_ONLY" or dtype == "fp16":  # coremltools' own widening
        atol, rtol = max(atol * 100.0, 5e-1), max(rtol * 100.0, 5e-2)
    record["status"] = "wrong"  # until every output matches
    for name, expected in expected_outputs.items():
        got = outputs[name] if name in outputs else outputs[name.replace(".", "_")]
        expected = np.asarray(expected)
        if also_compare_shapes and not (expected.shape == () and got.shape == (1,)):
            assert got.shape == expected.shape, f"{name}: shape {got.shape}, expected {expected.shape}"
        try:
            np.testing.assert_allclose(got.reshape(expected.shape), expected, atol=atol, rtol=rtol)
        except AssertionError:
            mismatched = np.sum(~np.isclose(got.reshape(expected.shape), expected, atol=atol, rtol=rtol))
            if mismatched / max(expected.size, 1) > allow_mismatch_ratio:
                if len(expected_outputs) == 1 and _off_expectation(evaluator.program, feed, got, expected, atol, rtol):
                    record["status"] = "off-expectation"
                raise
    record["status"] = "right"
    return outputs


def _off_expectation(program, feed, got, expected, atol, rtol) -> bool:
    """True when float64 arithmetic on the program's stored values (stored_reference.py)
    agrees with ours within one unit in the last place of the op's output type (ours
    accumulates in fp32 before rounding to half, so a value near a tie may round the
    other way), or within fp32 accumulation error for an fp32 output, and misses the
    expectation: the case expects values its own stored constants can't give."""
    import numpy as np
    from stored_reference import stored_value_reference
    reference = stored_value_reference(program, feed)
    if reference is None or reference.size != expected.size:
        return False
    reference = reference.reshape(expected.shape)
    ours = got.reshape(expected.shape).astype(reference.dtype)
    # fp32 outputs: fp32 accumulation is allowed its own rounding (1e-5 relative), still
    # ten times inside the fp32 tolerance the case applies (atol 1e-4, rtol 1e-5)
    slack = np.maximum(np.spacing(np.abs(reference)), 1e-6 + 1e-5 * np.abs(reference.astype(np.float64)))
    agrees = np.all(np.abs(ours.astype(np.float64) - reference) <= slack)
    return bool(agrees) and not np.allclose(reference, expected, atol=atol, rtol=rtol)


class ConformancePlugin:
    """pytest plugin: swap the comparison, record each case (every `save_every` cases
    into `json_path`, when given)."""

    def __init__(self, json_path: str | None = None, save_every: int = 20):
        self.json_path, self.save_every = json_path, save_every

    def pytest_configure(self, config):
        from coremltools.converters.mil import testing_utils
        from coremltools.converters.mil.mil.ops.tests import testing_utils as op_testing_utils
        testing_utils.compare_backend = _evaluator_compare
        op_testing_utils.compare_backend = _evaluator_compare

    def pytest_runtest_setup(self, item):
        _CURRENT.clear()

    def pytest_runtest_logreport(self, report):
        if report.when == "call" and "record" in _CURRENT:
            record = _CURRENT.pop("record")
            if report.passed and record["status"] == "refused":
                record["status"] = "right"  # the case expected Core ML to refuse it too
            RESULTS[report.nodeid] = record
            if self.json_path and len(RESULTS) % self.save_every == 0:
                save(self.json_path, RESULTS, finished=False)

    def pytest_sessionfinish(self):
        if self.json_path:
            save(self.json_path, RESULTS, finished=True)


def summarize(results: dict[str, dict]) -> list[dict]:
    per_op: dict[str, Counter] = defaultdict(Counter)
    for record in results.values():
        for op in record["ops"] or ["(not loaded)"]:
            per_op[op][record["status"] or "error"] += 1
    rows = [{"op": op, "cases": sum(c.values()), **{k: c[k] for k in STATUSES}}
            for op, c in sorted(per_op.items())]
    overall = Counter(r["status"] or "error" for r in results.values())
    rows.append({"op": "all cases", "cases": len(results),
                 **{k: overall[k] for k in STATUSES}})
    return rows


def save(path: str, results: dict[str, dict], finished: bool) -> None:
    not_right = {node: {"status": r["status"] or "error", "ops": r["ops"]}
                 for node, r in results.items() if r["status"] != "right"}
    document = {"finished": finished, "rows": summarize(results), "not_right": not_right}
    Path(path).write_text(json.dumps(document, indent=1) + "\n")


def markdown(rows: list[dict]) -> str:
    lines = ["| op type | cases | " + " | ".join(STATUSES) + " |", "|---" * (2 + len(STATUSES)) + "|"]
    lines += [f"| {r['op']} | {r['cases']} | " + " | ".join(str(r[k]) for k in STATUSES) + " |" for r in rows]
    return "\n".join(lines)


def coremltools_tests() -> Path:
    import coremltools
    return Path(coremltools.__file__).parent / "converters" / "mil" / "mil" / "ops" / "tests"


def run(targets: list[str], keyword: str | None = None, quiet: bool = True,
        json_path: str | None = None) -> list[dict]:
    import pytest
    RESULTS.clear()
    args = [*targets, "-p", "no:cacheprovider", "-o", "addopts=", "--rootdir", str(coremltools_tests()),
            "-W", "ignore"] + (["-q", "--no-header", "-rN"] if quiet else []) + (["-k", keyword] if keyword else [])
    pytest.main(args, plugins=[ConformancePlugin(json_path)])
    return summarize(RESULTS)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("targets", nargs="*", help="test files or node ids (default: every iOS* folder)")
    parser.add_argument("-k", dest="keyword")
    parser.add_argument("--json")
    args = parser.parse_args()
    base = coremltools_tests()
    targets = args.targets or [str(p) for p in sorted(base.glob("iOS1*"))]
    rows = run(targets, args.keyword, json_path=args.json)
    print(markdown(rows))


if __name__ == "__main__":
    main()
