"""The cross-variant step cache: a hit links the outputs and skips the step; inputs
or config that differ miss; a stored output that no longer matches its digest is
dropped and rebuilt."""
import json
from pathlib import Path

from kokoro_build.store.cache import run_cached, step_key
from kokoro_build.store.package import atomic_path, write_digest


def make_step(calls: list, content: str):
    def build_into(target: Path):
        def build():
            calls.append(target)
            with atomic_path(target) as tmp:
                tmp.write_text(content)
            write_digest(target, seconds=1.0)
        return build
    return build_into


def run(root, variant: Path, calls, content="traced", config=None, inputs=()):
    target = variant / "stage.traced.pt"
    run_cached(str(root), "export", config or {"sizes": 120}, list(inputs),
               [str(target), str(variant / "stage.digest.json")], make_step(calls, content)(target))
    return target


def test_second_variant_links_instead_of_rebuilding(tmp_path, capsys):
    calls, code = [], tmp_path / "code.py"
    code.write_text("x = 1\n")
    first = run(tmp_path / "cache", tmp_path / "a", calls, inputs=[str(code)])
    second = run(tmp_path / "cache", tmp_path / "b", calls, inputs=[str(code)])
    assert calls == [first] and second.read_text() == "traced"
    assert "cache hit: export" in capsys.readouterr().out
    assert second.stat().st_ino == first.stat().st_ino  # linked, not copied
    assert json.loads((tmp_path / "b" / "stage.digest.json").read_text())["sha256"]
    # another config slice or changed code: a miss
    run(tmp_path / "cache", tmp_path / "c", calls, config={"sizes": 200}, inputs=[str(code)])
    code.write_text("x = 2\n")
    run(tmp_path / "cache", tmp_path / "d", calls, inputs=[str(code)])
    assert len(calls) == 3


def test_digest_inputs_key_by_content_not_by_their_timings(tmp_path):
    a, b = tmp_path / "a.digest.json", tmp_path / "b.digest.json"
    a.write_text(json.dumps({"sha256": "1" * 64, "seconds": 3.0, "stat": {"x": [1, 2]}, "sizes": {"frames": 864}}))
    b.write_text(json.dumps({"sha256": "1" * 64, "seconds": 9.0, "stat": {"x": [1, 5]}, "sizes": {"frames": 864}}))
    assert step_key("convert", {}, [str(a)]) == step_key("convert", {}, [str(b)])


def test_digest_inputs_key_by_what_else_they_record(tmp_path):
    """The same trace bytes for another bucket list: a convert step reads the list from
    the trace's sidecar (into its report), so it is another key, not a stale hit."""
    a, b = tmp_path / "a.digest.json", tmp_path / "b.digest.json"
    a.write_text(json.dumps({"sha256": "1" * 64, "flexible": {"frames": {"buckets": [64, 88, 864]}}}))
    b.write_text(json.dumps({"sha256": "1" * 64, "flexible": {"frames": {"buckets": [64, 96, 864]}}}))
    assert step_key("convert", {}, [str(a)]) != step_key("convert", {}, [str(b)])


def test_a_stored_output_that_changed_is_rebuilt(tmp_path):
    calls = []
    first = run(tmp_path / "cache", tmp_path / "a", calls)
    entry = next((tmp_path / "cache" / "export").iterdir())
    stored = entry / "outputs" / "0"
    stored.unlink()  # not in place: a different file where the stored output was
    stored.write_text("tampered")
    again = run(tmp_path / "cache", tmp_path / "b", calls)
    assert len(calls) == 2 and again.read_text() == "traced" and first.read_text() == "traced"
