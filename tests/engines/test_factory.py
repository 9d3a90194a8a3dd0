"""open_engine: dispatch on the extension, forced backends, and errors that name the file."""
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import run_python

from engines.factory import BACKEND_EXTENSIONS, OPENERS, open_engine
from engines.onnx_engine import OnnxRuntimeEngine
from engines.torch_engine import PyTorchEngine

REPO = Path(__file__).resolve().parents[2]


def test_extensions_pick_the_engine(tiny_models):
    with open_engine(tiny_models["student.safetensors"]) as engine:
        assert isinstance(engine, PyTorchEngine) and engine.backend == "torch"
        assert engine.device == "cpu"
    with open_engine(str(tiny_models["student.onnx"])) as engine:
        assert isinstance(engine, OnnxRuntimeEngine) and engine.backend == "onnxruntime"
    with open_engine(tiny_models["student.onnx"], backend="onnxruntime", device="cpu", threads=1) as engine:
        assert engine.session_options.intra_op_num_threads == 1
    with open_engine(tiny_models["student.safetensors"], backend="torch") as engine:
        assert isinstance(engine, PyTorchEngine)
    assert set(OPENERS) == {ext for exts in BACKEND_EXTENSIONS.values() for ext in exts}


def test_engine_is_a_context_manager_and_refuses_use_after_close(tiny_models, label_batch):
    with open_engine(tiny_models["student.onnx"]) as engine:
        output = engine.infer(label_batch)
        assert output.shape == (1, 3, 64, 64) and engine.last_latency_ms > 0
    assert not engine.is_open
    with pytest.raises(RuntimeError, match="closed"):
        engine.infer(label_batch)


def test_backend_that_does_not_fit_the_file_names_file_and_choices(tiny_models):
    onnx_path = str(tiny_models["student.onnx"])
    with pytest.raises(ValueError, match=r"student\.onnx.*'torch' opens \.safetensors/\.pth"):
        open_engine(onnx_path, backend="torch")
    with pytest.raises(ValueError, match=r"unknown backend 'tflite'.*torch, onnxruntime, tensorrt"):
        open_engine(onnx_path, backend="tflite")
    with pytest.raises(ValueError, match=r"unknown device .npu.*cpu, cuda, cuda:N, tensorrt"):
        open_engine(onnx_path, device="npu")
    with pytest.raises(ValueError, match=r"takes no option build.*optimization"):
        open_engine(onnx_path, build={"arch": "resnet_9blocks"})


def test_unknown_extension_and_missing_file(tmp_path):
    weird = tmp_path / "model.tflite"
    weird.write_bytes(b"x")
    with pytest.raises(ValueError, match=r"model\.tflite.*'\.tflite'.*\.safetensors, \.pth, \.onnx"):
        open_engine(weird)
    missing = tmp_path / "nowhere" / "student.onnx"
    with pytest.raises(FileNotFoundError, match=r"expected .*nowhere/student\.onnx"):
        open_engine(missing)


def test_tensorrt_engine_refuses_cpu_before_importing_tensorrt(tmp_path):
    plan = tmp_path / "student.engine"
    plan.write_bytes(b"not really an engine")
    with pytest.raises(ValueError, match=r"student\.engine.*GPU only.*open the \.onnx"):
        open_engine(plan, device="cpu")


def test_importing_engines_loads_no_backend():
    code = ("import sys, engines, engines.factory\n"
            "loaded = [m for m in ('torch', 'onnxruntime', 'tensorrt') if m in sys.modules]\n"
            "assert not loaded, loaded\n")
    result = run_python(code)
    assert result.returncode == 0, result.stderr


def test_torch_and_onnx_engines_of_one_model_describe_the_same_model(tiny_models):
    with open_engine(tiny_models["teacher.safetensors"]) as torch_engine, \
            open_engine(tiny_models["teacher.onnx"]) as onnx_engine:
        for key in ("arch", "macs", "params", "palette", "input_kind"):
            assert torch_engine.metadata[key] == onnx_engine.metadata[key]
        assert torch_engine.resolution == onnx_engine.resolution == (64, 64)
        assert "resnet_9blocks" in onnx_engine.describe() and "onnxruntime on cpu" in onnx_engine.describe()
        assert np.isclose(onnx_engine.metadata["macs"], 64_151_552)
