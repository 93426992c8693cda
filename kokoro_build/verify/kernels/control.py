"""Control flow: cond and while_loop run their nested blocks through the evaluator."""
from __future__ import annotations

from kokoro_build.verify.kernels import MilEvalError, kernel

# A loop that never ends must not hang a build.
MAX_ITERATIONS = 100_000


@kernel("cond")
def cond(op, a):
    branch = op.blocks[0] if bool(a["pred"]) else op.blocks[1]
    return tuple(a.evaluator.run_block(branch, _scope(a)))


@kernel("while_loop")
def while_loop(op, a):
    condition, body = op.blocks
    values = list(a["loop_vars"])
    for _ in range(MAX_ITERATIONS):
        scope = _scope(a, condition.inputs, values)
        if not bool(a.evaluator.run_block(condition, scope)[0]):
            return tuple(values)
        values = a.evaluator.run_block(body, _scope(a, body.inputs, values))
    raise MilEvalError(f"while_loop {op.name}: no exit after {MAX_ITERATIONS} iterations")


def _scope(a, inputs=(), values=()) -> dict:
    """The enclosing values (nested blocks read outer vars by name), plus block inputs."""
    scope = dict(a.scope)
    scope.update({var.name: value for var, value in zip(inputs, values)})
    return scope
