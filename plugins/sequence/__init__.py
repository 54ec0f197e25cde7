"""What every sequence family shares (RNNs, transformers): families never import each other, so
what both need lives here.

- :mod:`~zoo.plugins.sequence.pipeline`: text → ids → padded batches with lengths and masks, and
  the sequence tasks (classification, tagging, regression, the autoencoder);
- :mod:`~zoo.plugins.sequence.seq2seq_data`: the generated ``reverse``, ``sort`` and ``addition``
  datasets and the vocabulary and batches they share; :mod:`~zoo.plugins.sequence.tatoeba`: the
  English–French sentence pairs of the PyTorch translation tutorial (``tatoeba-eng-fra``);
- :mod:`~zoo.plugins.sequence.seq2seq_task`: the ``seq2seq`` task (teacher-forced loss, exact
  match of the greedy decode) and ``translation`` (the same plus corpus BLEU);
- :mod:`~zoo.plugins.sequence.by_length`: the exact match by source length written into every
  finished seq2seq run directory (``match_by_length.json`` and ``.png``).

All of it is registered by the ``sequence`` plugin (:mod:`~zoo.plugins.sequence.plugin`).
"""
