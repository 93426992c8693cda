"""The `kokoro-build` command line."""
from __future__ import annotations

import argparse
import json
import sys

from kokoro_build.schema.config import ConfigError, load_config
from kokoro_build.schema.manifest import ManifestError


def cmd_validate(args: argparse.Namespace) -> int:
    try:
        config = load_config(args.file)
    except ConfigError as error:
        print(error, file=sys.stderr)
        return 1
    shapes = sum(len(spec.sizes) for stage in config.stages.values() for spec in stage.shapes.values())
    print(f"{args.file}: ok ({config.name}: {len(config.stages)} stage(s), {shapes} shape(s), "
          f"source {config.model.source.kind})")
    return 0


def cmd_speak(args: argparse.Namespace) -> int:
    from pathlib import Path

    from kokoro_build.store.package import atomic_path
    from kokoro_build.runtime import Chain, ChainError
    from kokoro_build.runtime.backends import BackendError

    from kokoro_build.runtime.bundle import BundleError, open_bundle

    text = args.text if args.text != "-" else sys.stdin.read()
    try:
        with open_bundle(args.bundle) if args.bundle else _nullcontext(Path(args.artifacts) / args.variant) as where:
            print(f"loading {args.bundle or where} ({args.backend} backend)", file=sys.stderr, flush=True)
            chain = Chain(where, backend=args.backend, g2p=args.g2p)
            speech = chain.speak(text, voice=args.voice, speed=args.speed, seed=args.seed,
                                 progress=lambda line: print(line, file=sys.stderr, flush=True))
    except (ChainError, BackendError, BundleError, FileNotFoundError, ValueError) as error:
        print(f"kokoro-build speak: {error}", file=sys.stderr)
        return 1
    if args.g2p == "device":  # which words the lexicon didn't have
        guessed = chain.g2p_neural_words
        print(f"neural G2P: {', '.join(guessed) if guessed else 'no word (all in the lexicon)'}",
              file=sys.stderr)
    import soundfile
    with atomic_path(args.output) as tmp:
        soundfile.write(str(tmp), speech.audio, speech.sample_rate, format="WAV")
    seconds = len(speech.audio) / speech.sample_rate
    print(f"{args.output}: {seconds:.2f} s of audio in {speech.seconds:.2f} s "
          f"(real-time factor {speech.real_time_factor:.2f}x), {len(speech.chunks)} chunk(s)")
    return 0


def _nullcontext(value):
    from contextlib import nullcontext
    return nullcontext(value)


def cmd_report(args: argparse.Namespace) -> int:
    from pathlib import Path

    from kokoro_build.report.summary import format_terminal, variant_summary
    from kokoro_build.report.variant import speech_finding

    variant_dir = Path(args.artifacts) / args.variant
    try:
        summary = variant_summary(variant_dir)
    except (FileNotFoundError, ValueError, KeyError) as error:
        print(f"kokoro-build report: {variant_dir}: {error} (build and verify it first: make build)",
              file=sys.stderr)
        return 1
    print(format_terminal(summary))
    spoken = variant_dir / "report" / "summary.json"  # written by the report task
    audio = json.loads(spoken.read_text()).get("audio", {}) if spoken.is_file() else {}
    if "pesq" in audio or "error" in audio:  # a report from before the speech gates has neither
        print(speech_finding(audio).replace("**", ""))
    for name in ("report.md", "report.html"):
        if (variant_dir / name).is_file():
            print(f"full report: {variant_dir / name}")
    return 0 if summary["passed"] and not audio.get("failures") else 2


def cmd_recipes(args: argparse.Namespace) -> int:
    from kokoro_build.schema.recipes import list_recipes

    rows = list_recipes(args.folder)
    if not rows:
        print(f"no recipes in {args.folder}", file=sys.stderr)
        return 1
    width = max(len(name) for name, _, _ in rows)
    for name, description, extends in rows:
        print(f"{name:<{width}}  {description}" + (f"  (extends {extends})" if extends else ""))
    return 0


def cmd_diff(args: argparse.Namespace) -> int:
    from pathlib import Path

    from kokoro_build.report.diff import DiffError, format_diff, resolve, speech_correlation

    try:
        a, b = (resolve(spec, Path(args.artifacts), Path(args.recipes)) for spec in (args.a, args.b))
        speech = None
        if not args.no_speech and a.manifest and b.manifest:
            speech = speech_correlation(a, b, args.backend)
    except (DiffError, ManifestError) as error:
        print(f"kokoro-build diff: {error}", file=sys.stderr)
        return 1
    print(format_diff(a, b, markdown=args.markdown, speech=speech), end="")
    return 0


def cmd_ingest_device_report(args: argparse.Namespace) -> int:
    from pathlib import Path

    from kokoro_build.report.device import DeviceReportError, format_rows, ingest
    variant = Path(args.artifacts) / args.variant
    try:
        rows = ingest(variant, args.file)
    except (DeviceReportError, FileNotFoundError, ManifestError) as error:
        print(f"kokoro-build ingest-device-report: {error}", file=sys.stderr)
        return 1
    print(format_rows(rows))
    return 0 if all(r["passed"] for r in rows) else 2


def cmd_release(args: argparse.Namespace) -> int:
    from pathlib import Path

    from kokoro_build import __version__
    from kokoro_build.runtime.bundle import verify_release
    from kokoro_build.store.release import ReleaseError, build_release

    variant_dir = Path(args.artifacts) / args.variant
    try:
        out = build_release(variant_dir, args.dist, args.version or __version__, args.goldens)
    except (FileNotFoundError, ReleaseError, ManifestError) as error:
        print(f"kokoro-build release: {error}", file=sys.stderr)
        return 1
    problems = verify_release(out)  # what was written reads back
    if problems:
        print(f"kokoro-build release: {out} does not verify: {problems[0]}", file=sys.stderr)
        return 1
    import hashlib
    digest = hashlib.sha256(out.read_bytes()).hexdigest()
    print(f"{out}: {out.stat().st_size / 1e6:.1f} MB, sha256 {digest}")
    return 0


def cmd_verify_release(args: argparse.Namespace) -> int:
    from kokoro_build.runtime.bundle import verify_release

    problems = verify_release(args.file)
    for problem in problems:
        print(f"{args.file}: {problem}", file=sys.stderr)
    if not problems:
        print(f"{args.file}: ok (every file matches manifest.json)")
    return 1 if problems else 0


def cmd_verify(args: argparse.Namespace) -> int:
    from pathlib import Path

    from kokoro_build.store.package import DIGEST_SUFFIX, artifact_problems

    variant_dir = Path(args.artifacts) / args.variant
    digests = sorted(p for p in variant_dir.rglob(f"*{DIGEST_SUFFIX}") if ".cache" not in p.parts)
    if not digests:
        print(f"kokoro-build verify: no artifact digests under {variant_dir} (build it first: doit)",
              file=sys.stderr)
        return 1
    problems = [line for digest in digests for line in artifact_problems(digest)]
    for line in problems:
        print(line, file=sys.stderr)
    if problems:
        print(f"{variant_dir}: {len(problems)} problem(s); `doit` rebuilds what no longer matches "
              "its digest", file=sys.stderr)
        return 1
    print(f"{variant_dir}: ok ({len(digests)} artifacts match their digests, every file re-hashed)")
    return 0


def cmd_tune(args: argparse.Namespace) -> int:
    from kokoro_build.plan.invoke import BuildError
    from kokoro_build.scale.executors import ExecutorError
    from kokoro_build.schema.config import ConfigError
    from kokoro_build.tune.run import TuneError, TuneRequest, tune
    if _ray_misplaced(args):
        return 1
    request = TuneRequest(config_path=args.config, stages=tuple(args.stages), budget_mb=args.budget_mb,
                          recipe=args.recipe, executor=args.executor, workers=args.workers,
                          ray_address=args.ray, allow=frozenset(args.allow), exclude=frozenset(args.exclude),
                          texts=tuple(args.text),
                          verify=not args.no_verify, min_weight_elements=args.min_weight_elements)
    try:
        summary = tune(request, log=lambda line: print(line, flush=True))
    except (TuneError, ConfigError, BuildError, ExecutorError) as error:
        print(f"kokoro-build tune: {error}", file=sys.stderr)
        return 1
    return 0 if summary["fits"] else 2


def cmd_wer(args: argparse.Namespace) -> int:
    from pathlib import Path

    from kokoro_build.runtime import ChainError
    from kokoro_build.runtime.backends import BackendError
    from kokoro_build.report.intelligibility import IntelligibilityError, measure, read_sentences
    try:
        sentences = read_sentences(args.sentences, args.limit)
        result = measure(Path(args.artifacts) / args.variant, args.voice, sentences, backend=args.backend,
                         progress=lambda line: print(line, file=sys.stderr, flush=True))
    except (IntelligibilityError, ChainError, BackendError, FileNotFoundError, ManifestError) as error:
        print(f"kokoro-build wer: {error}", file=sys.stderr)
        return 1
    for row in result["worse_sentences"]:
        print(f"worse: {row['text']!r}\n  fp32 heard:   {row['reference_transcript']!r}\n"
              f"  {args.backend} heard: {row['transcript']!r}")
    print(f"{args.variant}: WER {result['wer']:.1%} ({args.backend}) against {result['wer_fp32']:.1%} "
          f"(fp32 twins), {result['wer_increase']:+.1%}, {result['sentences']} sentences, "
          f"{result['words']} words, {result['transcriber']}")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    return 0


def cmd_sweep(args: argparse.Namespace) -> int:
    from kokoro_build.scale.executors import ExecutorError, make_executor
    from kokoro_build.scale.sweep import VARIANT_RESOURCES, run_sweep
    if _ray_misplaced(args):
        return 1
    try:
        executor = make_executor(args.executor, args.workers, args.ray, VARIANT_RESOURCES)
        rows, _ = run_sweep(args.file, args.artifacts, executor, log=lambda line: print(line, flush=True))
    except (ConfigError, ExecutorError) as error:
        print(f"kokoro-build sweep: {error}", file=sys.stderr)
        return 1
    return 0 if all(row["status"] == "ok" for row in rows) else 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="kokoro-build", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    validate = sub.add_parser("validate", help="check a pipeline file; exit 1 with file:line: field: message")
    validate.add_argument("file", nargs="?", default="pipeline.yaml")
    validate.set_defaults(run=cmd_validate)
    speak = sub.add_parser("speak", help="speak text with a built variant's chain -> .wav")
    speak.add_argument("text", help="the text to speak, or - to read standard input")
    speak.add_argument("-o", "--output", required=True, help="the .wav file to write (24 kHz)")
    speak.add_argument("--variant", default="default", help="artifacts/<variant>/ (default: default)")
    speak.add_argument("--voice", default="jf_alpha")
    speak.add_argument("--speed", type=float, default=1.0)
    speak.add_argument("--backend", default="torch",
                       help="torch (the traced twins), mil (the saved .mlpackage files through the "
                            "MIL evaluator, on any OS), executorch (the .pte programs, XNNPACK; "
                            "a variant built with targets: [coreml, executorch]) or coreml "
                            "(Core ML, macOS only)")
    speak.add_argument("--g2p", default="misaki", choices=("misaki", "device"),
                       help="misaki (host reference: spaCy + espeak-ng) or device (the variant's "
                            "lexicon and neural G2P artifact, run by --backend)")
    speak.add_argument("--seed", type=int, default=0, help="seed of the source noise")
    speak.add_argument("--artifacts", default="artifacts", help="where variants are built")
    speak.add_argument("--bundle", help="speak from a release (its .zip, or the folder it unzips to) "
                                        "instead of a built variant: --backend mil, executorch or coreml")
    speak.set_defaults(run=cmd_speak)
    report = sub.add_parser("report", help="a built variant's verification summary and speech metrics (exit 2 if any gate failed)")
    report.add_argument("variant", nargs="?", default="default")
    report.add_argument("--artifacts", default="artifacts", help="where variants are built")
    report.set_defaults(run=cmd_report)
    recipes = sub.add_parser("recipes", help="list the recipes with a line on each (build one: doit recipe=NAME)")
    recipes.add_argument("--folder", default="recipes")
    recipes.set_defaults(run=cmd_recipes)
    diff = sub.add_parser("diff", help="two recipes or built variants: config diff per stage, artifact "
                                       "digests, metrics with deltas, the two chains' speech correlation")
    diff.add_argument("a", help="a pipeline file, a recipe name, or a built variant's name")
    diff.add_argument("b")
    diff.add_argument("--markdown", action="store_true", help="print Markdown instead of aligned text")
    diff.add_argument("--no-speech", action="store_true", help="skip speaking the fixed sentence")
    diff.add_argument("--backend", default="mil", choices=("mil", "torch"),
                      help="how both chains speak: mil (the saved artifacts, default) or torch (their twins)")
    diff.add_argument("--artifacts", default="artifacts", help="where variants are built")
    diff.add_argument("--recipes", default="recipes", help="where recipe files are")
    diff.set_defaults(run=cmd_diff)
    release = sub.add_parser("release", help="a built, verified variant as dist/<name>-<version>.zip "
                                             "(byte-stable; manifest.json with every file's sha256)")
    release.add_argument("variant", nargs="?", default="default")
    release.add_argument("--version", help="the bundle's version (default: kokoro-build's)")
    release.add_argument("--dist", default="dist", help="where to write the zip (default: dist/)")
    release.add_argument("--artifacts", default="artifacts", help="where variants are built")
    release.add_argument("--goldens", choices=("smallest", "all"), default="smallest",
                         help="golden vectors for the device check: each package's smallest function "
                              "(default), or every function (a larger zip)")
    release.set_defaults(run=cmd_release)
    verify = sub.add_parser("verify", help="re-hash every artifact of a built variant against its digest "
                                           "(exit 1 naming each changed, truncated, missing or added file)")
    verify.add_argument("variant", nargs="?", default="default")
    verify.add_argument("--artifacts", default="artifacts", help="where variants are built")
    verify.set_defaults(run=cmd_verify)
    ingest = sub.add_parser("ingest-device-report", help="put a Mac's device_report.json (the release's "
                            "device_check.py) beside the prediction; list the ops where they disagree")
    ingest.add_argument("variant")
    ingest.add_argument("file")
    ingest.add_argument("--artifacts", default="artifacts")
    ingest.set_defaults(run=cmd_ingest_device_report)
    check = sub.add_parser("verify-release", help="re-hash a release zip against its manifest.json "
                                                  "(exit 1 naming each file that differs)")
    check.add_argument("file")
    check.set_defaults(run=cmd_verify_release)
    tune = sub.add_parser("tune", help="per-weight compression settings for a size budget, from measured "
                                        "sensitivity; writes a recipe, builds it, plots it (exit 2: budget not met)")
    tune.add_argument("stages", nargs="+", help="the fp16 stages to tune, e.g. duration prosody vocoder")
    tune.add_argument("--budget-mb", type=float, required=True, help="the tuned stages' packages, in MB")
    tune.add_argument("--config", default="pipeline.yaml", help="the base: a pipeline file or recipe file")
    tune.add_argument("--recipe", help="the overlay to write (default: tuned-<budget>.yaml beside the base)")
    _executor_arguments(tune, "trials")
    tune.add_argument("--allow", action="append", default=[],
                      help="a setting label or lint rule id to try although the device-risk lint flags it")
    tune.add_argument("--exclude", action="append", default=[], metavar="LABEL",
                      help="a setting label not to try (repeat), e.g. the skm ones to compare with data-free "
                           "palettes alone")
    tune.add_argument("--text", action="append", default=[],
                      help="a text the trials speak (repeat; default: the base's calibration texts, else two "
                           "short built-in sentences)")
    tune.add_argument("--min-weight-elements", type=int,
                      help="tune only weights larger than this (default: the stage's compress block's, else 2048)")
    tune.add_argument("--no-verify", action="store_true", help="write the recipe without building it")
    tune.set_defaults(run=cmd_tune)
    wer = sub.add_parser("wer", help="word error rate of a built variant's speech against its fp32 twins', "
                                     "transcribed by an offline Whisper (requirements/intelligibility.txt)")
    wer.add_argument("variant", nargs="?", default="default")
    wer.add_argument("--sentences", help="one sentence a line (default: benchmarks/data/intelligibility.txt)")
    wer.add_argument("--limit", type=int, help="the first N sentences only")
    wer.add_argument("--voice", default="jf_alpha")
    wer.add_argument("--backend", default="mil", choices=("mil", "coreml", "executorch", "torch"),
                     help="how the variant speaks (default mil: the saved .mlpackage files)")
    wer.add_argument("--json", help="also write the result (per-sentence transcripts) to this file")
    wer.add_argument("--artifacts", default="artifacts", help="where variants are built")
    wer.set_defaults(run=cmd_wer)
    sweep = sub.add_parser("sweep", help="build every variant of a sweep file (a grid and/or named overlays "
                                         "of one pipeline) and tabulate size, speech, ANE share and digests "
                                         "(exit 1 if any variant failed)")
    sweep.add_argument("file", help="the sweep file (README \"Sweeps and clusters\"), e.g. "
                                    "recipes/sweeps/vocoder-bits.yaml")
    _executor_arguments(sweep, "variants")
    sweep.add_argument("--artifacts", default="artifacts",
                       help="where the variants are built (<artifacts>/<variant>/) and the sweep's overlays, "
                            "logs and results are written (<artifacts>/sweeps/<name>/)")
    sweep.set_defaults(run=cmd_sweep)
    return parser


def _ray_misplaced(args: argparse.Namespace) -> bool:
    """--ray without --executor ray: refused, with a line saying so."""
    if args.ray and args.executor != "ray":
        print(f"kokoro-build {args.command}: --ray goes with --executor ray", file=sys.stderr)
        return True
    return False


def _executor_arguments(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument("--executor", default="local", choices=("local", "ray", "in-process"),
                        help=f"where {what} run: local (a process pool), ray (a Ray cluster, --ray) or in-process")
    parser.add_argument("--ray", metavar="ADDRESS",
                        help="with --executor ray: auto (the cluster this machine joined with `ray start`; "
                             "the default), a cluster address (HOST:6379, ray://HOST:10001), or local "
                             "(a one-machine cluster started here)")
    parser.add_argument("--workers", type=int,
                        help="local pool size, or the CPUs of --ray local (default: the CPU count)")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
