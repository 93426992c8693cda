"""make test's scheduling (tests/scheduling.py): which tests share a worker, and in what order."""
from types import SimpleNamespace

import pytest

from tests.scheduling import work_units, unit_costs


def item(nodeid, *fixtures, slow=False):
    marker = pytest.mark.slow.mark if slow else None
    return SimpleNamespace(nodeid=nodeid, fixturenames=list(fixtures),
                           get_closest_marker=lambda name: marker if name == "slow" else None)


def test_modules_that_share_a_build_are_one_unit_and_the_others_stay_apart():
    items = [item("tests/b.py::t1", "real_default"), item("tests/b.py::t2"),
             item("tests/a.py::t", "real_default", "tmp_path"),
             item("tests/c.py::t", "tiny_chain"), item("tests/d.py::t", "tiny_chain"),
             item("tests/e.py::t", "tmp_path")]
    units = work_units(items)
    assert units == {"tests/b.py::t1": "tests/a.py", "tests/b.py::t2": "tests/a.py",
                     "tests/a.py::t": "tests/a.py", "tests/c.py::t": "tests/c.py",
                     "tests/d.py::t": "tests/c.py", "tests/e.py::t": "tests/e.py"}


def test_a_unit_costs_its_measured_tests_and_a_guess_for_the_new_ones():
    items = [item("tests/a.py::old", slow=True), item("tests/a.py::new", slow=True), item("tests/e.py::t")]
    costs = unit_costs(items, work_units(items), {"tests/a.py::old": 200.0})
    assert costs == {"tests/a.py": 230.0, "tests/e.py": 1.0}
