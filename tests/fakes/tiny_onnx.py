"""Tiny generator ONNX files for TensorRT tests, exported once per process.

Built here with the legacy exporter (``dynamo=False``, opset 17, the TensorRT 8.5 common
denominator) rather than export.onnx, so the TensorRT tests do not depend on it. Inputs are
named "input", outputs "output", and metadata_props["gan_compression"] holds the checkpoint
metadata, as export.onnx writes them. Treat the returned files as read-only (they are shared).
"""
import atexit
import json
import os
import shutil
import tempfile
import warnings
from typing import Dict, Optional, Tuple

_CACHE: Dict[tuple, str] = {}
_DIR: Optional[str] = None
CONFIG = "8_8_8_8_8_8_8_8"


def tiny_onnx(input_kind: str = "image", dynamic: bool = False, resolution: Tuple[int, int] = (64, 64),
              palette: Optional[str] = None) -> str:
    """Path of a sub_mobile_resnet_9blocks (all widths 8) ONNX for ``resolution``;
    ``dynamic`` makes batch, height and width symbolic."""
    global _DIR
    key = (input_kind, dynamic, tuple(resolution), palette)
    if key in _CACHE:
        return _CACHE[key]
    import onnx
    import torch

    from compress.models.checkpoints import generator_metadata
    from compress.models import build_generator
    if _DIR is None:
        _DIR = tempfile.mkdtemp(prefix="tiny-onnx-")
        atexit.register(shutil.rmtree, _DIR, True)
    torch.manual_seed(0)
    model = build_generator("sub_mobile_resnet_9blocks", config=CONFIG).eval()
    # profile=False: MAC counting (a torchprofile trace) costs seconds and no test needs it.
    meta = generator_metadata(model, resolution=tuple(resolution), palette=palette,
                              input_kind=input_kind, profile=False)
    name = f"tiny-{input_kind}-{'dyn' if dynamic else 'static'}-{resolution[0]}x{resolution[1]}"
    path = os.path.join(_DIR, name + ".onnx")
    axes = {"input": {0: "batch", 2: "height", 3: "width"},
            "output": {0: "batch", 2: "height", 3: "width"}} if dynamic else None
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (torch.zeros(1, 3, *resolution),), path, dynamo=False,
                          opset_version=17, input_names=["input"], output_names=["output"],
                          dynamic_axes=axes)
    proto = onnx.load(path)
    entry = proto.metadata_props.add()
    entry.key, entry.value = "gan_compression", json.dumps(meta)
    onnx.save(proto, path)
    _CACHE[key] = path
    return path
