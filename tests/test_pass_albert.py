"""kokoro::albert_inputs on kokoro's CustomAlbert (one small layer)."""
import pytest
import torch

from kokoro_build.model.source.kmodel import import_kokoro_model
from kokoro_build.model.surgery import SurgeryError, apply_passes

kokoro = import_kokoro_model()
from kokoro.modules import CustomAlbert  # noqa: E402
from transformers import AlbertConfig  # noqa: E402


def _albert():
    torch.manual_seed(0)
    config = AlbertConfig(vocab_size=40, embedding_size=16, hidden_size=32, num_attention_heads=2,
                          intermediate_size=64, num_hidden_layers=2, max_position_embeddings=64)
    return CustomAlbert(config).eval()


def _inputs(steps, valid):
    ids = torch.randint(1, 40, (1, steps), generator=torch.Generator().manual_seed(1))
    ids[:, valid:] = 0
    return ids, (torch.arange(steps) < valid).int()[None]


def _kinds(module, inputs):
    return {n.kind() for n in torch.jit.trace(module, inputs, check_trace=False).inlined_graph.nodes()}


def test_no_mask_is_exact_for_an_unpadded_batch_of_one():
    module, inputs = _albert(), _inputs(12, 12)
    assert "aten::new_ones" in _kinds(module, inputs), "what ct.convert can't convert"
    result = apply_passes(module, [("kokoro::albert_inputs", {"mask": "none"})], inputs)
    assert result.records[0].sites == 1 and result.records[0].psnr_db >= 60
    kinds = _kinds(result.module, inputs)
    assert "aten::new_ones" not in kinds and "aten::gather" not in kinds, kinds


def test_additive_mask_is_exact_on_a_padded_bucket():
    module, inputs = _albert(), _inputs(16, 10)
    result = apply_passes(module, [("kokoro::albert_inputs", {"mask": "additive"})], inputs)
    assert result.records[0].psnr_db >= 60
    # The valid positions equal an unpadded run on the valid tokens alone.
    short = module(inputs[0][:, :10], inputs[1][:, :10])
    assert torch.allclose(result.module(*inputs)[:, :10], short, atol=1e-5)


def test_dropping_the_mask_on_a_padded_bucket_fails_the_gate():
    with pytest.raises(SurgeryError, match="kokoro::albert_inputs: parity"):
        apply_passes(_albert(), [("kokoro::albert_inputs", {"mask": "none"})], _inputs(16, 10))
