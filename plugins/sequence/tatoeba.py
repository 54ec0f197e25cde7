"""``tatoeba-eng-fra``: English–French sentence pairs from Tatoeba as distributed for the PyTorch
tutorial "Translation with a sequence to sequence network and attention"
(``https://download.pytorch.org/tutorial/data.zip``, file ``data/eng-fra.txt``).

File format: one pair per line, ``English<TAB>French`` (UTF-8), e.g. ``I am cold.\tJ'ai froid.``.

Preparation, as in the tutorial (so the numbers are comparable with it):

1. normalise both sides: lower case, accents stripped to ASCII (NFD, combining marks dropped),
   a space before ``. ! ?``, every other run of non-letters → one space;
2. keep pairs whose two sides have fewer than ``max_length`` words and whose English side starts
   with one of the tutorial's prefixes (``i am``, ``he is``, ``you are``, ... in full and
   contracted form; ``english_prefixes = false`` keeps every sentence start);
3. translate French → English (``direction = "fra-eng"``, the tutorial's choice) or the reverse;
4. a seeded ``test_fraction`` of the pairs is the test split; one vocabulary (``<pad> <unk>
   <bos> <eos>``, then training words by frequency) serves both languages, words seen fewer than
   ``min_freq`` times in training become ``<unk>``.

The task is ``translation`` (exact match and corpus BLEU of the greedy decode).
"""

from __future__ import annotations

import re
import unicodedata
from typing import Literal

import torch
from pydantic import Field
from zoo.core.train.data import Dataset, locate
from zoo.core.train.options import DataOptions, seed_field
from zoo.core.contract.errors import ZooError
from zoo.plugins.sequence.pipeline import PAD, UNK, Vocabulary
from zoo.plugins.sequence.seq2seq_data import BOS, EOS, make_dataset, make_split

FILE = "tatoeba/data/eng-fra.txt"
#: the English sentence starts the tutorial keeps (after normalisation: "i'm" became "i m")
ENGLISH_PREFIXES = ("i am ", "i m ", "he is", "he s ", "she is", "she s ", "you are", "you re ",
                    "we are", "we re ", "they are", "they re ")


class TatoebaOptions(DataOptions):
    """``data.options`` of ``tatoeba-eng-fra``."""

    direction: Literal["fra-eng", "eng-fra"] = Field("fra-eng", description="Source-target languages "
                                                     "(the tutorial translates French to English).")
    max_length: int = Field(10, ge=2, le=100, description="Keep pairs whose sides have fewer words than this.")
    english_prefixes: bool = Field(True, description="Keep only English sentences starting 'i am', "
                                   "'he is', 'you are', ... (the tutorial's filter).")
    min_freq: int = Field(1, ge=1, le=1000, description="Words seen fewer times in training become <unk>.")
    test_fraction: float = Field(0.1, gt=0.0, lt=1.0, description="Share of the pairs held out for testing.")
    seed: int = seed_field("the train/test split")


def normalize(text: str) -> str:
    """The tutorial's ``normalizeString``: ``"J'ai froid."`` → ``"j ai froid ."``."""
    text = "".join(c for c in unicodedata.normalize("NFD", text.lower().strip())
                   if unicodedata.category(c) != "Mn")
    text = re.sub(r"([.!?])", r" \1", text)
    return re.sub(r"[^a-z.!?]+", " ", text).strip()


def read_pairs(path, o: TatoebaOptions) -> list[tuple[list[str], list[str]]]:
    """``(source words, target words)`` of every line that passes the filters of step 2."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as err:
        raise ZooError(f"{path}: not UTF-8 text ({err.reason} at byte {err.start})") from None
    pairs = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        parts = line.split("\t")
        if len(parts) < 2:
            raise ZooError(f"{path} line {number}: expected English<TAB>French, got {line[:60]!r}")
        eng, fra = normalize(parts[0]), normalize(parts[1])
        if o.english_prefixes and not eng.startswith(ENGLISH_PREFIXES):
            continue
        eng_words, fra_words = eng.split(), fra.split()
        if not eng_words or not fra_words or max(len(eng_words), len(fra_words)) >= o.max_length:
            continue
        pairs.append((fra_words, eng_words) if o.direction == "fra-eng" else (eng_words, fra_words))
    if len(pairs) < 2:
        raise ZooError(f"{path}: {len(pairs)} pair(s) pass the filters (max_length {o.max_length}, "
                       f"english_prefixes {o.english_prefixes}); need at least 2")
    return pairs


def load_tatoeba(options: TatoebaOptions | None, configured_dir: str | None) -> Dataset:
    o = options or TatoebaOptions()
    pairs = read_pairs(locate("tatoeba-eng-fra", [FILE], configured_dir) / FILE, o)
    order = torch.randperm(len(pairs), generator=torch.Generator().manual_seed(o.seed)).tolist()
    n_test = max(1, int(round(len(pairs) * o.test_fraction)))
    train_rows, test_rows = order[n_test:], order[:n_test]
    built = Vocabulary.build([w for i in train_rows for w in pairs[i]], o.min_freq,
                             lowercase=True, tokenizer="whitespace")
    vocab = Vocabulary([PAD, UNK, BOS, EOS, *built.tokens[2:]], lowercase=True, tokenizer="whitespace")

    def split(rows):
        return make_split([vocab.encode(pairs[i][0]) for i in rows], [vocab.encode(pairs[i][1]) for i in rows])

    max_source = max(len(pairs[i][0]) for i in train_rows)
    max_target = max(len(p[1]) for p in pairs)
    return make_dataset(vocab, split(train_rows), split(test_rows), max_source, max_target,
                        onnx_direction=o.direction)
