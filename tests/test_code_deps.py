"""A task's code file_dep is read from the import graph, and it holds.

- drift: each step, run for real on the small random-weight model in a fresh child
  process, loads no kokoro_build module that isn't in its task's file_dep;
- staleness: editing a module makes exactly the tasks that run it stale in a real doit
  run (a copy of the package, tasks with no-op actions);
- layers: schema/ and plan/ load no torch, coremltools or kokoro; runtime/ imports nothing
  of the build side; verify/ nothing of the doit graph; no import circles.
"""
import json
import os
import pickle
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from kokoro_build.plan.code_deps import PACKAGE_DIR, direct_imports, module_closure, module_file
from kokoro_build.plan.tasks import generate_tasks
from kokoro_build.schema.config import load_config

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "tests" / "fixtures" / "tiny-kokoro.json"
PIPELINE = f"""\
version: 1
name: deps
model:
  source: {{random_seed: 0, config: {TINY}}}
  voices: [test_voice]
defaults: {{precision: fp32}}
stages:
  g2p: {{kind: g2p, shapes: {{chars: {{range: [2, 8]}}}}, precision: fp32, compute_units: cpu_only}}
  duration:
    kind: duration
    shapes: {{tokens: {{buckets: [16]}}}}
    compress: {{linear: {{}}}}
"""
# Each step's task, in build order (a step needs its upstream outputs).
STEPS = ["weights", "runtime", "g2p:checkpoint", "g2p:lexicon", "g2p:chars_range.export", "g2p:chars_range.convert",
         "g2p:chars_range.verify", "duration:tokens_16.export", "duration:tokens_16.convert",
         "duration:tokens_16.compress", "duration:tokens_16.verify", "manifest"]
# One process imports the heavy third-party libraries (not kokoro_build), then forks a
# child per step: each step starts with no kokoro_build module loaded, without paying
# for torch and coremltools again. Prints "name modules..." per step.
CHILD = """\
import importlib, os, pickle, sys, time
import coremltools, numpy, torch  # noqa: F401
steps = pickle.load(open(sys.argv[1], "rb"))  # [(name, pickled (target, args))]: unpickled in the child
for name, step in steps:
    start = time.time()
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read)
        target, args = pickle.loads(step)
        module, _, func = target.partition(":")
        importlib.import_module("kokoro_build.plan.actions")  # the runner: in every task's deps
        getattr(importlib.import_module(module), func)(*args)
        loaded = sorted(m for m in sys.modules if m.split(".")[0] == "kokoro_build")
        os.write(write, " ".join([name, *loaded]).encode())
        os._exit(0)
    os.close(write)
    with os.fdopen(read) as pipe:
        line = pipe.read()
    _, status = os.waitpid(pid, 0)
    if status:
        sys.exit(f"step {name} failed")
    print(f"STEP {line}", flush=True)
    print(f"{name}: {time.time() - start:.1f} s", file=sys.stderr, flush=True)
"""


def module_name(path: str) -> str | None:
    rel = Path(path).resolve().relative_to(PACKAGE_DIR.parent)
    if rel.suffix != ".py":
        return None
    parts = rel.with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def code_modules(task: dict) -> set[str]:
    return {module_name(p) for p in task["file_dep"]
            if Path(p).resolve().is_relative_to(PACKAGE_DIR) and module_name(p)}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    folder = tmp_path_factory.mktemp("deps")
    (folder / "pipeline.yaml").write_text(PIPELINE)
    config = load_config(folder / "pipeline.yaml")
    tasks = {f"{t['basename']}:{t['name']}" if t.get("name") else t["basename"]: t
             for t in generate_tasks(config, folder / "pipeline.yaml")}
    return folder, tasks


def test_each_step_loads_only_modules_in_its_file_dep(tiny):
    folder, tasks = tiny
    steps = []
    for name in STEPS:
        action, args = tasks[name]["actions"][0]
        steps.append((name, pickle.dumps((action.__module_target__, list(args)))))
    payload = folder / "steps.pickle"
    payload.write_bytes(pickle.dumps(steps))
    result = subprocess.run([sys.executable, "-c", CHILD, str(payload)], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    loaded = {line.split()[1]: set(line.split()[2:]) for line in result.stdout.splitlines()
              if line.startswith("STEP ")}
    assert list(loaded) == STEPS
    problems = [f"{name} loads {sorted(modules - code_modules(tasks[name]))}, not in its file_dep"
                for name, modules in loaded.items() if modules - code_modules(tasks[name])]
    assert all(loaded.values()) and not problems, "\n".join(problems)


def test_a_kokoro_stage_does_not_depend_on_g2p_code(tiny):
    _, tasks = tiny
    for name in ("weights", "duration:tokens_16.export", "duration:tokens_16.verify"):
        assert not {"kokoro_build.model.stages.g2p", "kokoro_build.model.source.g2p_en",
                    "kokoro_build.runtime.device_g2p"} & code_modules(tasks[name]), name
    assert "kokoro_build.model.stages.g2p" in code_modules(tasks["g2p:chars_range.export"])


STALENESS_DODO = """\
import os
from pathlib import Path
from kokoro_build.plan.tasks import generate_tasks
from kokoro_build.schema.config import load_config
from kokoro_build.store.package import outputs_intact

CONFIG = os.environ["DEPS_CONFIG"]
DOIT_CONFIG = {"dep_file": os.environ["DEPS_DB"], "verbosity": 0}


def touch(targets):
    for target in targets:
        Path(target).parent.mkdir(parents=True, exist_ok=True)
        Path(target).write_text("built")


def task_all():
    for task in generate_tasks(load_config(CONFIG), CONFIG):
        task = {k: v for k, v in task.items() if k != "clean"}
        if "actions" in task:
            task["actions"] = [(touch, [task.get("targets", [])])]
            # the config slice stays; outputs_intact would read the (empty) digests
            task["uptodate"] = [u for u in task.get("uptodate", []) if u is not outputs_intact]
        yield task
"""


def test_editing_a_module_makes_the_tasks_that_run_it_stale(tmp_path):
    """The drifted files of the hand-kept lists: surgery/registry.py (psnr_db, the gates'
    metric), the G2P's input ids (schema/contract.py) and manifest.py."""
    copy = tmp_path / "src"
    shutil.copytree(PACKAGE_DIR, copy / "kokoro_build", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(ROOT / "requirements", copy / "requirements")
    (tmp_path / "dodo.py").write_text(STALENESS_DODO)
    config = tmp_path / "pipeline.yaml"
    config.write_text(f"extends: {ROOT / 'recipes' / 'executorch.yaml'}\nname: deps\n")
    env = {**os.environ, "PYTHONPATH": str(copy), "PYTHONHASHSEED": "0",
           "DEPS_CONFIG": str(config), "DEPS_DB": str(tmp_path / "doit.db")}

    def doit(*args: str) -> str:
        result = subprocess.run([sys.executable, "-m", "doit", *args], cwd=tmp_path, env=env,
                                capture_output=True, text=True)
        assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
        return result.stdout

    def stale() -> set[str]:
        lines = doit("list", "--all", "--status", "-q").splitlines()
        # a stage's group task has no action of its own: doit lists it as always run
        return {name for status, name in (line.split()[:2] for line in lines)
                if status == "R" and (":" in name or name in ("weights", "manifest", "report"))}

    doit("run")
    assert stale() == set()
    cases = {"model/surgery/registry.py": ("vocoder:frames_120.verify", "vocoder:frames_120.pte_verify",
                                           "vocoder:frames_120.export"),
             "schema/contract.py": ("g2p:chars_range.export", "g2p:chars_range.verify", "g2p:chars_range.pte"),
             "store/manifest.py": ("manifest", "report")}
    for relative, expected in cases.items():
        edited = copy / "kokoro_build" / relative
        edited.write_text(edited.read_text() + "\n# edited\n")
        now = stale()
        assert set(expected) <= now, (relative, sorted(now)[:20])
        assert "weights" not in now and "g2p:lexicon" not in now, relative
        doit("run")
        assert stale() == set(), relative


LAYERS = """\
import importlib, json, sys
for name in sys.argv[1:]:
    importlib.import_module(name)
print(json.dumps(sorted({m.split(".")[0] for m in sys.modules} & {"torch", "coremltools", "kokoro", "numpy"})))
"""


def all_modules() -> list[str]:
    found = []
    for path in PACKAGE_DIR.rglob("*.py"):
        name = module_name(str(path))
        if name:
            found.append(name)
    return sorted(found)


def test_spec_and_plan_load_no_heavy_library():
    light = [m for m in all_modules() if m.startswith(("kokoro_build.schema", "kokoro_build.plan"))]
    result = subprocess.run([sys.executable, "-c", LAYERS, *light], cwd=ROOT, capture_output=True, text=True,
                            check=True)
    assert json.loads(result.stdout) == []


@pytest.mark.parametrize("layer, forbidden", [
    # an app runs the chain from a release: nothing of the build side
    ("kokoro_build.runtime", ("kokoro_build.model", "kokoro_build.plan", "kokoro_build.targets",
                              "kokoro_build.store.cache", "kokoro_build.store.release")),
    ("kokoro_build.verify", ("kokoro_build.plan", "kokoro_build.runtime")),
    ("kokoro_build.schema", ("kokoro_build.model", "kokoro_build.plan", "kokoro_build.targets",
                           "kokoro_build.runtime", "kokoro_build.verify", "kokoro_build.report",
                           "kokoro_build.store")),
    ("kokoro_build.plan", ("kokoro_build.targets", "kokoro_build.verify", "kokoro_build.runtime",
                           "kokoro_build.report")),
    ("kokoro_build.model", ("kokoro_build.plan", "kokoro_build.runtime", "kokoro_build.targets",
                            "kokoro_build.report")),
])
def test_layer_rules_hold_in_the_import_graph(layer, forbidden):
    broken = [f"{name} loads {dep}" for name in all_modules() if name.startswith(layer)
              for dep in module_closure(name) if dep.startswith(forbidden)]
    assert not broken, "\n".join(broken)


def test_no_import_circles():
    """Between modules, not counting a package's own __init__ re-exporting its modules."""
    graph = {name: {d for d in direct_imports(name) if not name.startswith(d + ".")} for name in all_modules()}
    circles = []
    for start in graph:
        todo, seen = list(graph[start]), set()
        while todo:
            current = todo.pop()
            if current == start:
                circles.append(start)
                break
            if current not in seen:
                seen.add(current)
                todo += graph.get(current, ())
    assert not circles, circles


def test_the_graph_reads_relative_and_function_level_imports(tmp_path, monkeypatch):
    assert module_file("kokoro_build.plan.tasks") == PACKAGE_DIR / "plan" / "tasks.py"
    assert module_file("torch") is None
    # verify/task.py imports the evaluator inside its action, not at the top
    assert "kokoro_build.verify.mil_eval" in module_closure("kokoro_build.verify.task")
