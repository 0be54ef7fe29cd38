"""Statistics shown as a table: a row per column, a sparkline of the histogram."""

from __future__ import annotations

from core.stats_table import sparkline, stats_rows


def test_sparkline_heights_follow_the_counts_and_empty_bins_stay_blank() -> None:
    assert sparkline([0, 1, 2, 4, 8]) == " ▁▂▄█"
    assert sparkline([3, 3]) == "██"
    assert sparkline([0, 0]) == "  "
    assert sparkline([]) == ""


def test_a_row_per_column_numeric_and_categorical() -> None:
    columns = {
        "age": {
            "type": "numeric",
            "count": 98,
            "missing": 2,
            "min": 18.0,
            "max": 90.0,
            "mean": 41.23456,
            "std": 12.5,
            "histogram": {"edges": [18.0, 54.0, 90.0], "counts": [80, 18]},
        },
        "city": {
            "type": "categorical",
            "count": 100,
            "missing": 0,
            "unique": 12,
            "top": [
                {"value": "Oslo", "count": 50, "frequency": 0.5},
                {"value": "Rome", "count": 25, "frequency": 0.25},
                {"value": "Lima", "count": 10, "frequency": 0.1},
                {"value": "Kyiv", "count": 5, "frequency": 0.05},
            ],
        },
        "empty": {"type": "numeric", "count": 0, "missing": 5},
    }
    assert stats_rows(columns) == [
        ["age", "numeric", "98", "2", "41.23", "12.5", "18 █▂ 90"],
        ["city", "categorical", "100", "0", "-", "-", "Oslo 50%, Rome 25%, Lima 10% (+9 more)"],
        ["empty", "numeric", "0", "5", "-", "-", "-"],
    ]
