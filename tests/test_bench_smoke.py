"""Keeps the benchmark importable and its pure helpers right; the bench itself is not run here."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest

from bench import bench, profile, replica_wait, report
from bench.redis_proxy import RespRequestParser, RoundTrip
from bench.stats import percentile, summarize
from bot import keys


def test_the_bench_module_imports_and_names_the_bots_scripts() -> None:
    named = set(bench.SCRIPTS.values())
    assert {"tick", "create", "claim_outbox", "schedule", "claim", "confirm"} <= named
    assert len(named) == len(bench.SCRIPTS)  # no two scripts share a name


def test_background_and_delivery_round_trips_are_told_apart() -> None:
    assert bench.command_label(("SET", keys.process_alive("ab12"), "1", "PX")) == bench.HEARTBEAT
    assert bench.command_label(("SET", keys.incident("INC-1"), "{}")) == "SET"
    assert bench.is_background(RoundTrip(1, 0.0, [("PING",), ("SET", keys.process_alive("x"), "1")]))
    locks = RoundTrip(1, 2.0, [("SET", keys.delivery_lock("INC-7"), "owner", "NX")])
    window = bench.Window(
        sent=0.0,
        acked=5.0,
        ended=9.0,
        status=200,
        round_trips=[RoundTrip(1, 1.0, [("GET", "k")]), locks],
        api_calls=[],
    )
    assert window.ack_point == 2.0  # the delivery loop locked the outbox before the ack was read
    assert [bench.round_trip_label(rt) for rt in window.before_ack] == ["GET"]


def test_the_report_sets_each_ack_p99_against_one_and_a_half_times_the_floor() -> None:
    level = {
        "concurrency": 8,
        "requests": 10,
        "messages": 4,
        "floor": {"p50": 10.0, "p95": 12.0, "p99": 20.0, "throughput": 500.0, "cpu_ms_per_request": 0.5},
        "bot": {
            "p50": 11.0, "p95": 20.0, "p99": 29.0, "throughput": 400.0, "cpu_ms_per_request": 2.0,
            "cpu_ms_per_request_by_process": {"bot": 1.0, "bot-deliver": 1.0}, "statuses": {"200": 10},
            "web_api_calls_per_request": 1.0,
            "ack_to_last_checklist": {"ms": None, "declares": 10, "incomplete": 10},
        },
    }  # fmt: skip
    verdicts: list[report.Verdict] = []
    lines = report.latency_section(
        {"start_to_serving_empty": {"floor": 0.4, "bot": 0.5}, "commands": [], "ticks": [level]},
        verdicts,
        {},
        "process",
    )
    [verdict] = verdicts
    assert verdict.met and "29.00 ms vs target 30.00 ms" in verdict.figure
    assert any("bot 1.00 + bot-deliver 1.00" in line for line in lines)


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


def test_the_replica_wait_bench_measures_both_modes_on_real_servers() -> None:
    try:
        figures = asyncio.run(replica_wait.measure(writes=5))
    except FileNotFoundError as exc:
        pytest.skip(str(exc))
    assert set(figures) == {"no wait", "WAIT 1 200"}
    for kinds in figures.values():
        assert {kind: s.count for kind, s in kinds.items()} == {"tick": 5, "update": 5}
        assert all(s.p50 > 0 for s in kinds.values())


def _executable(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\n")
    path.chmod(0o755)
    return path


def test_the_profiler_finds_py_spy_beside_python_when_path_has_none(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # `pip install -e '.[bench]'` puts py-spy in the venv's bin/, which need not be on PATH.
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    monkeypatch.setattr(sys, "executable", str(tmp_path / "venv" / "bin" / "python"))
    assert profile.find_py_spy(None) is None
    py_spy = _executable(tmp_path / "venv" / "bin" / "py-spy")
    assert profile.find_py_spy(None) == str(py_spy)
    on_path = _executable(tmp_path / "empty" / "py-spy")
    assert profile.find_py_spy(None) == str(on_path)
    assert profile.find_py_spy(str(py_spy)) == str(py_spy)


def test_the_profiler_without_py_spy_says_how_to_install_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(sys, "executable", str(tmp_path / "python"))
    with pytest.raises(SystemExit) as exited:
        profile.main(["--requests", "1"])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "pip install py-spy" in err
    with pytest.raises(SystemExit):
        profile.main(["--py-spy", str(tmp_path / "nowhere")])
    assert "no executable py-spy at" in capsys.readouterr().err
