"""The detection stage's per-metric arrays give the same rows as filtering its detection frame."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from tunewatch.alert.rules import load_rules
from tunewatch.detect.detections import DETECTION_SCHEMA, ROW_SCHEMA, SERIES_KEYS, Detections
from tunewatch.detect.stage import DetectionStage
from tunewatch.ingest.batch import RawBatch, conform
from tunewatch.process import MusicDataProcessor
from tunewatch.simulate import SimulationConfig, Simulator
from tunewatch.validate import EnterpriseDataValidator


@pytest.fixture(scope="module")
def found() -> Detections:
    config = SimulationConfig(minutes=40, events_per_minute=300, seed=5, warmup_minutes=10)
    validator, processor = EnterpriseDataValidator(), MusicDataProcessor()
    frames = [
        processor.process(validator.validate(RawBatch(frame=conform(block), source="t")), final=False).metrics
        for block in Simulator(config).blocks(5)
    ]
    validator.watermark.observe_end()
    metrics = pl.concat([*frames, processor.flush().metrics], how="diagonal_relaxed")
    return DetectionStage(load_rules().targets()).detect(metrics)


def _filtered(frame: pl.DataFrame, metric: str, dimsets: list[str]) -> pl.DataFrame:
    return frame.filter((pl.col("metric") == metric) & pl.col("dimset").is_in(dimsets))


def test_rows_are_the_frame_filtered_in_window_order(found: Detections) -> None:
    frame = found.frame()
    assert frame.schema == DETECTION_SCHEMA and frame.height > 1000
    for metric in ("plays", "failure_rate", "startup_ms_p95"):
        for dimsets in (["global"], ["market", "market,cdn"], ["cdn", "platform", "nothing"]):
            rows = found.rows(metric, dimsets)
            assert rows.schema == ROW_SCHEMA
            expected = _filtered(frame, metric, dimsets)
            assert rows.height == expected.height > 0 or dimsets == ["cdn", "platform", "nothing"]
            assert np.all(np.diff(rows.get_column("window_start").to_numpy()) >= 0)
            keys = found.keys[rows.get_column("key_id").to_numpy()]
            rebuilt = pl.concat([rows.drop("key_id"), keys], how="horizontal").select(expected.drop("metric").columns)
            assert rebuilt.equals(expected.drop("metric"), null_equal=True)


def test_points_of_one_window_with_their_keys(found: Detections) -> None:
    frame = found.frame()
    window = int(frame.get_column("window_start").unique().sort()[20])
    at = found.at("plays", window)
    expected = frame.filter((pl.col("metric") == "plays") & (pl.col("window_start") == window))
    assert at.height > 0 and at.equals(expected, null_equal=True)
    assert found.at("plays", window + 1).is_empty() and found.at("no_such_metric", window).is_empty()
    row = at.row(0, named=True)
    assert found.key(int(found.rows("plays", [row["dimset"]]).get_column("key_id")[0]))["dimset"] == row["dimset"]


def test_a_frame_gives_the_same_detections(found: Detections) -> None:
    frame = found.frame()
    again = Detections.of_frame(frame.reverse())  # any row order: each metric's rows are put in window order
    assert again.frame().equals(frame.reverse())
    np.testing.assert_array_equal(again.windows(), found.windows())
    for metric in ("plays", "skip_rate"):
        mine, theirs = found.rows(metric, ["global", "market"]), again.rows(metric, ["global", "market"])
        key_cols = list(SERIES_KEYS)
        assert (
            found.keys[mine.get_column("key_id").to_numpy()]
            .sort(key_cols, nulls_last=True)
            .equals(again.keys[theirs.get_column("key_id").to_numpy()].sort(key_cols, nulls_last=True), null_equal=True)
        )
        assert sorted(mine.get_column("value").to_list()) == sorted(theirs.get_column("value").to_list())


def test_missing_columns_read_as_null() -> None:
    frame = pl.DataFrame({"window_start": [0, 60_000], "metric": ["plays", "plays"], "dimset": ["global"] * 2,
                          "value": [3.0, 4.0]})  # fmt: skip
    rows = Detections.of_frame(frame).rows("plays", ["global"])
    assert rows.get_column("value").to_list() == [3.0, 4.0]
    assert rows.get_column("expected").null_count() == 2
