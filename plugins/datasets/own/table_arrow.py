"""The fast path of ``table``: a CSV/TSV parsed by pyarrow's C++ reader, same result as the csv module.

:func:`read` returns the :class:`~zoo.plugins.datasets.own.table.Table` that the csv-module parser
(``table._parse``) would return for the same file, or ``None`` when it cannot promise that; the
caller then runs the csv-module parser, which also words every error (file, line, column). So
the fast path only ever handles the clean case, and bad data gets the one-line error it always
got. ``None`` is returned when

- pyarrow reports anything (a value that is not a number, a ragged row, an unterminated quote,
  bytes that are not UTF-8 in a text column);
- the file is not UTF-8 (checked over the whole file, columns not used included);
- its rows are not one per line (blank lines between rows, a quoted field spanning lines): the
  data row ``i`` is then not on line ``i + 2``, and errors found later must name the right line;
- a categorical value, label or split name is empty or not a split name;
- a number is not finite, or beyond float32 (the csv module names its line and column).

Values: numbers are parsed as float64 (correctly rounded, like Python's ``float``) and rounded
to float32 when the model's matrix is written, as numpy does when the csv-module path assigns
strings to its float32 array; parsing straight to float32 differs in the last bit for a few
decimal strings. Categories, labels and
split names are stripped of surrounding whitespace and coded in order of first appearance, as in
the csv-module path.

Speed and memory: the whole file is parsed by ``pyarrow.csv.read_csv`` (``BLOCK`` bytes of text
per block, the blocks parsed in parallel on pyarrow's threads; its streaming reader parses on one
thread). The table keeps the numeric columns as pyarrow's float64 buffers (no copy: the model's
matrix is written from them, and they are freed after); category codes, the target and the split
are converted record batch by record batch (see :class:`_Arrays`). The columns not used are not
converted at all.
"""

from __future__ import annotations

import codecs
import csv
from pathlib import Path

import numpy as np
from zoo.plugins.datasets.own.common import FLOAT32_OVERFLOW, SPLIT_NAMES, delimiter, open_text

#: Bytes of CSV text per block that pyarrow parses (one thread each) and per record batch.
BLOCK = 1 << 20


class _Fallback(Exception):
    """The file is one the fast path leaves to the csv module."""


def read(p: Path, target, features, categorical, split_column, task, columns_from):
    """The :class:`Table` of ``p`` parsed by pyarrow, or ``None`` (pyarrow missing, or see above).

    :param columns_from: ``table._Columns``: decides from the header and first row which columns
        are numeric (its errors, e.g. a missing column, are raised here as in the slow path)
    """
    try:
        import pyarrow  # noqa: F401 - the optional extra: pip install 'zoo-ml[parquet]'
    except ImportError:
        return None
    try:
        header, first = _head(p)
        cols = columns_from(p, header, target, features, categorical, split_column, task, first)
        size, lines = _scan(p, every_column=len(set(cols.index.values())) == len(header))
        arrays = _read(p, size, cols, header, target, split_column)
        if lines is not None and lines != len(arrays) + 1:
            raise _Fallback  # a quoted field spans lines: row i is not on line i + 2
        return arrays.table(p)
    except _Fallback:
        return None


def _head(p: Path) -> tuple[list[str], list[str]]:
    """The header and the first data row, read by the csv module (lines 1 and 2, else fall back)."""
    try:
        with open_text(p) as f:
            reader = csv.reader(f, delimiter=delimiter(p))
            header = next(reader, None)
            at = reader.line_num
            first = next(reader, None)
            if not header or not first or len(first) != len(header) or (at, reader.line_num) != (1, 2):
                raise _Fallback
            return header, first
    except (UnicodeDecodeError, csv.Error):
        raise _Fallback from None


def _scan(p: Path, every_column: bool) -> tuple[int, int | None]:
    """``(size, lines)``: the bytes before the blank lines at the end of the file (not read: the
    csv module skips them), and the number of lines where it must be counted (else ``None``).

    Where some columns are not used, pyarrow does not look at them, so the whole file is read
    here: bytes that are not UTF-8 fall back (the csv module stops at them, in any column), and
    the lines are counted where the file has a quote character (a quoted field may span lines;
    without a quote, every line is one row). Where every column is used, pyarrow checks the
    UTF-8 of each value and :meth:`_Arrays._code` falls back on a value with a line break, so
    only the end of the file is read.
    """
    decoder = codecs.getincrementaldecoder("utf-8")()
    quoted, tail = False, b""
    with p.open("rb") as f:
        if every_column:
            f.seek(max(0, p.stat().st_size - 4096))
        try:
            while chunk := f.read(1 << 22):
                if not (every_column or chunk.isascii()):
                    decoder.decode(chunk)
                quoted = quoted or (not every_column and b'"' in chunk)
                tail = (tail + chunk[-4096:])[-4096:]
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            raise _Fallback from None
    body = tail.rstrip(b"\r\n")
    if not body:
        raise _Fallback  # blank lines at the end longer than 4 KiB: left to the csv module
    size = p.stat().st_size - (len(tail) - len(body))
    return size, _count_lines(p, size) if quoted else None


def _count_lines(p: Path, size: int) -> int:
    """Lines in the first ``size`` bytes as the csv module counts them (``\\n``, ``\\r\\n`` or a
    lone ``\\r`` ends one, inside quotes too)."""
    count, last = 1, b""
    with p.open("rb") as f:
        while size > 0 and (chunk := f.read(min(1 << 22, size))):
            size -= len(chunk)
            count += chunk.count(b"\n")
            if b"\r" in chunk:  # (counting b"\r\n" is several times slower than b"\n")
                count += chunk.count(b"\r") - chunk.count(b"\r\n") - (last == b"\r" and chunk[:1] == b"\n")
            last = chunk[-1:]
    return count


def _read(p: Path, size: int, cols, header: list[str], target: str, split_column: str | None):
    """The first ``size`` bytes, parsed in parallel, then put into :class:`_Arrays` a record batch at a time."""
    import pyarrow as pa
    import pyarrow.csv as pc

    if split_column is not None and split_column in (target, *cols.numeric):
        raise _Fallback  # one column read two ways: left to the csv module's per-value code
    names = [f"c{j}" for j in range(len(header))]  # by position: the header may repeat a name
    column = {c: names[cols.index[c]] for c in cols.index}
    text = pa.dictionary(pa.int32(), pa.string())
    types = {column[c]: text for c in cols.index}
    types.update({column[c]: pa.float64() for c in cols.numeric + ([target] if cols.regression else [])})
    # A blank line becomes a row of empty values (and so a fallback): the csv module skips it,
    # and the rows after it would no longer be on line i + 2.
    options = dict(read_options=pc.ReadOptions(skip_rows=1, column_names=names, block_size=BLOCK),
                   parse_options=pc.ParseOptions(delimiter=delimiter(p), ignore_empty_lines=False),
                   convert_options=pc.ConvertOptions(column_types=types, include_columns=list(types),
                                                     null_values=[], strings_can_be_null=False))
    try:
        with pa.OSFile(str(p)) as f:
            whole = pc.read_csv(f.get_stream(0, size), **options)
    except pa.ArrowException:
        raise _Fallback from None
    out = _Arrays(whole.num_rows, cols, target, split_column)
    for batch in whole.to_batches():
        out.add({c: batch.column(name) for c, name in column.items()})
    return out


class _Arrays:
    """The arrays of a :class:`Table` of ``rows`` rows, filled a record batch at a time: the numeric
    columns kept as views of the batches' float64 buffers, the rest converted (int32 codes, the
    float32 or int32 target, int8 split codes)."""

    def __init__(self, rows: int, cols, target: str, split_column: str | None) -> None:
        self.cols, self.target, self.split_column, self.n = cols, target, split_column, 0
        self.coded = cols.categorical + ([] if cols.regression else [target])
        self.maps: dict[str, dict[str, int]] = {c: {} for c in self.coded}
        self.firsts: dict[str, dict[str, int]] = {c: {} for c in [*cols.categorical, target]}
        self.numeric: list[list[np.ndarray]] = []
        self.arrays = {"y": np.empty(rows, np.float32 if cols.regression else np.int32),
                       **{c: np.empty(rows, np.int32) for c in cols.categorical}}
        if split_column:
            self.arrays["split"] = np.empty(rows, np.int8)

    def __len__(self) -> int:
        return self.n

    @np.errstate(over="ignore")  # beyond float32: inf, which falls back (see _finite)
    def add(self, batch: dict) -> None:
        m = len(batch[self.target])
        a, at = self.arrays, slice(self.n, self.n + m)
        if self.cols.numeric:
            self.numeric.append([_finite(_numpy(batch[c], np.float64)) for c in self.cols.numeric])
        if self.cols.regression:
            a["y"][at] = _finite(_numpy(batch[self.target], np.float64))
        for c in self.coded:
            a["y" if c == self.target else c][at] = self._code(batch[c], self.maps[c], self.firsts[c])
        if self.split_column:
            a["split"][at] = _split_codes(batch[self.split_column])
        self.n += m

    def _code(self, values, mapping: dict[str, int], firsts: dict[str, int]) -> np.ndarray:
        """Codes in order of first appearance of the stripped value, new ones with their line."""
        index = _numpy(values.indices, np.int32)
        words = [v.strip() for v in values.dictionary.to_pylist()]
        if any(w not in mapping for w in words):
            first = np.full(len(words), len(index), dtype=np.int64)  # each word's first row
            np.minimum.at(first, index, np.arange(len(index)))
            present = np.flatnonzero(first < len(index))
            for k, i in sorted(zip(first[present].tolist(), present.tolist())):
                word = words[i]
                if not word or "\n" in word or "\r" in word:
                    raise _Fallback  # empty: the csv module names its line; a line break: see _scan
                if word not in mapping:
                    mapping[word], firsts[word] = len(mapping), self.n + k + 2
        lut = np.array([mapping.get(w, -1) for w in words], dtype=np.int32)
        return lut[index]

    def table(self, p: Path):
        """The :class:`Table` (row ``i`` is line ``i + 2``: see :func:`_scan`)."""
        from zoo.plugins.datasets.own.table import Table

        if self.n == 0:
            raise _Fallback
        cols, target, n, a = self.cols, self.target, self.n, self.arrays
        return Table(p, cols.numeric, self.numeric, cols.categorical, {c: a[c] for c in cols.categorical},
                     {c: list(self.maps[c]) for c in cols.categorical}, self.firsts, target, a["y"],
                     None if cols.regression else list(self.maps[target]), a.get("split"), range(2, n + 2),
                     parser="pyarrow")


def _split_codes(values) -> np.ndarray:
    lut = np.array([SPLIT_NAMES.get(v.strip().lower(), -1) for v in values.dictionary.to_pylist()],
                   dtype=np.int8)
    codes = lut[_numpy(values.indices, np.int32)]
    if (codes < 0).any():
        raise _Fallback  # a value that is not a split name: the csv module names its line
    return codes


def _finite(values: np.ndarray) -> np.ndarray:
    """``values`` (float64) when each is finite as float32; else fall back: the csv module names
    the first bad value's line and column, in file order among all errors."""
    if len(values) and not (values.max() < FLOAT32_OVERFLOW and values.min() > -FLOAT32_OVERFLOW):
        raise _Fallback  # (a NaN makes max and min NaN: both comparisons False)
    return values


def _numpy(values, dtype) -> np.ndarray:
    """A view of a null-free primitive array's values (``Array.to_numpy`` may import pandas, a slow import)."""
    if values.null_count:
        raise _Fallback
    size = np.dtype(dtype).itemsize
    return np.frombuffer(values.buffers()[1], dtype=dtype, count=len(values), offset=values.offset * size)
