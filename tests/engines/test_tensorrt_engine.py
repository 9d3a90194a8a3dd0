"""TensorRTEngine on the strict fake TensorRT (8.5, 10, 11) and fake CUDA memory: the runner's
whole path (shapes, addresses, execute_async_v3, copies back) against ONNX Runtime, thread
ownership, engine/GPU mismatch errors, the CUDA buffer backends and the torch-free import."""
import json
import shutil
import sys
import threading

import numpy as np
import onnxruntime as ort
import pytest

import export.tensorrt as cli
from engines import cuda_buffers
from engines.cuda_buffers import PolygraphyBuffers, PyCudaBuffers, open_device_buffers
from engines.tensorrt_engine import (TENSORRT_MISSING, TensorRTEngine, TensorRTEngineError, parse_device,
                                     read_sidecar)
from tests.conftest import run_python
from tests.fakes import fake_tensorrt
from tests.fakes.fake_cuda import MEMORY, FakeDeviceBuffers, install_fake_polygraphy
from tests.fakes.fake_pycuda import install_for_buffers


def build(monkeypatch, tmp_path, onnx_path, version="10.3.0", precision="fp32", shapes=None, **kw):
    fake_tensorrt.install_for_build(monkeypatch, version, **kw)
    return cli.ensure_engine(onnx_path, precision, shapes, cache_dir=str(tmp_path),
                             log=lambda m: None).engine_path


def reference(onnx_path, batch):
    return ort.InferenceSession(onnx_path).run(None, {"input": batch})[0]


def batch_of(height=64, width=64, seed=0):
    return np.random.default_rng(seed).uniform(-1, 1, (1, 3, height, width)).astype(np.float32)


@pytest.mark.parametrize("version", fake_tensorrt.VERSIONS)
def test_static_engine_matches_onnxruntime_and_frees_everything(monkeypatch, tmp_path, static_onnx,
                                                                version):
    path = build(monkeypatch, tmp_path, static_onnx, version)
    live = MEMORY.live
    buffers = FakeDeviceBuffers()
    engine = TensorRTEngine(path, buffers=buffers)
    assert engine.backend == "tensorrt" and engine.device == "cuda:0" and engine.precision == "fp32"
    assert engine.metadata["palette"] == "facades" and engine.metadata["input_kind"] == "label"
    spec = engine.input_spec
    assert (spec.name, spec.channels, spec.height, spec.width, spec.multiple_of) == ("input", 3, 64, 64, 4)
    for seed in range(2):  # second call reuses the bound buffers
        batch = batch_of(seed=seed)
        np.testing.assert_array_equal(engine.infer(batch), reference(static_onnx, batch))
    assert engine.last_latency_ms > 0 and f"TensorRT {version}" in engine.describe()
    assert MEMORY.live == live + 2  # one input and one output buffer
    engine.close()
    engine.close()  # idempotent
    assert buffers.closed and MEMORY.live == live
    with pytest.raises(RuntimeError, match="closed"):
        engine.infer(batch_of())


def test_static_engine_rejects_other_sizes(monkeypatch, tmp_path, static_onnx):
    path = build(monkeypatch, tmp_path, static_onnx)
    with TensorRTEngine(path, buffers=FakeDeviceBuffers()) as engine:
        with pytest.raises(ValueError, match="exported for 64x64"):
            engine.infer(batch_of(32, 32))
        with pytest.raises(ValueError, match="built for batch 1"):
            engine.infer(np.zeros((2, 3, 64, 64), np.float32))


@pytest.mark.parametrize("version", ["8.5.2.2", "11.4.0"])
def test_dynamic_engine_rebinds_for_each_shape(monkeypatch, tmp_path, dynamic_onnx, version):
    path = build(monkeypatch, tmp_path, dynamic_onnx, version, shapes="32x32:64x64:128x128")
    with TensorRTEngine(path, buffers=FakeDeviceBuffers()) as engine:
        assert engine.input_spec.dynamic and engine.resolution == (64, 64)
        for height, width in ((64, 64), (32, 128), (128, 96), (64, 64)):
            batch = batch_of(height, width, seed=height + width)
            output = engine.infer(batch)
            assert output.shape == (1, 3, height, width)
            np.testing.assert_array_equal(output, reference(dynamic_onnx, batch))
        with pytest.raises(ValueError, match="outside the engine's optimization profile.*--shapes"):
            engine.infer(batch_of(160, 64))
        with pytest.raises(ValueError, match="multiples of 4"):
            engine.infer(batch_of(66, 64))


def test_fp16_engine_output_differs_a_little(monkeypatch, tmp_path, static_onnx):
    path = build(monkeypatch, tmp_path, static_onnx, "8.5.2.2", "fp16")
    batch = batch_of()
    with TensorRTEngine(path, buffers=FakeDeviceBuffers()) as engine:
        error = np.abs(engine.infer(batch) - reference(static_onnx, batch)).max()
        assert engine.precision == "fp16"
    assert 0 < error < 5e-3


def test_only_the_owning_thread_may_use_or_close_it(monkeypatch, tmp_path, static_onnx):
    path = build(monkeypatch, tmp_path, static_onnx)
    engine = TensorRTEngine(path, buffers=FakeDeviceBuffers())
    errors = []

    def intruder():
        for call in (lambda: engine.infer(batch_of()), engine.close):
            try:
                call()
            except RuntimeError as error:
                errors.append(str(error))

    thread = threading.Thread(target=intruder, name="gui")
    thread.start()
    thread.join()
    assert len(errors) == 2 and all("thread gui" in e and "one worker thread" in e for e in errors)
    engine.infer(batch_of())  # still usable by its owner
    engine.close()


def test_a_worker_thread_can_own_the_whole_lifecycle(monkeypatch, tmp_path, static_onnx):
    """The Qt pattern: the worker creates, runs and destroys; the GUI only exchanges arrays."""
    path = build(monkeypatch, tmp_path, static_onnx)
    batch, results = batch_of(), {}

    def worker():
        with TensorRTEngine(path, buffers=FakeDeviceBuffers()) as engine:
            results["output"] = engine.infer(batch)

    thread = threading.Thread(target=worker)
    thread.start()
    thread.join()
    np.testing.assert_array_equal(results["output"], reference(static_onnx, batch))


def test_each_result_is_its_own_once_the_stream_has_run(monkeypatch, tmp_path, static_onnx):
    """The stand-in's stream runs copies and inference only at synchronize, reading the host
    arrays then: a result read before the wait, or one aliasing the output staging array that the
    next inference overwrites, or an input changed before the copy ran, would not match."""
    path = build(monkeypatch, tmp_path, static_onnx)
    first, second = batch_of(seed=1), batch_of(seed=2)
    expected = reference(static_onnx, first)
    with TensorRTEngine(path, buffers=FakeDeviceBuffers()) as engine:
        out_first = engine.infer(first)
        first[:] = 0  # the caller reuses its array: the engine must be done with it
        out_second = engine.infer(second.astype(np.float64))  # converted: a temporary staging copy
    np.testing.assert_array_equal(out_first, expected)
    np.testing.assert_array_equal(out_second, reference(static_onnx, second))


def test_a_failed_enqueue_still_waits_for_the_queued_upload(monkeypatch, tmp_path, static_onnx):
    """execute_async_v3 returning False leaves the input upload queued: the engine must wait for
    it before the staging array goes and before close() frees the device memory it writes."""
    path = build(monkeypatch, tmp_path, static_onnx)
    trt = sys.modules["tensorrt"]
    buffers, live = FakeDeviceBuffers(), MEMORY.live
    engine = TensorRTEngine(path, buffers=buffers)
    monkeypatch.setattr(trt.IExecutionContext, "execute_async_v3", lambda self, stream: False)
    with pytest.raises(TensorRTEngineError, match="execute_async_v3 failed"):
        engine.infer(batch_of())
    assert buffers.stream.pending == 0
    engine.close()  # the stand-in fails a free of memory that queued work still uses
    assert buffers.closed and MEMORY.live == live


@pytest.mark.parametrize("raises", [False, True])
def test_engine_from_another_tensorrt_version_says_how_to_rebuild(monkeypatch, tmp_path, static_onnx,
                                                                   raises):
    path = build(monkeypatch, tmp_path, static_onnx, "8.5.2.2", "fp16")
    trt = fake_tensorrt.install(monkeypatch, "10.3.0")
    trt._fake.raise_on_bad_engine = raises
    buffers, live = FakeDeviceBuffers(), MEMORY.live
    with pytest.raises(TensorRTEngineError) as caught:
        TensorRTEngine(path, buffers=buffers)
    message = str(caught.value)
    assert "TensorRT 10.3.0 cannot deserialise" in message
    assert "built with TensorRT 8.5.2.2 on FakeGPU (sm_00)" in message
    assert f"python -m export.tensorrt {static_onnx} --precision fp16 -o {path} --force" in message
    assert buffers.closed and MEMORY.live == live


def test_engine_from_another_gpu_is_refused(monkeypatch, tmp_path, static_onnx):
    path = build(monkeypatch, tmp_path, static_onnx, "8.5.2.2", gpu="Xavier (sm_72)")
    fake_tensorrt.install(monkeypatch, "8.5.2.2", gpu="Orin (sm_87)")
    with pytest.raises(TensorRTEngineError, match="built with TensorRT 8.5.2.2 on Xavier"):
        TensorRTEngine(path, buffers=FakeDeviceBuffers())


def test_plan_file_without_sidecar_still_runs(monkeypatch, tmp_path, static_onnx):
    plan = tmp_path / "trtexec.plan"
    shutil.copy(build(monkeypatch, tmp_path, static_onnx), plan)
    with TensorRTEngine(str(plan), buffers=FakeDeviceBuffers()) as engine:
        assert engine.metadata == {} and engine.precision is None
        batch = batch_of()
        np.testing.assert_array_equal(engine.infer(batch), reference(static_onnx, batch))


def test_file_errors(monkeypatch, tmp_path, static_onnx):
    fake_tensorrt.install(monkeypatch, "10.3.0")
    with pytest.raises(ValueError, match=".engine or .plan"):
        TensorRTEngine(static_onnx)
    with pytest.raises(FileNotFoundError, match="python -m export.tensorrt"):
        TensorRTEngine(str(tmp_path / "missing.engine"))
    monkeypatch.setitem(sys.modules, "tensorrt", None)
    (tmp_path / "x.engine").write_bytes(b"x")
    buffers = FakeDeviceBuffers()
    with pytest.raises(TensorRTEngineError) as caught:
        TensorRTEngine(str(tmp_path / "x.engine"), buffers=buffers)
    assert str(caught.value) == TENSORRT_MISSING and buffers.closed


def test_parse_device():
    assert parse_device(None) == parse_device("cuda") == 0 and parse_device("cuda:1") == 1
    with pytest.raises(ValueError, match="--dla-core"):
        parse_device("dla:0")


# ----------------------------------------------------------------------------- CUDA backends

def test_pycuda_backend_pushes_and_pops_the_primary_context_in_its_thread(monkeypatch, tmp_path,
                                                                          static_onnx):
    path = build(monkeypatch, tmp_path, static_onnx)
    driver = install_for_buffers(monkeypatch)
    batch, seen = batch_of(), {}

    def worker():
        with TensorRTEngine(path) as engine:  # picks pycuda: it is "installed"
            seen["backend"] = engine._buffers.backend
            seen["depth"] = len(driver.context_stack())
            seen["output"] = engine.infer(batch)
        seen["after"] = len(driver.context_stack())

    thread = threading.Thread(target=worker)
    thread.start()
    thread.join()
    assert seen["backend"] == "pycuda" and seen["depth"] == 1 and seen["after"] == 0
    np.testing.assert_array_equal(seen["output"], reference(static_onnx, batch))
    assert driver.context_stack() == []  # the main thread never got a context pushed
    assert driver.retains() == 0 and driver.leaks == []  # released once, stream and memory freed


def test_backend_order_pycuda_then_polygraphy_then_torch(monkeypatch, tmp_path, static_onnx):
    install_for_buffers(monkeypatch)
    install_fake_polygraphy(monkeypatch)
    first = open_device_buffers()
    assert isinstance(first, PyCudaBuffers)
    first.close()
    monkeypatch.setitem(sys.modules, "pycuda", None)
    monkeypatch.setitem(sys.modules, "pycuda.driver", None)
    second = open_device_buffers()
    assert isinstance(second, PolygraphyBuffers)
    path = build(monkeypatch, tmp_path, static_onnx)
    live, batch = MEMORY.live, batch_of()
    with TensorRTEngine(path, buffers=second) as engine:
        np.testing.assert_array_equal(engine.infer(batch), reference(static_onnx, batch))
    assert MEMORY.live == live


def test_no_backend_lists_what_was_tried(monkeypatch):
    class NoGpu:
        def __init__(self, device_index):
            raise RuntimeError("torch was built without CUDA or sees no GPU")

    for name in ("pycuda", "pycuda.driver", "polygraphy", "polygraphy.cuda"):
        monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.setitem(cuda_buffers._CLASSES, "torch", NoGpu)
    with pytest.raises(RuntimeError) as caught:
        open_device_buffers()
    message = str(caught.value)
    assert "pycuda: not installed" in message and "polygraphy: not installed" in message
    assert "torch: RuntimeError" in message and "pip install pycuda" in message
    with pytest.raises(ValueError, match="unknown CUDA buffer backend"):
        open_device_buffers(backend="cupy")


def test_open_engine_factory_runs_tensorrt_engines(monkeypatch, tmp_path, static_onnx):
    from engines import open_engine
    path = build(monkeypatch, tmp_path, static_onnx)
    install_for_buffers(monkeypatch)
    batch = batch_of()
    with open_engine(path) as engine:
        assert isinstance(engine, TensorRTEngine)
        np.testing.assert_array_equal(engine.infer(batch), reference(static_onnx, batch))


def test_read_sidecar(tmp_path):
    engine = tmp_path / "m.engine"
    assert read_sidecar(str(engine)) is None
    (tmp_path / "m.engine.json").write_text(json.dumps({"precision": "fp16"}))
    assert read_sidecar(str(engine)) == {"precision": "fp16"}
    (tmp_path / "m.engine.json").write_text("{broken")
    with pytest.raises(ValueError, match="unreadable engine sidecar"):
        read_sidecar(str(engine))
    for bad in ("[1, 2]", '{"metadata": [1]}'):  # valid JSON of the wrong shape: no traceback later
        (tmp_path / "m.engine.json").write_text(bad)
        with pytest.raises(ValueError, match="must be a JSON object with a 'metadata' object"):
            read_sidecar(str(engine))
    (tmp_path / "m.engine.json").write_bytes(b"\xff\xfe{")
    with pytest.raises(ValueError, match="unreadable engine sidecar"):
        read_sidecar(str(engine))


def test_runner_modules_import_without_opencv_or_torch():
    """The Jetson runtime path: the ONNX Runtime and TensorRT runners (and the engine builder)
    need neither OpenCV nor torch just to import; only engines.preprocess uses OpenCV."""
    code = ("import sys\n"
            "sys.modules['cv2'] = None\n"
            "sys.modules['torch'] = None\n"
            "import engines.onnx_engine, engines.tensorrt_engine, export.tensorrt\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('cv2', 'torch')))\n")
    done = run_python(code)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "['cv2', 'torch']"  # only the blocked placeholders


def test_running_an_engine_with_pycuda_never_imports_torch(monkeypatch, tmp_path, static_onnx):
    path = build(monkeypatch, tmp_path, static_onnx, "8.5.2.2")
    code = ("import sys\n"
            "from tests.fakes.fake_cuda import install_fake_pycuda\n"
            "from tests.fakes.fake_tensorrt import make_fake_tensorrt\n"
            "import engines.cuda_buffers\n"
            "driver = install_fake_pycuda(sys.modules)\n"
            "engines.cuda_buffers.load_libcuda = lambda: driver.libcuda\n"
            "sys.modules['tensorrt'] = make_fake_tensorrt('8.5.2.2')\n"
            "from engines import open_engine\n"
            f"with open_engine({path!r}) as engine:\n"
            "    out = engine.infer(__import__('numpy').zeros((1, 3, 64, 64), 'float32'))\n"
            "    print(engine._buffers.backend, out.shape, 'torch' in sys.modules)\n"
            "print(driver.context_stack(), driver.retains())\n")
    done = run_python(code)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines() == ["pycuda (1, 3, 64, 64) False", "[] 0"]


# ----------------------------------------------------------------------------- real TensorRT

@pytest.mark.gpu
@pytest.mark.tensorrt
@pytest.mark.parametrize("shapes", [None, "32x32:64x64:128x128"])
def test_real_engine_in_a_worker_thread_matches_onnxruntime(tmp_path, dynamic_onnx, shapes):
    """Real TensorRT + the first CUDA backend that works here, owned by a worker thread."""
    path = cli.ensure_engine(dynamic_onnx, "fp32", shapes, cache_dir=str(tmp_path)).engine_path
    sizes = [(64, 64)] if shapes is None else [(64, 64), (32, 128), (128, 96)]
    results = {}

    def worker():
        with TensorRTEngine(path) as engine:
            results["backend"] = engine._buffers.backend
            for height, width in sizes:
                batch = batch_of(height, width, seed=height)
                results[(height, width)] = (engine.infer(batch), reference(dynamic_onnx, batch))

    thread = threading.Thread(target=worker)
    thread.start()
    thread.join()
    assert results["backend"] in ("pycuda", "polygraphy", "torch")
    for size in sizes:
        output, expected = results[size]
        assert np.abs(output - expected).max() < 2e-3, size
