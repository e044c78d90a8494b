"""The one machine-readable result line that every benchmark script prints, and its parser.

A line is ``PERF `` followed by a JSON object::

    PERF {"benchmark": "neighbors", "metric": "molecules, pairs/s", "ours": 2.1e6,
          "reference_name": "ASE neighbor_list", "reference": 4.0e5, "ratio": 5.25,
          "unit": "pairs/s", "better": "higher"}

``ratio`` is always ours / reference; ``better`` says which direction of ``ours`` (and so of the
ratio) is good. A pure measurement has ``reference`` and ``ratio`` null. ``note`` (optional) says
why a reference is missing, e.g. ``"skipped: schnetpack not installed"``.
"""

from __future__ import annotations

import json
import math
from typing import Any, Literal

PREFIX = "PERF "
FIELDS = ("benchmark", "metric", "ours", "reference_name", "reference", "ratio", "unit", "better")


def _number(x: float | None) -> float | None:
    if x is None:
        return None
    x = float(x)
    return float(f"{x:.6g}") if math.isfinite(x) else None


def perf_record(
    benchmark: str,
    metric: str,
    ours: float | None,
    unit: str,
    better: Literal["higher", "lower"],
    reference_name: str | None = None,
    reference: float | None = None,
    note: str | None = None,
) -> dict[str, Any]:
    """One result as a dict in the PERF line's field order (ratio = ours / reference)."""
    if better not in ("higher", "lower"):
        raise ValueError(f"better must be 'higher' or 'lower', not {better!r}")
    ours_n, ref_n = _number(ours), _number(reference)
    ratio = _number(ours_n / ref_n) if ours_n is not None and ref_n else None
    rec: dict[str, Any] = {"benchmark": benchmark, "metric": metric, "ours": ours_n,
                           "reference_name": reference_name, "reference": ref_n, "ratio": ratio,
                           "unit": unit, "better": better}  # fmt: skip
    if note:
        rec["note"] = note
    return rec


def perf(
    benchmark: str,
    metric: str,
    ours: float | None,
    unit: str,
    better: Literal["higher", "lower"],
    reference_name: str | None = None,
    reference: float | None = None,
    note: str | None = None,
) -> dict[str, Any]:
    """Print one PERF line (flushed) and return its record."""
    rec = perf_record(benchmark, metric, ours, unit, better, reference_name, reference, note)
    print(PREFIX + json.dumps(rec), flush=True)
    return rec


def parse_perf_line(line: str) -> dict[str, Any] | None:
    """The record of a PERF line, or None for any other line (or a malformed one)."""
    if not line.startswith(PREFIX):
        return None
    try:
        rec = json.loads(line[len(PREFIX) :])
    except json.JSONDecodeError:
        return None
    if not isinstance(rec, dict) or any(k not in rec for k in FIELDS):
        return None
    return rec
