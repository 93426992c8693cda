"""Run a `.pte` program with the ExecuTorch runtime (its Python bindings)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from kokoro_build.runtime.errors import BackendError


class ProgramError(BackendError):
    """A program that is missing or refuses its inputs (the CLI prints it in one line)."""


# c10::ScalarType codes, as the runtime's tensor metadata reports them
SCALAR_TYPES = {0: "uint8", 1: "int8", 2: "int16", 3: "int32", 4: "int64", 5: "float16",
                6: "float32", 7: "float64", 11: "bool", 15: "bfloat16"}


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
        meta = self._method.metadata
        # what the program was exported with: a stage's ids are int64 in torch (int32
        # in Core ML, which has no int64 input), so callers' ints are cast to these
        self.input_dtypes = [SCALAR_TYPES.get(meta.input_tensor_meta(i).dtype(), "unknown")
                             for i in range(meta.num_inputs())]

    def run(self, inputs: list) -> list[np.ndarray]:
        import torch

        if len(inputs) != len(self.input_dtypes):
            raise ProgramError(f"{self.path.name}: {len(inputs)} inputs given, the program takes "
                               f"{len(self.input_dtypes)}")
        tensors = [self._as_input(i, x) for i, x in enumerate(inputs)]
        try:
            outputs = self._method.execute(tensors)
        except RuntimeError as error:  # the runtime's error names no file
            shapes = ", ".join(str(tuple(t.shape)) for t in tensors)
            raise ProgramError(f"{self.path.name}: the ExecuTorch runtime refused inputs of shapes "
                               f"{shapes}: {error}") from None
        return [torch.as_tensor(o).numpy() for o in outputs]

    def _as_input(self, index: int, value):
        """`value` as a torch tensor of the input's dtype: ints to the program's int type,
        floats to its float type; an int where a float is expected (or back) is refused."""
        import torch

        tensor = value if isinstance(value, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(value))
        expected = getattr(torch, self.input_dtypes[index], None)
        if expected is None or tensor.dtype == expected:
            return tensor
        if tensor.dtype.is_floating_point != expected.is_floating_point:
            raise ProgramError(f"{self.path.name}: input {index} is {str(tensor.dtype).removeprefix('torch.')}, "
                               f"the program takes {self.input_dtypes[index]}")
        return tensor.to(expected)
