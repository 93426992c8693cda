"""The executors: in-process, a local pool, and Ray (a stand-in module here: the real
one runs in tests/scale/test_sweep_ray.py); a failed item never stops the others."""
import math
import sys
from types import SimpleNamespace

import pytest

from kokoro_build.cli import main as cli
from kokoro_build.scale import executors
from kokoro_build.scale.executors import RAY_MISSING, ExecutorError, InProcess, LocalPool, make_executor


def test_a_failing_item_is_reported_with_it():
    outcomes = dict(InProcess().map_unordered(lambda x: 1 / x, [1, 0]))
    assert outcomes[1] == 1 and isinstance(outcomes[0], ZeroDivisionError)


def test_a_local_pool_maps_on_its_workers_and_keeps_going_past_an_error():
    outcomes = dict(LocalPool(2).map_unordered(math.sqrt, [4.0, -1.0, 9.0]))
    assert outcomes[4.0] == 2.0 and outcomes[9.0] == 3.0 and isinstance(outcomes[-1.0], ValueError)


def test_make_executor_names_each_backend():
    assert make_executor("in-process").name == "in-process"
    assert make_executor("local", workers=3).workers == 3
    with pytest.raises(ValueError, match="unknown executor 'slurm'; known: local, ray, in-process"):
        make_executor("slurm")


def test_without_ray_the_ray_backend_says_how_to_install_it(monkeypatch, capsys, tmp_path):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError
    with pytest.raises(ExecutorError) as caught:
        make_executor("ray", address="auto")
    assert str(caught.value) == RAY_MISSING
    assert "pip install 'kokoro-build[ray]'" in RAY_MISSING and "requirements/scale.txt" in RAY_MISSING
    (tmp_path / "s.yaml").write_text("name: s\nbase: s.yaml\ngrid: {a.b: [1]}\n")
    assert cli(["sweep", str(tmp_path / "s.yaml"), "--executor", "ray"]) == 1
    assert cli(["tune", "vocoder", "--budget-mb", "5", "--executor", "ray", "--ray", "local"]) == 1
    assert capsys.readouterr().err.count(RAY_MISSING) == 2
    assert cli(["tune", "vocoder", "--budget-mb", "5", "--ray", "local"]) == 1
    assert "--ray goes with --executor ray" in capsys.readouterr().err


class FakeTaskError(Exception):
    def __init__(self, cause):
        super().__init__(f"task failed: {cause!r}")
        self.cause = cause


class Ref:
    def __init__(self, value=None, error=None):
        self.value, self.error = value, error


class FakeRay:
    """What RayExecutor uses of `ray`; tasks run at submission and finish last-first."""

    def __init__(self, initialized=False, refuse=False):
        self.initialized, self.refuse = initialized, refuse
        self.inits, self.options, self.shutdowns = [], None, 0
        self.exceptions = SimpleNamespace(RayTaskError=FakeTaskError)

    def is_initialized(self):
        return self.initialized

    def init(self, **kwargs):
        if self.refuse:
            raise ConnectionError("could not find any running Ray instance")
        self.inits.append(kwargs)
        self.initialized = True

    def shutdown(self):
        self.shutdowns += 1

    def remote(self, wrapper):
        ray = self

        class Task:
            def options(self, **options):
                ray.options = options
                return self

            def remote(self, fn, item):
                try:
                    return Ref(value=wrapper(fn, item))
                except Exception as error:
                    return Ref(error=FakeTaskError(error))
        return Task()

    def wait(self, refs, num_returns):
        return refs[-num_returns:], refs[:-num_returns]

    def get(self, ref):
        if ref.error is not None:
            raise ref.error
        return ref.value


def test_ray_runs_each_item_as_a_task_with_its_resources_and_unwraps_task_errors(monkeypatch):
    fake = FakeRay()
    monkeypatch.setitem(sys.modules, "ray", fake)
    monkeypatch.setattr(executors, "one_thread", lambda: None)
    executor = make_executor("ray", workers=2, address="local", resources={"num_cpus": 1, "memory": 4e9})
    outcomes = list(executor.map_unordered(math.sqrt, [4.0, -1.0, 9.0]))
    assert [item for item, _ in outcomes] == [9.0, -1.0, 4.0]  # as they finish
    assert outcomes[0][1] == 3.0 and type(outcomes[1][1]) is ValueError  # the task's own error
    assert fake.inits == [{"num_cpus": 2, "include_dashboard": False, "log_to_driver": False}]
    assert fake.options == {"num_cpus": 1, "memory": 4_000_000_000} and fake.shutdowns == 1


def test_ray_joins_a_running_cluster_and_leaves_it_running(monkeypatch):
    fake = FakeRay()
    monkeypatch.setitem(sys.modules, "ray", fake)
    monkeypatch.setattr(executors, "one_thread", lambda: None)
    assert dict(make_executor("ray", address="HOST:6379").map_unordered(abs, [-2])) == {-2: 2}
    assert fake.inits == [{"address": "HOST:6379", "log_to_driver": False}] and fake.shutdowns == 1
    already = FakeRay(initialized=True)
    monkeypatch.setitem(sys.modules, "ray", already)
    assert dict(make_executor("ray").map_unordered(abs, [-2])) == {-2: 2}
    assert already.inits == [] and already.shutdowns == 0  # ray.init was the caller's
    monkeypatch.setitem(sys.modules, "ray", FakeRay(refuse=True))
    with pytest.raises(ExecutorError, match="ray: cannot connect to 'auto': could not find"):
        list(make_executor("ray").map_unordered(abs, [-2]))
