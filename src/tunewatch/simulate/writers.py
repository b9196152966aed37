"""Write a simulated stream to NDJSON, CSV or Parquet (optionally gzip/zstd compressed), block by block."""

from __future__ import annotations

import contextlib
import gzip
import io
import tempfile
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import IO, cast

import polars as pl
import zstandard

from tunewatch.errors import InputError
from tunewatch.ingest.readers import Format, compression_of, format_from_suffix
from tunewatch.simulate.generator import Simulator

_NEEDS_ESCAPE = r'["\\\x00-\x1f\x7f]'
Progress = Callable[[int, int], None]  # (minutes done, events written so far)


def _open_compressed(path: Path, stack: contextlib.ExitStack) -> IO[bytes]:
    raw = stack.enter_context(path.open("wb"))
    kind = compression_of(path)
    if kind == "gzip":
        return cast(IO[bytes], stack.enter_context(gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=3)))
    if kind == "zstd":
        return cast(IO[bytes], stack.enter_context(zstandard.ZstdCompressor(level=3).stream_writer(raw)))
    return raw


def ndjson_bytes(frame: pl.DataFrame, *, plain_text: bool = False) -> bytes:
    """NDJSON of ``frame`` with absent (null) fields left out, one object per line.

    Built column-wise with Polars string kernels: as fast as ``write_ndjson`` and 15 % smaller, since nulls
    are omitted. A block with text that would need JSON escaping is written by ``write_ndjson`` instead;
    ``plain_text=True`` skips that check for callers whose text is known to need none (the simulator's).
    """
    pieces: list[pl.Expr] = []
    for name, dtype in frame.schema.items():
        col = pl.col(name)
        if dtype == pl.String:
            if not plain_text and frame.get_column(name).str.contains(_NEEDS_ESCAPE).any():
                return frame.write_ndjson().encode()
            text = pl.concat_str(pl.lit('"'), col, pl.lit('"'))
        elif dtype == pl.Boolean:
            text = pl.when(col).then(pl.lit("true")).when(col.not_()).then(pl.lit("false"))
        else:
            text = col.cast(pl.String)
        pieces.append(pl.concat_str(pl.lit(f'"{name}":'), text))
    line = pl.concat_str(pl.lit("{"), pl.concat_str(pieces, separator=",", ignore_nulls=True), pl.lit("}"))
    buf = io.BytesIO()
    frame.select(line).write_csv(buf, include_header=False, quote_style="never")
    return buf.getvalue()


def write_stream(
    simulator: Simulator,
    path: Path,
    *,
    fmt: Format | None = None,
    minutes_per_block: int = 30,
    progress: Progress | None = None,
) -> int:
    """Write the simulator's whole stream to ``path``; return the number of events written."""
    fmt = fmt or format_from_suffix(path)
    if fmt is None:
        raise InputError(f"{path}: unknown output format (use .ndjson, .jsonl, .csv or .parquet, optionally .gz/.zst)")
    if fmt == "parquet" and compression_of(path):
        raise InputError(f"{path}: Parquet is compressed internally; drop the .gz/.zst suffix")
    written = 0
    done = 0
    with contextlib.ExitStack() as stack:
        if fmt == "parquet":
            tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="tw-sim-")))
            parts: list[Path] = []
        else:
            out = _open_compressed(path, stack)

        def write(i: int, block: pl.DataFrame) -> None:
            if fmt == "ndjson":
                out.write(ndjson_bytes(block, plain_text=simulator.plain_text))
            elif fmt == "csv":
                block.write_csv(out, include_header=(i == 0))
            else:
                part = tmp / f"{i:06d}.arrow"
                block.write_ipc(part)
                parts.append(part)

        # serialise and write block i in a second thread while block i + 1 is generated (both release the GIL)
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="tw-sim-writer") as pool:
            pending: Future[None] | None = None
            for i, block in enumerate(simulator.blocks(minutes_per_block)):
                if pending is not None:
                    pending.result()
                pending = pool.submit(write, i, block)
                written += block.height
                done = min(done + minutes_per_block, simulator.config.minutes)
                if progress is not None:
                    progress(done, written)
            if pending is not None:
                pending.result()
        if fmt == "parquet":
            pl.scan_ipc(parts).sink_parquet(path, compression="zstd", row_group_size=256_000)
    return written
