"""Tables that stay readable in any terminal width.

Rich shrinks a table to the terminal by cutting words (``Playb… anoma… preci…``). Here every column has the
narrowest width at which it is still readable; when the terminal cannot fit them all, the least important
columns are left out (and the caption says which), and long values wrap (fold) instead of being cut. A wider
terminal gets the whole table at full width. Cell text is always plain text, never Rich markup.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from rich.console import Console
from rich.table import Table
from rich.text import Text

_COLUMN_OVERHEAD = 3  # one space of padding on each side and one border character
_TABLE_OVERHEAD = 1  # the closing border


@dataclass(frozen=True, slots=True)
class Column:
    """One column: its header, narrowest readable width, and how early it is left out of a narrow table.

    ``drop`` 0 means never left out; among the others the highest is left out first.
    """

    header: str
    min_width: int | None = None
    drop: int = 0
    justify: Literal["left", "right"] = "left"
    no_wrap: bool = False

    @property
    def narrowest(self) -> int:
        """Narrowest readable width (the header's length unless given)."""
        return self.min_width if self.min_width is not None else max(4, len(self.header))


def visible_columns(columns: Sequence[Column], width: int) -> list[int]:
    """Indexes of the columns to show in ``width`` characters (least important ones left out first).

    >>> cols = [Column("rule", 20), Column("kind", drop=2), Column("metric", 15), Column("precision", drop=1)]
    >>> visible_columns(cols, 120), visible_columns(cols, 50), visible_columns(cols, 10)
    ([0, 1, 2, 3], [0, 2], [0, 2])
    """
    shown = list(range(len(columns)))

    def needed() -> int:
        return _TABLE_OVERHEAD + sum(columns[i].narrowest + _COLUMN_OVERHEAD for i in shown)

    while needed() > width:
        droppable = [i for i in shown if columns[i].drop > 0]
        if not droppable:
            break
        shown.remove(max(droppable, key=lambda i: (columns[i].drop, i)))
    return shown


def column_widths(naturals: Sequence[int], floors: Sequence[int], available: int) -> list[int] | None:
    """Widths that fit ``available`` characters, or ``None`` when the natural widths already fit.

    Each column gets at least ``min(natural, floor)``; the space left goes to the columns that want more, in
    proportion to what they miss. Rich alone cannot do this: it shrinks columns below their minimum width and
    then re-inflates them, overflowing the terminal.

    >>> column_widths([10, 30, 20], [4, 8, 20], 100) is None
    True
    >>> column_widths([17, 21, 20, 20], [12, 12, 20, 20], 67)
    [13, 14, 20, 20]
    """
    if sum(naturals) <= available:
        return None
    widths = [min(n, f) for n, f in zip(naturals, floors, strict=True)]
    spare = available - sum(widths)
    wants = [n - w for n, w in zip(naturals, widths, strict=True)]
    total_want = sum(wants)
    if spare > 0 and total_want > 0:
        extra = [spare * want // total_want for want in wants]
        widths = [w + e for w, e in zip(widths, extra, strict=True)]
        leftover = spare - sum(extra)
        for i in sorted(range(len(wants)), key=lambda i: -wants[i])[:leftover]:
            widths[i] += 1
    return widths


def _text(value: str | Text) -> Text:
    return value if isinstance(value, Text) else Text(value)


def _natural(header: str, cells: Sequence[Text]) -> int:
    """Width a column needs to show every value on one line (a header may wrap between its words)."""
    longest = max((max((len(line) for line in c.plain.splitlines()), default=0) for c in cells), default=0)
    return max(max(len(word) for word in header.split() or [""]), longest)


def fitted_table(
    console: Console,
    columns: Sequence[Column],
    rows: Sequence[Sequence[str | Text]],
    *,
    title: str | None = None,
    caption: str | None = None,
) -> Table:
    """A table of ``rows`` that fits ``console``'s width, wrapping values and leaving out columns if it must."""
    shown = visible_columns(columns, console.width)
    hidden = [c.header for i, c in enumerate(columns) if i not in shown]
    notes = [caption] if caption else []
    if hidden:
        notes.append(f"narrow terminal: {', '.join(hidden)} not shown (a wider terminal or --output json shows all)")
    cells = [[_text(row[i]) for i in shown] for row in rows]
    naturals = [_natural(columns[i].header, [r[k] for r in cells]) for k, i in enumerate(shown)]
    available = console.width - _TABLE_OVERHEAD - _COLUMN_OVERHEAD * len(shown)
    widths = column_widths(naturals, [columns[i].narrowest for i in shown], available)
    table = Table(
        title=Text(title) if title is not None else None,
        caption=Text("; ".join(notes)) if notes else None,
        title_justify="left",
        caption_justify="left",
    )
    for k, i in enumerate(shown):
        col = columns[i]
        table.add_column(
            Text(col.header),
            justify=col.justify,
            width=widths[k] if widths is not None else None,
            no_wrap=col.no_wrap,
            overflow="ellipsis" if col.no_wrap else "fold",
        )
    for row_cells in cells:
        table.add_row(*row_cells)
    return table
