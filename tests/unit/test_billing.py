"""Lambda prices and REPORT lines, checked against hand calculations."""

from __future__ import annotations

import pytest

from framefarm.billing import LAMBDA_PRICES, LambdaPrices, format_report, parse_report
from framefarm.errors import FramefarmError

REPORT = ("REPORT RequestId: 3604209a-e9a3-11e6-939a-754dd98c7be3\tDuration: 1234.56 ms\tBilled Duration: 1235 ms\t"
          "Memory Size: 2048 MB\tMax Memory Used: 312 MB\t")


def test_report_without_init_duration():
    report = parse_report("START RequestId: x\nEND RequestId: x\n" + REPORT + "\n")
    assert (report.request_id, report.duration_ms, report.billed_duration_ms, report.memory_mb,
            report.max_memory_used_mb, report.init_duration_ms) == (
        "3604209a-e9a3-11e6-939a-754dd98c7be3", 1234.56, 1235, 2048, 312, None)


def test_report_with_init_duration_and_trailing_fields():
    report = parse_report(REPORT + "Init Duration: 245.31 ms\t\nXRAY TraceId: 1-abc\n")
    assert report.init_duration_ms == 245.31 and report.duration_ms == 1234.56


def test_no_report_line():
    assert parse_report("START RequestId: x\nsome output\n") is None
    assert parse_report("") is None


def test_format_round_trips():
    line = format_report(request_id="r1", duration_ms=10.5, billed_duration_ms=11, memory_mb=128,
                         max_memory_used_mb=64, init_duration_ms=3.25)
    report = parse_report(line)
    assert (report.duration_ms, report.billed_duration_ms, report.memory_mb, report.init_duration_ms) == (10.5, 11, 128, 3.25)


def test_cost_against_a_hand_calculation():
    # 1,235 ms at 2,048 MB = 1.235 s x 2 GB = 2.47 GB-s
    # x86:   2.47 x 0.0000166667 = 0.000041166749 + 0.0000002 per request = 0.000041366749
    # arm64: 2.47 x 0.0000133334 = 0.000032933498 + 0.0000002              = 0.000033133498
    assert LAMBDA_PRICES.cost(billed_duration_ms=1235, memory_mb=2048, architecture="x86_64") == pytest.approx(
        0.000041366749, rel=1e-9)
    assert LAMBDA_PRICES.cost(billed_duration_ms=1235, memory_mb=2048, architecture="arm64") == pytest.approx(
        0.000033133498, rel=1e-9)


def test_prices_are_dated_and_overridable(tmp_path):
    assert LAMBDA_PRICES.taken and "pricing" in LAMBDA_PRICES.source
    table = tmp_path / "prices.json"
    table.write_text('{"taken": "2026-11-01", "gb_second": {"x86_64": 0.00002}, "request": 0}')
    custom = LambdaPrices.from_json(table)
    assert custom.taken == "2026-11-01"
    assert custom.cost(billed_duration_ms=1000, memory_mb=1024) == pytest.approx(0.00002)
    with pytest.raises(FramefarmError, match="no Lambda price for architecture 'arm64'"):
        custom.cost(billed_duration_ms=1, memory_mb=128, architecture="arm64")
