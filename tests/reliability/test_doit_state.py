"""doit's state file keeps each task's success as soon as it is saved (a SIGKILL
can't lose it), and the backend is found from any working directory."""
import json
import sqlite3

from doit.dependency import Dependency, JSONCodec, MD5Checker
from doit.task import Task

from kokoro_build.store import doit_db


def _task(name: str, dep):
    task = Task(name, actions=None, file_dep=[str(dep)])
    task.values = {"k": 1}
    return task


def test_a_saved_task_is_on_disk_before_the_run_ends(tmp_path):
    dep = tmp_path / "input.txt"
    dep.write_text("x")
    state = tmp_path / ".doit.sqlite"
    manager = Dependency(doit_db.DurableSqliteDB, str(state), checker_cls=MD5Checker, codec_cls=JSONCodec)
    manager.save_success(_task("weights", dep))
    # not closed: a killed doit never gets to dump(); read with another connection
    rows = sqlite3.connect(state).execute("select task_id, task_data from doit").fetchall()
    assert [r[0] for r in rows] == ["weights"]
    assert json.loads(rows[0][1])["_values_:"] == {"k": 1}
    manager.save_success(_task("export", dep))
    assert len(sqlite3.connect(state).execute("select task_id from doit").fetchall()) == 2
    manager.close()


def test_the_backend_is_the_installed_entry_point():
    assert doit_db.backend() == doit_db.NAME
