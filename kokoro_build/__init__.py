"""kokoro-build: Kokoro-82M -> verified Core ML packages, built incrementally with doit."""
import importlib
import importlib.util
import sys
import types

__version__ = "0.1.0"

_DEFERRED = "executorch.exir"


class _DeferredModule(types.ModuleType):
    """A stand-in in sys.modules that imports the real module on first attribute use
    (its spec, loader and name are its own, so the import system doesn't trigger it)."""

    def __getattr__(self, name: str):
        if name.startswith("__") and name != "__path__":  # a probe (torch's import walks modules)
            raise AttributeError(name)
        if sys.modules.get(_DEFERRED) is self:
            del sys.modules[_DEFERRED]
            parent = sys.modules["executorch"]
            if getattr(parent, "exir", None) is self:
                delattr(parent, "exir")
        real = importlib.import_module(_DEFERRED)
        return getattr(real, name)


def _defer_executorch_exir() -> None:
    """coremltools 9.0 imports `executorch.exir` whenever executorch is installed
    (converters/mil/frontend/torch/load.py) for its EXECUTORCH frontend only, which we
    never use: 6 of the 11 s `import coremltools` takes here (BENCHMARKS.md "`make test`
    time"). Every build step, test and `speak --backend mil` would pay it, so a
    stand-in takes its place until something reads from it (our ExecuTorch target)."""
    if _DEFERRED in sys.modules or "coremltools" in sys.modules:
        return
    try:
        spec = importlib.util.find_spec(_DEFERRED)  # imports the (light) executorch package
    except ImportError:  # executorch is an optional part of the install
        return
    if spec is None:
        return
    stand_in = _DeferredModule(_DEFERRED)
    stand_in.__spec__, stand_in.__loader__, stand_in.__package__ = spec, spec.loader, _DEFERRED
    stand_in.__file__ = spec.origin
    sys.modules[_DEFERRED] = stand_in
    setattr(sys.modules["executorch"], "exir", stand_in)  # as a finished import would


_defer_executorch_exir()
