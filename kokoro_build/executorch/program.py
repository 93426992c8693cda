"""Run a `.pte` program with the ExecuTorch runtime (its Python bindings)."""
from __future__ import annotations

from pathlib import Path

import numpy as np


class ProgramError(RuntimeError):
    pass


class Program:
    """One loaded `.pte`: its `forward` method, called with numpy or torch inputs in
    the order the stage declares them."""

    def __init__(self, path: str | Path):
        from executorch.runtime import Runtime

        self.path = Path(path)
        if not self.path.is_file():
            raise ProgramError(f"{self.path}: no such ExecuTorch program (build it: doit)")
        self._program = Runtime.get().load_program(self.path)
        self._method = self._program.load_method("forward")

    def run(self, inputs: list) -> list[np.ndarray]:
        import torch

        tensors = [x if isinstance(x, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(x))
                   for x in inputs]
        try:
            outputs = self._method.execute(tensors)
        except RuntimeError as error:  # the runtime's error names no file
            shapes = ", ".join(str(tuple(t.shape)) for t in tensors)
            raise ProgramError(f"{self.path.name}: the ExecuTorch runtime refused inputs of shapes "
                               f"{shapes}: {error}") from None
        return [torch.as_tensor(o).numpy() for o in outputs]
