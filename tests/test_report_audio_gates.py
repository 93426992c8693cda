"""The report task's verify.audio gates: metrics in the report, a missed gate fails
the task after the report is written (synthetic speech; no build needed)."""
import json
from types import SimpleNamespace

import numpy as np
import pytest

from kokoro_build.report import variant

SUMMARY = {"name": "synthetic", "weights": {}, "passed": True, "artifacts": [],
           "stages": {"vocoder": {"kind": "vocoder", "artifacts": 1, "flop_share": 0.5,
                                  "unknown_flop_share": 0.0}}}


def _voiced(rate: int = 24000, seconds: float = 2.0) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    phase = 2 * np.pi * np.cumsum(140 + 30 * np.sin(2 * np.pi * t)) / rate
    tone = sum(np.sin(k * phase) / k for k in range(1, 16))
    return (0.1 * tone * np.clip(np.sin(2 * np.pi * 2 * t), 0, None)).astype(np.float32)


@pytest.fixture
def fake_variant(monkeypatch, tmp_path):
    reference = _voiced()
    degraded = reference + np.random.default_rng(0).normal(0, 0.02, reference.shape).astype(np.float32)
    def speech(audio, durations):
        return SimpleNamespace(audio=audio, sample_rate=24000, real_time_factor=1.0,
                               chunks=[SimpleNamespace(durations=np.array(durations))])
    monkeypatch.setattr(variant, "variant_summary", lambda root: SUMMARY)
    forced = reference + np.random.default_rng(1).normal(0, 0.002, reference.shape).astype(np.float32)
    monkeypatch.setattr(variant, "speak_both", lambda root, voice: (
        speech(reference, [3, 5, 2, 4]), speech(degraded, [3, 6, 2, 4]),  # one token a frame longer
        speech(forced, [3, 5, 2, 4])))  # on the reference's durations
    return tmp_path


def _report(root, gates):
    variant.write_variant_report(str(root), "v", str(root / "report.md"), str(root / "report.html"), gates)


def test_a_missed_gate_fails_after_the_report_is_written(fake_variant):
    with pytest.raises(variant.AudioGateError, match=r"missed verify.audio: pesq .* < 4"):
        _report(fake_variant, {"min_pesq": 4.0, "max_mcd_db": None, "min_mel_correlation": None})
    markdown = (fake_variant / "report.md").read_text()
    assert "PESQ" in markdown and "MCD" in markdown and "missed verify.audio: pesq" in markdown
    audio = json.loads((fake_variant / "report" / "summary.json").read_text())["audio"]
    assert audio["pesq"] < 4.0 and audio["mcd_db"] > 0 and audio["failures"]
    assert (fake_variant / "report.html").is_file() and (fake_variant / "report" / "sample.wav").is_file()


def test_a_gate_not_enforced_is_reported_and_warned_but_not_fatal(fake_variant, capsys):
    _report(fake_variant, {"min_pesq": 4.0, "max_mcd_db": None, "min_mel_correlation": None, "enforce": False})
    assert "missed verify.audio: pesq" in (fake_variant / "report.md").read_text()
    assert "(not enforced: verify.audio.enforce is false)" in (fake_variant / "report.md").read_text()
    assert "WARNING: the speech missed verify.audio: pesq" in capsys.readouterr().out
    audio = json.loads((fake_variant / "report" / "summary.json").read_text())["audio"]
    assert audio["failures"] and audio["enforced"] is False and "enforce" not in audio["gates"]


def test_met_gates_pass_and_say_so(fake_variant):
    _report(fake_variant, {"min_pesq": 1.0, "max_mcd_db": 50.0, "min_mel_correlation": 0.0})
    assert "every verify.audio gate met" in (fake_variant / "report.md").read_text()


def test_report_command_exits_2_when_the_speech_missed_a_gate(fake_variant, monkeypatch, capsys):
    with pytest.raises(variant.AudioGateError):
        _report(fake_variant, {"min_pesq": 4.0})
    from kokoro_build.cli import main
    from kokoro_build.report import summary
    monkeypatch.setattr(summary, "variant_summary", lambda root: SUMMARY)
    assert main(["report", fake_variant.name, "--artifacts", str(fake_variant.parent)]) == 2
    assert "missed verify.audio: pesq" in capsys.readouterr().out


def test_the_durations_are_judged_on_their_own_and_can_be_gated(fake_variant):
    gates = {"min_pesq": None, "max_mcd_db": None, "min_mel_correlation": None}
    _report(fake_variant, gates)
    audio = json.loads((fake_variant / "report" / "summary.json").read_text())["audio"]
    assert audio["durations"]["changed_share"] == 0.25 and audio["durations"]["length_change_frames"] == 1
    assert "durations: 25.0% of 4 tokens changed (largest 1 frames, length +1 of 14 frames)" in \
        (fake_variant / "report.md").read_text()
    with pytest.raises(variant.AudioGateError, match=r"duration_changed_share 0.250 > 0.02"):
        _report(fake_variant, {**gates, "max_duration_changed_share": 0.02})


def test_teacher_forced_and_dtw_metrics_are_reported_and_gate_by_name(fake_variant):
    gates = {"min_pesq": None, "max_mcd_db": None, "min_mel_correlation": None}
    _report(fake_variant, gates)
    audio = json.loads((fake_variant / "report" / "summary.json").read_text())["audio"]
    forced = audio["teacher_forced"]
    assert forced["pesq"] > audio["pesq"]  # the forced rendering carries less noise
    assert forced["f0_error_cents"] < 20 and forced["voicing_agreement"] > 0.8, forced
    assert audio["mcd_dtw_db"] > 0
    markdown = (fake_variant / "report.md").read_text()
    assert "MCD after DTW" in markdown and "(teacher-forced): PESQ" in markdown and "cents" in markdown
    with pytest.raises(variant.AudioGateError, match=r"teacher_forced_pesq .* < 4.6"):
        _report(fake_variant, {**gates, "min_teacher_forced_pesq": 4.6})
    with pytest.raises(variant.AudioGateError, match=r"f0_error_cents .* > 0.001"):
        _report(fake_variant, {**gates, "max_f0_error_cents": 0.001})
