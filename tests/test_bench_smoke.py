"""Keeps the benchmark importable and its pure helpers right; the bench itself is not run here."""

from __future__ import annotations

import pytest

from bench import bench
from bench.redis_proxy import RespRequestParser
from bench.stats import percentile, summarize


def test_the_bench_module_imports_and_names_the_bots_scripts() -> None:
    assert set(bench.SCRIPTS.values()) == {"tick", "schedule", "cancel", "claim", "confirm"}


def test_percentile_interpolates_between_closest_ranks() -> None:
    values = [15.0, 1.0, 3.0, 7.0]  # sorted: 1, 3, 7, 15
    assert percentile(values, 0) == 1.0
    assert percentile(values, 50) == 5.0
    assert percentile(values, 100) == 15.0
    assert percentile(list(range(1, 101)), 99) == pytest.approx(99.01)
    with pytest.raises(ValueError):
        percentile([], 50)


def test_summary_of_latencies() -> None:
    summary = summarize([10.0, 20.0, 30.0, 40.0])
    assert (summary.count, summary.p50, summary.max, summary.mean) == (4, 25.0, 40.0, 25.0)


def test_the_proxy_parser_reads_pipelined_commands_split_across_reads() -> None:
    parser = RespRequestParser()
    wire = b"*1\r\n$5\r\nMULTI\r\n*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$5\r\nhello\r\n*1\r\n$4\r\nEXEC\r\n"
    first = parser.feed(wire[:25])
    rest = parser.feed(wire[25:])
    assert first + rest == [("MULTI",), ("SET", "k", "hello"), ("EXEC",)]
