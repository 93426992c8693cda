"""PL-BERT (ALBERT) called with explicit inputs, bypassing transformers' mask helpers."""
from __future__ import annotations

import torch

from kokoro_build.model.surgery.registry import SurgeryPass, register_pass
from kokoro_build.model.surgery.rewrite import swap_forward

# Additive mask value: exp(-1e4) is 0 in fp32 and fp16 alike, while
# finfo(float32).min (what transformers uses) overflows to -inf in fp16.
MASKED = -1e4


def _albert_forward(self, input_ids, attention_mask=None, token_type_ids=None):
    """[1, T] ids (+ [1, T] 1/0 mask) -> last hidden state [1, T, H]."""
    if token_type_ids is None:
        token_type_ids = torch.zeros_like(input_ids)
    positions = self.embeddings.position_ids[:, : input_ids.shape[1]]
    hidden = self.embeddings(input_ids, token_type_ids=token_type_ids, position_ids=positions)
    additive = None
    if self.albert_mask == "additive":
        additive = (1.0 - attention_mask[:, None, None, :].to(hidden.dtype)) * MASKED
    return self.encoder(hidden, additive).last_hidden_state


@register_pass("kokoro::albert_inputs")
class AlbertInputs(SurgeryPass):
    """Before: CustomAlbert -> AlbertModel.forward: token_type_ids gathered from
    a registered buffer, and create_bidirectional_mask builds the attention mask
    (transformers 5.x, `new_ones` and friends), traced with whatever shapes
    the example had.
    After:  embeddings(ids, token_type_ids=zeros_like(ids), position_ids=slice)
    -> encoder(hidden, mask), where mask is None (`mask: none`, batch 1 with no
    padding) or (1 - attention_mask) * -1e4 broadcast to [1, 1, 1, T]
    (`mask: additive`, padded token buckets)."""

    def apply(self, module) -> int:
        sites = 0
        for child in module.modules():
            if type(child).__name__ == "CustomAlbert":
                child.albert_mask = self.options.mask
        sites += swap_forward(module, "CustomAlbert", _albert_forward, "ExplicitInputs")
        return sites
