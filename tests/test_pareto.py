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
