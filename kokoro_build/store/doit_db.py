"""doit's state file, written as each task succeeds.

doit's own backends (dbm, json, sqlite3) keep the run's successes in memory and
write them when the run ends, so a SIGKILLed build forgets every task it finished
and the next run redoes them all. This backend commits a task's record as soon as
doit has saved it: after a kill, only the unfinished work runs again.

Registered as a `doit.BACKEND` entry point (pyproject.toml, so it is found from any
working directory once the package is installed) and chosen in dodo.py by `backend()`.
"""
from __future__ import annotations

import sys
from importlib.metadata import entry_points

from doit.dependency import SqliteDB

NAME = "kokoro-durable"


class DurableSqliteDB(SqliteDB):
    desc = "sqlite3, committed after every task (kokoro-build)"
    # doit 0.37 `Dependency.save_success` stores a task's fields one `set` at a time
    # and "deps:" last, so that one marks a complete record.
    LAST_FIELD = "deps:"

    def _sqlite3(self, name):
        conn = super()._sqlite3(name)
        # WAL: a commit is an append, no fsync per task; a killed process loses nothing
        conn.execute("pragma journal_mode=wal")
        conn.execute("pragma synchronous=normal")
        return conn

    def set(self, task_id, dependency, value):
        super().set(task_id, dependency, value)
        if dependency == self.LAST_FIELD:
            self._conn.execute("insert or replace into doit values (?,?)",
                               (task_id, self.codec.encode(self._cache[task_id])))
            self._conn.commit()
            self._dirty.discard(task_id)


def backend() -> str:
    """The backend name for DOIT_CONFIG: ours if installed, else doit's plain sqlite3
    (same file format; its records are written when the run ends)."""
    if any(point.name == NAME for point in entry_points(group="doit.BACKEND")):
        return NAME
    print("kokoro-build: the package is not installed (make build installs it), so doit's "
          "state is written only when a run ends: a killed build will redo its finished tasks",
          file=sys.stderr)
    return "sqlite3"
