"""doit action: `report.md` and a self-contained `report.html` for a built variant.

The variant speaks one fixed sentence twice: through the torch twins (the reference)
and through its saved artifacts with the MIL evaluator (what an app would run). The
report shows both, with the parity and ANE tables of every artifact.
"""
from __future__ import annotations

import base64
import html
import time
from pathlib import Path

import numpy as np

from kokoro_build.store.package import atomic_path, write_json
from kokoro_build.report.summary import (artifact_table, lint_lines, markdown_table, program_table,
                                         variant_summary)

SENTENCE = "The quick brown fox jumps over the lazy dog, and the report hears every word."


def speak_both(variant_dir: Path, voice: str, text: str = SENTENCE):
    """(reference, chain, forced): `text` spoken by the variant's torch twins (fp32, the
    reference), by its saved artifacts through the MIL evaluator, and by the saved
    artifacts on the reference's durations (teacher-forced; the chain's own Speech when
    no duration changed), each a Speech (audio, chunks, timings), with the same G2P,
    voice and noise seed."""
    from kokoro_build.runtime import Chain
    from kokoro_build.runtime.text import misaki_g2p
    g2p = misaki_g2p()
    reference = Chain(variant_dir, backend="torch", g2p=g2p).speak(text, voice=voice, seed=0)
    mil = Chain(variant_dir, backend="mil", g2p=g2p)
    chain = mil.speak(text, voice=voice, seed=0)
    same_timing = len(chain.chunks) == len(reference.chunks) and all(
        np.array_equal(c.durations, r.durations) for c, r in zip(chain.chunks, reference.chunks))
    forced = chain if same_timing else mil.speak(text, voice=voice, seed=0, forced=reference)
    return reference, chain, forced


class AudioGateError(RuntimeError):
    """The variant's speech missed a `verify.audio` gate (raised after the report is written)."""


def write_variant_report(variant_dir: str, voice: str, out_md: str, out_html: str,
                         gates: dict | None = None, intelligibility: dict | None = None) -> None:
    import soundfile

    from kokoro_build.report import plots
    from kokoro_build.verify.audio import audio_failures, speech_metrics

    root = Path(variant_dir)
    start = time.time()
    gates = dict(gates or {})
    enforce = gates.pop("enforce", True)  # false: missed gates are reported, not fatal
    summary = variant_summary(root)
    print(f"report {summary['name']}: speaking the report sentence (torch twins, then MIL evaluator)",
          flush=True)
    figures = {"ane": plots.ane_share_chart(summary["stages"])}
    folder = root / "report"
    try:
        reference, chain, forced = speak_both(root, voice)
    except ValueError as error:  # ChainError: a variant that can't speak this sentence
        audio = {"error": str(error)}
        print(f"report {summary['name']}: no speech section: {error}", flush=True)
    else:
        sample_rate = chain.sample_rate
        audio = {**speech_metrics(reference.audio, chain.audio, forced.audio, sample_rate),
                 "durations": _durations(reference, chain),
                 "seconds": len(chain.audio) / sample_rate,
                 "evaluator_real_time_factor": chain.real_time_factor}
        audio["failures"] = audio_failures(audio, gates)
        audio["gates"] = {k: v for k, v in gates.items() if v is not None}
        audio["enforced"] = enforce
        figures["waveform"] = plots.waveform_chart(reference.audio, chain.audio, sample_rate)
        figures["spectrogram"] = plots.spectrogram_chart(reference.audio, chain.audio)
        with atomic_path(folder / "sample.wav") as tmp:
            soundfile.write(str(tmp), chain.audio, sample_rate, format="WAV")
        if (intelligibility or {}).get("enabled"):
            audio["intelligibility"] = _word_error_rate(root, voice, intelligibility)
            audio["failures"] += audio["intelligibility"]["failures"]
    for name, png in figures.items():
        with atomic_path(folder / f"{name}.png") as tmp:
            tmp.write_bytes(png)
    write_json(folder / "summary.json", {**summary, "sentence": SENTENCE, "audio": audio})
    markdown = _markdown(summary, audio)
    with atomic_path(out_md) as tmp:
        tmp.write_text(markdown, encoding="utf-8")
    with atomic_path(out_html) as tmp:
        tmp.write_text(_html(summary, audio, figures), encoding="utf-8")
    print(f"report {summary['name']}: -> {Path(out_md).name}, {Path(out_html).name} "
          f"in {time.time() - start:.0f} s", flush=True)
    if audio.get("failures") and not enforce:
        print(f"report {summary['name']}: WARNING: the speech missed verify.audio: "
              f"{'; '.join(audio['failures'])} (not enforced: verify.audio.enforce is false)", flush=True)
    elif audio.get("failures"):
        raise AudioGateError(f"{root}: the saved artifacts' speech missed verify.audio: "
                             f"{'; '.join(audio['failures'])} (report: {out_md})")


def _word_error_rate(root: Path, voice: str, settings: dict) -> dict:
    """verify.intelligibility: the sentence set through the twins and the saved artifacts."""
    from kokoro_build.report.intelligibility import intelligibility_failures, measure, read_sentences
    sentences = read_sentences(settings.get("sentences"), settings.get("limit"))
    print(f"report {root.name}: word error rate on {len(sentences)} sentences (twins, then the "
          "saved artifacts, each transcribed by Whisper)", flush=True)
    result = measure(root, voice, sentences, progress=lambda line: print(line, flush=True))
    return {**result, "failures": intelligibility_failures(result, settings.get("max_wer_increase"))}


def _durations(reference, chain) -> dict:
    """duration_changes, or why there are none: a chain whose durations outgrew its
    largest bucket halves a chunk that the reference spoke whole."""
    from kokoro_build.verify.audio import duration_changes
    try:
        return duration_changes([c.durations for c in reference.chunks], [c.durations for c in chain.chunks])
    except ValueError as error:
        return {"error": f"{error} ({len(chain.chunks)} chunks against the reference's {len(reference.chunks)})"}


PROGRAMS_NOTE = ("Each .pte ran in the ExecuTorch runtime (XNNPACK on this CPU) against the torch twin "
                 "its Core ML package was checked against; the op share is of the lowered graph's ops.")


def _findings(summary: dict, audio: dict) -> list[str]:
    status = "every artifact passed its parity gate" if summary["passed"] else \
        "**some artifacts failed their parity gate**"
    return [
        f"Verification: {status} (the saved .mlpackage, run by the MIL evaluator on Linux, "
        "against the torch twin it was converted from).", speech_finding(audio),
        "ANE: *supported* is per-op eligibility (it tracks Core ML's operationsSupportingANE); "
        "*predicted* is where Core ML is expected to place the ops: a range-shaped input keeps a "
        "whole function off the ANE, however many of its ops are supported (rules with sources in "
        "kokoro_build/verify/ane_rules.py). Neither is a measurement; a compute plan run on a Mac is."
        + _off_ane(summary),
    ]


def _off_ane(summary: dict) -> str:
    """Name the artifacts most of whose ops (or FLOPs) are supported, yet predicted to
    run elsewhere."""
    off = [r["artifact"] for r in summary["artifacts"] if r["placed_flop_share"] is not None
           and max(r["op_share"], r["flop_share"]) >= 0.5 and r["placed_flop_share"] < 0.5]
    return (" Predicted off the ANE although mostly supported: " + ", ".join(off) + ".") if off else ""


def speech_finding(audio: dict) -> str:
    """One sentence on the report sentence's speech: the metrics and their gates."""
    if "error" in audio:
        return f"Speech: could not speak the report sentence: {audio['error']}"
    gates = audio.get("gates", {})
    not_enforced = "" if audio.get("enforced", True) else " (not enforced: verify.audio.enforce is false)"
    verdict = ("**missed verify.audio: " + "; ".join(audio["failures"]) + "**" + not_enforced) \
        if audio.get("failures") \
        else "every verify.audio gate met" if gates else "no verify.audio gates"
    return (f"Speech: \"{SENTENCE}\" ({audio['seconds']:.1f} s), the saved artifacts against the "
            f"fp32 torch twins, same noise: PESQ {audio['pesq']:.2f} (wideband), MCD "
            f"{audio['mcd_db']:.2f} dB, log-mel correlation {audio['mel_correlation']:.4f}"
            f"{_dtw(audio)}; {_timing(audio.get('durations'))}{_forced(audio)}{verdict}. "
            f"The evaluator ran at {audio['evaluator_real_time_factor']:.2f}x real time.{_wer(audio)}")


def _wer(audio: dict) -> str:
    """verify.intelligibility's result (absent unless enabled)."""
    wer = audio.get("intelligibility")
    if not wer:
        return ""
    return (f" Word error rate ({wer['transcriber']}, {wer['sentences']} sentences, {wer['words']} words): "
            f"{wer['wer']:.1%} from the saved artifacts against {wer['wer_fp32']:.1%} from the fp32 twins "
            f"({wer['wer_increase']:+.1%}; {len(wer['worse_sentences'])} sentence(s) heard worse).")


def _dtw(audio: dict) -> str:
    return f", MCD after DTW {audio['mcd_dtw_db']:.2f} dB" if "mcd_dtw_db" in audio else ""


def _forced(audio: dict) -> str:
    """Timing held equal (None: an older summary)."""
    forced = audio.get("teacher_forced")
    if not forced:
        return ""
    return (f"on the twin's durations (teacher-forced): PESQ {forced['pesq']:.2f}, MCD {forced['mcd_db']:.2f} dB, "
            f"F0 error {forced['f0_error_cents']:.1f} cents on {forced['voicing_agreement']:.0%} of voiced frames; ")


def _timing(durations: dict | None) -> str:
    """The duration stage's rounded frames against the twin's (None: an older summary)."""
    if not durations:
        return ""
    if "error" in durations:
        return f"durations: not comparable ({durations['error']}); "
    return (f"durations: {durations['changed_share']:.1%} of {durations['tokens']} tokens changed "
            f"(largest {durations['max_change_frames']} frames, length {durations['length_change_frames']:+d} "
            f"of {durations['reference_frames']} frames); ")


def _markdown(summary: dict, audio: dict) -> str:
    lines = [f"# Variant `{summary['name']}`", ""] + [f"- {f}" for f in _findings(summary, audio)]
    lines += ["", "## Artifacts", "", markdown_table(artifact_table(summary)), "",
              "## ANE FLOPs per stage: supported, and predicted placement", "", "![ANE share](report/ane.png)", "",
              "## Device-risk lint", ""] + ([f"- {line}" for line in lint_lines(summary)] or ["No findings."]) + [""]
    if program_table(summary):
        lines += ["## ExecuTorch programs", "", PROGRAMS_NOTE, "", markdown_table(program_table(summary)), ""]
    if "error" not in audio:
        lines += ["## One sentence: reference against the chain", "",
                  "![waveform](report/waveform.png)", "", "![spectrogram](report/spectrogram.png)", "",
                  "Listen: [report/sample.wav](report/sample.wav) (the chain, from the saved artifacts).", ""]
    lines += [f"Weights: {summary['weights'].get('provenance', {}).get('note', 'see manifest.json')}", ""]
    return "\n".join(lines)


def _html(summary: dict, audio: dict, figures: dict[str, bytes]) -> str:
    """One file, images inlined, no scripts or external resources."""
    def image(name: str, alt: str) -> str:
        data = base64.b64encode(figures[name]).decode()
        return f'<img alt="{alt}" src="data:image/png;base64,{data}">'

    def html_table(table: list[list[str]]) -> str:
        head = "".join(f"<th>{html.escape(c)}</th>" for c in table[0])
        body = "".join("<tr>" + "".join(
            f'<td class="{"fail" if c.startswith("FAIL") else ""}">{html.escape(c)}</td>' for c in row) + "</tr>"
            for row in table[1:])
        return f"<table><tr>{head}</tr>{body}</table>"

    programs = program_table(summary)
    programs_html = (f"<h2>ExecuTorch programs</h2><p>{html.escape(PROGRAMS_NOTE)}</p>{html_table(programs)}"
                     if programs else "")
    speech = "" if "waveform" not in figures else (
        "<h2>One sentence: reference against the chain</h2>" + image("waveform", "waveforms") +
        image("spectrogram", "log-mel spectrograms") +
        "<p>Sample: <code>report/sample.wav</code> beside this file.</p>")
    findings = "".join(f"<li>{html.escape(f).replace('**', '')}</li>" for f in _findings(summary, audio))
    lint = lint_lines(summary)
    lint_html = "<ul>" + "".join(f"<li>{html.escape(line)}</li>" for line in lint) + "</ul>" if lint \
        else "<p>No findings.</p>"
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>kokoro-build: {html.escape(summary['name'])}</title>
<style>
body {{ font: 14px/1.45 system-ui, sans-serif; margin: 2em auto; max-width: 72em; color: #222; }}
table {{ border-collapse: collapse; font-size: 13px; }}
th, td {{ border: 1px solid #ccc; padding: 3px 8px; text-align: left; }}
th {{ background: #f3f3f3; }} td.fail {{ color: #b00020; font-weight: bold; }}
img {{ max-width: 100%; border: 1px solid #eee; margin: 0.5em 0; }}
</style></head><body>
<h1>Variant <code>{html.escape(summary['name'])}</code></h1>
<ul>{findings}</ul>
<h2>Artifacts</h2>{html_table(artifact_table(summary))}
<h2>ANE FLOPs per stage: supported, and predicted placement</h2>{image('ane', 'ANE-supported FLOP share per stage, with the predicted placement')}
<h2>Device-risk lint</h2>{lint_html}
{programs_html}
{speech}
</body></html>
"""
