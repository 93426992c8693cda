"""Byte-reproducible .mlpackage files and build provenance.

Two conversions of one model differ byte for byte in two places (seen here, coremltools 9.0): the
package's `Manifest.json` (random item UUIDs) and `model.mlmodel` (protobuf map
order); `weight.bin` is identical. `normalize_package` fixes both after every save:
the item ids become UUIDs derived from the items' content, the spec is serialized
deterministically, and coremltools' `conversion_date` (the day of the build) is
dropped. What made the package goes into its metadata instead (`build_stamp`).
"""
from __future__ import annotations

import hashlib
import json
import subprocess
import uuid
from functools import lru_cache
from pathlib import Path

from kokoro_build.store.package import file_sha256, tree_digest

SPEC = Path("Data") / "com.apple.CoreML" / "model.mlmodel"
DROPPED_METADATA = ("com.github.apple.coremltools.conversion_date",)
# A fixed namespace for the item ids (a uuid5 of the item's path and content).
ITEM_NAMESPACE = uuid.UUID("6b6f6b6f-726f-4275-696c-642d6d6c7067")
TOOLS = ("coremltools", "torch", "numpy", "protobuf", "kokoro", "misaki")
PROJECT = Path(__file__).resolve().parents[2]
LOCK_FILES = ("requirements/lock.txt", "requirements/nodeps.txt")


def normalize_package(package: str | Path) -> None:
    """Rewrite a saved .mlpackage in place so equal models give equal bytes."""
    from coremltools.proto import Model_pb2

    package = Path(package)
    spec_path = package / SPEC
    spec = Model_pb2.Model()
    spec.ParseFromString(spec_path.read_bytes())
    for key in DROPPED_METADATA:
        spec.description.metadata.userDefined.pop(key, None)
    if spec.WhichOneof("Type") == "mlProgram":
        for function in spec.mlProgram.functions.values():
            inputs = [value.name for value in function.inputs]
            for block in function.block_specializations.values():
                _renumber_generated_names(block, inputs)
    spec_path.write_bytes(spec.SerializeToString(deterministic=True))
    manifest_path = package / "Manifest.json"
    manifest = json.loads(manifest_path.read_text())
    renamed = {}
    for old_id, item in manifest["itemInfoEntries"].items():
        content = package / "Data" / item["path"]
        digest = tree_digest(content)["sha256"] if content.exists() else ""
        renamed[old_id] = str(uuid.uuid5(ITEM_NAMESPACE, f"{item['path']}\0{digest}"))
    manifest["itemInfoEntries"] = {renamed[k]: v for k, v in manifest["itemInfoEntries"].items()}
    manifest["rootModelIdentifier"] = renamed[manifest["rootModelIdentifier"]]
    manifest_path.write_text(json.dumps(manifest, indent=4, sort_keys=True) + "\n")


def pin_hash_seed() -> None:
    """Re-run this doit process with PYTHONHASHSEED=0 unless it has it. coremltools'
    graph passes visit sets of names, so with Python's random string hashing the
    ops it names itself came out numbered differently per run (measured on the noise
    stage: PYTHONHASHSEED 0 and 1 gave `reshape_0` where 2 gave `reshape_1`). The hash
    seed can only be set before the interpreter starts, hence the re-exec; doit's
    worker processes (`-n`) inherit it."""
    import os
    import sys
    launcher = Path(sys.argv[0]) if sys.argv and sys.argv[0] else Path()
    started_as_doit = launcher.name == "doit" or launcher.parts[-2:] == ("doit", "__main__.py")
    if os.environ.get("PYTHONHASHSEED") == "0" or not started_as_doit:
        return  # pinned already, or dodo.py imported by something else (a test, an IDE)
    os.environ["PYTHONHASHSEED"] = "0"
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(sys.executable, [sys.executable, "-m", "doit", *sys.argv[1:]])


def reset_mil_names() -> None:
    """Restart coremltools' process-wide name counters (`reshape_0`, `block3`, the
    symbol `is0`): ops it names itself are otherwise numbered by whatever the process
    converted before, so one package's bytes depended on the doit task order
    (measured: `reshape_0_shape_0` in one clean build, `reshape_1_shape_0` in another).
    Call before each conversion or graph pass."""
    from coremltools.converters.mil.mil import block, builder, program
    from coremltools.converters.mil.mil.types import symbolic

    builder.Builder.name_count.clear()
    block.Block.counter = 0
    program.Placeholder.counter = 0
    program.StateTensorPlaceholder.counter = 0
    for module in (program, block, symbolic):  # each holds its own copy of the int
        if hasattr(module, "k_num_internal_syms"):
            module.k_num_internal_syms = 0
    symbolic.k_used_symbols.clear()  # one set, shared


def _walk_ops(block):
    for op in block.operations:
        yield op
        for inner in op.blocks:
            yield from _walk_ops(inner)


def _op_type_names() -> frozenset[str]:
    import coremltools.converters.mil.mil.ops.defs  # noqa: F401  (registers the ops)
    from coremltools.converters.mil.mil.ops.registry import SSAOpRegistry
    return frozenset(SSAOpRegistry.core_ops) | {"const"}


def _renumber_generated_names(block, fixed_names=()) -> None:
    """Number the names coremltools makes itself, `<op type>_<n>` (and the names
    derived from them, `<op type>_<n>_<suffix>`), in program order, per op type.
    Some of its graph passes visit sets of ops, whose order follows memory addresses,
    so which op got `reshape_0` varied between two clean builds of the noise stage
    (measured), and PYTHONHASHSEED=0 didn't fix it. Every name of the form joins the
    renumbering, whatever op holds it now (a folded `concat_11` is a const), so a new
    name can't collide with an old one. Names from the torch graph (`var_91`) and the
    function's inputs and outputs stay."""
    import re

    op_types = _op_type_names()
    ops = list(_walk_ops(block))
    fixed = set(block.outputs) | set(fixed_names)  # the model's interface keeps its names
    renamed: dict[str, str] = {}
    counts: dict[str, int] = {}
    for op in ops:
        for out in op.outputs:
            match = re.fullmatch(r"([a-z][a-z0-9_]*?)_(\d+)", out.name)
            if match and match.group(1) in op_types and out.name not in renamed and out.name not in fixed:
                stem = match.group(1)
                while f"{stem}_{counts.get(stem, 0)}" in fixed:
                    counts[stem] = counts.get(stem, 0) + 1
                renamed[out.name] = f"{stem}_{counts.get(stem, 0)}"
                counts[stem] = counts.get(stem, 0) + 1
    if not renamed or all(k == v for k, v in renamed.items()):
        return
    pattern = re.compile(r"^(" + "|".join(re.escape(k) for k in sorted(renamed, key=len, reverse=True)) +
                         r")(?=$|_[A-Za-z])")

    def new(name: str) -> str:
        return name if name in fixed else pattern.sub(lambda m: renamed[m.group(1)], name, count=1)

    def rename_block(inner) -> None:
        for value in inner.inputs:
            value.name = new(value.name)
        for index, name in enumerate(inner.outputs):
            inner.outputs[index] = new(name)

    rename_block(block)
    for op in ops:
        for out in op.outputs:
            out.name = new(out.name)
        for argument in op.inputs.values():
            for binding in argument.arguments:
                if binding.WhichOneof("binding") == "name":
                    binding.name = new(binding.name)
        label = op.attributes.get("name")
        if label is not None and label.immediateValue.tensor.strings.values:
            values = label.immediateValue.tensor.strings.values
            values[0] = new(values[0])
        for inner in op.blocks:
            rename_block(inner)


def config_digest(config_slice: dict) -> str:
    return hashlib.sha256(json.dumps(config_slice, sort_keys=True).encode()).hexdigest()


@lru_cache(maxsize=1)
def tool_versions() -> dict[str, str]:
    from importlib import metadata

    from kokoro_build import __version__
    versions = {"kokoro-build": __version__}
    for name in TOOLS:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


@lru_cache(maxsize=1)
def git_commit() -> str:
    """HEAD of the project's checkout, `+dirty` if tracked files differ; `unknown`
    outside git."""
    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(PROJECT), *args], capture_output=True, text=True,
                              check=True).stdout.strip()
    try:
        head = git("rev-parse", "HEAD")
        dirty = git("status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + ("+dirty" if dirty else "")


def lock_digests() -> dict[str, str]:
    """sha256 of each dependency lock file (the whole environment's pins)."""
    return {name: file_sha256(PROJECT / name) for name in LOCK_FILES if (PROJECT / name).is_file()}


def build_stamp(config_slice: dict) -> str:
    """`kokoro_build.build` metadata: the digest of the config slice the package was
    built from, the tool versions, the lock files and the git commit."""
    return json.dumps({"config_sha256": config_digest(config_slice), "versions": tool_versions(),
                       "locks": lock_digests(), "git_commit": git_commit()}, sort_keys=True)
