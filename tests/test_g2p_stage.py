"""The neural G2P split: g2p-en's checkpoint as a torch module, against an independent
numpy reading of the same greedy decode, and its parity view."""
import numpy as np
import pytest
import torch

from kokoro_build.model.source import g2p_en
from kokoro_build.model.stages import get_stage_kind
from kokoro_build.schema.contract import word_ids


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    path = tmp_path_factory.mktemp("g2p") / "g2p_en.pt"
    g2p_en.build_checkpoint(str(path))
    return g2p_en.load_checkpoint(str(path))


@pytest.fixture(scope="module")
def stage(checkpoint):
    return get_stage_kind("g2p")(checkpoint["config"])


def numpy_greedy(arrays: dict, ids: list[int], steps: int = 20) -> list[int]:
    """The seq2seq as plain equations: GRU encoder over the ids, then a GRU decoder fed
    its own argmax from <s> (id 2), until </s> (id 3)."""
    w = {k: v.numpy().astype(np.float64) for k, v in arrays.items()}

    def cell(x, h, prefix):
        gi = w[f"{prefix}_w_ih"] @ x + w[f"{prefix}_b_ih"]
        gh = w[f"{prefix}_w_hh"] @ h + w[f"{prefix}_b_hh"]
        k = len(h)
        r = 1 / (1 + np.exp(-(gi[:k] + gh[:k])))
        z = 1 / (1 + np.exp(-(gi[k:2 * k] + gh[k:2 * k])))
        n = np.tanh(gi[2 * k:] + r * gh[2 * k:])
        return (1 - z) * n + z * h

    h = np.zeros(w["enc_w_hh"].shape[1])
    for i in ids:
        h = cell(w["enc_emb"][i], h, "enc")
    token, out = 2, []
    for _ in range(steps):
        h = cell(w["dec_emb"][token], h, "dec")
        token = int(np.argmax(w["fc_w"] @ h + w["fc_b"]))
        if token == 3:
            break
        out.append(token)
    return out


def test_checkpoint_is_hash_checked(tmp_path, monkeypatch):
    monkeypatch.setattr(g2p_en, "CHECKPOINT_SHA256", "0" * 64)
    with pytest.raises(g2p_en.G2PSourceError, match="is not g2p-en 2.1.0's checkpoint"):
        g2p_en.build_checkpoint(str(tmp_path / "g2p_en.pt"))
    assert not (tmp_path / "g2p_en.pt").exists()


@pytest.mark.parametrize("word", ["activationist", "kokoro", "zyx", "q"])
def test_module_decodes_like_the_equations(checkpoint, stage, word):
    ids = word_ids(word, checkpoint["config"]["graphemes"])
    module = stage.build_module(stage.model_from_source(checkpoint))
    with torch.no_grad():
        got = module(torch.tensor([ids], dtype=torch.int32))[0].tolist()
    expected = numpy_greedy(checkpoint["arrays"], ids)
    assert got[:len(expected)] == expected
    assert set(got[len(expected):]) == {g2p_en.END}  # </s> from the first one on


def test_inputs_outputs_and_examples(stage):
    assert [s.as_dict() for s in stage.inputs({"chars": 9})] == [
        {"name": "chars", "shape": [1, 9], "dtype": "int32"}]
    assert stage.outputs({"chars": 9})[0].shape == (1, g2p_en.MAX_PHONEMES)
    (example,) = stage.example_inputs({"chars": 14})
    assert example.tolist()[0][-1] == 2 and example.shape == (1, 14)  # "activationist" + </s>
    (random_word,) = stage.example_inputs({"chars": 40})
    assert random_word.shape == (1, 40) and (random_word[0, :-1] >= 3).all()


def test_one_wrong_symbol_fails_every_parity_gate(stage):
    from kokoro_build.model.surgery.registry import psnr_db
    expected = torch.full((1, 20), g2p_en.END, dtype=torch.int32)
    expected[0, :6] = torch.tensor([40, 41, 42, 43, 44, 45])
    got = expected.clone()
    got[0, 2] = 43  # a near miss: as plain numbers this would score ~50 dB
    view = lambda x: stage.parity_view("phonemes", x)  # noqa: E731
    assert psnr_db(view(expected), view(got))[0] < 30
    assert psnr_db(view(expected), view(expected.clone()))[0] == float("inf")
