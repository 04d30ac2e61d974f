"""What a chunk cost: dated price tables and the arithmetic, plus Lambda's REPORT line.

Lambda bills ``Billed Duration`` times configured memory (GB = MB / 1024) times a price per GB-second that
depends on the architecture, plus a price per request. Prices below are the public on-demand,
first-tier figures for US East (N. Virginia), which most commercial regions share; a region whose
prices differ, a negotiated rate or a newer table is passed in as a ``LambdaPrices`` (or loaded with
``LambdaPrices.from_json``). Free tiers and savings plans are account-level and not modelled.

    >>> LAMBDA_PRICES.cost(billed_duration_ms=1000, memory_mb=1024, architecture="x86_64")
    1.68667e-05
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field, replace
from pathlib import Path

from framefarm.errors import FramefarmError

ARCHITECTURES = ("x86_64", "arm64")


@dataclass(frozen=True)
class LambdaPrices:
    """Per-GB-second and per-request prices in USD, and the date they were taken."""

    taken: str = "2025-01-15"
    source: str = "aws.amazon.com/lambda/pricing (US East, on-demand, first tier)"
    gb_second: dict[str, float] = field(default_factory=lambda: {"x86_64": 0.0000166667, "arm64": 0.0000133334})
    request: float = 0.20 / 1_000_000

    def cost(self, *, billed_duration_ms: int, memory_mb: int, architecture: str = "x86_64") -> float:
        """USD for one invocation."""
        try:
            rate = self.gb_second[architecture]
        except KeyError:
            raise FramefarmError(
                f"no Lambda price for architecture {architecture!r}; known: {', '.join(sorted(self.gb_second))}"
            ) from None
        gb_seconds = (billed_duration_ms / 1000.0) * (memory_mb / 1024.0)
        return round(gb_seconds * rate + self.request, 12)

    @classmethod
    def from_json(cls, path: str | Path) -> LambdaPrices:
        """A table from a JSON file with any of: taken, source, gb_second {arch: usd}, request."""
        data = json.loads(Path(path).read_text())
        base = cls()
        return replace(base, **{key: value for key, value in data.items() if key in base.__dataclass_fields__})


LAMBDA_PRICES = LambdaPrices()


@dataclass(frozen=True)
class LambdaReport:
    """The figures of a Lambda ``REPORT`` log line."""

    request_id: str | None
    duration_ms: float
    billed_duration_ms: int
    memory_mb: int
    max_memory_used_mb: int | None
    init_duration_ms: float | None


_REPORT_FIELDS = {
    "request_id": re.compile(r"RequestId:\s*([0-9A-Za-z-]+)"),
    "duration_ms": re.compile(r"(?<!Billed )(?<!Init )Duration:\s*([\d.]+)\s*ms"),
    "billed_duration_ms": re.compile(r"Billed Duration:\s*(\d+)\s*ms"),
    "memory_mb": re.compile(r"Memory Size:\s*(\d+)\s*MB"),
    "max_memory_used_mb": re.compile(r"Max Memory Used:\s*(\d+)\s*MB"),
    "init_duration_ms": re.compile(r"Init Duration:\s*([\d.]+)\s*ms"),
}


def parse_report(log_tail: str) -> LambdaReport | None:
    """The last REPORT line in a log tail, or None when there is none (the tail is only 4 KB)."""
    lines = [line for line in log_tail.splitlines() if line.startswith("REPORT ")]
    if not lines:
        return None
    line = lines[-1]
    found = {name: pattern.search(line) for name, pattern in _REPORT_FIELDS.items()}
    if found["billed_duration_ms"] is None or found["memory_mb"] is None or found["duration_ms"] is None:
        return None

    def number(name: str, kind: type) -> float | int | None:
        match = found[name]
        return kind(match.group(1)) if match else None

    return LambdaReport(
        request_id=found["request_id"].group(1) if found["request_id"] else None,
        duration_ms=float(number("duration_ms", float) or 0.0),
        billed_duration_ms=int(number("billed_duration_ms", int) or 0),
        memory_mb=int(number("memory_mb", int) or 0),
        max_memory_used_mb=number("max_memory_used_mb", int),  # type: ignore[arg-type]
        init_duration_ms=number("init_duration_ms", float),
    )


def format_report(*, request_id: str, duration_ms: float, billed_duration_ms: int, memory_mb: int,
                  max_memory_used_mb: int, init_duration_ms: float | None = None, status: str | None = None) -> str:
    """A REPORT line in Lambda's own format (devcloud writes these); ``status`` as in ``Status: timeout``."""
    line = (f"REPORT RequestId: {request_id}\tDuration: {duration_ms:.2f} ms\tBilled Duration: "
            f"{billed_duration_ms} ms\tMemory Size: {memory_mb} MB\tMax Memory Used: {max_memory_used_mb} MB\t")
    if init_duration_ms is not None:
        line += f"Init Duration: {init_duration_ms:.2f} ms\t"
    if status is not None:
        line += f"Status: {status}\t"
    return line


@dataclass(frozen=True)
class CloudRunPrices:
    """Cloud Run request-based billing (CPU allocated only during requests), Tier 1 regions, in USD."""

    taken: str = "2025-01-15"
    source: str = "cloud.google.com/run/pricing (Tier 1, CPU only allocated during request processing)"
    vcpu_second: float = 0.000024
    gib_second: float = 0.0000025
    request: float = 0.40 / 1_000_000
    granularity_ms: int = 100

    def billed_ms(self, request_ms: float) -> int:
        """Request time rounded up to the billing granularity (100 ms)."""
        return max(1, math.ceil(request_ms / self.granularity_ms)) * self.granularity_ms

    def cost(self, *, billed_duration_ms: int, vcpu: float, memory_gib: float) -> float:
        seconds = billed_duration_ms / 1000.0
        return round(seconds * (vcpu * self.vcpu_second + memory_gib * self.gib_second) + self.request, 12)


CLOUD_RUN_PRICES = CloudRunPrices()
