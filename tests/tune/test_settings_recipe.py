"""What the tuner may choose, and the recipe it writes."""
import pytest

from kokoro_build.schema.config import ConfigError, load_config
from kokoro_build.tune.recipe import overlay, write_recipe
from kokoro_build.tune.settings import candidate_settings


def test_lint_flagged_settings_are_left_out_unless_asked_for():
    chosen, left_out = candidate_settings("iOS17", "cpu_and_ne", "9.0")
    assert "pal4" not in chosen and left_out["pal4"] == "palette_4bit_coremltools_9_0"  # coremltools #2716
    assert "pal3" not in chosen  # iOS16/17 tables hold 2, 4, 16, 64 or 256 entries
    assert "pal4" in candidate_settings("iOS17", "cpu_and_ne", "9.0", frozenset({"pal4"}))[0]
    assert "pal4" in candidate_settings("iOS17", "cpu_and_ne", "9.0", frozenset({"palette_4bit_coremltools_9_0"}))[0]
    assert "pal4" in candidate_settings("iOS17", "cpu_and_ne", "9.1")[0]
    ios18, _ = candidate_settings("iOS18", "cpu_and_ne", "9.0")
    assert {"pal3", "pal6g16", "pal3g16"} <= set(ios18) and "pal4g16" not in ios18


def test_three_bit_palettes_are_refused_below_ios18(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text("version: 1\nname: x\nmodel: {source: pypi-int8, voices: [jf_alpha]}\n"
                    "stages:\n  vocoder:\n    kind: vocoder\n    shapes: {frames: {buckets: [120]}}\n"
                    "    compress: {palettize: {nbits: 3}}\n")
    with pytest.raises(ConfigError, match="nbits 3"):
        load_config(path)


def test_the_written_recipe_loads_and_names_each_weight(tmp_path):
    base = tmp_path / "base.yaml"
    base.write_text("version: 1\nname: base\nmodel: {source: pypi-int8, voices: [jf_alpha]}\n"
                    "target: {deployment: iOS18}\n"
                    "stages:\n  vocoder:\n    kind: vocoder\n    shapes: {frames: {buckets: [120]}}\n")
    out = tmp_path / "recipes" / "tuned.yaml"
    choices = {("vocoder", "w_a"): "pal3", ("vocoder", "w_b"): "int8", ("vocoder", "w_c"): "fp16"}
    document = overlay(base, out, "tuned", choices, {"vocoder": 2048}, "iOS18", "test")
    write_recipe(out, document, ["how it was found"])
    assert out.read_text().startswith("# how it was found\n")
    config = load_config(out)
    block = config.stages["vocoder"].compress
    assert block.op_names["w_a"].palettize.nbits == 3
    assert block.op_names["w_b"].linear.dtype == "int8"
    # fp16 is named null: uncompressed even where the base stage has a global method
    assert block.op_names["w_c"] is None and block.palettize is None and block.linear is None


def test_a_tuned_setting_replaces_the_bases_own_setting_for_that_weight(tmp_path):
    """A base tuned before names the same weights: its `linear:` for a weight must not
    merge with the new `palettize:` (a config error), nor its palette with the new int8."""
    base = tmp_path / "base.yaml"
    base.write_text("version: 1\nname: base\nmodel: {source: pypi-int8, voices: [jf_alpha]}\n"
                    "target: {deployment: iOS18}\n"
                    "stages:\n  vocoder:\n    kind: vocoder\n    shapes: {frames: {buckets: [120]}}\n"
                    "    compress:\n      palettize: {nbits: 6}\n"
                    "      op_names: {w_a: {linear: {}}, w_b: {palettize: {nbits: 8}}, w_c: {palettize: {nbits: 3}}}\n")
    out = tmp_path / "tuned.yaml"
    choices = {("vocoder", "w_a"): "skm3g16", ("vocoder", "w_b"): "int8", ("vocoder", "w_c"): "fp16"}
    write_recipe(out, overlay(base, out, "tuned", choices, {"vocoder": 2048}, "iOS18", "test"), ["h"])
    block = load_config(out).stages["vocoder"].compress
    assert block.op_names["w_a"].linear is None and block.op_names["w_a"].palettize.mode == "sensitive_kmeans"
    assert block.op_names["w_b"].palettize is None and block.op_names["w_b"].linear.dtype == "int8"
    assert block.op_names["w_c"] is None
