"""The Pareto table and plot from synthetic points."""
from kokoro_build.report.pareto import plot, table

POINTS = [
    {"name": "w8", "kind": "recipe", "mb": 82.0, "teacher_forced_pesq": 4.3, "duration_changed_share": 0.01},
    {"name": "tuned-60", "kind": "tuned", "mb": 59.5, "bits_per_weight": 5.8, "teacher_forced_pesq": 4.1,
     "duration_changed_share": 0.0},
    {"name": "unmeasured", "kind": "recipe", "mb": 40.0},
]


def test_table_sorts_by_size_and_marks_what_was_not_measured():
    rows = table(POINTS).splitlines()
    assert rows[0].startswith("| variant | kind | MB |")
    assert [r.split("|")[1].strip() for r in rows[2:]] == ["unmeasured", "tuned-60", "w8"]
    assert "| – |" in rows[2] and "5.80" in rows[3] and "1.0%" in rows[4]


def test_plot_is_a_png():
    assert plot(POINTS, "tuned-60")[:4] == b"\x89PNG"


def test_word_error_rate_gets_a_column_and_a_second_panel():
    from PIL import Image
    import io
    heard = [dict(p, wer_increase=-0.024) if p["name"] == "tuned-60" else p for p in POINTS]
    assert "WER increase" in table(heard).splitlines()[0] and "-2.4%" in table(heard)
    one = Image.open(io.BytesIO(plot(POINTS, "tuned-60")))
    two = Image.open(io.BytesIO(plot(heard, "tuned-60")))
    assert two.size[0] == 2 * one.size[0] and two.size[1] == one.size[1]


def test_speech_columns_read_the_transcription_when_there_is_one():
    from kokoro_build.report.pareto import speech_columns
    assert speech_columns({})["wer_increase"] is None
    assert speech_columns({"intelligibility": {"wer": 0.064, "wer_increase": -0.024}})["wer_increase"] == -0.024
