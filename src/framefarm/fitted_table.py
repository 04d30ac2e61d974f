"""A table that fits the terminal it is drawn on: fewer columns when narrow, never a cut number.

Rich squeezes a table that is too wide by cutting cells ("$0.0013…", "30/…"). A ``FittedTable`` is laid
out when drawn, at the width it is given: it drops its least important columns until the rest fit on one
line per row, and shortens only the cells meant to shrink (ids in the middle, errors at the end).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from rich.console import Console, ConsoleOptions, RenderResult
from rich.table import Table
from rich.text import Text

ELLIPSIS = "…"
TABLE_GAP, TABLE_EDGES = 3, 4  # rich's default box: " │ " between columns, "│ " and " │" at the sides


def middle(text: str, width: int) -> str:
    """``text`` shortened in the middle to ``width`` characters: ``job-abc…xyz``."""
    if len(text) <= width:
        return text
    head = (width - 1) // 2
    return text[:head] + ELLIPSIS + text[len(text) - (width - 1 - head):]


def end(text: str, width: int) -> str:
    """``text`` cut at the end to ``width`` characters."""
    return text if len(text) <= width else text[:width - 1] + ELLIPSIS


@dataclass(frozen=True)
class Column:
    """``rank``: the lower, the longer the column stays on a narrow terminal. ``shrink``: how a cell of
    this column gets shorter (None: never), down to ``least`` characters."""

    name: str
    rank: int
    justify: str = "right"
    shrink: Callable[[str, int], str] | None = None
    least: int = 0


class FittedTable:
    """Rows of cells (rich markup, except in shrinking columns: plain text), drawn to fit the width."""

    def __init__(self, columns: Sequence[Column], rows: Sequence[Sequence[str] | None], title: str | None = None
                 ) -> None:
        """A ``None`` among the rows draws a rule between the rows before and after it."""
        self.columns, self.title = list(columns), title
        self.rows = [None if row is None else list(row) for row in rows]
        cells = [row for row in self.rows if row is not None]
        self._natural = [max([len(column.name)] + [self._cell(i, row[i]).cell_len for row in cells])
                         for i, column in enumerate(self.columns)]

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        yield self.table(options.max_width)

    def table(self, width: int) -> Table:
        widths = self._widths(width)
        table = Table(title=self.title)
        for i in widths:
            column = self.columns[i]
            table.add_column(column.name, no_wrap=True, justify=column.justify,  # type: ignore[arg-type]
                             min_width=widths[i])
        for row in self.rows:
            if row is None:
                table.add_section()
            else:
                table.add_row(*(self._cell(i, row[i], widths[i]) for i in widths))
        return table

    def _widths(self, width: int) -> dict[int, int]:
        """Each kept column's width, by index in display order: the least needed, then the rest of
        ``width`` to the shrinking columns, up to their natural width."""
        least = [self._least(i) for i in range(len(self.columns))]
        kept = keep([column.rank for column in self.columns], least, width, gap=TABLE_GAP, edges=TABLE_EDGES)
        spare = width - drawn([least[i] for i in kept], gap=TABLE_GAP, edges=TABLE_EDGES)
        widths = {}
        for i in kept:
            widths[i] = least[i] + max(0, min(spare, self._natural[i] - least[i]))
            spare -= widths[i] - least[i]
        return widths

    def _least(self, i: int) -> int:
        column = self.columns[i]
        if column.shrink is None:
            return self._natural[i]
        return min(self._natural[i], max(len(column.name), column.least))

    def _cell(self, i: int, cell: str, width: int | None = None) -> Text:
        shrink = self.columns[i].shrink
        if shrink is None:
            return Text.from_markup(cell)
        return Text(cell if width is None else shrink(cell, width))


def keep(ranks: Sequence[int], widths: Sequence[int], room: int, *, gap: int, edges: int) -> list[int]:
    """The indices (in display order) of the columns that fit ``room`` once the highest ranks are
    dropped; the first-ranked column always stays."""
    kept = sorted(range(len(ranks)), key=ranks.__getitem__)
    while len(kept) > 1 and drawn([widths[i] for i in kept], gap=gap, edges=edges) > room:
        kept.pop()
    return sorted(kept)


def drawn(widths: Sequence[int], *, gap: int, edges: int) -> int:
    """The width of a row of columns ``gap`` apart, with ``edges`` characters of frame on its two sides."""
    return sum(widths) + gap * max(0, len(widths) - 1) + edges


class Facts:
    """Lines of facts (rich markup) that wrap between facts, never inside one ("created 01-01 00:00:01")."""

    def __init__(self, lines: Sequence[Sequence[str]], separator: str = ", ") -> None:
        self.lines, self.separator = [[Text.from_markup(fact) for fact in line] for line in lines], separator

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        for facts in self.lines:
            line = Text()
            for fact in facts:
                if line and line.cell_len + len(self.separator) + fact.cell_len > options.max_width:
                    yield line
                    line = Text()
                line = line.append(self.separator) + fact if line else fact.copy()
            yield line
