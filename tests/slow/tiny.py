"""Shared by the slow tests on the small random-weight Kokoro: its pipeline header
and a doit run of a pipeline file."""
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TINY = ROOT / "tests" / "fixtures" / "tiny-kokoro.json"
# random weights: the speech gates mean nothing (the parity gates still apply)
NO_SPEECH_GATES = "verify: {audio: {min_pesq: null, max_mcd_db: null, min_mel_correlation: null}}\n"
# One frame bucket: the tests that use these (a release, the step cache) are about every
# package, not about buckets (test_multifunction_tiny and the kill test build several);
# a second bucket of the tiny model's full-width vocoder costs ~25 s a build.
ISLAND_STAGES = """\
  prosody: {kind: prosody, shapes: {frames: {buckets: [24]}}}
  noise: {kind: noise, precision: fp32, shapes: {frames: {buckets: [24]}}}
  vocoder: {kind: vocoder, islands: [noise, tail], shapes: {frames: {buckets: [24]}}}
  tail: {kind: tail, precision: fp32, shapes: {frames: {buckets: [24]}}}
"""


def header(name: str) -> str:
    return f"version: 1\nname: {name}\nmodel:\n  source: {{random_seed: 0, config: {TINY}}}\n  voices: [test_voice]\n"


# Builds that test what comes before the report (the chain, a release, a cache, a
# target) stop at the manifest: the report speaks a sentence through the MIL chain
# (about 20 s of a tiny build), and test_verify_tiny and the real build test it.
UP_TO_MANIFEST = ("manifest",)


def run_doit(config: Path, *tasks: str) -> str:
    """doit on `config` from the project root (`tasks`: only those and what they need);
    its stdout (asserts success)."""
    result = subprocess.run([sys.executable, "-m", "doit", "-f", str(ROOT / "dodo.py"), f"config={config}", *tasks],
                            cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result.stdout


# Every stage as its own package, buckets large enough for the chain's chunks
# (tokens 512, frames 600): shared by the chain tests (tests/conftest.py `tiny_chain`).
CHAIN_PIPELINE = f"""\
version: 1
name: tiny-chain
model:
  source: {{random_seed: 0, config: {TINY}}}
  voices: [test_voice]
# fp32: these tests are about the chain; a whole fp16 vocoder fails its parity gate
# (the harmonic source in fp16, README "Verification"), and test_verify_tiny covers fp16.
defaults: {{precision: fp32}}
stages:
  duration:
    kind: duration
    shapes: {{tokens: {{buckets: [512]}}}}
    surgery: {{options: {{kokoro::unpack_lstm: {{masked: true}}, kokoro::albert_inputs: {{mask: additive}}}}}}
  alignment:
    kind: alignment
    where: graph
    shapes: {{tokens: {{buckets: [512]}}, frames: {{buckets: [600]}}}}
  prosody: {{kind: prosody, shapes: {{frames: {{buckets: [600]}}}}}}
  vocoder: {{kind: vocoder, shapes: {{frames: {{buckets: [600]}}}}}}
"""


def build_chain(tmp_path_factory, text: str, name: str):
    """Build `text` (a pipeline) in a fresh folder; its chain on the torch twins."""
    folder = tmp_path_factory.mktemp(name)
    (folder / "pipeline.yaml").write_text(text)
    run_doit(folder / "pipeline.yaml", *UP_TO_MANIFEST)
    from kokoro_build.runtime import Chain
    return Chain(folder / "artifacts" / name, backend="torch")
