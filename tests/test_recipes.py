"""Recipes layered with `extends:`: maps merge, lists replace, `!replace` replaces a
map; errors point at the layer a field came from; the listing."""
from pathlib import Path

import pytest

from kokoro_build.cli import main as cli
from kokoro_build.schema.config import ConfigError, load_config
from kokoro_build.schema.overlay import merge
from kokoro_build.plan.paths import recipe_path
from kokoro_build.schema.yaml_lines import Replace

ROOT = Path(__file__).resolve().parents[1]


def test_maps_merge_lists_and_scalars_replace_and_replace_tag_wins():
    base = {"a": {"x": 1, "y": [1, 2]}, "b": {"buckets": [120, 200]}, "c": 1}
    top = {"a": {"y": [3]}, "b": Replace({"range": [1, 1200]}), "c": None, "d": 4}
    assert merge(base, top) == {"a": {"x": 1, "y": [3]}, "b": {"range": [1, 1200]}, "c": None, "d": 4}
    assert type(merge(base, top)["b"]) is dict and base["b"] == {"buckets": [120, 200]}  # base untouched


def test_a_compression_recipe_is_ane_chain_plus_its_blocks():
    w8, chain = load_config(ROOT / "recipes" / "w8.yaml"), load_config(ROOT / "recipes" / "ane-chain.yaml")
    assert w8.name == "w8" and chain.name == "ane-chain"
    assert w8.stages["vocoder"].compress.linear.dtype == "int8"
    assert w8.stages["vocoder"].shapes == chain.stages["vocoder"].shapes  # inherited
    assert "g2p" not in chain.stages  # `stages: !replace` in ane-chain dropped the default's
    assert chain.verify.parity.min_psnr_db == 35  # pipeline.yaml's, through two layers


def layered(tmp_path, text: str, name: str = "exp.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_errors_name_the_file_and_line_each_field_came_from(tmp_path):
    base = ROOT / "recipes" / "w8a8.yaml"
    # the recipe's own bad field: its file and line
    with pytest.raises(ConfigError) as info:
        load_config(layered(tmp_path, f"extends: {base}\nstages:\n  vocoder:\n    compress: {{palettize: {{nbits: 5}}}}\n"))
    assert f"{tmp_path}/exp.yaml:4: stages.vocoder.compress.palettize.nbits" in str(info.value)
    # a field from the base made invalid by the recipe: the base's file and line
    with pytest.raises(ConfigError) as info:
        load_config(layered(tmp_path, f"extends: {base}\ntarget: {{deployment: iOS16}}\n"))
    line = next(i for i, text in enumerate(base.read_text().splitlines(), 1) if "activations: {}" in text)
    assert f"{base}:{line}: stages.prosody.compress.activations: needs deployment iOS17" in str(info.value)


def test_a_recipe_without_a_name_is_named_after_its_file(tmp_path):
    config = load_config(layered(tmp_path, f"extends: {ROOT / 'pipeline.yaml'}\n", "quick-test.yaml"))
    assert config.name == "quick-test" and "g2p" in config.stages


@pytest.mark.parametrize("extends, message", [
    ("nothere", "exp.yaml:1: extends: no such file"),
    ("exp", "exp.yaml:1: extends: extends itself: exp.yaml -> exp.yaml"),
    ("[1, 2]", "exp.yaml:1: extends: give a file"),
])
def test_bad_extends_is_located(tmp_path, extends, message):
    with pytest.raises(ConfigError, match=message.replace(".", r"\.").replace("[", r"\[")):
        load_config(layered(tmp_path, f"extends: {extends}\n"))


def test_a_cycle_through_two_files_is_refused(tmp_path):
    layered(tmp_path, "extends: b\n", "a.yaml")
    layered(tmp_path, "extends: a\n", "b.yaml")
    with pytest.raises(ConfigError, match="extends itself: a.yaml -> b.yaml -> a.yaml"):
        load_config(tmp_path / "a.yaml")


def test_recipe_variable_and_listing(capsys):
    assert recipe_path("w8") == "recipes/w8.yaml" and recipe_path("x/y.yaml") == "x/y.yaml"
    assert cli(["recipes"]) == 0
    out = capsys.readouterr().out
    for recipe in (ROOT / "recipes").glob("*.yaml"):
        line = next(line for line in out.splitlines() if line.startswith(recipe.stem + " "))
        assert "(no description)" not in line and "invalid" not in line, line
    assert "(extends ane-chain)" in out
