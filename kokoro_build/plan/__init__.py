"""The doit graph: config -> tasks, the paths they write, and the code each task runs (read from the import graph)."""
