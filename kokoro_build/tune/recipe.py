"""A tune's choice as a recipe overlay: per-weight settings under `compress.op_names`
(coremltools matches a const by its own name), with a header that says how it was found."""
from __future__ import annotations

import os
from pathlib import Path

import yaml

from kokoro_build.tune.settings import UNCOMPRESSED, all_settings


def overlay(base: Path, out: Path, name: str, choices: dict[tuple[str, str], str],
            min_weight_elements: dict[str, int], deployment: str, description: str) -> dict:
    """The overlay document: `choices` is (stage, weight) -> setting label."""
    settings = all_settings(deployment)
    stages: dict[str, dict] = {}
    for (stage, weight), label in sorted(choices.items()):
        entry = stages.setdefault(stage, {"compress": {"min_weight_elements": min_weight_elements[stage],
                                                       "op_names": {}}})
        if label == UNCOMPRESSED:  # null: fp16, whatever global method the base's block has
            entry["compress"]["op_names"][weight] = None
            continue
        method = settings[label]
        kind = "palettize" if hasattr(method, "nbits") else "linear"
        # `!replace`: a base's own setting for the weight (say `linear:`) must not merge into it
        entry["compress"]["op_names"][weight] = _Replacing({kind: method.model_dump(mode="json",
                                                                                    exclude_defaults=True)})
    extends = os.path.relpath(base.resolve(), out.resolve().parent)
    return {"extends": extends, "name": name, "description": description, "stages": stages}


class _Replacing(dict):
    """A mapping written with the overlay's `!replace` tag (schema/overlay.py)."""


class _Dumper(yaml.SafeDumper):
    pass


_Dumper.add_representer(_Replacing, lambda dumper, data: dumper.represent_mapping("!replace", data))


def write_recipe(path: Path, document: dict, header: list[str]) -> None:
    from kokoro_build.store.package import atomic_path
    text = "".join(f"# {line}\n" for line in header)
    text += yaml.dump(document, Dumper=_Dumper, sort_keys=False, width=120)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
