"""Tiny generators for the engine tests: a pix2pix-style facades label -> photo student
(sub_mobile_resnet_9blocks, all widths 8) and teacher (resnet_9blocks, ngf 8) at 64x64, saved
as project .safetensors and exported to ONNX (static [1,3,64,64] and dynamic H/W) with the
checkpoint metadata in the ONNX metadata_props, as export/onnx.py writes it."""
import json
import warnings
from pathlib import Path
from typing import Dict

import onnx
import pytest
import torch

from compress.models.checkpoints import generator_metadata, save_generator
from compress.models import build_generator
from engines.base import INPUT_NAME, METADATA_KEY, OUTPUT_NAME

SIZE = 64
STUDENT = {"arch": "sub_mobile_resnet_9blocks", "config": "8_8_8_8_8_8_8_8"}
TEACHER = {"arch": "resnet_9blocks", "ngf": 8}


def export_onnx(model: torch.nn.Module, meta: Dict, path: Path, dynamic: bool = False) -> Path:
    """Legacy (TorchScript) export at opset 17, then the metadata JSON as a metadata_prop."""
    example = torch.randn(1, model.input_nc, SIZE, SIZE)
    axes = {INPUT_NAME: {2: "height", 3: "width"}, OUTPUT_NAME: {2: "height", 3: "width"}}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # TorchScript-exporter deprecation chatter
        torch.onnx.export(model, (example,), str(path), dynamo=False, opset_version=17,
                          input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                          dynamic_axes=axes if dynamic else None)
    proto = onnx.load(str(path))
    entry = proto.metadata_props.add()
    entry.key, entry.value = METADATA_KEY, json.dumps(meta)
    onnx.save(proto, str(path))
    return path


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """Tiny models run fastest on one thread, and on a busy 2-core machine torch's OpenMP
    barriers can stall multi-threaded runs for seconds; restored after each test."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory) -> Dict[str, Path]:
    """Paths of the tiny models: {student,teacher}.{safetensors,onnx} and student_dynamic.onnx."""
    folder = tmp_path_factory.mktemp("tiny_models")
    torch.manual_seed(0)
    threads_before = torch.get_num_threads()
    torch.set_num_threads(1)  # session fixture: runs before the per-test thread setting
    paths = {}
    for name, spec in (("student", STUDENT), ("teacher", TEACHER)):
        build = {k: v for k, v in spec.items() if k != "arch"}
        model = build_generator(spec["arch"], **build).eval()
        meta = generator_metadata(model, resolution=(SIZE, SIZE), palette="facades",
                                  input_kind="label")
        paths[f"{name}.safetensors"] = folder / f"{name}.safetensors"
        save_generator(model, str(paths[f"{name}.safetensors"]), meta=meta)
        paths[f"{name}.onnx"] = export_onnx(model, meta, folder / f"{name}.onnx")
        if name == "student":
            paths["student_dynamic.onnx"] = export_onnx(model, meta, folder / "student_dynamic.onnx",
                                                        dynamic=True)
    torch.set_num_threads(threads_before)
    return paths


@pytest.fixture
def label_batch():
    """A [1, 3, 64, 64] input in [-1, 1] (colours of a random facades label map)."""
    generator = torch.Generator().manual_seed(3)
    return (torch.rand(1, 3, SIZE, SIZE, generator=generator) * 2 - 1).numpy()
