"""The surgery pass registry and the pass pipeline with its parity gate.

A pass is a small class that rewrites a torch module in place and declares
how close to the original the result must stay. The pipeline applies a
stage's passes in order and, after each one, measures parity against the
untouched original on fixed inputs, with the same RNG seed for both.
"""
from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field
from typing import Callable, ClassVar

from pydantic import BaseModel

from kokoro_build.schema.pass_catalog import PASS_OPTIONS, NoOptions

_PASSES: dict[str, type["SurgeryPass"]] = {}


class SurgeryError(RuntimeError):
    pass


class SurgeryPass:
    """Base class. Subclasses get `id` (and, for built-ins, `Options` from the
    catalog) via @register_pass, and implement `apply`."""

    id: ClassVar[str]
    Options: ClassVar[type[BaseModel]] = NoOptions
    # Exact rewrites must keep >= 60 dB PSNR at fp32; approximations lower it.
    min_psnr_db: ClassVar[float] = 60.0
    # Ids that must already have run on the module.
    requires: ClassVar[tuple[str, ...]] = ()

    def __init__(self, options: BaseModel | None = None):
        self.options = options or self.Options()

    def apply(self, module) -> int:
        """Rewrite `module` in place; return how many sites were changed."""
        raise NotImplementedError


def register_pass(pass_id: str) -> Callable[[type[SurgeryPass]], type[SurgeryPass]]:
    if "::" not in pass_id:
        raise ValueError(f"pass id {pass_id!r} must be namespaced, like 'kokoro::name'")

    def decorate(cls: type[SurgeryPass]) -> type[SurgeryPass]:
        if pass_id in _PASSES:
            raise ValueError(f"surgery pass {pass_id!r} is already registered")
        cls.id = pass_id
        if "Options" not in cls.__dict__:  # built-ins declare options in the catalog
            cls.Options = PASS_OPTIONS.get(pass_id, NoOptions)
        _PASSES[pass_id] = cls
        return cls
    return decorate


def registered_passes() -> dict[str, type[SurgeryPass]]:
    """Every registered pass (the package's __init__ imports the built-in ones)."""
    return dict(_PASSES)


def make_pass(pass_id: str, options: dict | None = None) -> SurgeryPass:
    passes = registered_passes()
    if pass_id not in passes:
        raise SurgeryError(f"unknown surgery pass {pass_id!r}; known: {', '.join(sorted(passes))}")
    cls = passes[pass_id]
    return cls(cls.Options(**(options or {})))


@dataclass
class PassRecord:
    """One applied pass. `psnr_db`/`max_abs_err`: the module so far against the
    untouched original. `step_psnr_db`: against the module just before this pass,
    which is what the pass's own gate `min_psnr_db` judges."""

    id: str
    options: dict
    sites: int
    psnr_db: float
    max_abs_err: float
    step_psnr_db: float
    min_psnr_db: float

    def as_dict(self) -> dict:
        return {k: (round(v, 3) if isinstance(v, float) and math.isfinite(v) else v)
                for k, v in self.__dict__.items()}


@dataclass
class SurgeryResult:
    module: object
    records: list[PassRecord] = field(default_factory=list)


def psnr_db(reference, candidate) -> tuple[float, float]:
    """PSNR of `candidate` against `reference` (peak = max |reference|), and max-abs error."""
    import torch
    ref, cand = reference.detach().double(), candidate.detach().double()
    if ref.shape != cand.shape:
        raise SurgeryError(f"output shape changed: {tuple(ref.shape)} -> {tuple(cand.shape)}")
    err = (ref - cand).abs()
    max_abs = float(err.max()) if err.numel() else 0.0
    mse = float((err ** 2).mean()) if err.numel() else 0.0
    peak = float(ref.abs().max()) if ref.numel() else 0.0
    if not math.isfinite(mse):
        return -math.inf, math.inf
    if mse == 0.0:
        return math.inf, 0.0
    return 10 * math.log10(max(peak, 1e-12) ** 2 / mse), max_abs


def _detach_derived(module):
    """Detach tensors that a hook derived with autograd on (weight_norm computes
    `weight` when applied and recomputes it each forward): deepcopy refuses non-leaf
    tensors, and a submodule the stage never runs (the vocoder body's conv_post)
    keeps its first one."""
    import torch
    for child in module.modules():
        for name, value in list(vars(child).items()):
            if isinstance(value, torch.Tensor) and not value.is_leaf:
                setattr(child, name, value.detach())
    return module


def run_seeded(module, inputs: tuple, seed: int = 0):
    """Forward with a fixed RNG seed, so modules with noise ops stay comparable
    (a rewrite must draw its random numbers in the same order)."""
    import torch
    torch.manual_seed(seed)
    with torch.no_grad():
        out = module(*inputs)
    return out if isinstance(out, (tuple, list)) else (out,)


def worst_psnr(reference: tuple, outputs: tuple) -> tuple[float, float]:
    """Worst (PSNR, max-abs error) over a module's outputs."""
    return min((psnr_db(r, c) for r, c in zip(reference, outputs)), key=lambda p: p[0])


def check_gate(record: PassRecord, cumulative_gate: float) -> None:
    """A pass must keep its own step within its gate, and the module as a whole
    within the loosest gate of the passes applied so far (an exact rewrite after
    an approximate one inherits the approximation's tolerance, not more)."""
    if not record.step_psnr_db >= record.min_psnr_db:
        raise SurgeryError(f"{record.id}: parity {record.step_psnr_db:.1f} dB against the module "
                           f"before it is below its {record.min_psnr_db:.0f} dB gate")
    if not record.psnr_db >= cumulative_gate:
        raise SurgeryError(f"{record.id}: parity {record.psnr_db:.1f} dB (max abs err "
                           f"{record.max_abs_err:.3g}) against the original is below "
                           f"{cumulative_gate:.0f} dB")


def apply_passes(module, pass_specs: list[tuple[str, dict]], inputs: tuple,
                 expected: frozenset[str] = frozenset()) -> SurgeryResult:
    """Apply passes in order to a copy of `module`, gating each one on parity.

    `pass_specs` is [(id, options)]; `inputs` are fixed example inputs. A pass in
    `expected` (the kind table's, schema/kinds.py) that rewrites 0 sites is an error:
    passes find their sites by class name, and a renamed class in kokoro would
    otherwise turn the pass into a silent no-op.
    """
    original = module
    reference = run_seeded(original, inputs)
    work = copy.deepcopy(_detach_derived(module)).eval()
    done: list[str] = []
    result = SurgeryResult(work)
    previous, gate = reference, math.inf
    for pass_id, options in pass_specs:
        surgery = make_pass(pass_id, options)
        missing = [r for r in surgery.requires if r not in done]
        if missing:
            raise SurgeryError(f"{pass_id} must run after {', '.join(missing)}")
        sites = surgery.apply(work)
        if not sites and pass_id in expected:
            raise SurgeryError(f"{pass_id} found nothing to rewrite in this {type(module).__name__}, "
                               "where it always has: did a class it matches by name change in kokoro?")
        if sites:
            outputs = run_seeded(work, inputs)
            total, step = worst_psnr(reference, outputs), worst_psnr(previous, outputs)
        else:  # nothing matched: the module is untouched, no need to run it again
            outputs, total, step = previous, worst_psnr(reference, previous), (math.inf, 0.0)
        record = PassRecord(pass_id, surgery.options.model_dump(), sites, total[0], total[1],
                            step[0], surgery.min_psnr_db)
        result.records.append(record)
        gate = min(gate, surgery.min_psnr_db)
        check_gate(record, gate)
        previous = outputs
        done.append(pass_id)
    return result
