"""Generator checkpoints -> ONNX -> TensorRT engines (Jetson AGX Xavier and desktop).
Depends on the model side of `compress` (models, checkpoints, profile, palettes, atomic) and on
`engines`, whose pre-processing and runners verify what it builds (INT8 calibration inputs,
parity checks); never imported by `compress` or `engines`."""
