"""Test doubles for hardware this machine lacks: a strict fake TensorRT (8.5/10/11), fake CUDA
memory behind pycuda/polygraphy/DeviceBuffers fronts, and tiny exported generator ONNX files."""
