"""pipeline.yaml validation: every error names file, line and field."""
from pathlib import Path

import pytest

from kokoro_build.cli import main as cli
from kokoro_build.schema.config import ConfigError, load_config

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "tests" / "fixtures" / "tiny-kokoro.json"

VALID = """\
version: 1
name: t
model:
  source: pypi-int8
  voices: [jf_alpha]
stages:
  vocoder:
    kind: vocoder
    shapes: {frames: {buckets: [120, 200]}}
"""


def errors_for(tmp_path, text: str) -> str:
    path = tmp_path / "pipeline.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    return str(info.value).replace(str(tmp_path) + "/", "")


def test_default_pipeline_is_valid():
    config = load_config(ROOT / "pipeline.yaml")
    assert config.target.deployment == "iOS18"
    neural = ("duration", "prosody", "noise", "vocoder", "tail")
    # fixed shapes, one package per stage, the weights compressed (README "The default")
    assert all(config.stages[s].packaging == "materialized" for s in neural)
    assert all(spec.mode == "buckets" for s in neural for spec in config.stages[s].shapes.values())
    assert all(config.stages[s].compress for s in ("duration", "prosody", "vocoder"))
    assert config.stage_precision("vocoder") == "fp16" and config.stage_precision("noise") == "fp32"
    assert load_config(ROOT / "recipes" / "ios17.yaml").stages["vocoder"].shapes["frames"].sizes == [120, 200, 400, 1200]
    audio = config.verify.audio  # timing and sound apart (pipeline.yaml's comment)
    assert (audio.max_duration_changed_share, audio.min_teacher_forced_pesq, audio.max_mcd_dtw_db) == (0.02, 4.0, 1.5)
    assert audio.min_pesq is None and audio.max_mcd_db is None and audio.min_mel_correlation is None
    from kokoro_build.schema.config import AudioConfig
    assert AudioConfig().max_mcd_db == 0.5  # the seed guide's, unless pipeline.yaml says otherwise
    g2p = config.stages["g2p"]
    assert g2p.lexicon_slice == {"source": "misaki", "dialect": "us", "tiers": ["gold", "silver"]}
    assert config.stage_precision("g2p") == "fp32" and config.stage_compute_units("g2p") == "cpu_only"


@pytest.mark.parametrize("edit, expected", [
    # unknown key
    (("    kind: vocoder\n", "    kind: vocoder\n    colour: blue\n"),
     "pipeline.yaml:9: stages.vocoder.colour: unknown key"),
    # wrong type
    (("version: 1\nname: t\n", "version: 1\nname: t\ntarget: {deployment: iOS17, export: 3}\n"),
     "pipeline.yaml:3: target.export: Input should be 'trace'"),
    # two shape modes at once
    (("{buckets: [120, 200]}", "{buckets: [120, 200], range: [1, 400]}"),
     "pipeline.yaml:9: stages.vocoder.shapes.frames: give exactly one of buckets, enumerated, range "
     "(got buckets, range)"),
    # empty bucket list
    (("[120, 200]", "[]"),
     "pipeline.yaml:9: stages.vocoder.shapes.frames.buckets: must list at least one size"),
    # non-increasing bucket list
    (("[120, 200]", "[200, 200]"),
     "pipeline.yaml:9: stages.vocoder.shapes.frames.buckets: must be strictly increasing (200 then 200)"),
    # range with lower > upper
    (("{buckets: [120, 200]}", "{range: [400, 100]}"),
     "pipeline.yaml:9: stages.vocoder.shapes.frames.range: lower bound 400 is above upper bound 100"),
    # unknown stage kind
    (("kind: vocoder", "kind: vocodr"),
     "pipeline.yaml:8: stages.vocoder.kind: unknown stage kind 'vocodr'; known: duration, prosody, vocoder"),
    # unknown voice
    (("[jf_alpha]", "[jf_alpha, af_nobody]"),
     "pipeline.yaml:5: model.voices: unknown voice 'af_nobody'; available: jf_alpha, jf_gongitsune, "
     "jf_nezumi, jf_tebukuro, jm_kumo"),
    # a missing file path
    (("source: pypi-int8", "source: {path: nowhere/kokoro-v1_0.pth, config: nowhere/config.json}"),
     "pipeline.yaml:4: model.source.path: file not found: nowhere/kokoro-v1_0.pth"),
    # a YAML syntax error
    (("name: t\n", "name: [t\n"),
     "pipeline.yaml:3: YAML syntax error: expected ',' or ']', but got ':'"),
    # tabs
    (("    kind: vocoder\n", "\tkind: vocoder\n"),
     "pipeline.yaml:8: YAML syntax error: tab character; indent with spaces"),
    # a duplicate key
    (("name: t\n", "name: t\nname: u\n"),
     "pipeline.yaml:3: name: duplicate key (first defined on line 2)"),
    # bucket outside the dimension's bounds
    (("[120, 200]", "[120, 5000]"),
     "pipeline.yaml:9: stages.vocoder.shapes.frames: 5000 is outside 1..2400"),
    # a shape mode the stage kind can't build
    (("{frames: {buckets: [120, 200]}}", "{frames: {range: [20, 4000]}}"),
     "pipeline.yaml:9: stages.vocoder.shapes.frames: 4000 is outside 1..2400"),
    # enumerated shapes on several vocoder inputs below iOS18
    (("{frames: {buckets: [120, 200]}}", "{frames: {enumerated: [120, 200]}}"),
     "pipeline.yaml:9: stages.vocoder.shapes.frames: enumerated shapes on several inputs of a "
     "vocoder stage need deployment iOS18 or macOS15"),
    # `where` on a stage that isn't an alignment
    (("    kind: vocoder\n", "    kind: vocoder\n    where: host\n"),
     "pipeline.yaml:9: stages.vocoder.where: only alignment stages take it (this one is vocoder)"),
    # a dimension the stage kind doesn't have
    (("{frames: {buckets: [120, 200]}}", "{tokens: {buckets: [16]}}"),
     "pipeline.yaml:9: stages.vocoder.shapes: vocoder has no dimension 'tokens'; it has: frames"),
    # a missing required field
    (("    kind: vocoder\n", ""),
     "pipeline.yaml:7: stages.vocoder.kind: Field required"),
    # unknown named source
    (("source: pypi-int8", "source: pypi-fp32"),
     "pipeline.yaml:4: model.source: unknown source 'pypi-fp32'; use pypi-int8, hub, "
     "{path: ..., config: ...} or {random_seed: ..., config: ...}"),
    # unsupported deployment target
    (("version: 1\nname: t\n", "version: 1\nname: t\ntarget: {deployment: iOS12}\n"),
     "pipeline.yaml:3: target.deployment: Input should be 'iOS16', 'iOS17', 'iOS18', 'macOS13', "
     "'macOS14' or 'macOS15'"),
    # an unknown surgery pass
    (("    kind: vocoder\n", "    kind: vocoder\n    surgery: {add: [kokoro::magic]}\n"),
     "pipeline.yaml:9: stages.vocoder.surgery.add: unknown surgery pass 'kokoro::magic'; known: "),
    # removing a pass the preset doesn't have
    (("    kind: vocoder\n", "    kind: vocoder\n    surgery: {preset: none, remove: [kokoro::stft_conv]}\n"),
     "pipeline.yaml:7: stages.vocoder: surgery.remove: kokoro::stft_conv is not in preset none"),
    # options a pass doesn't take
    (("    kind: vocoder\n", "    kind: vocoder\n    surgery: {options: {kokoro::stft_conv: {n_fft: 8}}}\n"),
     "pipeline.yaml:9: stages.vocoder.surgery.options.kokoro::stft_conv.n_fft: Extra inputs are not permitted"),
    # an unknown preset
    (("    kind: vocoder\n", "    kind: vocoder\n    surgery: {preset: fastest}\n"),
     "pipeline.yaml:9: stages.vocoder.surgery.preset: unknown preset 'fastest'; known: coreml-default, ane, none"),
    # an island with no stage to run it
    (("    kind: vocoder\n", "    kind: vocoder\n    islands: [noise]\n"),
     "pipeline.yaml:9: stages.vocoder.islands: noise needs exactly one stage of kind noise (found 0)"),
    # an island stage with other shapes than its vocoder
    (("    kind: vocoder\n", "    kind: vocoder\n    islands: [tail]\n  tail:\n    kind: tail\n"
      "    shapes: {frames: {buckets: [120]}}\n  vocoder2:\n    kind: vocoder\n"),
     "pipeline.yaml:12: stages.tail.shapes: must equal the shapes of vocoder stage vocoder"),
    # an island stage without a vocoder that splits it off
    (("stages:\n", "stages:\n  noise: {kind: noise, shapes: {frames: {buckets: [120, 200]}}}\n"),
     "pipeline.yaml:7: stages.noise.kind: a noise stage needs a vocoder stage with `islands: [noise]`"),
    # islands on another kind
    (("    kind: vocoder\n", "    kind: prosody\n    islands: [tail]\n"),
     "pipeline.yaml:9: stages.vocoder.islands: only vocoder stages take it (this one is prosody)"),
    # a PESQ gate outside the wideband MOS range
    (("stages:\n", "verify: {audio: {min_pesq: 5}}\nstages:\n"),
     "pipeline.yaml:6: verify.audio.min_pesq: Input should be less than or equal to 4.64"),
    # a misspelt audio gate
    (("stages:\n", "verify:\n  audio: {max_mcd: 0.5}\nstages:\n"),
     "pipeline.yaml:7: verify.audio.max_mcd: unknown key"),
    # multifunction below iOS18
    (("    kind: vocoder\n", "    kind: vocoder\n    packaging: multifunction\n"),
     "pipeline.yaml:9: stages.vocoder.packaging: multifunction packages need deployment iOS18 or macOS15"),
    # multifunction over a flexible dimension
    (("    shapes: {frames: {buckets: [120, 200]}}\n",
      "    packaging: multifunction\n    shapes: {frames: {range: [120, 200]}}\n"),
     "pipeline.yaml:9: stages.vocoder.packaging: multifunction packs a stage's buckets as functions; "
     "every dimension needs `buckets` (frames is range)"),
    # materialized below iOS18, and with the executorch target
    (("    kind: vocoder\n", "    kind: vocoder\n    packaging: materialized\n"),
     "pipeline.yaml:9: stages.vocoder.packaging: materialized packages need deployment iOS18 or macOS15"),
    (("    kind: vocoder\n", "    kind: vocoder\n    packaging: materialized\n    targets: [coreml, executorch]\n"),
     "pipeline.yaml:9: stages.vocoder.packaging: materialized converts once for Core ML; ExecuTorch lowers "
     "each bucket on its own: use packaging: multifunction with the executorch target"),
    # compression: an iOS18-only method on iOS17, located at the override that asks for it
    (("    kind: vocoder\n", "    kind: vocoder\n    compress:\n      palettize: {nbits: 6}\n"
      "      op_types: {conv_transpose: {linear: {dtype: int4}}}\n"),
     "pipeline.yaml:11: stages.vocoder.compress.op_types.conv_transpose.linear: dtype int4 needs "
     "deployment iOS18 or macOS15 (this target is iOS17)"),
    (("    kind: vocoder\n", "    kind: vocoder\n    compress: {palettize: {nbits: 5}}\n"),
     "pipeline.yaml:9: stages.vocoder.compress.palettize.nbits: Input should be 1, 2, 3, 4, 6 or 8"),
    (("    kind: vocoder\n", "    kind: vocoder\n    compress: {palettize: {nbits: 6, group_size: 8}}\n"),
     "pipeline.yaml:9: stages.vocoder.compress.palettize.group_size: only with granularity "
     "per_grouped_channel (this is per_tensor)"),
    (("    kind: vocoder\n", "    kind: vocoder\n    compress: {linear: {}, palettize: {nbits: 8}}\n"),
     "pipeline.yaml:9: stages.vocoder.compress: give one of linear, palettize as the stage's method"),
    (("    kind: vocoder\n", "    kind: vocoder\n    compress: {op_types: {softmax: {linear: {}}}}\n"),
     "pipeline.yaml:9: stages.vocoder.compress.op_types: 'softmax' is not an op type with weights"),
    (("    kind: vocoder\n", "    kind: vocoder\n    compress: {op_names: {conv_1: {}}}\n"),
     "pipeline.yaml:9: stages.vocoder.compress.op_names.conv_1: give exactly one of linear, palettize (got none)"),
    (("    kind: vocoder\n", "    kind: vocoder\n    compress: {}\n"),
     "pipeline.yaml:9: stages.vocoder.compress: compresses nothing"),
    # A8: needs the calibration block, an fp16 stage, iOS17; calibration's own fields
    (("    kind: vocoder\n", "    kind: vocoder\n    compress: {activations: {}}\n"),
     "pipeline.yaml:9: stages.vocoder.compress.activations: needs a top-level `calibration:` block"),
    (("    shapes: {frames: {buckets: [120, 200]}}\n", "    precision: fp32\n    compress: {activations: {}}\n"
      "    shapes: {frames: {buckets: [120, 200]}}\ncalibration: {texts: [Hello.]}\n"),
     "pipeline.yaml:10: stages.vocoder.compress.activations: needs precision fp16 (this stage is fp32"),
    (("    shapes: {frames: {buckets: [120, 200]}}\n", "    compress: {activations: {}}\n"
      "    shapes: {frames: {buckets: [120, 200]}}\ntarget: {deployment: iOS16}\n"
      "calibration: {texts: [Hello.]}\n"),
     "pipeline.yaml:9: stages.vocoder.compress.activations: needs deployment iOS17 or macOS14 or newer"),
    (("    kind: vocoder\n", "    kind: vocoder\n    compress: {activations: {dtype: int4}}\n"),
     "pipeline.yaml:9: stages.vocoder.compress.activations.dtype: Input should be 'int8' or 'uint8'"),
    (("stages:\n", "calibration: {texts: [Hello.], count: 2}\nstages:\n"),
     "pipeline.yaml:6: calibration.count: 2 texts asked for, 1 given"),
    (("stages:\n", "calibration: {texts: [Hello., ' ']}\nstages:\n"),
     "pipeline.yaml:6: calibration.texts: text 1 is blank: it calibrates nothing"),
    (("stages:\n", "calibration: {texts: [Hello.], voice: af_heart}\nstages:\n"),
     "pipeline.yaml:6: calibration.voice: 'af_heart' is not one of model.voices (jf_alpha)"),
    # a lexicon on a stage that isn't g2p
    (("    kind: vocoder\n", "    kind: vocoder\n    lexicon: {dialect: us}\n"),
     "pipeline.yaml:9: stages.vocoder.lexicon: only g2p stages take it (this one is vocoder)"),
    # g2p characters in buckets (padding would change the encoder's state)
    (("stages:\n", "stages:\n  g2p: {kind: g2p, shapes: {chars: {buckets: [16, 32]}}}\n"),
     "pipeline.yaml:7: stages.g2p.shapes.chars: buckets shapes are not built for g2p yet (supported: range)"),
    # an unknown lexicon dialect, and a tier listed twice
    (("stages:\n", "stages:\n  g2p:\n    kind: g2p\n    lexicon: {dialect: au}\n"
      "    shapes: {chars: {range: [2, 64]}}\n"),
     "pipeline.yaml:9: stages.g2p.lexicon.dialect: Input should be 'us' or 'gb'"),
    (("stages:\n", "stages:\n  g2p:\n    kind: g2p\n    lexicon: {tiers: [gold, gold]}\n"
      "    shapes: {chars: {range: [2, 64]}}\n"),
     "pipeline.yaml:9: stages.g2p.lexicon.tiers: lists a tier twice"),
    # two g2p stages
    (("stages:\n", "stages:\n  g2p: {kind: g2p, shapes: {chars: {range: [2, 64]}}}\n"
      "  g2p2: {kind: g2p, shapes: {chars: {range: [2, 64]}}}\n"),
     "pipeline.yaml:8: stages.g2p2.kind: a variant has one g2p stage (also g2p)"),
    # a remote cache: an unknown scheme, credentials in the URL, an endpoint that isn't http(s)
    (("name: t\n", "name: t\ncache: {url: 'ftp://host/x'}\n"),
     "pipeline.yaml:3: cache.url: 'ftp://host/x': give s3://bucket/prefix or file:///folder"),
    (("name: t\n", "name: t\ncache: {url: 's3://key:secret@bucket/x'}\n"),
     "pipeline.yaml:3: cache.url: put no credentials in the URL"),
    (("name: t\n", "name: t\ncache: {url: 's3://bucket/x', endpoint_url: 'localhost:9000'}\n"),
     "pipeline.yaml:3: cache.endpoint_url: 'localhost:9000': give http(s)://host:port"),
    # a bad variant name (it becomes a folder name)
    (("name: t\n", "name: ../escape\n"),
     "pipeline.yaml:2: name: String should match pattern"),
])
def test_malformed_config_messages(tmp_path, edit, expected):
    old, new = edit
    assert old in VALID
    message = errors_for(tmp_path, VALID.replace(old, new, 1))
    assert expected in message


def test_several_errors_are_reported_together(tmp_path):
    text = VALID.replace("[jf_alpha]", "[nobody]").replace("[120, 200]", "[]")
    lines = errors_for(tmp_path, text).splitlines()
    assert [line.split(": ")[0] for line in lines] == ["pipeline.yaml:5", "pipeline.yaml:9"]


def test_top_level_must_be_a_mapping(tmp_path):
    assert "pipeline.yaml:1: expected a mapping at the top level" in errors_for(tmp_path, "- 1\n")


def test_random_source_accepts_any_voice(tmp_path):
    text = VALID.replace("source: pypi-int8", f"source: {{random_seed: 3, config: {TINY}}}")
    path = tmp_path / "p.yaml"
    path.write_text(text.replace("[jf_alpha]", "[anything]"))
    assert load_config(path).model.source.random_seed == 3


def test_file_source_lists_voices_from_voices_dir(tmp_path):
    (tmp_path / "kokoro-v1_0.pth").write_bytes(b"x")
    (tmp_path / "voices").mkdir()
    (tmp_path / "voices" / "af_heart.pt").write_bytes(b"x")
    text = VALID.replace("source: pypi-int8", f"source: {{path: kokoro-v1_0.pth, config: {TINY}}}")
    assert load_config_text(tmp_path, text.replace("[jf_alpha]", "[af_heart]")).model.voices == ["af_heart"]
    message = errors_for(tmp_path, text)
    assert "model.voices: unknown voice 'jf_alpha'; available: af_heart" in message


def load_config_text(tmp_path, text):
    path = tmp_path / "pipeline.yaml"
    path.write_text(text)
    return load_config(path)


def test_validate_command_exit_codes(tmp_path, capsys):
    good, bad = tmp_path / "good.yaml", tmp_path / "bad.yaml"
    good.write_text(VALID)
    bad.write_text(VALID.replace("kind: vocoder", "kind: nope"))
    assert cli(["validate", str(good)]) == 0
    assert cli(["validate", str(bad)]) == 1
    assert f"{bad}:8: stages.vocoder.kind: unknown stage kind 'nope'" in capsys.readouterr().err


def test_missing_file_is_a_clear_error(tmp_path, capsys):
    assert cli(["validate", str(tmp_path / "absent.yaml")]) == 1
    assert "cannot read" in capsys.readouterr().err
