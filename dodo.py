"""doit entry point: a thin map from pipeline.yaml to tasks (logic: kokoro_build/tasks.py).

    doit                         build pipeline.yaml
    doit config=recipes/x.yaml   build another config
    doit recipe=x                the same: recipes/x.yaml -> artifacts/x/
    doit list --all              show every task
"""
import os
import sys

from doit import get_var

from kokoro_build.store import doit_db
from kokoro_build.schema.config import ConfigError, load_config
from kokoro_build.store.package import OutputDirError, prepare_output_dir
from kokoro_build.store.reproducible import pin_hash_seed
from kokoro_build.plan.paths import artifacts_dir, recipe_path
from kokoro_build.plan.tasks import generate_tasks

pin_hash_seed()  # before any work: equal inputs must give equal bytes (reproducible.py)

# get_var is None in `doit -n` worker processes; they inherit the choice via the env.
CONFIG_PATH = (get_var("config") or (get_var("recipe") and recipe_path(get_var("recipe")))
               or os.environ.get("KOKORO_BUILD_CONFIG", "pipeline.yaml"))
os.environ["KOKORO_BUILD_CONFIG"] = CONFIG_PATH

try:
    CONFIG = load_config(CONFIG_PATH)
except ConfigError as error:
    print(error, file=sys.stderr)
    sys.exit(1)

OUT = artifacts_dir(CONFIG, CONFIG_PATH)
try:
    prepare_output_dir(OUT)  # doit keeps its state db in here
except OutputDirError as error:
    print(f"kokoro-build: {error}", file=sys.stderr)
    sys.exit(1)

DOIT_CONFIG = {
    "dep_file": str(OUT / ".doit.sqlite"),
    "backend": doit_db.backend(),  # a killed build keeps what it finished (doit_db.py)
    "default_tasks": ["weights", "runtime", *(n for n, s in CONFIG.stages.items() if s.builds_artifacts), "manifest", "report"],
    "verbosity": 2,
}


def task_kokoro():
    yield from generate_tasks(CONFIG, CONFIG_PATH)
