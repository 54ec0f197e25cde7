"""Deployment: ONNX export with its checks, the onnxruntime side (sessions, inputs) and Triton
model repositories.

Builds on ``zoo.core.contract`` and ``zoo.core.train``.
"""
