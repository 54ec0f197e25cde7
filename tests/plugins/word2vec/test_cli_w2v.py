"""``zoo similar`` / ``zoo analogy`` (the word2vec plugin's own commands, added through its
``register_commands`` hook) and bad input at the command line: one-line errors, exit code 2.

The query commands run in-process (click's CliRunner: no interpreter start per call); the bad
corpus runs ``python -m zoo`` as a user would.
"""

from __future__ import annotations

import subprocess

import pytest
from click.testing import CliRunner

# Every test here trains, exports or starts a process: left out of the quick loop.
pytestmark = pytest.mark.slow


@pytest.fixture
def zoo_cli():
    from zoo.cli import main

    def invoke(*args: str) -> subprocess.CompletedProcess:
        result = CliRunner().invoke(main, list(args))
        return subprocess.CompletedProcess(args, result.exit_code, result.stdout, result.stderr)

    return invoke


def test_similar_and_analogy(zoo_cli, planted_run):
    cli = zoo_cli
    run, _ = planted_run
    result = cli("similar", str(run), "cat", "--topn", "4")
    assert result.returncode == 0, result.stderr
    words = [line.split("\t")[0] for line in result.stdout.splitlines()]
    assert set(words) == {"dog", "cow", "horse", "sheep"}
    result = cli("analogy", str(run), "cat", "dog", "red", "--topn", "2")
    assert result.returncode == 0, result.stderr
    assert len(result.stdout.splitlines()) == 2


def test_unknown_words_are_clear_errors(zoo_cli, planted_run):
    cli = zoo_cli
    run, _ = planted_run
    result = cli("similar", str(run), "kat")
    assert result.returncode == 2
    assert result.stderr.strip().startswith("error: word 'kat' is not in the vocabulary (10 words)")
    assert "cat" in result.stderr and len(result.stderr.strip().splitlines()) == 1
    result = cli("analogy", str(run), "cat", "dog", "zebra")
    assert result.returncode == 2 and "'zebra' is not in the vocabulary" in result.stderr


def test_similar_on_a_run_of_another_task(zoo_cli, tmp_path):
    cli = zoo_cli
    (tmp_path / "config.toml").write_text('[model]\nname = "linear"\n')
    (tmp_path / "summary.json").write_text('{"task": "regression"}')
    result = cli("similar", str(tmp_path), "cat")
    assert result.returncode == 2
    assert "is a run of 'linear'; `zoo similar` needs a run of skipgram, cbow, glove" in result.stderr
    result = cli("similar", str(tmp_path), "cat", "--topn", "0")
    assert result.returncode == 2 and "--topn" in result.stderr


def test_bad_corpus_at_the_command_line(cli, write_corpus, tmp_path):
    path = write_corpus(b"caf\xe9\n")
    result = cli("train", "skipgram", "--dataset", "text-file", "--set", f'data.options.path="{path}"',
                 "--set", "data.options.min_count=1", "--out", str(tmp_path / "run"), "-q")
    assert result.returncode == 2
    assert "line 1 is not valid UTF-8" in result.stderr
    assert "Traceback" not in result.stderr
