"""Printing results: a rich table per stage, so a terminal run ends with the numbers that matter."""

from __future__ import annotations

from typing import Mapping, Sequence

from rich.console import Console
from rich.measure import Measurement
from rich.markup import escape
from rich.table import Table

from pairwise_rl import distributed


SETUP_LAYOUTS = ("auto", "setups_as_columns", "setups_as_rows")
MAX_SETUP_COLUMNS = 5  # layout=auto: beyond this many setups (the start row included) each setup gets a row


def orient(by_setup: Mapping[str, Mapping[str, object]], layout: str = "auto") -> dict[str, dict[str, object]]:
    """A {setup: {metric: value}} table as printed: metrics as rows for a few setups (they read side by side),
    setups as rows for many (an 18-cell ablation as 19 narrow columns is unreadable)."""
    if setups_as_rows(len(by_setup), layout):
        return {name: dict(row) for name, row in by_setup.items()}
    return transpose(by_setup)


def setups_as_rows(setups: int, layout: str = "auto") -> bool:
    if layout not in SETUP_LAYOUTS:
        raise ValueError(f"table layout {layout!r}: expected one of {', '.join(SETUP_LAYOUTS)}")
    return layout == "setups_as_rows" or (layout == "auto" and setups > MAX_SETUP_COLUMNS)


def print_table(title: str, rows: Mapping[str, Mapping[str, float]], columns: Sequence[str] | None = None,
                console: Console | None = None) -> None:
    """rows: row name -> {column: value}. Missing cells print as '-'. Printed by rank 0 only."""
    if not distributed.is_main():
        return
    console = console or Console()
    columns = list(columns or dict.fromkeys(c for row in rows.values() for c in row))
    # Names are text, not rich markup: a sweep's label "traditional [ppo.kl.target=0.1]" would otherwise be read as a
    # style tag and vanish, leaving rows that print alike.
    table = Table(title=escape(title))
    table.add_column("")
    for column in columns:
        table.add_column(escape(column), justify="right")
    for name, row in rows.items():
        table.add_row(escape(name), *(_fmt(row.get(c)) for c in columns))
    # A log file or pipe gets the table at its natural width: rich would otherwise squeeze it into 80 columns and
    # cut every cell to '…'. A terminal keeps its own width (rich wraps cells there, it loses none).
    if not console.is_terminal:
        natural = Measurement.get(console, console.options.update_width(10_000), table).maximum
        console.width = max(console.width, natural)
    console.print(table)


def _fmt(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)


def print_gold_table(title: str, columns: Mapping[str, Mapping[str, float]], kinds: Sequence[str],
                     console: Console | None = None) -> None:
    """Kinds as rows, one column per (policy, decoding): columns maps a label to {kind: gold}."""
    print_table(title, {kind: {label: values.get(kind) for label, values in columns.items()}
                        for kind in [*kinds, "all"]}, columns=list(columns), console=console)


def gold_column(metrics: Mapping[str, float], mode: str = "sampled") -> dict[str, float]:
    """{kind: value} out of flat metrics like {'gold_sampled/sort': 0.8, ...}."""
    prefix = f"gold_{mode}/"
    return {key[len(prefix):]: value for key, value in metrics.items() if key.startswith(prefix)}


def transpose(table: Mapping[str, Mapping[str, float]]) -> dict[str, dict[str, float]]:
    """{row: {col: v}} -> {col: {row: v}}: metrics as rows reads better than many narrow columns."""
    out: dict[str, dict[str, float]] = {}
    for row, values in table.items():
        for column, value in values.items():
            out.setdefault(column, {})[row] = value
    return out
