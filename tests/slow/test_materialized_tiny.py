"""`packaging: materialized` end to end on the small random-weight Kokoro: each stage is
traced and converted once, its buckets become fixed-shape functions of one package,
every function is verified against the one twin, and the chain runs them by bucket.
The default pipeline.yaml ships every neural stage this way."""
import json

import pytest

from tests.slow.tiny import NO_SPEECH_GATES, UP_TO_MANIFEST, header, run_doit

# fp32: a whole fp16 vocoder fails its parity gate (README "Verification")
PIPELINE = header("tiny-mat") + """\
target: {deployment: iOS18}
defaults: {precision: fp32}
stages:
  duration:
    kind: duration
    packaging: materialized
    shapes: {tokens: {buckets: [64, 512]}}
    surgery: {options: {kokoro::unpack_lstm: {masked: true}, kokoro::albert_inputs: {mask: additive}}}
  prosody: {kind: prosody, shapes: {frames: {range: [1, 600]}}}
  vocoder: {kind: vocoder, packaging: materialized, shapes: {frames: {buckets: [300, 600]}}}
""" + NO_SPEECH_GATES


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("materialized")
    config = tmp / "pipeline.yaml"
    config.write_text(PIPELINE)
    log = run_doit(config, *UP_TO_MANIFEST)
    ran = [line[3:] for line in log.splitlines() if line.startswith(".  ")]
    return tmp / "artifacts" / "tiny-mat", ran


@pytest.mark.slow
def test_one_conversion_becomes_a_fixed_shape_function_per_bucket(built):
    import coremltools as ct
    variant, ran = built
    vocoder = [t for t in ran if t.startswith("vocoder:")]
    assert vocoder[:3] == ["vocoder:frames_buckets.export", "vocoder:frames_buckets.convert", "vocoder:materialize"]
    assert sorted(vocoder[3:]) == ["vocoder:frames_300.verify", "vocoder:frames_600.verify"]
    manifest = json.loads((variant / "manifest.json").read_text())
    assert all(a["verify"]["passed"] for s in manifest["stages"].values() for a in s["artifacts"])
    for stage, functions in (("vocoder", ["frames_300", "frames_600"]), ("duration", ["tokens_64", "tokens_512"])):
        entry = manifest["stages"][stage]
        assert entry["packaging"] == "materialized" and set(entry["package"]["functions"]) == set(functions)
        assert all(not a["flexible"] for a in entry["artifacts"])
        spec = ct.utils.load_spec(str(variant / stage / f"{stage}.mlpackage"))
        # the range function is not shipped: only the fixed ones, the largest the default
        assert sorted(f.name for f in spec.description.functions) == sorted(functions)
        assert spec.description.defaultFunctionName == functions[-1]
        for function in spec.description.functions:
            for tensor in function.input:
                assert tensor.type.multiArrayType.WhichOneof("ShapeFlexibility") is None, (function.name, tensor.name)
    vocoder = manifest["stages"]["vocoder"]["package"]["functions"]
    assert vocoder["frames_300"]["outputs"][0]["shape"] == [1, 300 * 16]
    digest = json.loads((variant / "vocoder" / "vocoder.digest.json").read_text())
    assert digest["bytes"] < 1.05 * digest["source_bytes"], "the functions share the range package's weights"


@pytest.mark.slow
def test_the_chain_runs_each_materialized_function_by_bucket(built):
    from kokoro_build.runtime import Chain
    from kokoro_build.verify.audio import mel_correlation
    variant, _ = built
    torch_chain, mil_chain = Chain(variant, backend="torch"), Chain(variant, backend="mil")
    used = set()
    for text in ("Hi.", "Hello there. " * 3):
        reference = torch_chain.speak(text, voice="test_voice", seed=1)
        spoken = mil_chain.speak(text, voice="test_voice", seed=1)
        used |= {(c.buckets["duration"], c.buckets["vocoder"]) for c in spoken.chunks}
        assert mel_correlation(reference.audio, spoken.audio) > 0.999
    assert {v for _, v in used} == {300, 600} and {d for d, _ in used} == {64}, used


@pytest.mark.slow
def test_functions_materialized_in_parallel_are_the_bytes_of_serial_ones(built, tmp_path):
    from kokoro_build.store.package import tree_digest
    from kokoro_build.targets.coreml import materialize as materializing
    variant, _ = built
    from kokoro_build.store.package import digest_path
    from kokoro_build.targets.coreml.export import specs_at_bucket
    (source,) = (variant / "_work" / "vocoder" / "source").glob("*.mlpackage")
    export = json.loads(digest_path(variant / "_work" / "vocoder" / "frames_buckets.traced.pt").read_text())
    shapes = {f"frames_{n}": {spec["name"]: tuple(spec["shape"]) for spec in
                              specs_at_bucket(export["inputs"], export["flexible"], {"frames": n})}
              for n in (300, 600)}
    digests = []
    for parallel in (False, True):  # one at a time, then a process per function
        out = tmp_path / f"{parallel}" / "vocoder.mlpackage"
        out.parent.mkdir()
        materializing.materialize(str(source), shapes, "frames_600", out, parallel=parallel)
        # as the build publishes it: saved again by stamped_copy, which also makes the
        # manifest's and the spec's bytes stable (a raw save differs run to run)
        stamped = out.parent / "stamped.mlpackage"
        materializing.stamped_copy(out, stamped, {name: {} for name in shapes}, "frames_600")
        digests.append(tree_digest(stamped)["sha256"])
    assert digests[0] == digests[1]
