"""Inference-only cleanup."""
from __future__ import annotations

from kokoro_build.model.surgery.registry import SurgeryPass, register_pass


@register_pass("kokoro::remove_dropout")
class RemoveDropout(SurgeryPass):
    """Before: nn.Dropout modules and LSTM(dropout=p) that a traced graph may keep.
    After:  nn.Identity in their place, LSTM dropout 0, module in eval, no grads.
    (`F.dropout(..., training=False)` calls in kokoro are already no-ops.)"""

    def apply(self, module) -> int:
        import torch.nn as nn
        sites = 0
        for parent in list(module.modules()):
            for name, child in list(parent.named_children()):
                if isinstance(child, nn.Dropout):
                    setattr(parent, name, nn.Identity())
                    sites += 1
                elif isinstance(child, nn.RNNBase) and child.dropout:
                    child.dropout = 0.0
                    sites += 1
        module.eval()
        for param in module.parameters():
            param.requires_grad_(False)
        return sites
