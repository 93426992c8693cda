"""Tensor layout rewrites for the Neural Engine."""
from __future__ import annotations

import torch.nn.functional as F
from torch import nn

from kokoro_build.model.surgery.registry import SurgeryPass, register_pass


# Their `fc` maps the style vector [1, 128]: no sequence axis to lay out.
STYLE_PROJECTIONS = {"AdaIN1d", "AdaLayerNorm"}


class Conv1x1Linear(nn.Module):
    """A Linear applied as a 1x1 conv2d over a (B, C, 1, S) view of [B, S, C]."""

    def __init__(self, linear: nn.Linear):
        super().__init__()
        self.in_features, self.out_features = linear.in_features, linear.out_features
        self.weight = nn.Parameter(linear.weight.detach()[:, :, None, None].clone(),
                                   requires_grad=False)
        self.bias = None if linear.bias is None else nn.Parameter(linear.bias.detach().clone(),
                                                                  requires_grad=False)

    def forward(self, x):
        if x.dim() != 3:  # e.g. the style vector [1, 128]: no sequence axis to lay out
            return F.linear(x, self.weight[:, :, 0, 0], self.bias)
        y = F.conv2d(x.transpose(1, 2).unsqueeze(2), self.weight, self.bias)
        return y.squeeze(2).transpose(1, 2)


@register_pass("kokoro::linear_to_conv")
class LinearToConv(SurgeryPass):
    """Before: nn.Linear on [B, S, C] (PL-BERT's attention and feed-forward,
    bert_encoder, duration_proj): MIL `linear` on a channels-last tensor.
    After:  transpose -> [B, C, 1, S] -> conv (1x1) -> back. The ANE's native
    layout is (B, C, 1, S) and it runs convs, not matmuls, best (Apple,
    "Deploying Transformers on the Apple Neural Engine", 2022). Exact: the
    same dot products. Style projections (`fc` of AdaIN1d/AdaLayerNorm) stay.

    Measured on the duration stage (64 tokens): 75 `linear` ops become `conv`,
    and `transpose` ops go from 98 to 197: layer_norm and the attention
    matmuls stay channels-last, so most transposes don't cancel. Whether the
    ANE still comes out ahead is for the residency report and a device."""

    def apply(self, module) -> int:
        sites = 0
        for parent in list(module.modules()):
            if type(parent).__name__ in STYLE_PROJECTIONS:
                continue
            for name, child in list(parent.named_children()):
                if type(child) is nn.Linear and child.in_features >= self.options.min_features:
                    setattr(parent, name, Conv1x1Linear(child))
                    sites += 1
        return sites
