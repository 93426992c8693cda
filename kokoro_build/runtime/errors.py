"""The runtime's errors: a backend that can't run an artifact here says why."""


class BackendError(RuntimeError):
    pass
