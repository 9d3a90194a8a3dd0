"""OnnxRuntimeEngine: metadata, static/dynamic shapes, agreement with PyTorch, session options,
errors, and the torch-free (Jetson) path."""
import json
import textwrap
from pathlib import Path

import numpy as np
import onnx
import onnxruntime
import pytest

from tests.conftest import run_python

from engines.base import METADATA_KEY
from engines.factory import open_engine
from engines.onnx_engine import OnnxRuntimeEngine, read_onnx_metadata

REPO = Path(__file__).resolve().parents[2]


def test_metadata_travels_in_the_onnx_file(tiny_models):
    meta = read_onnx_metadata(str(tiny_models["student.onnx"]))
    assert meta["arch"] == "sub_mobile_resnet_9blocks"
    assert meta["build"]["config"] == "8_8_8_8_8_8_8_8"
    assert meta["resolution"] == [64, 64] and meta["palette"] == "facades"
    assert meta["macs"] == 27_877_376 and meta["params"] == 38_723
    with OnnxRuntimeEngine(str(tiny_models["student.onnx"])) as engine:
        assert engine.metadata == meta


@pytest.mark.parametrize("name", ["student", "teacher"])
def test_onnx_runtime_agrees_with_pytorch_on_the_same_checkpoint(tiny_models, label_batch, name):
    with open_engine(tiny_models[f"{name}.safetensors"]) as reference, \
            open_engine(tiny_models[f"{name}.onnx"]) as engine:
        expected = reference.infer(label_batch)
        output = engine.infer(label_batch)
    assert output.shape == expected.shape == (1, 3, 64, 64)
    assert np.abs(output - expected).max() <= 1e-4
    assert expected.std() > 0.01  # random weights still give a non-constant picture


def test_static_model_checks_the_exported_size(tiny_models):
    with open_engine(tiny_models["student.onnx"]) as engine:
        spec = engine.input_spec
        assert (spec.name, spec.channels, spec.height, spec.width) == ("input", 3, 64, 64)
        assert not spec.dynamic and engine.resolution == (64, 64)
        with pytest.raises(ValueError, match=r"exported for 64x64, got 96x128.*--dynamic"):
            engine.infer(np.zeros((1, 3, 96, 128), np.float32))
        with pytest.raises(ValueError, match="expected float"):
            engine.infer(np.zeros((1, 3, 64, 64), np.uint8))


def test_dynamic_model_runs_other_sizes_and_agrees_with_pytorch(tiny_models):
    batch = np.random.default_rng(1).uniform(-1, 1, (1, 3, 96, 128)).astype(np.float32)
    with open_engine(tiny_models["student_dynamic.onnx"]) as engine, \
            open_engine(tiny_models["student.safetensors"]) as reference:
        assert engine.input_spec.dynamic and engine.input_spec.channels == 3
        assert engine.resolution == (64, 64)  # from the metadata
        output = engine.infer(batch)
        assert output.shape == (1, 3, 96, 128)
        assert np.abs(output - reference.infer(batch)).max() <= 1e-4
        with pytest.raises(ValueError, match="multiples of 4, got 66x64"):
            engine.infer(np.zeros((1, 3, 66, 64), np.float32))


def test_optimisation_levels_and_threads_are_configurable(tiny_models, label_batch):
    path = str(tiny_models["teacher.onnx"])
    with OnnxRuntimeEngine(path, optimization="disable", threads=1, spinning=False) as plain, \
            OnnxRuntimeEngine(path) as optimised:
        assert plain.session_options.intra_op_num_threads == 1
        assert plain.session_options.get_session_config_entry("session.intra_op.allow_spinning") == "0"
        assert plain.session_options.graph_optimization_level == \
            onnxruntime.GraphOptimizationLevel.ORT_DISABLE_ALL
        assert optimised.session_options.graph_optimization_level == \
            onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
        assert np.abs(plain.infer(label_batch) - optimised.infer(label_batch)).max() <= 1e-4
    with pytest.raises(ValueError, match="unknown graph optimisation level 'max'.*disable, basic"):
        OnnxRuntimeEngine(path, optimization="max")
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 2
    with OnnxRuntimeEngine(path, session_options=options) as engine:
        assert engine.session_options is options


def test_missing_gpu_provider_is_an_error_not_a_silent_cpu_fallback(tiny_models):
    if "CUDAExecutionProvider" in onnxruntime.get_available_providers():
        pytest.skip("this onnxruntime has the CUDA provider")
    with pytest.raises(ValueError, match=r"student\.onnx.*CUDAExecutionProvider.*onnxruntime-gpu"):
        open_engine(tiny_models["student.onnx"], device="cuda")
    with pytest.raises(ValueError, match=r"TensorrtExecutionProvider.*device='cpu'"):
        open_engine(tiny_models["student.onnx"], device="tensorrt")
    with pytest.raises(ValueError, match="CUDAExecutionProvider"):
        open_engine(tiny_models["student.onnx"], device="cuda:1")
    with pytest.raises(ValueError, match=r"unknown device 'tensorrt:1'.*cuda:N"):
        OnnxRuntimeEngine(str(tiny_models["student.onnx"]), device="tensorrt:1")


def test_broken_and_metadata_free_files(tiny_models, tmp_path):
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(tiny_models["student.onnx"].read_bytes()[:2000])
    with pytest.raises(ValueError, match=r"broken\.onnx: ONNX Runtime cannot load.*re-export"):
        open_engine(broken)
    proto = onnx.load(str(tiny_models["student.onnx"]))
    del proto.metadata_props[:]
    bare = tmp_path / "bare.onnx"
    onnx.save(proto, str(bare))
    assert read_onnx_metadata(str(bare)) == {}
    with open_engine(bare) as engine:  # still runs; callers fall back to channel-based guesses
        assert engine.metadata == {} and engine.resolution == (64, 64)
        assert engine.infer(np.zeros((1, 3, 64, 64), np.float32)).shape == (1, 3, 64, 64)
    entry = proto.metadata_props.add()
    entry.key, entry.value = METADATA_KEY, "{not json"
    onnx.save(proto, str(bare))
    with pytest.raises(ValueError, match=r"bare\.onnx.*not valid JSON"):
        read_onnx_metadata(str(bare))
    with pytest.raises(FileNotFoundError, match="missing.onnx"):
        read_onnx_metadata(str(tmp_path / "missing.onnx"))


def test_onnx_path_runs_with_torch_unimportable(tiny_models, label_batch, tmp_path):
    """The Jetson path: open + pre-process + infer + post-process an .onnx without torch."""
    np.save(tmp_path / "batch.npy", label_batch)
    with open_engine(tiny_models["student.onnx"]) as engine:
        np.save(tmp_path / "expected.npy", engine.infer(label_batch))
    code = textwrap.dedent(f"""
        import sys
        sys.modules["torch"] = None  # any "import torch" now raises ImportError
        import numpy as np
        from engines import open_engine
        from engines.preprocess import make_preprocessor
        with open_engine({str(tiny_models["student.onnx"])!r}, threads=1) as engine:
            output = engine.infer(np.load({str(tmp_path / "batch.npy")!r}))
            prepare = make_preprocessor(engine.metadata, engine.input_spec)
            label_map = np.full((128, 128), 2, np.uint8)
            image = prepare.to_image(engine.infer(prepare(label_map)), (128, 128))
        expected = np.load({str(tmp_path / "expected.npy")!r})
        assert np.abs(output - expected).max() == 0, "different output without torch"
        assert image.shape == (128, 128, 3) and image.dtype == np.uint8
        loaded = sorted(m for m in sys.modules if m.startswith(("torch", "compress.models")))
        assert loaded == ["torch"] and sys.modules["torch"] is None, loaded
        print("lean ok", engine.metadata["arch"])
    """)
    result = run_python(code)
    assert result.returncode == 0, result.stderr
    assert "lean ok sub_mobile_resnet_9blocks" in result.stdout


def test_metadata_json_round_trip_matches_the_checkpoint(tiny_models):
    from compress.models.checkpoints import read_state_dict
    _, checkpoint_meta = read_state_dict(str(tiny_models["teacher.safetensors"]))
    assert read_onnx_metadata(str(tiny_models["teacher.onnx"])) == json.loads(json.dumps(checkpoint_meta))


def test_a_float16_input_model_is_refused_when_opened(tmp_path):
    from onnx import TensorProto, helper
    graph = helper.make_graph([helper.make_node("Identity", ["input"], ["output"])], "half",
                              [helper.make_tensor_value_info("input", TensorProto.FLOAT16, [1, 3, 64, 64])],
                              [helper.make_tensor_value_info("output", TensorProto.FLOAT16, [1, 3, 64, 64])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path = tmp_path / "half.onnx"
    onnx.save(model, str(path))
    with pytest.raises(ValueError, match="half.onnx: input 'input' is tensor\\(float16\\).*float32"):
        open_engine(path)
