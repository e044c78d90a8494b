"""``atomcollapse checkpoint show|diff``: what a checkpoint holds, and whether two are the same.

``diff`` is the reproducibility check for ``make pretrained``: a rebuild must give bit-identical
weights and provenance, while ``created_at``, ``code_version`` and wall-clock times may differ.
Exit codes of ``diff``: 0 identical, 1 different (a normal outcome), 2 unreadable input.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich.table import Column, Table
from rich.text import Text

from atomcollapse.artifacts import made_by
from atomcollapse.cli.common import console
from atomcollapse.errors import InputError
from atomcollapse.models.checkpoint import (
    VOLATILE_EXTRA,
    CheckpointDiff,
    diff_checkpoints,
    model_from_payload,
    read_checkpoint,
    state_dict_of,
    weights_sha256,
)

app = typer.Typer(help="Describe checkpoints and compare them bit for bit.", no_args_is_help=True)

#: ``extra`` entries shown by ``show`` on their own lines or not at all.
_SHOWN_APART = {"metrics", "training_data", "config", "history", "log", "seeds", *VOLATILE_EXTRA}
_MAX_ELEMENTS = 12
_MAX_CELL = 160


def _fmt(v: Any) -> str:
    if isinstance(v, bool) or v is None:
        return str(v)
    if isinstance(v, int):
        return f"{v:,}"
    if isinstance(v, float):
        return f"{v:.6g}"
    return str(v)


def _cell(v: Any) -> str:
    """A metadata value for a table cell: long lists abbreviated, long text cut."""
    if isinstance(v, (list, tuple)) and all(not isinstance(x, (dict, list, tuple)) for x in v):
        return _elements(list(v)) if len(v) > _MAX_ELEMENTS else " ".join(_fmt(x) for x in v)
    text = _fmt(v)
    return text if len(text) <= _MAX_CELL else text[: _MAX_CELL - 3] + "..."


def _args(d: dict[str, Any]) -> str:
    kind = d.get("type", "?")
    rest = ", ".join(f"{k}={v}" for k, v in sorted(d.items()) if k != "type")
    return f"{kind} ({rest})" if rest else str(kind)


def _elements(elements: list[Any]) -> str:
    symbols = [str(e) for e in elements]
    if len(symbols) > _MAX_ELEMENTS:
        symbols = [*symbols[: _MAX_ELEMENTS - 3], "...", *symbols[-3:]]
    return f"{len(elements)}: {' '.join(symbols)}"


def _parameters(path: Path, payload: dict[str, Any], state_dict: dict[str, Any]) -> str:
    n_all = sum(t.numel() for t in state_dict.values())
    try:
        model = model_from_payload(payload, source=path)
    except InputError as e:
        return f"{n_all:,} values in {len(state_dict)} tensors (model not buildable: {e.problem})"
    n_par = sum(p.numel() for p in model.parameters())
    return f"{n_par:,} parameters, {n_all - n_par:,} buffer values, {len(state_dict)} tensors"


@app.command("show")
def show(path: Path = typer.Argument(..., help="Checkpoint file.")) -> None:
    """Architecture, heads, parameters, elements, provenance, held-out metrics, weights hash."""
    payload = read_checkpoint(path)
    sd = state_dict_of(payload, path)
    extra = payload.get("extra") or {}
    made = made_by(payload)
    args = payload["model_args"] if isinstance(payload["model_args"], dict) else {}
    data = extra.get("training_data") or {}
    data_hash = payload.get("training_data_hash") or data.get("content_hash")

    t = Table("field", "value", title=str(path), title_justify="left", show_header=False)
    rows: list[tuple[str, str]] = [
        ("format", f"{payload['format']} v{payload['version']}"),
        ("backbone", _args(args.get("backbone") or {})),
        *((f"head {n}", _args(h)) for n, h in (args.get("heads") or {}).items()),
        ("parameters", _parameters(path, payload, sd)),
        ("elements", _elements(payload["elements"])),
        ("training data", f"{data.get('name', '?')}  sha256 {data_hash or '-'}"),
        ("code version", made.code_version or "-"),
        ("created at", made.created_at or "-"),
        *(
            (k, _fmt(v))
            for k, v in extra.items()
            if k not in _SHOWN_APART and not isinstance(v, (dict, list, tuple))
        ),
        ("weights sha256", weights_sha256(sd)),
    ]
    for k, v in rows:
        t.add_row(Text(k), Text(v))
    console.print(t)
    metrics = extra.get("metrics")
    if isinstance(metrics, dict) and metrics:
        m = Table("metric (unit in name)", "value", title="held-out metrics", title_justify="left")
        for k, v in metrics.items():
            m.add_row(Text(str(k)), Text(_fmt(v)))
        console.print(m)


def _diff_tables(d: CheckpointDiff) -> None:
    if d.tensors:
        t = Table("tensor", "differs in", "A", "B", "max |a-b|", "entries differing")
        t.title, t.title_justify = "weight differences", "left"
        for x in d.tensors:
            gap = "" if x.max_abs_diff is None else f"{x.max_abs_diff:.3g}"
            n = "" if x.n_differ is None else f"{x.n_differ:,}"
            t.add_row(*(Text(s) for s in (x.name, x.kind, x.a, x.b, gap, n)))
        console.print(t)
    if d.fields:
        t = Table(*(Column(c, overflow="fold") for c in ("field", "A", "B")))
        t.title, t.title_justify = "metadata differences", "left"
        for f in d.fields:
            t.add_row(Text(f.path), Text(_cell(f.a)), Text(_cell(f.b)))
        console.print(t)


@app.command("diff")
def diff(
    a: Path = typer.Argument(..., help="First checkpoint (A)."),
    b: Path = typer.Argument(..., help="Second checkpoint (B)."),
) -> None:
    """Compare weights bit for bit and provenance; exit 0 identical, 1 different."""
    d = diff_checkpoints(a, b)
    console.print(Text(f"A: {a}\nB: {b}"))
    if d.same_weights:
        console.print(
            Text(f"identical weights ({d.n_tensors_a} tensors, sha256 {d.weights_sha256_a})")
        )
    else:
        only_b = sum(x.kind == "only in B" for x in d.tensors)
        console.print(
            Text(
                f"weights differ: {len(d.tensors)} of {d.n_tensors_a + only_b} tensors "
                f"(sha256 A {d.weights_sha256_a[:16]}, B {d.weights_sha256_b[:16]})"
            ),
            style="bold",
        )
    _diff_tables(d)
    for f in d.info:
        console.print(
            Text(f"info (not compared): {f.path}: {_cell(f.a)} vs {_cell(f.b)}"), style="dim"
        )
    if d.identical:
        console.print(Text("checkpoints match"), style="bold green")
        return
    n = len(d.fields)
    console.print(
        Text(f"checkpoints differ: {len(d.tensors)} tensor(s), {n} metadata field(s)"),
        style="bold red",
    )
    raise SystemExit(1)  # typer.Exit codes are lost under standalone_mode=False
