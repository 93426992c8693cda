"""Scale-out: where independent work runs (executors.py: in-process, a local pool, a
Ray cluster) and sweeps of many variants built on it (sweep.py)."""
