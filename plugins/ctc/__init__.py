"""CTC family: sequence recognition without alignments (Graves et al. 2006) with a CRNN (Shi et
al. 2016): a conv feature extractor over the frames (image columns, audio frames), bidirectional
LSTM/GRU layers and a linear layer over the symbols plus the blank, trained with
``torch.nn.CTCLoss``.

``task`` is the ``sequence-recognition`` task (CTC loss, character error rate, exact match;
greedy or prefix-beam decoding after the ONNX session in ``zoo predict`` / ``zoo serve``),
``decode`` the decoders and the edit distance (numpy only), ``models`` the CRNN, ``data`` the
generated ``digit-strings`` and ``audio`` the ``spoken-digit-strings`` (Free Spoken Digit Dataset
recordings joined into strings, log-mel features computed with ``torch.stft``).
"""

from __future__ import annotations

from zoo import hookimpl
from zoo.plugins.ctc.audio import SpokenDigitOptions, load_spoken_digit_strings
from zoo.plugins.ctc.data import DigitStringOptions, load_digit_strings
from zoo.plugins.ctc.models import CRNNConfig, build_crnn
from zoo.plugins.ctc.task import SequenceRecognition


@hookimpl
def register_tasks(register):
    register(SequenceRecognition())


@hookimpl
def register_models(register):
    register("crnn-ctc", build_crnn, CRNNConfig)


@hookimpl
def register_datasets(register):
    register("digit-strings", load_digit_strings, DigitStringOptions)
    register("spoken-digit-strings", load_spoken_digit_strings, SpokenDigitOptions)
