"""The neural G2P's weights: g2p-en 2.1.0's GRU seq2seq checkpoint (`checkpoint20.npz`).

Only the npz is read. Importing `g2p_en` downloads NLTK data, which fails offline
(g2p_en/g2p.py calls nltk.download at import; seen here, with no network), so the file is located through the installed distribution's metadata.
The `<stage>:checkpoint` task copies it, checked against its pinned sha256, into a
kokoro-build file (`weights/g2p_en.pt`) that the export and verify steps load.
"""
from __future__ import annotations

import time
from pathlib import Path

from kokoro_build.store.package import atomic_path, file_sha256, write_digest

FORMAT = "kokoro-build-g2p/1"
DISTRIBUTION, VERSION = "g2p-en", "2.1.0"
CHECKPOINT = "g2p_en/checkpoint20.npz"
CHECKPOINT_SHA256 = "b8af35e4596d8dd5836dfd3fe9b2ba4f97b9c311efe8879544cbcfcbd566d8c6"

# The model's vocabularies, in id order, as g2p-en 2.1.0 defines them (g2p.py): input
# letters after three specials; ARPAbet output symbols (stress digits on vowels) after four.
GRAPHEMES = ["<pad>", "<unk>", "</s>"] + list("abcdefghijklmnopqrstuvwxyz")
PHONEMES = ["<pad>", "<unk>", "<s>", "</s>"] + [
    "AA0", "AA1", "AA2", "AE0", "AE1", "AE2", "AH0", "AH1", "AH2", "AO0", "AO1", "AO2",
    "AW0", "AW1", "AW2", "AY0", "AY1", "AY2", "B", "CH", "D", "DH", "EH0", "EH1", "EH2",
    "ER0", "ER1", "ER2", "EY0", "EY1", "EY2", "F", "G", "HH", "IH0", "IH1", "IH2", "IY0",
    "IY1", "IY2", "JH", "K", "L", "M", "N", "NG", "OW0", "OW1", "OW2", "OY0", "OY1", "OY2",
    "P", "R", "S", "SH", "T", "TH", "UH0", "UH1", "UH2", "UW", "UW0", "UW1", "UW2", "V",
    "W", "Y", "Z", "ZH"]
END, START = PHONEMES.index("</s>"), PHONEMES.index("<s>")  # the decoder's end and start symbols
# g2p-en's own decode stops after 20 symbols; the in-graph decoder runs exactly as many.
MAX_PHONEMES = 20


class G2PSourceError(RuntimeError):
    pass


def checkpoint_path() -> Path:
    """The installed checkpoint20.npz (from requirements/nodeps.txt), found without importing g2p_en."""
    from importlib import metadata
    try:
        dist = metadata.distribution(DISTRIBUTION)
    except metadata.PackageNotFoundError:
        raise G2PSourceError(f"{DISTRIBUTION}=={VERSION} is not installed: run `make build` "
                             "(it installs requirements/nodeps.txt)") from None
    return Path(dist.locate_file(CHECKPOINT))


def build_checkpoint(out_path: str) -> None:
    """doit action: checkpoint20.npz (hash-checked) -> weights/g2p_en.pt."""
    import numpy as np
    import torch

    start = time.time()
    source = checkpoint_path()
    digest = file_sha256(source)
    if digest != CHECKPOINT_SHA256:
        raise G2PSourceError(f"{source}: sha256 {digest} is not g2p-en {VERSION}'s checkpoint "
                             f"({CHECKPOINT_SHA256}); reinstall {DISTRIBUTION}=={VERSION}")
    with np.load(source) as npz:
        arrays = {name: torch.from_numpy(npz[name].astype(np.float32)) for name in npz.files}
    hidden = arrays["enc_w_hh"].shape[1]
    if arrays["enc_emb"].shape[0] != len(GRAPHEMES) or arrays["fc_w"].shape[0] != len(PHONEMES):
        raise G2PSourceError(f"{source}: vocabulary sizes {arrays['enc_emb'].shape[0]}/"
                             f"{arrays['fc_w'].shape[0]} differ from g2p-en {VERSION}'s")
    provenance = {"source": f"{DISTRIBUTION} {VERSION} {CHECKPOINT}", "sha256": digest,
                  "note": "GRU seq2seq trained on CMUdict by g2p-en; ARPAbet output"}
    config = {"graphemes": GRAPHEMES, "phonemes": PHONEMES, "hidden": hidden,
              "max_phonemes": MAX_PHONEMES}
    with atomic_path(out_path) as tmp, open(tmp, "wb") as file:  # see weights.py: a stable archive name
        torch.save({"format": FORMAT, "config": config, "arrays": arrays, "voices": {},
                    "provenance": provenance}, file)
    write_digest(out_path, provenance=provenance, config=config, seconds=round(time.time() - start, 1))
    print(f"g2p checkpoint: {source.name} ({hidden} hidden) -> {Path(out_path).name}", flush=True)


def load_checkpoint(path: str) -> dict:
    from kokoro_build.model.source.weights import load_blob
    return load_blob(path, FORMAT, "G2P checkpoint", G2PSourceError)
