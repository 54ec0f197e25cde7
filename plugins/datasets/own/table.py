"""``table``: the user's own CSV (or Parquet) file → every regression and classification model.

Columns
    Each feature column is *numeric* when its first value parses as a number, else *categorical*
    (``categorical = [...]`` forces a column to categories, e.g. zip codes). Numeric columns are
    standardised with the training split's mean and std (baked into the exported model by
    :class:`~zoo.core.train.data.Standardize`, so the ONNX file takes raw values); categorical ones
    are one-hot over the categories seen in the *training* split. A category the training split
    never saw (in val/test, or at ``zoo predict``) encodes as an all-zero row: the model sees "none
    of the known categories", the usual choice of scikit-learn's ``handle_unknown="ignore"``.

Task
    ``task = "auto"``: classification when the target's first value is not a number, else
    regression; ``"classification"`` reads the target as labels even when they are numbers.

Parsing and memory
    With pyarrow installed (``pip install 'zoo-ml[parquet]'``), a CSV/TSV is parsed by its C++
    reader (:mod:`~zoo.plugins.datasets.own.table_arrow`: record batches, on pyarrow's threads,
    capped by ``OMP_NUM_THREADS``), which gives the same arrays bit for bit and leaves every file it
    cannot vouch for, bad data included, to the csv module below, so errors are worded the same.
    Without it, or with ``FAST_CSV = False``, one streaming pass of the csv module fills arrays
    preallocated from an upper bound on the row count (its line ends). Numbers stay column by
    column (pyarrow's float64 buffers, or the csv module's float32 array), categories become one
    int32 code array per column; no list of rows or of strings is ever held. The model's input
    matrix is then written once, in split order, a block of rows at a time on several threads
    (numpy releases the GIL), so train, val and test are views of it.

The run keeps the columns, categories and classes in ``DataInfo.extra["raw_inputs"]`` (kind
``table``): :func:`decode_inputs` turns raw rows (CSV, JSON objects) into the model's ``x``.
"""

from __future__ import annotations

import csv
import json
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field, field_validator
from zoo.core.train.data import DataInfo, Dataset, TensorSplit
from zoo.plugins.datasets.own.common import (
    FLOAT32_OVERFLOW,
    OwnDataError,
    check_classes,
    check_file,
    delimiter,
    fail,
    header_index,
    is_number,
    not_utf8,
    open_text,
    ragged,
    split_codes,
    sorted_labels,
    split_order,
    where,
)

#: Parse CSV/TSV with pyarrow (``table_arrow``) when it is importable; False: always the csv module.
FAST_CSV = True


class TableOptions(BaseModel):
    """``data.options`` of ``table``."""

    model_config = ConfigDict(extra="forbid")
    #: the tasks this dataset serves; the loaded data says which one (DataInfo.extra["task"])
    tasks: ClassVar[tuple[str, ...]] = ("regression", "classification")

    path: str = Field(min_length=1, description="The CSV (.csv comma, .tsv tab) or Parquet file.")
    target: str = Field(min_length=1, description="The column to predict.")
    features: list[str] | None = Field(None, min_length=1, description="Feature columns (default: "
                                       "every column but the target and the split column).")
    categorical: list[str] = Field(default_factory=list, description="Columns read as categories "
                                   "even when their values are numbers.")
    task: Literal["auto", "regression", "classification"] = Field(
        "auto", description="auto: classification when the target is not numeric.")
    classes: list[str] | None = Field(None, min_length=2, description="The class labels (in this "
                                      "order); a label outside them is an error. Default: the labels "
                                      "sorted (by value where all are numbers).")
    split_column: str | None = Field(None, description="Column naming each row's split: train, "
                                     "val (or dev, validation) or test. Overrides the fractions.")
    val_fraction: float = Field(0.1, ge=0.0, lt=1.0, description="Share of rows held out for validation.")
    test_fraction: float = Field(0.2, gt=0.0, lt=1.0, description="Share of rows held out for testing.")
    seed: int = Field(0, ge=0, description="Seed of the split (independent of train.seed).")

    @field_validator("features", "categorical")
    @classmethod
    def _each_once(cls, names: list[str] | None) -> list[str] | None:
        """A column listed twice would be fed to the model twice."""
        repeated = sorted({n for n in names or () if names.count(n) > 1})
        if repeated:
            raise ValueError(f"lists {', '.join(map(repr, repeated))} more than once")
        return names


@dataclass
class Table:
    """A parsed table: numbers, category codes, target and split, one row per data row.

    :param numeric: the numeric feature columns as blocks of rows in file order; each block is
        one ``[m]`` array per column of ``numeric_names`` (float32, or float64 that rounds to a
        finite float32), ``[]`` without numeric columns; :meth:`numbers` joins them
    :param codes: per categorical column, ``[N]`` int32 codes into ``categories[name]``
    :param first_line: per categorical column (and the target), value → line it first appears on
        (``"row N"`` for Parquet)
    :param target: ``[N]`` float32 (regression) or int32 codes into ``labels``
    :param lines: the line each row ends on (a ``range`` where row ``i`` is line ``i + 2``)
    """

    path: Path
    numeric_names: list[str]
    numeric: list[list[np.ndarray]]
    categorical_names: list[str]
    codes: dict[str, np.ndarray]
    categories: dict[str, list[str]]
    first_line: dict[str, dict[str, int | str]]
    target_name: str
    target: np.ndarray
    labels: list[str] | None = None      # None: a numeric (regression) target
    split: np.ndarray | None = None      # int8 codes 0 train, 1 val, 2 test
    lines: np.ndarray | range = field(default_factory=lambda: np.empty(0, np.int64))  # row → line
    parser: str = "csv module"          # or "pyarrow" (table_arrow: the same table, faster)

    def __len__(self) -> int:
        return len(self.target)

    @np.errstate(over="ignore")
    def numbers(self) -> np.ndarray:
        """``[N, k]`` float32: the numeric columns, joined (float64 rounded as numpy rounds)."""
        out, start = np.empty((len(self), len(self.numeric_names)), dtype=np.float32), 0
        for columns in self.numeric:
            for j, values in enumerate(columns):
                out[start:start + len(values), j] = values
            start += len(columns[0])
        return out


def _line_bound(path: Path) -> int:
    """An upper bound on the number of data rows: the file's line ends (``\\n``, ``\\r\\n`` or a
    lone ``\\r``, as the csv module reads them) + 1 for a last line without one; quoted fields
    spanning lines only make it looser."""
    count = 1
    with path.open("rb") as f:
        while chunk := f.read(1 << 22):
            count += chunk.count(b"\n")
            if b"\r" in chunk:  # a \r\n cut by the chunk boundary counts twice: still a bound
                count += chunk.count(b"\r") - chunk.count(b"\r\n")
    return count


class _Columns:
    """How each used column is read, decided by the header and the first data row."""

    def __init__(self, path, header, target, features, categorical, split_column, task, first_row, line=1):
        header = [h.strip() for h in header]  # (``line``: the header's)
        if features is None:
            features = [h for h in header if h not in (target, split_column)]
            if "" in features:  # (zoo predict could not name it either)
                raise fail(path, line, header.index("") + 1, "a column without a name (pandas writes its index "
                           "so: df.to_csv(path, index=False) leaves it out); name it, or list data.options.features")
        if target in features:
            raise fail(path, line, target, "the target is also listed as a feature")
        if split_column is not None and split_column in features:
            raise fail(path, line, split_column, "the split column is also listed as a feature")
        if not features:
            raise fail(path, line, None, "no feature columns (the file has only the target)")
        wanted = [target, *features] + ([split_column] if split_column else [])
        self.index = header_index(path, header, wanted, line)
        unknown = [c for c in categorical if c not in features]
        if unknown:
            raise fail(path, line, unknown[0], "listed in data.options.categorical but not a feature column")
        self.numeric = [f for f in features if f not in categorical and is_number(first_row[self.index[f]])]
        self.categorical = [f for f in features if f not in self.numeric]
        value = first_row[self.index[target]]
        self.regression = task == "regression" or (task == "auto" and is_number(value))
        self.first = {f: first_row[self.index[f]] for f in features}


def load_table(path: str | Path, target: str, features: list[str] | None = None,
               categorical: list[str] | tuple[str, ...] = (), split_column: str | None = None,
               task: str = "auto") -> Table:
    """Stream-parse a CSV/TSV (or Parquet) file into a :class:`Table` (one pass, preallocated).

    Raises :class:`OwnDataError` naming the file, line and column for a missing column, a
    non-numeric or non-finite value in a numeric column, an empty value, an empty or non-numeric
    target, a ragged row or an empty file.
    """
    p = check_file(path)
    if p.suffix.lower() in (".json", ".jsonl", ".ndjson"):
        raise fail(p, message="table reads CSV (.csv), TSV (.tsv, .tab, .txt) or Parquet (.parquet), not JSON "
                   "(pandas: pd.read_json(path, lines=True).to_parquet('data.parquet'))")
    if p.suffix.lower() in (".parquet", ".pq"):
        return _load_parquet(p, target, features, list(categorical), split_column, task)
    if FAST_CSV:
        from zoo.plugins.datasets.own import table_arrow

        fast = table_arrow.read(p, target, features, list(categorical), split_column, task, _Columns)
        if fast is not None:
            return fast
    bound = _line_bound(p)
    with open_text(p) as f:
        reader = csv.reader(f, delimiter=delimiter(p))
        try:
            return _parse(p, reader, bound, target, features, list(categorical), split_column, task)
        except UnicodeDecodeError as err:
            raise not_utf8(p, err) from None
        except csv.Error as err:
            raise fail(p, reader.line_num, None, f"not valid CSV: {err}") from None


@np.errstate(over="ignore")  # a number beyond float32 becomes inf: reported by _check_finite
def _parse(p, reader, bound, target, features, categorical, split_column, task) -> Table:
    rows = (row for row in reader if row)  # blank lines are skipped (before the header too)
    header = next(rows, None)
    if header is None:
        raise fail(p, message="empty file (no header)")
    header_line = reader.line_num
    first = next(rows, None)
    if first is None:
        raise fail(p, message="no data rows (only a header)")
    if len(first) != len(header):  # before the first row decides the column types
        raise ragged(p, reader.line_num, first, len(header))
    cols = _Columns(p, header, target, features, categorical, split_column, task, first, header_line)
    numeric = np.empty((bound, len(cols.numeric)), dtype=np.float32)
    num_idx = [cols.index[c] for c in cols.numeric]
    cat_idx = [(c, cols.index[c]) for c in cols.categorical]
    codes = {c: np.empty(bound, dtype=np.int32) for c in cols.categorical}
    maps: dict[str, dict[str, int]] = {c: {} for c in cols.categorical}
    firsts: dict[str, dict[str, int]] = {c: {} for c in cols.categorical}
    y = np.empty(bound, dtype=np.float32 if cols.regression else np.int32)
    label_map: dict[str, int] = {}
    firsts[target] = {}
    split_values: list[str] = []
    lines = np.empty(bound, dtype=np.int64)
    t_idx, width = cols.index[target], len(header)
    n = 0
    for row in _chain(first, rows):
        line = reader.line_num
        if len(row) != width:
            raise ragged(p, line, row, width)
        try:
            numeric[n] = [row[j] for j in num_idx]
        except ValueError:
            _bad_number(p, line, row, cols, num_idx)
        for name, j in cat_idx:
            value = row[j].strip()
            if not value:
                raise fail(p, line, name, "empty value (fill or drop missing values)")
            code = maps[name].get(value)
            if code is None:
                code = maps[name][value] = len(maps[name])
                firsts[name][value] = line
            codes[name][n] = code
        y[n] = _target_value(p, line, target, row[t_idx], cols.regression, label_map, firsts[target])
        if split_column:
            split_values.append(row[cols.index[split_column]])
        lines[n] = line
        n += 1
    _check_finite(p, numeric[:n], lines[:n], cols.numeric)
    if cols.regression:
        _check_finite(p, y[:n, None], lines[:n], [target])
    split = split_codes(split_values, lines[:n].tolist(), p, split_column) if split_column else None
    return Table(p, cols.numeric, _blocks_of(numeric[:n]), cols.categorical, {c: a[:n] for c, a in codes.items()},
                 {c: list(m) for c, m in maps.items()}, firsts, target, y[:n],
                 None if cols.regression else list(label_map), split, lines[:n])


def _blocks_of(numeric: np.ndarray) -> list[list[np.ndarray]]:
    """``Table.numeric`` of one ``[N, k]`` array: one block, its columns as views."""
    return [list(numeric.T)] if numeric.shape[1] else []


def _chain(first, rest):
    yield first
    yield from rest


def _bad_number(p, line, row, cols, num_idx):
    for name, j in zip(cols.numeric, num_idx):
        if not is_number(row[j]):
            what = "empty value (fill or drop missing values)" if not row[j].strip() else (
                f"{row[j][:40]!r} is not a number (the column is numeric: its first value is "
                f"{cols.first[name][:20]!r}; list it in data.options.categorical to read it as categories)")
            raise fail(p, line, name, what)
    raise fail(p, line, None, "a value that is not a number")


def _target_value(p, line, name, value, regression, label_map, firsts) -> float | int:
    value = value.strip()
    if not value:
        raise fail(p, line, name, "empty target value" if regression else "empty label")
    if regression:
        try:
            return float(value)
        except ValueError:
            raise fail(p, line, name, f"{value[:40]!r} is not a number (the target is numeric: set "
                       f"data.options.task = \"classification\" for labels)") from None
    code = label_map.get(value)
    if code is None:
        code = label_map[value] = len(label_map)
        firsts[value] = line
    return code


def _check_finite(p, values: np.ndarray, lines: np.ndarray, names: list[str], unit: str = "line") -> None:
    """The first value that is not finite names its line (``unit = "row"``: Parquet's row) and column."""
    bad = ~np.isfinite(values)
    if bad.any():
        i, j = np.argwhere(bad)[0]
        at = int(lines[i]) if unit == "line" else f"{unit} {int(lines[i])}"
        raise fail(p, at, names[j], f"{values[i, j]} is not a finite number")


def _load_parquet(p, target, features, categorical, split_column, task) -> Table:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise OwnDataError(f"{p}: reading Parquet needs pyarrow: pip install 'zoo-ml[parquet]' "
                           f"(or pip install pyarrow)") from None
    import pyarrow as pa

    try:
        table = pq.ParquetFile(p).read()  # (pq.read_table refuses a column name given twice, in several lines)
    except (pa.ArrowException, OSError) as err:
        raise fail(p, message=f"not a Parquet file pyarrow can read ({str(err).splitlines()[0][:120]})") from None
    header = table.column_names
    if table.num_rows == 0:
        raise fail(p, message="no data rows")
    first = [str(table.column(j)[0].as_py()) for j in range(len(header))]
    cols = _Columns(p, header, target, features, categorical, split_column, task, first)
    # Rows are numbered from 1 (Parquet has no lines); a null is an empty value.
    text = {c: ["" if v is None else str(v) for v in table.column(c).to_pylist()]
            for c in [target, *cols.categorical] + ([split_column] if split_column else [])}
    numeric = np.empty((table.num_rows, len(cols.numeric)), dtype=np.float32)
    for j, c in enumerate(cols.numeric):
        column = table.column(c)
        if column.null_count:
            row = column.to_pylist().index(None) + 1
            raise fail(p, f"row {row}", c, "empty value (fill or drop missing values)")
        try:
            with np.errstate(over="ignore"):  # beyond float32: inf, named by _check_finite
                numeric[:, j] = column.to_numpy(zero_copy_only=False).astype(np.float32)
        except (ValueError, TypeError):
            raise fail(p, None, c, "not a numeric column (list it in data.options.categorical)") from None
    rows = np.arange(1, table.num_rows + 1)
    return _from_columns(p, cols, numeric, text, target, split_column, rows)


def _from_columns(p, cols, numeric, text, target, split_column, rows) -> Table:
    """A Table from whole columns (Parquet): the same checks as the CSV parser, rows for lines."""
    codes, maps, firsts = {}, {}, {}
    for c in [*cols.categorical, target]:
        mapping: dict[str, int] = {}
        firsts[c] = {}
        out = np.empty(len(rows), dtype=np.int32)
        for i, value in enumerate(text[c]):
            if c == target and cols.regression:
                break
            value = value.strip()  # (as the CSV parsers and zoo predict read a category)
            if not value:
                raise fail(p, f"row {i + 1}", c, "empty label" if c == target else "empty value")
            code = mapping.get(value)
            if code is None:
                code = mapping[value] = len(mapping)
                firsts[c][value] = f"row {int(rows[i])}"  # (Parquet has rows, not lines)
            out[i] = code
        codes[c], maps[c] = out, mapping
    if cols.regression:
        y = np.empty(len(rows), np.float32)
        with np.errstate(over="ignore"):  # beyond float32: inf, named by _check_finite
            for i, value in enumerate(text[target]):
                y[i] = _target_value(p, f"row {i + 1}", target, value, True, {}, {})
        _check_finite(p, y[:, None], rows, [target], unit="row")  # (a NaN target trained to NaN)
    else:
        y = codes.pop(target)
    _check_finite(p, numeric, rows, cols.numeric, unit="row")
    split = split_codes(text[split_column], [f"row {r}" for r in rows], p, split_column) if split_column else None
    return Table(p, cols.numeric, _blocks_of(numeric), cols.categorical, {c: codes[c] for c in cols.categorical},
                 {c: list(maps[c]) for c in cols.categorical}, firsts, target, y,
                 None if cols.regression else list(maps[target]), split, rows)


# -- the dataset --------------------------------------------------------------------------------

def load_table_dataset(options: TableOptions, data_dir: str | None = None) -> Dataset:
    """The ``table`` dataset: :func:`load_table`, split, standardised and one-hot encoded."""
    o = options
    t = load_table(o.path, o.target, o.features, o.categorical, o.split_column, o.task)
    _check_inferred_categories(t, o.categorical)
    order, n_train, n_val = split_order(len(t), t.split, o.val_fraction, o.test_fraction, o.seed, o.path)
    train_rows = order[:n_train]
    categories = {}
    for c in t.categorical_names:  # the categories of the training rows
        seen = np.bincount(t.codes[c].take(train_rows), minlength=len(t.categories[c]))
        categories[c] = sorted(t.categories[c][k] for k in np.flatnonzero(seen))
    x = encode_matrix(t, categories, order)
    del t.numeric  # the parsed numbers are in x now
    info = _info(t, o, categories, x[:n_train], order, n_train)
    y = _targets(t, o, info, order)
    if t.labels is not None:
        check_classes(o.path, t.target_name, y[:n_train], info.class_names, t.first_line[t.target_name])
    parts = [slice(0, n_train), slice(n_train, n_train + n_val), slice(n_train + n_val, len(order))]
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    train, val, test = (TensorSplit(x=xt[s], y=yt[s]) for s in parts)
    return Dataset(train=train, val=val if n_val else None, test=test, info=info)


def _check_inferred_categories(t: Table, forced: list[str]) -> None:
    """A column made categorical by its first value (``?``, ``NA``: a missing value) whose other
    values are numbers is an error naming that value's line: the model would one-hot each number.
    (Its first 1,000 distinct values decide: at least 90% numbers.)"""
    for c in t.categorical_names:
        values = t.categories[c][:1000]
        words = [v for v in values if not is_number(v)]
        if c not in forced and words and len(values) - len(words) >= max(2, 9 * len(words)):
            raise fail(t.path, t.first_line[c][words[0]], c, f"{words[0][:20]!r} made this column categorical, "
                       f"but its other values are numbers: fill or drop missing values (or list the column "
                       f"in data.options.categorical)")


#: Rows per block when the matrix is built and its statistics taken: the temporaries stay ~2 MB.
BLOCK_ROWS = 1 << 16


def encode_matrix(t: Table, categories: dict[str, list[str]], order: np.ndarray) -> np.ndarray:
    """``[N, numeric + Σ categories]`` float32 in ``order``: numbers as parsed, then one one-hot
    block per categorical column (all zeros for a category outside ``categories``).

    Each block of file rows is encoded into a small buffer and its rows scattered at once to
    their places in split order (``x[dest[i]] = row i``), so the numbers are read where they were
    parsed and ``x`` is written once; the blocks run on several threads.
    """
    k = len(t.numeric_names)
    width = k + sum(len(v) for v in categories.values())
    x = np.empty((len(order), width), dtype=np.float32)
    dest = np.empty(len(order), dtype=np.int64)
    dest[order] = np.arange(len(order))
    onehot, at = [], k  # (codes, category code → position in its one-hot block or -1, block offset)
    for c in t.categorical_names:
        position = {v: i for i, v in enumerate(categories[c])}
        onehot.append((t.codes[c], np.array([position.get(v, -1) for v in t.categories[c]], dtype=np.int64), at))
        at += len(categories[c])

    @np.errstate(over="ignore")  # float64 → float32 (Table.numeric holds only finite float32 values)
    def encode(job: tuple[int, int, list[np.ndarray]]) -> None:
        start, stop, columns = job
        block = np.zeros((stop - start, width), dtype=np.float32)
        for j, values in enumerate(columns):
            block[:, j] = values
        for codes, lut, at in onehot:
            pos = lut.take(codes[start:stop])
            hit = np.arange(stop - start) if pos.min(initial=0) >= 0 else np.nonzero(pos >= 0)[0]
            block.reshape(-1)[hit * width + at + pos[hit]] = 1.0  # flat indices: one-hot
        x[dest[start:stop]] = block

    jobs = _row_blocks(t)
    threads = min(len(jobs), torch.get_num_threads())
    if threads > 1:
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(threads) as pool:
            list(pool.map(encode, jobs))
    else:
        for job in jobs:
            encode(job)
    return x


def _row_blocks(t: Table) -> list[tuple[int, int, list[np.ndarray]]]:
    """``(start, stop, numeric columns of rows start:stop)`` of at most ``BLOCK_ROWS`` file rows."""
    if not t.numeric:
        return [(a, min(a + BLOCK_ROWS, len(t)), []) for a in range(0, len(t), BLOCK_ROWS)]
    jobs, start = [], 0
    for columns in t.numeric:
        m = len(columns[0])
        jobs += [(start + a, start + min(a + BLOCK_ROWS, m), [v[a:a + BLOCK_ROWS] for v in columns])
                 for a in range(0, m, BLOCK_ROWS)]
        start += m
    return jobs


def column_stats(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard deviation (float64) of each column of ``x`` ``[N, k]`` in one pass: two
    passes within each block of rows, blocks merged with Chan et al.'s update (as robust as two
    passes over ``x``; ``x.std(dtype=float64)`` would hold an ``[N, k]`` float64 copy)."""
    mean, m2, n = np.zeros(x.shape[1]), np.zeros(x.shape[1]), 0
    for start in range(0, len(x), BLOCK_ROWS):
        block = x[start:start + BLOCK_ROWS].astype(np.float64)
        size, block_mean = len(block), block.mean(axis=0)
        block -= block_mean
        delta, n = block_mean - mean, n + size
        mean += delta * size / n
        m2 += np.einsum("ij,ij->j", block, block) + delta ** 2 * (n - size) * size / n
    return mean, np.sqrt(m2 / max(n, 1))


def _info(t: Table, o: TableOptions, categories, x_train: np.ndarray, order, n_train) -> DataInfo:
    k = len(t.numeric_names)
    mean = np.zeros(x_train.shape[1], dtype=np.float64)
    std = np.ones(x_train.shape[1], dtype=np.float64)
    if k:
        mean[:k], spread = column_stats(x_train[:, :k])
        std[:k] = np.where(spread > 0, spread, 1.0)  # a constant column passes through centred
    names = [*t.numeric_names] + [f"{c}={v}" for c in t.categorical_names for v in categories[c]]
    columns = [{"name": c, "type": "numeric"} for c in t.numeric_names] + [
        {"name": c, "type": "categorical", "categories": categories[c]} for c in t.categorical_names]
    raw = {"kind": "table", "input": "x", "columns": columns, "target": t.target_name,
           "unknown_category": "zeros", "source": t.path.name}
    common = dict(input_shape=(x_train.shape[1],), input_mean=torch.from_numpy(mean).float(),
                  input_std=torch.from_numpy(std).float())
    if t.labels is None:
        y = t.target[order[:n_train]].astype(np.float64)
        spread = float(y.std())
        return DataInfo(output_dim=1, target_mean=float(y.mean()), target_std=spread if spread > 0 else 1.0,
                        extra={"task": "regression", "feature_names": names, "raw_inputs": raw}, **common)
    classes = _classes(t, o)
    return DataInfo(num_classes=len(classes), class_names=classes, **common,
                    extra={"task": "classification", "feature_names": names, "raw_inputs": raw})


def _classes(t: Table, o: TableOptions) -> list[str]:
    if o.classes is None:
        return sorted_labels(t.labels)
    known = set(o.classes)
    for label, line in t.first_line[t.target_name].items():
        if label not in known:
            raise fail(t.path, line, t.target_name, f"unknown label {label!r} (data.options.classes: "
                       f"{', '.join(o.classes)})")
    return list(o.classes)


def _targets(t: Table, o: TableOptions, info: DataInfo, order: np.ndarray) -> np.ndarray:
    if t.labels is None:
        return t.target[order]
    position = {name: i for i, name in enumerate(info.class_names)}
    lut = np.array([position[v] for v in t.labels], dtype=np.int64)
    return lut[t.target[order]]


# -- raw rows at predict time -------------------------------------------------------------------

def decode_inputs(meta: dict[str, Any], path_or_payload: Any) -> dict[str, np.ndarray]:
    """Raw rows → ``{"x": float32 [N, width]}`` encoded as in training.

    :param meta: the run's ``inputs.json`` (kind ``table``)
    :param path_or_payload: a CSV/TSV file (header + rows; other columns such as the target are
        ignored), a ``.json`` file (one object or a list of objects), a ``.jsonl`` file, or the
        objects themselves (``zoo serve``). An unknown category encodes as all zeros; from a file
        (``zoo predict``), a warning on stderr counts them and names the first, as scikit-learn's
        ``OneHotEncoder(handle_unknown="ignore")`` warns.
    """
    unknown: list[str] = []
    if isinstance(path_or_payload, (str, Path)):
        path = Path(path_or_payload)
        x = _encode_rows(meta, _rows_from_file(path, meta), str(path), unknown)
        if unknown:
            print(f"warning: {len(unknown)} value(s) of categorical columns not seen in training, encoded as "
                  f"none of the known categories (all zeros); the first: {unknown[0]}", file=sys.stderr)
        return {meta.get("input", "x"): x}
    return {meta.get("input", "x"): _encode_rows(meta, _rows_from_payload(path_or_payload), "input", unknown)}


def _rows_from_file(path: Path, meta) -> list[tuple[Any, dict]]:
    p = check_file(path, option=None)
    suffix = p.suffix.lower()
    if suffix == ".json":
        from zoo.core.deploy.runtime import read_json

        return _rows_from_payload(read_json(p))
    if suffix in (".jsonl", ".ndjson"):
        from zoo.plugins.datasets.own.common import records

        names = [c["name"] for c in meta["columns"]]
        return list(records(p, names))
    if suffix in (".parquet", ".pq"):
        raise OwnDataError(f"{p}: zoo predict takes rows as CSV, JSON or JSONL, not Parquet")
    with open_text(p) as f:
        reader = csv.reader(f, delimiter=delimiter(p))
        try:
            return _csv_rows(p, reader, [c["name"] for c in meta["columns"]])
        except UnicodeDecodeError as err:
            raise not_utf8(p, err) from None
        except csv.Error as err:
            raise fail(p, reader.line_num, None, f"not valid CSV: {err}") from None


def _csv_rows(p: Path, reader, names: list[str]) -> list[tuple[int, dict]]:
    header = next((row for row in reader if row), None)  # (blank lines before it skipped)
    if header is None:
        raise fail(p, message="empty file (no header)")
    index = header_index(p, header, names, reader.line_num)
    out = []
    for row in reader:
        if not row:
            continue
        if len(row) != len(header):
            raise ragged(p, reader.line_num, row, len(header))
        out.append((reader.line_num, {c: row[j] for c, j in index.items()}))
    return out


def _rows_from_payload(data: Any) -> list[tuple[Any, dict]]:
    if isinstance(data, dict) and set(data) == {"rows"}:
        data = data["rows"]
    if isinstance(data, dict):
        data = [data]
    if isinstance(data, list):  # zoo serve sends each row as a JSON-encoded string
        data = [_parse_row(r) if isinstance(r, str) else r for r in data]
    if not (isinstance(data, list) and data and all(isinstance(r, dict) for r in data)):
        raise OwnDataError("input: expected rows as JSON objects ({column: value}) or a list of them")
    return [(f"row {i + 1}", r) for i, r in enumerate(data)]


def _parse_row(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError as err:  # JSONDecodeError, or an integer over Python's 4,300 digits
        raise OwnDataError(f"input: a row is not a JSON object: {getattr(err, 'msg', str(err))[:120]}") from None


def _encode_rows(meta: dict, rows: list[tuple[Any, dict]], source: str, unknown: list[str]) -> np.ndarray:
    """``[N, width]`` float32 of ``rows``; each unknown category's place is appended to ``unknown``."""
    if not rows:
        raise OwnDataError(f"{source}: no rows")
    columns = meta["columns"]
    width = sum(1 if c["type"] == "numeric" else len(c["categories"]) for c in columns)
    x = np.zeros((len(rows), width), dtype=np.float32)
    for i, (line, row) in enumerate(rows):
        offset = 0
        for c in columns:
            name = c["name"]
            if name not in row:
                raise fail(source, line, name, "missing column")
            value = row[name]
            if c["type"] == "numeric":
                x[i, offset] = _number(value, source, line, name)
                offset += 1
            else:
                k = _category(value, c["categories"], source, line, name)
                if k is not None:
                    x[i, offset + k] = 1.0
                else:
                    unknown.append(f"{where(source, line, name)}: {str(value)[:40]!r}")
                offset += len(c["categories"])
    return x


def _category(value: Any, categories: list[str], source, line, name) -> int | None:
    """The position of ``value`` among ``categories``, None for an unknown one (all zeros).
    An integral JSON float (``75001.0``, as pandas writes integers of a column with nulls) also
    names the integer category ``"75001"``, a JSON boolean names ``true``/``True``/``TRUE``; a list
    or an object is an error, not a category."""
    if isinstance(value, (list, dict)):
        raise fail(source, line, name, f"expected a string or a number, got {json.dumps(value)[:40]}")
    text = "" if value is None else str(value).strip()
    if not text:
        raise fail(source, line, name, "empty value")
    if text not in categories and isinstance(value, float) and value.is_integer():
        text = str(int(value))
    if text not in categories and isinstance(value, bool):  # JSON true: a CSV's true, True or TRUE
        text = next((t for t in (text.lower(), text.upper()) if t in categories), text)
    return categories.index(text) if text in categories else None


def _number(value: Any, source, line, name) -> float:
    if isinstance(value, bool) or value is None:
        raise fail(source, line, name, f"{json.dumps(value)} is not a number")
    if isinstance(value, str) and not value.strip():
        raise fail(source, line, name, "empty value")
    try:
        number = float(value)
    except OverflowError:  # a JSON integer beyond float64
        number = math.inf
    except (TypeError, ValueError):
        raise fail(source, line, name, f"{str(value)[:40]!r} is not a number") from None
    if not math.isfinite(number) or abs(number) >= FLOAT32_OVERFLOW:  # inf as the model's float32
        raise fail(source, line, name, f"{str(value)[:40]} is not a finite number")
    return number
