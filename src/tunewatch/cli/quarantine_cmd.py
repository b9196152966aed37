"""``tunewatch quarantine``: list, show, export, replay, count and rekey rejected events kept in the quarantine.

A thin shell over :class:`tunewatch.quarantine.QuarantineStore`, which audits its own operations (replay, purge,
export, rekey, reveal). Tables never show personal data (``user_id``, ``ip_addr``) unless ``--reveal`` is given,
masked by :mod:`tunewatch.quarantine.masking` exactly as the HTTP API does; raw lines are shown escaped (control
and bidi characters as ``\\uXXXX``), never interpreted as markup. Raw bytes encrypted at rest are decrypted
with the data keyring of the environment (``TUNEWATCH_DATA_KEY`` / ``TUNEWATCH_DATA_KEY_FILE``); ``stats`` says
whether they are.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING, Annotated, NoReturn

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from tunewatch.cli.paths import is_stdio, open_output, output_path

if TYPE_CHECKING:
    from tunewatch.quarantine.export import ExportFormat
    from tunewatch.quarantine.replay import ReplayReport
    from tunewatch.quarantine.store import QuarantinedEvent, QuarantineStore, State

app = typer.Typer(
    name="quarantine",
    help="Inspect, export and re-ingest rejected events kept in the quarantine store.",
    no_args_is_help=True,
)

DbOption = Annotated[
    Path | None,
    typer.Option(
        "--db",
        help="Quarantine database (default: $TUNEWATCH_DB, else $TUNEWATCH_HOME/tunewatch.db, the one `serve` "
        "keeps rejected events in).",
        show_default=False,
    ),
]
ReasonOption = Annotated[
    str | None, typer.Option("--reason", "-r", help="A reason code ('market: unknown_country') or a field ('market').")
]
SourceOption = Annotated[str | None, typer.Option("--source", "-s", help="Only events from this source.")]
SinceOption = Annotated[
    str | None, typer.Option("--since", help="Quarantined since: a duration back from now (2h, 7d) or RFC 3339 time.")
]
StateOption = Annotated[str, typer.Option("--state", help="pending (default), replayed or all.")]
RevealOption = Annotated[
    bool, typer.Option("--reveal", help="Show personal data (user_id, ip_addr) as received. For admins.")
]

# ----------------------------------------------------------------------------------------------- commands


@app.command("list")
def list_(
    reason: ReasonOption = None,
    source: SourceOption = None,
    since: SinceOption = None,
    state: StateOption = "pending",
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, help="At most this many entries.")] = 50,
    reveal: RevealOption = False,
    db: DbOption = None,
) -> None:
    """List quarantined events, oldest first (personal fields masked unless --reveal)."""
    from tunewatch.quarantine.export import format_epoch  # lazy: `tunewatch --help` stays fast
    from tunewatch.quarantine.masking import display_raw, safe_text

    with _errors(), _open(db) as store:
        when = _since(since)
        st = _state(state)
        entries = store.list(reason=reason, source=source, since=when, state=st, limit=limit)
        total = store.count(reason=reason, source=source, since=when, state=st)
        if reveal:
            store.revealed(entries, actor=None, via="cli")
    table = Table(title=f"quarantine: {len(entries)} of {total} {st} entries", title_justify="left")
    table.add_column("id", justify="right", no_wrap=True)
    table.add_column("received (UTC)", no_wrap=True)
    table.add_column("source:line", overflow="fold")
    table.add_column("event_id", overflow="fold", min_width=6)
    table.add_column("reasons", overflow="fold", min_width=10)
    if st == "all":
        table.add_column("state", no_wrap=True)
    table.add_column("raw (start)", overflow="fold", min_width=8)
    for e in entries:
        cells: list[str | Text] = [str(e.id), format_epoch(e.received_at)[:16].replace("T", " "), Text(_where(e)),
                                   Text(safe_text(e.event_id or "")), Text("\n".join(e.reasons))]  # fmt: skip
        if st == "all":
            cells.append(e.state)
        cells.append(Text(_preview(display_raw(e.raw, reveal=reveal))))
        table.add_row(*cells)
    _out().print(table)


@app.command("show")
def show(
    entry_id: Annotated[int, typer.Argument(help="Quarantine id (from `list`).", metavar="ID")],
    reveal: RevealOption = False,
    db: DbOption = None,
) -> None:
    """Show one quarantined event: metadata, every reason with its meaning, and the raw line."""
    from tunewatch.quarantine.export import format_epoch  # lazy: `tunewatch --help` stays fast
    from tunewatch.quarantine.masking import display_raw, safe_text
    from tunewatch.validate.reasons import describe

    with _errors(), _open(db) as store:
        entry = store.get(entry_id)
        if entry is not None and reveal:
            store.revealed([entry], actor=None, via="cli")
    if entry is None:
        _fail(f"no quarantined event with id {entry_id}")
    table = Table(show_header=False, title=f"quarantined event {entry.id}", title_justify="left")
    table.add_column("field", style="bold", no_wrap=True)
    table.add_column("value", overflow="fold")
    table.add_row("received", format_epoch(entry.received_at))
    table.add_row("source", Text(_where(entry)))
    table.add_row("event_id", Text(safe_text(entry.event_id or "—")))
    table.add_row("state", entry.state + (f" ({entry.outcome})" if entry.outcome else ""))
    table.add_row("replay attempts", str(entry.attempts))
    for i, r in enumerate(entry.reasons):
        table.add_row("reasons" if i == 0 else "", Text(f"{r}  ({describe(r)})"))
    table.add_row("raw bytes", str(len(entry.raw)))
    table.add_row("raw", Text(display_raw(entry.raw, reveal=reveal) or "(not kept)"))
    _out().print(table)


@app.command("export")
def export(
    out: Annotated[Path, typer.Argument(help="Output file, or - for standard output.")],
    fmt: Annotated[str, typer.Option("--format", "-f", help="ndjson (raw line + metadata) or raw (lines only).")] = (
        "ndjson"
    ),
    reason: ReasonOption = None,
    source: SourceOption = None,
    since: SinceOption = None,
    state: StateOption = "pending",
    db: DbOption = None,
) -> None:
    """Export quarantined events, e.g. to fix them and `replay --from-file` the result.

    The file holds the raw events as received, personal data included; it is created readable by you only.
    """
    if fmt not in ("ndjson", "raw"):
        raise typer.BadParameter("use ndjson or raw", param_hint="--format")
    kind: ExportFormat = "raw" if fmt == "raw" else "ndjson"
    with _errors(), _open(db) as store:
        target: Path | IO[bytes] = sys.stdout.buffer if is_stdio(out) else output_path(out, "export file")
        n = store.export(target, kind, reason=reason, source=source, since=_since(since), state=_state(state),
                         via="cli")  # fmt: skip
    if str(out) != "-":
        Console(stderr=True, highlight=False).print(f"exported {n} entries to {out}", markup=False)


@app.command("replay")
def replay(
    ids: Annotated[list[int] | None, typer.Argument(help="Quarantine ids (default: every pending entry).")] = None,
    reason: ReasonOption = None,
    source: SourceOption = None,
    since: SinceOption = None,
    from_file: Annotated[
        Path | None, typer.Option("--from-file", help="Replay this file instead (an export you fixed, or raw lines).")
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            "-o",
            help="Write accepted events here (NDJSON) and mark them replayed. "
            "Without it, replay only checks: nothing is changed.",
        ),
    ] = None,
    db: DbOption = None,
) -> None:
    """Re-validate quarantined events (validation and duplicate detection); print accepted/rejected/duplicates.

    Fix workflow: `export bad.ndjson`, edit the raw lines, `replay --from-file bad.ndjson --out fixed.ndjson`,
    then ingest fixed.ndjson (e.g. `tunewatch replay fixed.ndjson`). Events rejected again stay quarantined
    with their new reasons. Duplicates are detected among the events of this run; ingesting the --out file
    detects repeats of events the pipeline has already seen.
    """
    from tunewatch.validate.validator import EnterpriseDataValidator

    if from_file is not None and (ids or reason or source or since):
        raise typer.BadParameter("--from-file replays the file's lines; do not combine it with ids or filters")
    validator = EnterpriseDataValidator()
    with _errors(), _open(db) as store, _writer(out) as sink:
        if from_file is not None:
            report = store.replay_file(from_file, validator, accepted_out=sink, dry_run=sink is None, via="cli")
        else:
            if ids:
                pending = {e.id for e in store.list(ids=ids, state="pending", limit=None)}
                if ignored := sorted(set(ids) - pending):
                    _note(f"not pending (unknown or already replayed), ignored: {', '.join(map(str, ignored))}")
            report = store.replay(
                validator,
                ids=ids or None,
                reason=reason,
                source=source,
                since=_since(since),
                accepted_out=sink,
                dry_run=sink is None,
                via="cli",
            )
    _print_replay(report, out)


@app.command("stats")
def stats(
    source: SourceOption = None,
    since: SinceOption = None,
    state: StateOption = "pending",
    db: DbOption = None,
) -> None:
    """Counts by reason (with their meaning) and by source."""
    from tunewatch.quarantine.export import format_epoch  # lazy: `tunewatch --help` stays fast
    from tunewatch.quarantine.masking import safe_text
    from tunewatch.validate.reasons import describe

    with _errors(), _open(db) as store:
        when, st = _since(since), _state(state)
        total = store.count(source=source, since=when, state=st)
        reasons = store.count_by_reason(source=source, since=when, state=st)
        sources = store.count_by_source(since=when, state=st) if source is None else {source: total}
        span = store.time_range(state=st)
        pending, replayed = store.count(state="pending"), store.count(state="replayed")
        encryption = _encryption_status(store.encrypting_kid, store.count_by_key())
    console = _out()
    console.print(f"{pending} pending, {replayed} replayed", markup=False)
    console.print(encryption, markup=False)
    if span:
        console.print(f"{st} entries quarantined {format_epoch(span[0])} … {format_epoch(span[1])}", markup=False)
    table = Table(title=f"{total} {st} entries by reason", title_justify="left")
    for col, justify in (("reason", "left"), ("events", "right"), ("share", "right"), ("meaning", "left")):
        table.add_column(col, justify=justify, overflow="fold")  # type: ignore[arg-type]
    for r, n in reasons.items():
        table.add_row(Text(r), str(n), f"{n / total:.1%}" if total else "-", Text(describe(r)))
    console.print(table)
    by_source = Table(title="by source", title_justify="left")
    by_source.add_column("source", overflow="fold")
    by_source.add_column("events", justify="right")
    for s, n in sources.items():
        by_source.add_row(Text(safe_text(s)), str(n))
    console.print(by_source)


@app.command("purge")
def purge(
    older_than: Annotated[str, typer.Option("--older-than", help="Delete entries quarantined longer ago, e.g. 30d.")],
    replayed_only: Annotated[bool, typer.Option("--replayed-only", help="Only entries already replayed.")] = False,
    db: DbOption = None,
) -> None:
    """Delete old entries (all, or only replayed ones)."""
    cutoff = _since(older_than) or 0.0
    with _errors(), _open(db) as store:
        n = store.purge(cutoff, replayed_only=replayed_only, via="cli")
    _out().print(f"purged {n} entries", markup=False)


@app.command("rekey")
def rekey(db: DbOption = None) -> None:
    """Encrypt plaintext entries and re-encrypt older keys' entries under the active data key.

    Needs the data keyring (TUNEWATCH_DATA_KEY or TUNEWATCH_DATA_KEY_FILE) holding the active key first and every
    key that sealed an entry. Run it after configuring a key for the first time, or after a rotation before
    removing the old key.
    """
    with _errors(), _open(db) as store:
        report = store.rekey(via="cli")
    _out().print(
        f"all entries sealed with key id {report.kid}: {report.encrypted} encrypted, "
        f"{report.reencrypted} re-encrypted, {report.unchanged} already current",
        markup=False,
    )


# ----------------------------------------------------------------------------------------------- display


def _encryption_status(active: str | None, by_key: dict[str | None, int]) -> str:
    """One line saying whether raw bytes are encrypted at rest, and how the stored entries are."""
    plain = by_key.get(None, 0)
    sealed = ", ".join(f"{n} under key id {kid}" for kid, n in by_key.items() if kid is not None)
    stored = "; stored: " + ", ".join(filter(None, [sealed, f"{plain} plaintext" if plain else ""])) if by_key else ""
    if active is None:
        return (
            "raw bytes NOT encrypted at rest: no data key configured "
            f"(set TUNEWATCH_DATA_KEY or TUNEWATCH_DATA_KEY_FILE){stored}"
        )
    behind = any(kid != active for kid in by_key)
    hint = " (`tunewatch quarantine rekey` seals them all with the active key)" if behind else ""
    return f"raw bytes encrypted at rest (AES-256-GCM), active key id {active}{stored}{hint}"


def _preview(text: str, width: int = 40) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def _where(entry: QuarantinedEvent) -> str:
    from tunewatch.quarantine.masking import safe_text

    return safe_text(entry.source) + (f":{entry.line_no}" if entry.line_no is not None else "")


def _print_replay(report: ReplayReport, out: Path | None) -> None:
    console = _out()
    table = Table(title="replay" + ("" if out else " (check only: nothing changed)"), title_justify="left")
    for col in ("received", "accepted", "rejected", "duplicates", "skipped"):
        table.add_column(col, justify="right")
    table.add_row(
        *(str(v) for v in (report.received, report.accepted, report.rejected, report.duplicates, report.skipped))
    )
    console.print(table)
    if report.reasons:
        top = ", ".join(f"{r} ×{n}" for r, n in report.reasons.most_common(5))
        console.print(Text(f"rejected again: {top}"))
    if out is not None:
        console.print(
            f"marked replayed: {len(report.replayed_ids)}; still quarantined: {len(report.rejected_ids)}"
            + (f"; newly quarantined: {len(report.new_ids)}" if report.new_ids else "")
            + f"; accepted events written to {out}",
            markup=False,
        )
    else:
        console.print("check only: pass --out FILE to write accepted events and mark them replayed", markup=False)


# ----------------------------------------------------------------------------------------------- plumbing


@contextlib.contextmanager
def _open(db: Path | None) -> Iterator[QuarantineStore]:
    from tunewatch.home import default_db
    from tunewatch.quarantine.store import QuarantineStore
    from tunewatch.security.audit import record_admin_action

    path = db or default_db()

    def audit(actor: str, action: str, target: str, **details: object) -> None:
        record_admin_action(path, action, target, **details)  # the actor: the operating-system user

    # `stats` tells about encryption
    store = QuarantineStore(path, create=False, announce=False, audit=audit)
    try:
        yield store
    finally:
        store.close()


@contextlib.contextmanager
def _writer(path: Path | None) -> Iterator[IO[bytes] | None]:
    if path is None:
        yield None
        return
    with _errors(), open_output(output_path(path, "output file")) as fh:
        yield fh


@contextlib.contextmanager
def _errors() -> Iterator[None]:
    from tunewatch.cli.feedback import user_errors

    with user_errors():
        yield


def _fail(message: str) -> NoReturn:
    from tunewatch.cli.feedback import fail

    fail(message)


def _note(message: str) -> None:
    Console(stderr=True, highlight=False).print(f"note: {message}", markup=False)


def _out() -> Console:
    return Console(highlight=False, soft_wrap=False)


def _state(text: str) -> State:
    if text not in ("pending", "replayed", "all"):
        raise typer.BadParameter("use pending, replayed or all", param_hint="--state")
    return text  # type: ignore[return-value]


def _since(text: str | None) -> float | None:
    """Epoch seconds of ``--since``: a duration back from now (``2h``) or an RFC 3339 time."""
    if text is None:
        return None
    from tunewatch.notify.config import parse_duration_ms

    try:
        return datetime.now(UTC).timestamp() - parse_duration_ms(text) / 1000
    except ValueError:
        pass
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise typer.BadParameter(f"{text!r} is neither a duration (2h, 7d) nor an RFC 3339 time") from None
    return (value if value.tzinfo else value.replace(tzinfo=UTC)).timestamp()
