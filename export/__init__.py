"""Generator checkpoints -> ONNX -> TensorRT engines (Jetson AGX Xavier and desktop).
Depends on `compress.models` only; never imported by `compress`."""
