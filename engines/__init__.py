"""Runs any exported generator behind one contract (PyTorch, ONNX Runtime, TensorRT) and
benchmarks latency. Depends on `compress.models` only for PyTorch checkpoints; no Qt here.

``from engines import open_engine`` is the entry point; importing this package loads no
backend (the factory imports torch, onnxruntime or TensorRT only when a file needs it).
"""
from engines.base import Engine, InputSpec
from engines.factory import open_engine

__all__ = ["Engine", "InputSpec", "open_engine"]
