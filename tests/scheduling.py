"""Two pytest-xdist workers that keep each shared build on one worker, longest first.

Why not `--dist loadgroup`: pytest-xdist 3.8 writes the group into `item._nodeid`,
which pytest 9.2 no longer reads (BENCHMARKS.md "`make test` time"), so every test was
scheduled alone and a module's build ran on both workers.

How: the first worker writes, after collection, each test's work unit and its measured
cost to a file the controller named (`workerinput`). A unit is a test module, joined
with every other module that uses the same shared session build (`SHARED_BUILDS`).
The controller's scheduler hands out whole units, the most expensive first
(`tests/durations.json`: each test's seconds in an earlier run, recorded with
KOKORO_TEST_DURATIONS=PATH; an unknown test costs a guess by its marker), and gives a
worker its next unit only when it is about to run the last test of its current one.
"""
import json
import os
import tempfile
from pathlib import Path

import pytest

# Session fixtures that build for minutes: the modules that use one share a worker.
SHARED_BUILDS = ("real_default", "tiny_chain")
DURATIONS = Path(__file__).resolve().parent / "durations.json"
# A test not in tests/durations.json yet: a guess by its marker.
UNKNOWN_COST = {"slow": 30.0, "fast": 1.0}
UNITS_KEY = "kokoro_test_units"


def measured_costs() -> dict[str, float]:
    return json.loads(DURATIONS.read_text()) if DURATIONS.is_file() else {}


def work_units(items) -> dict[str, str]:
    """nodeid -> its unit's name: its module, or the first module (sorted) of those
    joined through a shared build."""
    parent = {}

    def find(name):
        while parent.setdefault(name, name) != name:
            name = parent[name]
        return name

    for item in items:
        module = item.nodeid.split("::", 1)[0]
        for build in SHARED_BUILDS:
            if build in item.fixturenames:
                a, b = sorted((find(module), find("build:" + build)))
                parent[b] = a
    modules = {item.nodeid: item.nodeid.split("::", 1)[0] for item in items}
    name_of_root: dict[str, str] = {}
    for module in sorted(set(modules.values())):
        name_of_root.setdefault(find(module), module)
    return {nodeid: name_of_root[find(module)] for nodeid, module in modules.items()}


def unit_costs(items, units: dict[str, str], costs: dict[str, float]) -> dict[str, float]:
    totals: dict[str, float] = {}
    for item in items:
        guess = UNKNOWN_COST["slow" if item.get_closest_marker("slow") else "fast"]
        unit = units[item.nodeid]
        totals[unit] = totals.get(unit, 0.0) + costs.get(item.nodeid, guess)
    return totals


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node):
    """Controller: tell the workers where to write the units."""
    config = node.config
    if not hasattr(config, "_kokoro_units_path"):
        handle, path = tempfile.mkstemp(prefix="kokoro-test-units-", suffix=".json")
        os.close(handle)
        config._kokoro_units_path = path
    node.workerinput[UNITS_KEY] = config._kokoro_units_path


def pytest_collection_modifyitems(session, config, items):
    workerinput = getattr(config, "workerinput", None)
    if not workerinput or workerinput.get("workerid") != "gw0" or UNITS_KEY not in workerinput:
        return
    units = work_units(items)
    costs = measured_costs()
    Path(workerinput[UNITS_KEY]).write_text(json.dumps(
        {"units": units, "costs": unit_costs(items, units, costs)}))


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    from xdist.scheduler.loadscope import LoadScopeScheduling

    class SharedBuildScheduling(LoadScopeScheduling):
        """LoadScope with our units, longest first, and no early hand-out."""

        _plan = None

        def _read_plan(self):
            if self._plan is None:
                path = Path(config._kokoro_units_path)
                text = path.read_text()  # empty if the first worker failed to collect
                self._plan = json.loads(text) if text else {"units": {}, "costs": {}}
                path.unlink()
            return self._plan

        def _split_scope(self, nodeid):
            return self._read_plan()["units"].get(nodeid, nodeid.split("::", 1)[0])

        def schedule(self):
            assert self.collection_is_completed
            if self.collection is not None:  # later calls: new nodes
                for node in self.nodes:
                    self._reschedule(node)
                return
            if not self._check_nodes_have_same_collection():
                self.log("**Different tests collected, aborting run**")
                return
            self.collection = list(next(iter(self.registered_collections.values())))
            units: dict = {}
            for nodeid in self.collection:
                units.setdefault(self._split_scope(nodeid), {})[nodeid] = False
            costs = self._read_plan()["costs"]
            for unit in sorted(units, key=lambda unit: -costs.get(unit, 0.0)):
                self.workqueue[unit] = units[unit]
            for node in self.nodes:
                self._reschedule(node)

        def _reschedule(self, node):
            # A worker holds its last test until it knows the next one (to tear down
            # fixtures), so one pending test is the moment to give it more.
            if node.shutting_down:
                return
            while self.workqueue and self._pending_of(self.assigned_work[node]) <= 1:
                self._assign_work_unit(node)
            if not self.workqueue:
                node.shutdown()

    return SharedBuildScheduling(config, log)


class DurationRecorder:
    """With KOKORO_TEST_DURATIONS=PATH: each test's setup + call + teardown seconds,
    written to PATH at the end (the source of tests/durations.json)."""

    def __init__(self, path: str):
        self.path, self.seconds = Path(path), {}

    def pytest_runtest_logreport(self, report):
        self.seconds[report.nodeid] = round(self.seconds.get(report.nodeid, 0.0) + report.duration, 2)

    def pytest_sessionfinish(self, session):
        self.path.write_text(json.dumps(dict(sorted(self.seconds.items())), indent=0) + "\n")


def pytest_configure(config):
    path = os.environ.get("KOKORO_TEST_DURATIONS")
    if path and not hasattr(config, "workerinput"):  # the controller sees every report
        config.pluginmanager.register(DurationRecorder(path), "kokoro-durations")
