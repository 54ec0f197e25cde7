"""What the own-data formats share: one-line errors that name the file, line and column; reading
CSV/TSV/JSONL records with their line numbers; seeded or column-given splits.

Every error a user's file can cause is a :class:`OwnDataError` (a ZooError: exit 2, one line)
whose message starts with ``FILE line N, column C:``.
"""

from __future__ import annotations

import csv
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from zoo.core.contract.errors import ZooError, first_non_utf8_line

# The csv module refuses a field over 131,072 characters by default ("field larger than field
# limit"): a long document in one field of a text CSV is data. (The limit is the module's, for the
# whole process; a C long holds it everywhere.)
csv.field_size_limit(min(sys.maxsize, 2**31 - 1))

#: The smallest float64 magnitude that rounds to float32 infinity (2^128 − 2^103, a tie: to even):
#: a number at or beyond it is refused, in training and at predict time alike.
FLOAT32_OVERFLOW = 2.0 ** 128 - 2.0 ** 103

#: Values of a split column and the split each names.
SPLIT_NAMES = {"train": 0, "val": 1, "valid": 1, "validation": 1, "dev": 1, "test": 2}


class OwnDataError(ZooError):
    """Bad data in a user's file: one line naming the file, the line or row, and the column."""


def where(path: str | Path, line: int | str | None = None, column: str | int | None = None) -> str:
    """``houses.csv line 7, column 'price'`` (``line`` may be ``"row 3"`` for JSON input)."""
    text = str(path)
    if line is not None:
        text += f" {line}" if isinstance(line, str) else f" line {line}"
    if column is not None:
        text += f", column {column!r}" if isinstance(column, str) else f", column {column}"
    return text


def fail(path, line=None, column=None, message: str = "") -> OwnDataError:
    return OwnDataError(f"{where(path, line, column)}: {message}")


def check_file(path: str | Path, option: str | None = "data.options.path") -> Path:
    """The path of an existing, non-empty file, else a one-line error (naming ``option``, the
    setting the path came from; ``None`` for an input file at predict time)."""
    p = Path(path).expanduser()
    if not p.exists():
        where_ = "" if p.is_absolute() else f"a relative path is read from the current folder, {Path.cwd()}"
        hint = "; ".join(filter(None, [option, where_]))
        raise OwnDataError(f"{path}: no such file" + (f" ({hint})" if hint else ""))
    if not p.is_file():
        raise OwnDataError(f"{path}: not a file" + (f" ({option} names one file)" if option else
                                                    " (this model takes one file of input)"))
    if p.stat().st_size == 0:
        raise OwnDataError(f"{path}: empty file")
    return p


def is_number(text: str) -> bool:
    """Whether ``float`` reads ``text``."""
    try:
        float(text)
    except ValueError:
        return False
    return True


def sorted_labels(labels) -> list[str]:
    """Class labels in their default order: by value where every label is a number (``"2"``
    before ``"10"``), else as text."""
    labels = list(labels)
    return sorted(labels, key=(lambda v: (float(v), v)) if all(map(is_number, labels)) else None)


def open_text(path: Path):
    """``path`` opened for the csv module (UTF-8, BOM dropped); undecodable bytes surface later as
    :class:`UnicodeDecodeError`, which :func:`not_utf8` turns into a one-line error."""
    return path.open(encoding="utf-8-sig", newline="")


def not_utf8(path: Path, err: UnicodeDecodeError) -> OwnDataError:
    """The one-line error for a file that is not UTF-8 (Windows-1252, UTF-16, ...), naming the
    first line holding such bytes (a decoder reads ahead: its position does not say)."""
    return fail(path, first_non_utf8_line(path), None, f"not UTF-8 text ({err.reason})")


def delimiter(path: Path) -> str:
    """Tab for ``.tsv``/``.tab``/``.txt``, comma otherwise."""
    return "\t" if path.suffix.lower() in (".tsv", ".tab", ".txt") else ","


def is_jsonl(path: Path) -> bool:
    return path.suffix.lower() in (".jsonl", ".ndjson")


def records(path: Path, fields: list[str]) -> Iterator[tuple[int, dict[str, str]]]:
    """``(line, {field: value})`` for each record of a CSV/TSV file with a header, or of a JSONL
    file (one object per line). Missing fields, ragged rows, bad JSON and non-UTF-8 bytes are
    one-line errors; blank lines are skipped."""
    if is_jsonl(path):
        yield from _jsonl_records(path, fields)
        return
    with open_text(path) as f:
        reader = csv.reader(f, delimiter=delimiter(path))
        try:
            header = next((row for row in reader if row), None)  # (blank lines before it skipped)
            if header is None:
                raise fail(path, message="empty file (no header)")
            index = header_index(path, header, fields, reader.line_num)
            for row in reader:
                if not row:
                    continue
                if len(row) != len(header):
                    raise ragged(path, reader.line_num, row, len(header))
                yield reader.line_num, {name: row[i] for name, i in index.items()}
        except UnicodeDecodeError as err:
            raise not_utf8(path, err) from None
        except csv.Error as err:
            raise fail(path, reader.line_num, None, f"not valid CSV: {err}") from None


def ragged(path, line: int, row: list[str], width: int) -> OwnDataError:
    """The error for a row of ``len(row)`` fields ending on ``line`` under a header of ``width``.
    Where a quoted field spans lines (a quote that is text, opening a field and never closed,
    swallows the lines after it), it names the line the field starts on."""
    breaks = sum(f.count("\n") + f.count("\r") - f.count("\r\n") for f in row)
    if not breaks:
        return fail(path, line, None, f"{len(row)} fields, the header has {width} (ragged row)")
    start = line - breaks + (row[-1][-1:] in ("\n", "\r"))  # (a quote never closed takes the last line end)
    what = f"runs from here to line {line}" if start < line else "opens here and is never closed"
    return fail(path, start, None, f"a quoted field {what} ({len(row)} fields, the header has {width}): a quote "
                f"inside a field is written doubled (\"\"), in a field quoted whole")


def header_index(path: Path, header: list[str], fields: list[str], line: int = 1) -> dict[str, int]:
    """Position of each of ``fields`` in ``header`` (on ``line``); a missing one, or one the header
    names twice (which of the two would be meant?), names the file, the line and the column."""
    header = [h.strip() for h in header]
    for name in fields:
        if name not in header:
            shown = ", ".join(header[:20]) + (", ..." if len(header) > 20 else "")
            raise fail(path, line, name, f"no such column (the header has: {shown}{_separator_hint(path, header)})")
        if header.count(name) > 1:
            at = [i + 1 for i, h in enumerate(header) if h == name]
            raise fail(path, line, name, f"the header names this column twice (fields {', '.join(map(str, at))}): "
                       f"rename one")
    return {name: header.index(name) for name in fields}


def _separator_hint(path: Path, header: list[str]) -> str:
    """``; is the file ';'-separated? ...`` where the header is one field holding another separator
    (Excel writes ';' where the decimal mark is a comma)."""
    if len(header) != 1:
        return ""
    used = delimiter(Path(path))
    for sep in (";", "\t", ",", "|"):
        if sep != used and sep in header[0]:
            return f"; is the file {sep!r}-separated? a {Path(path).suffix or 'suffix-less'} file is read with {used!r}"
    return ""


def _jsonl_records(path: Path, fields: list[str]) -> Iterator[tuple[int, dict[str, str]]]:
    with path.open("rb") as f:
        for number, raw in enumerate(f, start=1):
            if not raw.strip():
                continue
            try:
                obj = json.loads(raw.decode("utf-8-sig" if number == 1 else "utf-8"))  # (a BOM before line 1)
            except UnicodeDecodeError as err:
                raise fail(path, number, None, f"not UTF-8 text ({err.reason})") from None
            except ValueError as err:  # JSONDecodeError, or an integer over Python's 4,300 digits
                raise fail(path, number, None, f"not a JSON object: {getattr(err, 'msg', str(err))[:120]}") from None
            if not isinstance(obj, dict):
                raise fail(path, number, None, f"expected a JSON object, got {type(obj).__name__}")
            for name in fields:
                if name not in obj:
                    raise fail(path, number, name, "missing field")
            yield number, {name: _as_text(obj[name], path, number, name) for name in fields}


def _as_text(value: Any, path, line, column) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool) or value is None or isinstance(value, (list, dict)):
        raise fail(path, line, column, f"expected a string or a number, got {json.dumps(value)[:40]}")
    return str(value)


def split_codes(values: list[str], lines: list[int], path, column: str) -> np.ndarray:
    """Split column values (train / val|valid|validation|dev / test) → codes 0, 1, 2."""
    codes = np.empty(len(values), dtype=np.int8)
    for i, value in enumerate(values):
        code = SPLIT_NAMES.get(value.strip().lower())
        if code is None:
            raise fail(path, lines[i], column, f"split {value!r} is not train, val or test")
        codes[i] = code
    return codes


def split_order(n: int, codes: np.ndarray | None, val_fraction: float, test_fraction: float,
                seed: int, path) -> tuple[np.ndarray, int, int]:
    """``(order, n_train, n_val)``: row indices in split order (train, then val, then test).

    With a split column the codes decide; otherwise a permutation seeded with ``seed`` holds out
    ``test_fraction`` (at least one row) and ``val_fraction`` of the rows.
    """
    if codes is not None:
        order = np.argsort(codes, kind="stable")
        counts = np.bincount(codes, minlength=3)
        n_train, n_val, n_test = (int(c) for c in counts)
    else:
        order = np.random.default_rng(seed).permutation(n)
        n_test = max(1, int(round(n * test_fraction)))
        n_val = int(round(n * val_fraction))
        n_train = n - n_test - n_val
        order = np.concatenate([order[n_test + n_val:], order[n_test:n_test + n_val], order[:n_test]])
    if n_train < 1:
        raise OwnDataError(f"{path}: {n} rows leave no training rows (lower val_fraction/test_fraction)")
    if n - n_train - n_val < 1:
        raise OwnDataError(f"{path}: no test rows (the split column names no 'test' row)")
    return order, n_train, n_val


def check_classes(path, column: str, train_labels: np.ndarray, classes: list[str],
                  first_line: dict[str, int]) -> None:
    """Every class has a training sample; else name the class and the line it first appears on."""
    seen = np.bincount(train_labels, minlength=len(classes))
    for k, name in enumerate(classes):
        if seen[k] == 0:
            line = first_line.get(name)
            raise fail(path, line, column, f"class {name!r} has no sample in the training split "
                       f"(add training rows for it, or drop its rows)")
