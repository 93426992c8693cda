"""A reference evaluator for saved Core ML ML Programs.

Core ML prediction exists only on macOS (apple/coremltools #2658), so this runs
the artifact itself on Linux: the package's spec and weights go through
coremltools' milproto loader to a MIL Program, and each op of a function runs
as a torch CPU kernel (kernels/, one per op type, found through a registry).

Precision:
- `fp16` (default): every op whose output the program types as fp16 has that
  output rounded to half, as the model declares. Kernels compute in fp32, so
  accumulation inside one op (conv, matmul) is more exact than an fp16 device
  may be; storage between ops is exactly fp16.
- `fp32`: no rounding, the ideal reference for the same weights (which stay as
  stored: fp16 weights are not made more exact).
"""
from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from kokoro_build.store.memory import map_large_buffers
from kokoro_build.verify.kernels import KERNELS, Args, MilEvalError
from kokoro_build.verify.stats import ActivationStats

PRECISIONS = ("fp16", "fp32")
# Ops that only move values: their outputs are already what the program's dtype holds
# (fp16-exact in, fp16-exact out), so rounding them again is skipped (for speed).
EXACT_OPS = frozenset({"reshape", "transpose", "expand_dims", "squeeze", "slice_by_index",
                       "slice_by_size", "concat", "split", "tile", "identity", "gather",
                       "gather_along_axis", "reverse"})


def _input_var_ids(op) -> frozenset[int]:
    """ids of the MIL vars an op reads (an input may be a tuple of vars)."""
    ids = set()
    for value in op.inputs.values():
        ids.update(id(v) for v in (value if isinstance(value, (list, tuple)) else (value,)))
    return frozenset(ids)


def load_program(package: str | Path):
    """The MIL Program of a saved .mlpackage (spec + weights dir)."""
    import coremltools as ct
    from coremltools.converters.mil.frontend.milproto.load import load

    path = Path(package)
    if not (path / "Manifest.json").is_file():
        raise MilEvalError(f"{path}: not an .mlpackage (no Manifest.json)")
    model = ct.models.MLModel(str(path), skip_model_load=True)
    spec = model.get_spec()
    if spec.WhichOneof("Type") != "mlProgram":
        raise MilEvalError(f"{path}: a {spec.WhichOneof('Type')} model, not an ML Program")
    return load(spec, spec.specificationVersion, file_weights_dir=model.weights_dir)


class MilEvaluator:
    def __init__(self, package: str | Path, precision: str = "fp16", program=None):
        """Run `package`; `program` (a MIL Program already in memory) skips loading it."""
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
        map_large_buffers()
        self.package, self.precision = Path(package), precision
        self.program = program if program is not None else load_program(package)
        self._constants: dict[int, torch.Tensor] = {}  # id(var) -> tensor, built once
        # Expanded compressed weights (constexpr_* outputs) of the function run last:
        # id(op) -> (stored outputs, ids of the vars they were made from). A chain that
        # speaks chunk after chunk runs a function many times; one function's constants
        # and dense weights are kept at a time (a multifunction package has a copy per
        # function, so keeping all of them grew with the function count).
        self._expanded: dict[int, tuple[tuple, frozenset]] = {}
        self._expanded_function: str | None = None
        self._scratch = torch.empty(0, dtype=torch.float16)

    @property
    def functions(self) -> list[str]:
        return list(self.program.functions)

    def op_types(self, function: str = "main") -> set[str]:
        types: set[str] = set()
        for op in _walk(self.program.functions[function]):
            types.add(op.op_type)
        return types

    def missing_kernels(self) -> set[str]:
        return {t for f in self.functions for t in self.op_types(f)} - set(KERNELS)

    def run(self, inputs: dict[str, np.ndarray], function: str = "main",
            stats: ActivationStats | None = None,
            progress: Callable[[int, int], None] | None = None,
            shapes: dict | None = None, memory=None,
            checkpoints: "Checkpoints | None" = None) -> dict[str, np.ndarray]:
        """Named numpy inputs -> named numpy outputs of `function`. `stats` collects
        activation statistics (inputs included); `shapes` (a dict) receives the shape of
        every input and computed value (the ANE analyzer counts a matmul's FLOPs from it,
        also where an operand is a flexible function input); `memory` (a
        verify.memory.ActivationMeter) the most activation bytes alive at once;
        `checkpoints` keeps the values alive before the ops it names (for `resume`)."""
        if function not in self.program.functions:
            raise MilEvalError(f"{self.package.name}: no function {function!r} "
                               f"(has: {', '.join(self.functions)})")
        func = self.program.functions[function]
        self._keep_expanded_of(function)
        env: dict[str, object] = {}
        if stats is not None:
            stats.runs += 1
        for name, var in func.inputs.items():
            if name not in inputs:
                raise MilEvalError(f"{self.package.name}: missing input {name!r}")
            value = torch.from_numpy(np.ascontiguousarray(inputs[name]))
            if tuple(value.shape) != tuple(var.shape) and not _fits(value.shape, var.shape):
                raise MilEvalError(f"{self.package.name}: input {name} has shape "
                                   f"{tuple(value.shape)}, the model takes {var.shape}")
            env[name] = self._store(value, var)
            if shapes is not None:
                shapes[name] = tuple(value.shape)
            if stats is not None:
                stats.record(name, "input", env[name])
            if memory is not None:
                memory.hold(name, env[name], var.dtype)
        with torch.no_grad():
            outputs = self._run_block(func, env, stats, progress, shapes, memory, checkpoints=checkpoints)
        return {var.name: _to_numpy(value) for var, value in zip(func.outputs, outputs)}

    def resume(self, checkpoints: "Checkpoints", op_index: int, function: str = "main") -> dict[str, np.ndarray]:
        """Run `function` from op `op_index` on, from the latest checkpoint at or before
        it: the ops before it compute what they computed when the checkpoints were taken
        (a tune trial changes one weight, so everything upstream of its first reader is
        reused)."""
        start, saved = checkpoints.latest(op_index)
        func = self.program.functions[function]
        self._keep_expanded_of(function)
        with torch.no_grad():
            outputs = self._run_block(func, dict(saved), None, start=start)
        return {var.name: _to_numpy(value) for var, value in zip(func.outputs, outputs)}

    @contextmanager
    def substituted(self, values: dict):
        """Constants replaced by other values (a MIL var -> numpy array) while inside, for
        runs of one function (running another one drops the substitutes)."""
        saved = {id(var): self._constants.get(id(var)) for var in values}
        self._forget_expanded(set(saved))
        try:
            for var, value in values.items():
                self._constants[id(var)] = _constant(value)
            yield self
        finally:
            for key, value in saved.items():
                if value is None:
                    self._constants.pop(key, None)
                else:
                    self._constants[key] = value
            self._forget_expanded(set(saved))

    def _keep_expanded_of(self, function: str) -> None:
        if function != self._expanded_function:
            self._expanded.clear()
            if self._expanded_function is not None:
                self._constants.clear()
            self._expanded_function = function

    def _forget_expanded(self, var_ids: set[int]) -> None:
        """Drop the expanded weights made from any of these (substituted) values."""
        for key in [k for k, (_, made_from) in self._expanded.items() if made_from & var_ids]:
            del self._expanded[key]

    # -- execution -----------------------------------------------------------------
    def _run_block(self, block, env: dict, stats, progress=None, shapes=None, memory=None,
                   start: int = 0, checkpoints: "Checkpoints | None" = None) -> list:
        operations = list(block.operations)
        # Free each value after its last use: holding every intermediate made the
        # 30 s vocoder need tens of GB, and fresh allocations made the ops slow.
        last_use = _last_uses(operations)
        keep = {var.name for var in block.outputs}
        for index in range(start, len(operations)):
            op = operations[index]
            if checkpoints is not None and index in checkpoints.at:
                checkpoints.saved[index] = dict(env)  # values are never changed in place
            if op.op_type == "const" or (not op.op_type.startswith("constexpr_") and
                                         all(out.val is not None for out in op.outputs)):
                continue  # a constant (folded by coremltools' loader): read on use
            expanded = self._expanded.get(id(op)) if op.op_type.startswith("constexpr_") else None
            if expanded is not None:  # stored (rounded) when first made: kept as they are
                results, exact, inputs = expanded[0], True, set()
            else:
                args = self._args(op, env)
                results = self._call(op, args)
                exact = op.op_type in EXACT_OPS
                inputs = {id(v) for v in args.read}
            for var, value in zip(op.outputs, results):
                if exact and isinstance(value, torch.Tensor) and value.dtype is torch.float32:
                    env[var.name] = value
                else:  # a fresh tensor (not an input, not a view) may be rounded in place
                    owned = isinstance(value, torch.Tensor) and id(value) not in inputs and value._base is None
                    env[var.name] = self._store(value, var, owned)
                if stats is not None:
                    stats.record(var.name, op.op_type, env[var.name])
                if shapes is not None and isinstance(env[var.name], torch.Tensor):
                    shapes[var.name] = tuple(env[var.name].shape)
                if memory is not None:
                    memory.hold(var.name, env[var.name], var.dtype)
            if op.op_type.startswith("constexpr_") and expanded is None:
                self._expanded[id(op)] = (tuple(env[var.name] for var in op.outputs), _input_var_ids(op))
            if memory is not None:
                memory.settle()
            for name in last_use.get(index, ()):
                if name not in keep:
                    env.pop(name, None)
                    if memory is not None:
                        memory.release(name)
            if progress:
                progress(index + 1, len(operations))
        return [self._value(var, env) for var in block.outputs]

    def _args(self, op, env: dict) -> Args:
        return Args(op, lambda var: self._value(var, env), self, env)

    def _call(self, op, args: Args) -> tuple:
        """The op's kernel on its arguments: its outputs as a tuple."""
        kernel = KERNELS.get(op.op_type)
        if kernel is None:
            raise MilEvalError(f"{self.package.name}: no kernel for MIL op type "
                               f"{op.op_type!r} (op {op.name})")
        try:
            result = kernel(op, args)
        except MilEvalError:
            raise
        except Exception as err:  # name the op: a bare torch error says nothing
            raise MilEvalError(f"{self.package.name}: op {op.name} ({op.op_type}) "
                               f"failed: {type(err).__name__}: {err}") from err
        return tuple(result) if isinstance(result, (tuple, list)) else (result,)

    def run_block(self, block, env: dict, stats=None) -> list:
        """For control-flow kernels: run a nested block in a child scope."""
        return self._run_block(block, dict(env), stats)

    def _value(self, var, env: dict):
        if var.name in env:
            return env[var.name]
        if var.val is None:
            raise MilEvalError(f"{self.package.name}: value {var.name} used before it is computed")
        key = id(var)
        if key not in self._constants:
            self._constants[key] = _constant(var.val)
        return self._constants[key]

    def _store(self, value, var, owned: bool = False):
        """Keep floats as fp32 tensors, rounded to half when the program types them fp16
        (in place when `owned`: half the allocations, which dominated the fp16 runs)."""
        if not isinstance(value, torch.Tensor):
            value = torch.as_tensor(np.asarray(value))
        dtype = _torch_dtype(var.dtype)
        if dtype is not torch.float16:
            return value.to(dtype)
        if self.precision == "fp32":
            return value.to(torch.float32)
        if owned and value.dtype is torch.float32:
            half = self._half_scratch(value.numel()).view(value.shape)
            half.copy_(value)  # rounds to nearest even, overflows to inf, as fp16 storage
            return value.copy_(half)
        return value.to(torch.float16).to(torch.float32)

    def _half_scratch(self, count: int) -> torch.Tensor:
        """A reused fp16 buffer of at least `count` elements (no allocation per op)."""
        if self._scratch.numel() < count:
            self._scratch = torch.empty(count, dtype=torch.float16)
        return self._scratch[:count]


class Checkpoints:
    """The live values before chosen top-level ops of one run (`MilEvaluator.run`)."""

    def __init__(self, at):
        self.at = frozenset(at)
        self.saved: dict[int, dict] = {}

    def latest(self, op_index: int) -> tuple[int, dict]:
        usable = [i for i in self.saved if i <= op_index]
        if not usable:
            raise MilEvalError(f"no checkpoint at or before op {op_index} (have: {sorted(self.saved)})")
        return max(usable), self.saved[max(usable)]


def first_readers(function) -> dict[str, int]:
    """Variable name -> index of the first top-level op that reads it (directly or in a
    nested block)."""
    first: dict[str, int] = {}
    for index, op in enumerate(function.operations):
        for name in _reads(op):
            first.setdefault(name, index)
    return first


def _last_uses(operations) -> dict[int, list[str]]:
    """op index -> names of the values it is the last reader of (nested blocks' reads
    count as their op's)."""
    last: dict[str, int] = {}
    for index, op in enumerate(operations):
        for name in _reads(op):
            last[name] = index
    by_index: dict[int, list[str]] = {}
    for name, index in last.items():
        by_index.setdefault(index, []).append(name)
    return by_index


def _reads(op):
    for value in op.inputs.values():
        for var in value if isinstance(value, (list, tuple)) else (value,):
            yield var.name
    for block in op.blocks:
        for inner in block.operations:
            yield from _reads(inner)
        for var in block.outputs:
            yield var.name


def _walk(block):
    for op in block.operations:
        yield op
        for inner in op.blocks:
            yield from _walk(inner)


def _fits(shape, declared) -> bool:
    """A concrete shape against a declared one with symbolic (flexible) dims."""
    return len(shape) == len(declared) and all(
        not isinstance(d, (int, np.integer)) or int(d) == s for s, d in zip(shape, declared))


def _torch_dtype(mil_type):
    from coremltools.converters.mil.mil import types
    if types.is_tensor(mil_type):
        mil_type = mil_type.get_primitive()
    if mil_type == types.fp16:
        return torch.float16
    if mil_type in (types.fp32, types.fp64):
        return torch.float32
    if mil_type == types.bool:
        return torch.bool
    if types.is_int(mil_type):
        return torch.int64  # int8/16/32 and unsigned: held wide, as value inference does
    return torch.float32


def _constant(val):
    """A const's value: tensors for numbers; strings and other values as they are."""
    if isinstance(val, (str, bytes)):
        return val
    array = np.asarray(val)
    if array.dtype.kind in "US":
        return val
    if array.dtype == np.float16 or array.dtype == np.float64:
        array = array.astype(np.float32)
    elif array.dtype.kind in "iu":
        array = array.astype(np.int64)
    return torch.from_numpy(np.ascontiguousarray(array))


def _to_numpy(value) -> np.ndarray:
    return value.numpy() if isinstance(value, torch.Tensor) else np.asarray(value)
