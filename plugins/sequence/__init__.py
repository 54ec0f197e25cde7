"""The sequence pipeline every sequence family shares (RNNs, transformers): text → ids → padded
batches with lengths and masks (:mod:`~zoo.plugins.sequence.pipeline`), and the sequence tasks,
registered by the ``sequence`` plugin (:mod:`~zoo.plugins.sequence.plugin`)."""
