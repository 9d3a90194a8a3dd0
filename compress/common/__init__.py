"""Torch-free foundations shared by every part of the project: atomic, no-overwrite writes
(``atomic``), typed stage configs loaded from TOML and ``--key=value`` (``config``), the label
palettes (``palettes``) and the one ``main()`` wrapper every command uses (``cli``).

Nothing here imports torch: the app and the ONNX / TensorRT runners use it on a Jetson without it.
"""
