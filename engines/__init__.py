"""Runs any exported generator behind one contract (PyTorch, ONNX Runtime, TensorRT) and
benchmarks latency. Depends on `compress.models` only for PyTorch checkpoints; no Qt here."""
