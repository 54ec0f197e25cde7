"""A minimal MLServer runtime around onnxruntime: the peer server of ``serve_load.py --peer mlserver``.

The same session options as ``zoo serve`` (no spinning, sequential execution, all graph
optimisations), one ``session.run`` per request (or per adaptive batch, when MLServer's
``max_batch_size`` > 1 merges them), inputs and outputs through MLServer's NumPy codec.
"""

from __future__ import annotations

import os

import onnxruntime as ort
from mlserver import MLModel
from mlserver.codecs import NumpyCodec
from mlserver.types import InferenceRequest, InferenceResponse


class OnnxRuntime(MLModel):
    async def load(self) -> bool:
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.add_session_config_entry("session.inter_op.allow_spinning", "0")
        threads = int(os.environ.get("ZOO_PEER_THREADS", "0"))
        if threads:
            options.intra_op_num_threads = threads
        path = self._settings.parameters.uri
        self._session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
        self._outputs = [o.name for o in self._session.get_outputs()]
        return True

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        feed = {i.name: NumpyCodec.decode_input(i) for i in payload.inputs}
        results = self._session.run(self._outputs, feed)
        return InferenceResponse(model_name=self.name, id=payload.id,
                                 outputs=[NumpyCodec.encode_output(n, r) for n, r in zip(self._outputs, results)])
