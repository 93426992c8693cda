"""Errors whose message is the whole story: a doit action reports them as a failure
in one paragraph, without a traceback (plan/actions.py)."""


class BuildError(Exception):
    """Bad input to a build step (a weights file, a voice), explained in its message."""
