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
    table = Table(
        title=Text(title) if title is not None else None,
        caption=Text("; ".join(notes)) if notes else None,
        title_justify="left",
        caption_justify="left",
    )
    for i in shown:
        col = columns[i]
        table.add_column(
            Text(col.header),
            justify=col.justify,
            min_width=col.narrowest,
            no_wrap=col.no_wrap,
            overflow="ellipsis" if col.no_wrap else "fold",
        )
    for row in rows:
        table.add_row(*(row[i] if isinstance(row[i], Text) else Text(str(row[i])) for i in shown))
    return table
