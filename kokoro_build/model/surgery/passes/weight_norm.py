"""Weight normalisation folded into plain weights."""
from __future__ import annotations

from kokoro_build.model.surgery.registry import SurgeryPass, register_pass


@register_pass("kokoro::fold_weight_norm")
class FoldWeightNorm(SurgeryPass):
    """Before: Conv with weight_g/weight_v and a forward pre-hook computing
    weight = g * v / ||v|| on every call (kokoro 0.9.4 uses the old hook API),
    or a `parametrizations.weight` (the new API).
    After:  plain Conv with one precomputed `weight`, same function.

    Why: traced weight-normed graphs were silently wrong in a public port
    (FluidInference/mobius, trials and errors), and the hook costs ops."""

    def apply(self, module) -> int:
        from torch.nn.utils import parametrize, remove_weight_norm
        from torch.nn.utils.weight_norm import WeightNorm
        sites = 0
        for child in module.modules():
            hooks = [h for h in child._forward_pre_hooks.values() if isinstance(h, WeightNorm)]
            for hook in hooks:
                remove_weight_norm(child, hook.name)
                sites += 1
            if parametrize.is_parametrized(child):
                for name in list(child.parametrizations.keys()):
                    parametrize.remove_parametrizations(child, name, leave_parametrized=True)
                    sites += 1
        return sites
