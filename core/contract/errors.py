"""User-facing errors.

A :class:`ZooError` is raised for anything the user can fix (bad config, unknown model, missing
data). The CLI prints its message and exits with code 2, without a traceback; every other
exception is a bug and keeps its traceback under ``--debug``.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class ZooError(Exception):
    """An error the user can act on; ``str(err)`` is the whole message."""

    exit_code = 2


class DataUnavailable(ZooError):
    """A dataset's files or the package that provides them are missing."""


class DataNotFound(DataUnavailable):
    """A public dataset's files are in none of the data roots (:func:`zoo.core.train.data.locate`).

    ``dataset`` is its catalogue name and ``looked`` the roots searched, so ``zoo train`` can fetch
    it into the cache (unless offline) and try again, and the message can name ``zoo data fetch``.
    """

    def __init__(self, dataset: str, files: list[str], looked: list[str]) -> None:
        self.dataset, self.files, self.looked = dataset, files, looked
        missing = files[0] if len(files) == 1 else f"{files[0]} (and {len(files) - 1} more files)"
        super().__init__(f"dataset {dataset!r}: {missing} not found (looked in {', '.join(looked) or 'nowhere'}); "
                         f"run `zoo data fetch {dataset}`, or put the files under DIR and pass "
                         f"--data-dir DIR or set ZOO_DATA_DIR=DIR")


class NonFiniteLoss(ZooError):
    """Training produced a NaN or infinite loss."""

    exit_code = 3


class TrainingInterrupted(ZooError):
    """Ctrl-C or SIGTERM: a resumable checkpoint has been written."""

    exit_code = 130


class RunStopped(ZooError):
    """An ``on_epoch_end`` listener ended the run on purpose, after the epoch's checkpoint and
    metrics were written (a sweep pruning an unpromising trial): the run directory stays valid and
    its summary's status is :attr:`status`. The only exception a training-event hook may raise
    that is not swallowed (:meth:`zoo.core.contract.plugins.Zoo.emit`)."""

    exit_code = 1
    status = "pruned"


class ExportError(ZooError):
    """The ONNX export or its parity check failed; no model.onnx was left behind.

    Raised by ``zoo train`` after the run's summary is written (training and test finished,
    ``export: failed``): then ``summary`` is that summary.
    """

    exit_code = 4
    summary: dict | None = None


#: More valid names than this and the message points to the command that lists them.
LONGEST_LIST = 20


def did_you_mean(name: str, choices: Iterable[str], what: str, listed_by: str = "zoo list") -> str:
    """``unknown model 'modle'; did you mean: model? (valid: baseline, model, small-model)``.

    Each valid name appears once; when there are more than :data:`LONGEST_LIST`, the message
    says how many and which command lists them (``listed_by``) instead of a cut-off list.
    """
    choices = sorted(set(choices))
    close = difflib.get_close_matches(name, choices, n=3, cutoff=0.5)
    message = f"unknown {what} {name!r}"
    if close:
        message += f"; did you mean: {', '.join(close)}?"
    if len(choices) > LONGEST_LIST:
        return message + f" (valid: {len(choices)} names; `{listed_by}` shows them)"
    return message + f" (valid: {', '.join(choices)})"


def first_non_utf8_line(path) -> int:
    """The first line of the file at ``path`` holding bytes that are not UTF-8, for the error a
    ``UnicodeDecodeError`` becomes (a decoder reads ahead: its position does not say the line)."""
    with open(path, "rb") as f:
        for number, raw in enumerate(f, start=1):
            try:
                raw.decode("utf-8")
            except UnicodeDecodeError:
                return number
    return 1
