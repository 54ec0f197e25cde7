"""Reading the graph files users give (CSV tables, TU text tables): one-line errors that name the
file, the line and the column, so that bad data ends at the boundary (exit 2) and never as a
traceback deep inside training.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from zoo.core.contract.errors import ZooError, first_non_utf8_line


class GraphFileError(ZooError):
    """A graph file is malformed; ``str(err)`` is ``FILE, line L, column C: what is wrong``."""


def at(path: Path | str, line: int | None = None, column: str | int | None = None) -> str:
    """``FILE, line L, column 'C'`` (parts left out when unknown)."""
    parts = [str(path)]
    if line is not None:
        parts.append(f"line {line}")
    if column is not None:
        parts.append(f"column {column!r}" if isinstance(column, str) else f"column {column}")
    return ", ".join(parts)


def fail(path: Path | str, line: int | None, column: str | int | None, what: str) -> GraphFileError:
    return GraphFileError(f"{at(path, line, column)}: {what}")


def number(text: str, path: Path, line: int, column: str | int) -> float:
    """``text`` as a finite float, else an error naming where it is."""
    try:
        value = float(text)
    except ValueError:
        raise fail(path, line, column, f"{text.strip()[:40]!r} is not a number") from None
    if not math.isfinite(value):
        raise fail(path, line, column, f"{text.strip()!r} is not a finite number")
    return value


def csv_rows(path: Path, required: tuple[str, ...]) -> tuple[list[str], Iterator[tuple[int, dict[str, str]]]]:
    """The header of CSV ``path`` and its rows as ``(line number, {column: text})``.

    An unreadable or empty file, a header without one of ``required`` and a row with more or fewer
    fields than the header (ragged) are errors naming the file, line and column.
    """
    if not path.is_file():
        raise GraphFileError(f"{path}: no such file")
    handle = open(path, newline="", encoding="utf-8-sig")
    reader = csv.reader(handle)
    try:
        header = [name.strip() for name in next(reader)]
    except StopIteration:
        handle.close()
        raise GraphFileError(f"{path}: the file is empty (expected a header line with "
                             f"{', '.join(required)})") from None
    except UnicodeDecodeError as err:
        handle.close()
        raise not_utf8(path, err) from None
    except csv.Error as err:
        handle.close()
        raise fail(path, 1, None, f"not a CSV file ({err})") from None
    for name in required:
        if name not in header:
            handle.close()
            raise fail(path, 1, name, f"missing column (the header has {', '.join(header) or 'nothing'})")

    def rows() -> Iterator[tuple[int, dict[str, str]]]:
        with handle:
            try:
                for fields in reader:
                    line = reader.line_num
                    if not fields or all(not f.strip() for f in fields):
                        continue  # blank line
                    if len(fields) != len(header):
                        raise fail(path, line, None, f"{len(fields)} fields, the header has {len(header)}")
                    yield line, dict(zip(header, (f.strip() for f in fields)))
            except UnicodeDecodeError as err:
                raise not_utf8(path, err) from None
            except csv.Error as err:
                raise fail(path, reader.line_num, None, f"unreadable CSV ({err})") from None

    return header, rows()


def not_utf8(path: Path, err: UnicodeDecodeError) -> GraphFileError:
    """The error for bytes that are not UTF-8, naming the first line holding them (the decoder
    reads ahead: its position does not say)."""
    return fail(path, first_non_utf8_line(path), None, f"not UTF-8 text ({err.reason})")


def numeric_table(path: Path, dtype=np.int64, columns: int | None = None) -> np.ndarray:
    """A comma-separated numeric text table (a TU ``*.txt`` file) as ``[rows, columns]``.

    The fast path is :func:`numpy.loadtxt`; when it fails the file is read again line by line to
    name the first bad line and column.
    """
    if not path.is_file():
        raise GraphFileError(f"{path}: no such file")
    if path.stat().st_size == 0:
        raise GraphFileError(f"{path}: the file is empty")
    try:
        table = np.loadtxt(path, delimiter=",", dtype=dtype, ndmin=2)
    except ValueError:
        _find_bad_line(path, dtype)
        raise  # _find_bad_line raises; this is only reached if numpy and we disagree
    if table.shape[0] == 0:
        raise GraphFileError(f"{path}: the file holds no rows")
    if columns is not None and table.shape[1] != columns:
        raise fail(path, 1, None, f"{table.shape[1]} values per line, expected {columns}")
    return table


def _find_bad_line(path: Path, dtype) -> None:
    parse = int if np.issubdtype(dtype, np.integer) else float
    width = None
    with open(path, encoding="utf-8", errors="replace") as handle:
        for line_no, text in enumerate(handle, start=1):
            if not text.strip():
                continue
            fields = text.split(",")
            if width is not None and len(fields) != width:
                raise fail(path, line_no, None, f"{len(fields)} values, earlier lines have {width}")
            width = len(fields)
            for column, field in enumerate(fields, start=1):
                try:
                    parse(field.strip())
                except ValueError:
                    kind = "an integer" if parse is int else "a number"
                    raise fail(path, line_no, column, f"{field.strip()[:40]!r} is not {kind}") from None
    raise GraphFileError(f"{path}: not a comma-separated table of numbers")


__all__ = ["GraphFileError", "at", "csv_rows", "fail", "not_utf8", "number", "numeric_table"]
