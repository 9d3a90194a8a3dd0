"""``python -m export.tensorrt`` end to end on the strict fake TensorRT (8.5, 10, 11): builds,
the engine cache and its rebuilds, the timing cache, INT8 calibration, TensorRT 11's FP16 ONNX
route, --compare, DLA checks and the no-TensorRT error. Real-GPU tests at the end."""
import json
import os
import sys

import numpy as np
import onnx
import onnxruntime as ort
import pytest

import export.tensorrt as cli
from export.trt_build import TENSORRT_MISSING
from tests.conftest import DATASETS, run_python
from tests.fakes import fake_tensorrt
from tests.fakes.fake_cuda import MEMORY, FakeDeviceBuffers

FACADES = DATASETS / "facades" / "256" / "val"
VERSIONS = fake_tensorrt.VERSIONS


def _run(args, capsys):
    code = cli.main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def _engine_output(path, batch):
    from engines.tensorrt_engine import TensorRTEngine
    with TensorRTEngine(path, buffers=FakeDeviceBuffers()) as engine:
        return engine.infer(batch)


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("precision, atol", [("fp32", 0.0), ("fp16", 5e-3)])
def test_build_writes_engine_and_sidecar_that_match_onnxruntime(monkeypatch, capsys, tmp_path,
                                                                static_onnx, version, precision, atol):
    trt = fake_tensorrt.install_for_build(monkeypatch, version)
    out = tmp_path / "model.engine"
    code, stdout, err = _run([static_onnx, "-o", out, "--precision", precision, "--cache-dir",
                              tmp_path / "cache"], capsys)
    assert code == 0, err
    assert "built in" in stdout and f"wrote {out}" in stdout
    side = json.loads((tmp_path / "model.engine.json").read_text())
    assert side["trt_version"] == version and side["precision"] == precision
    assert side["gpu"] == fake_tensorrt.FAKE_GPU and side["metadata"]["palette"] == "facades"
    assert side["shapes"] == {"input": [[1, 3, 64, 64]] * 3} and side["dynamic"] is False
    assert trt._fake.last_build["precision"] == precision
    assert trt._fake.last_build["workspace"] == 1024 << 20
    if version.startswith("11") and precision == "fp16":
        fp16 = onnx.load(side["built_from"])  # the FP16-typed copy TensorRT 11 needs
        assert {t.data_type for t in fp16.graph.initializer} == {onnx.TensorProto.FLOAT16}
        assert fp16.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    batch = np.random.default_rng(1).uniform(-1, 1, (1, 3, 64, 64)).astype(np.float32)
    expected = ort.InferenceSession(static_onnx).run(None, {"input": batch})[0]
    error = np.abs(_engine_output(str(out), batch) - expected).max()
    assert error <= atol if precision == "fp32" else 0 < error <= atol


def test_cached_engine_is_reused_and_force_guards_the_output(monkeypatch, capsys, tmp_path, static_onnx):
    trt = fake_tensorrt.install_for_build(monkeypatch, "10.3.0")
    args = [static_onnx, "--cache-dir", tmp_path, "--precision", "fp32", "-o", tmp_path / "m.plan"]
    assert _run(args, capsys)[0] == 0 and trt._fake.builds == 1
    code, out, err = _run(args, capsys)
    assert code == 2 and "m.plan exists; pass --force" in err and trt._fake.builds == 1
    code, out, err = _run(args + ["--force"], capsys)
    assert code == 0 and "reused from cache" in out and trt._fake.builds == 1
    code, out, _ = _run(args + ["--force", "--rebuild"], capsys)
    assert code == 0 and "built in" in out and trt._fake.builds == 2
    engines = sorted(p.name for p in tmp_path.glob("*.engine"))
    assert len(engines) == 1 and engines[0].startswith("tiny-label-static-64x64-")
    assert not list(tmp_path.glob(".tmp-*"))  # atomic writes leave nothing behind


@pytest.mark.parametrize("raises", [False, True])
def test_engine_that_no_longer_deserialises_is_rebuilt(monkeypatch, tmp_path, static_onnx, raises):
    trt = fake_tensorrt.install_for_build(monkeypatch, "8.5.2.2")
    trt._fake.raise_on_bad_engine = raises
    first = cli.ensure_engine(static_onnx, "fp16", cache_dir=str(tmp_path), log=lambda m: None)
    with open(first.engine_path, "r+b") as handle:  # e.g. truncated by a full disk
        handle.truncate(100)
    messages = []
    again = cli.ensure_engine(static_onnx, "fp16", cache_dir=str(tmp_path), log=messages.append)
    assert again.built and again.engine_path == first.engine_path and trt._fake.builds == 2
    assert "unusable" in messages[0] and "rebuilding" in messages[0]
    assert cli.deserialize_problem(trt, again.engine_path) is None


def test_each_version_and_gpu_gets_its_own_engine(monkeypatch, tmp_path, static_onnx):
    paths = set()
    for version in VERSIONS:
        for gpu in ("Xavier (sm_72)", "Orin (sm_87)"):
            trt = fake_tensorrt.install_for_build(monkeypatch, version, gpu=gpu)
            paths.add(cli.ensure_engine(static_onnx, "fp32", cache_dir=str(tmp_path),
                                        log=lambda m: None).engine_path)
            assert trt._fake.builds == 1
    assert len(paths) == 6


def test_timing_cache_is_written_and_reused(monkeypatch, tmp_path, static_onnx):
    fake_tensorrt.install_for_build(monkeypatch, "10.3.0")
    cli.ensure_engine(static_onnx, "fp32", cache_dir=str(tmp_path), log=lambda m: None)
    (timing,) = tmp_path.glob("timing-*.cache")
    first = json.loads(timing.read_bytes())["entries"]
    cli.ensure_engine(static_onnx, "fp16", cache_dir=str(tmp_path), log=lambda m: None)
    assert json.loads(timing.read_bytes())["entries"] == 2 * first > 0


def test_a_corrupt_timing_cache_warns_and_builds_with_an_empty_one(monkeypatch, capsys, tmp_path,
                                                                     static_onnx):
    fake_tensorrt.install_for_build(monkeypatch, "10.3.0")
    cli.ensure_engine(static_onnx, "fp32", cache_dir=str(tmp_path), log=lambda m: None)
    (timing,) = tmp_path.glob("timing-*.cache")
    timing.write_bytes(b"\x00garbage")  # create_timing_cache returns None for it
    result = cli.ensure_engine(static_onnx, "fp16", cache_dir=str(tmp_path), log=lambda m: None)
    assert result.built and "timing cache" in capsys.readouterr().err
    assert json.loads(timing.read_bytes())["entries"] > 0  # rewritten after the build


def test_dynamic_profile(monkeypatch, capsys, tmp_path, dynamic_onnx):
    fake_tensorrt.install_for_build(monkeypatch, "8.5.2.2")
    out = tmp_path / "dyn.engine"
    code, _, err = _run([dynamic_onnx, "-o", out, "--precision", "fp32", "--shapes",
                         "32x32:64x64:128x96", "--cache-dir", tmp_path], capsys)
    assert code == 0, err
    side = json.loads((tmp_path / "dyn.engine.json").read_text())
    assert side["dynamic"] and side["shapes"]["input"] == [[1, 3, 32, 32], [1, 3, 64, 64], [1, 3, 128, 96]]
    batch = np.random.default_rng(2).uniform(-1, 1, (1, 3, 96, 64)).astype(np.float32)
    expected = ort.InferenceSession(dynamic_onnx).run(None, {"input": batch})[0]
    np.testing.assert_array_equal(_engine_output(str(out), batch), expected)


@pytest.mark.parametrize("version", ["8.5.2.2", "10.3.0"])
def test_int8_calibrates_on_real_label_maps_and_reuses_the_table(monkeypatch, capsys, tmp_path,
                                                                   static_onnx, version):
    trt = fake_tensorrt.install_for_build(monkeypatch, version)
    args = [static_onnx, "--precision", "int8", "--calib-data", FACADES, "--calib-count", 6,
            "--cache-dir", tmp_path]
    code, out, err = _run(args, capsys)
    assert code == 0, err
    assert trt._fake.calibration_batches == 6
    (table,) = tmp_path.glob("*.calib")
    assert table.read_bytes().startswith(b"FakeEntropyCalibration2\ninput:")
    low, high = (float(v) for v in table.read_text().split()[2:4])
    assert -1.0 <= low < high <= 1.0  # palette colours in [-1, 1], not noise or zeros
    assert {"INT8", "FP16", "PREFER_PRECISION_CONSTRAINTS"} <= set(trt._fake.last_build["flags"])
    names = trt._fake.pinned
    assert names[0].startswith("/model.1/Conv") or "Conv" in names[0]
    assert any("Tanh" in n for n in names) and any("InstanceNorm" in n for n in names)
    assert MEMORY.live == 0  # the calibrator freed its device batch
    code, out, err = _run(args + ["--rebuild"], capsys)
    assert code == 0 and trt._fake.calibration_batches == 6  # the table was reused: no batches


@pytest.mark.parametrize("version", ["8.5.2.2", "10.3.0"])
def test_a_bad_calibration_image_fails_the_build_and_leaves_no_table(monkeypatch, capsys, tmp_path,
                                                                       static_onnx, version):
    """TensorRT's wrapper swallows exceptions from get_batch and ends the data there: before, a
    bad image gave a partial INT8 table that was cached and reused from then on."""
    import shutil
    from PIL import Image
    trt = fake_tensorrt.install_for_build(monkeypatch, version)
    data = tmp_path / "calib"
    data.mkdir()
    for label in sorted(FACADES.glob("*.png"))[:4]:
        shutil.copy(label, data / label.name)
    Image.fromarray(np.full((64, 64), 40, np.uint8), mode="L").save(data / "cmp_b0020.png")  # id 40
    cache = tmp_path / "cache"
    code, out, err = _run([static_onnx, "--precision", "int8", "--calib-data", data, "--calib-count", 5,
                           "--cache-dir", cache], capsys)
    assert code != 0 and "INT8 calibration failed after" in err and "cmp_b0020.png" in err
    assert "partial calibration table was deleted" in err
    assert not list(cache.glob("*.calib")) and not list(cache.glob("*.engine"))
    assert trt._fake.builds <= 1


def test_other_calibration_data_is_another_int8_engine(monkeypatch, capsys, tmp_path, static_onnx):
    """The engine cache key ignored the calibration inputs: another --calib-count (or folder)
    returned the old INT8 engine."""
    trt = fake_tensorrt.install_for_build(monkeypatch, "10.3.0")
    base = [static_onnx, "--precision", "int8", "--calib-data", FACADES, "--cache-dir", tmp_path]
    assert _run(base + ["--calib-count", 4], capsys)[0] == 0
    assert _run(base + ["--calib-count", 6], capsys)[0] == 0
    assert trt._fake.builds == 2 and len(list(tmp_path.glob("*.engine"))) == 2
    assert _run(base + ["--calib-count", 6], capsys)[0] == 0 and trt._fake.builds == 2  # cached
    key = cli.engine_key("10.3.0", "gpu", "fp16", {}, None, "sha")
    assert "calibration" not in key  # FP16 engines do not depend on calibration data


def test_int8_needs_calibration_data(monkeypatch, capsys, tmp_path, static_onnx):
    fake_tensorrt.install_for_build(monkeypatch, "8.5.2.2")
    code, _, err = _run([static_onnx, "--precision", "int8", "--cache-dir", tmp_path], capsys)
    assert code == 2 and "--calib-data" in err


def test_int8_on_tensorrt_11_is_a_clear_error(monkeypatch, capsys, tmp_path, static_onnx):
    trt = fake_tensorrt.install_for_build(monkeypatch, "11.4.0")
    code, _, err = _run([static_onnx, "--precision", "int8", "--calib-data", FACADES,
                         "--cache-dir", tmp_path], capsys)
    assert code == 2 and "Q/DQ" in err and "Traceback" not in err and trt._fake.builds == 0


def test_fp16_on_11_without_onnxconverter_common_says_how(monkeypatch, capsys, tmp_path, static_onnx):
    fake_tensorrt.install_for_build(monkeypatch, "11.4.0")
    monkeypatch.setitem(sys.modules, "onnxconverter_common", None)
    code, _, err = _run([static_onnx, "--cache-dir", tmp_path], capsys)
    assert code == 2 and "pip install onnxconverter-common" in err and "modelopt" in err


def test_dla_checks(monkeypatch, capsys, tmp_path, static_onnx, dynamic_onnx):
    trt = fake_tensorrt.install_for_build(monkeypatch, "8.5.2.2")  # a desktop: no DLA
    code, _, err = _run([static_onnx, "--dla-core", 0, "--cache-dir", tmp_path], capsys)
    assert code == 2 and "0 DLA core(s)" in err
    code, _, err = _run([static_onnx, "--dla-core", 0, "--precision", "fp32", "--cache-dir", tmp_path],
                        capsys)
    assert code == 2 and "only FP16 or INT8" in err
    trt = fake_tensorrt.install_for_build(monkeypatch, "8.5.2.2", num_dla_cores=2)  # Xavier
    code, _, err = _run([dynamic_onnx, "--dla-core", 1, "--shapes", "32x32:64x64:64x64",
                         "--cache-dir", tmp_path], capsys)
    assert code == 2 and "no dynamic shapes" in err
    code, out, err = _run([dynamic_onnx, "--dla-core", 1, "--shapes", "64x64", "--cache-dir", tmp_path],
                          capsys)
    assert code == 0, err
    assert trt._fake.last_build["dla_core"] == 1 and "GPU_FALLBACK" in trt._fake.last_build["flags"]
    assert "DLA core 1" in out


@pytest.mark.parametrize("version", VERSIONS)
def test_compare_reports_errors_against_onnxruntime(monkeypatch, capsys, tmp_path, static_onnx, version):
    fake_tensorrt.install_for_build(monkeypatch, version)
    code, out, err = _run([static_onnx, "--compare", "--calib-data", FACADES, "--cache-dir", tmp_path],
                          capsys)
    assert code == 0, err
    line = next(text for text in out.splitlines() if text.startswith("compare"))
    max_abs = float(line.split("max |diff| ")[1].split(",")[0])
    assert "on 4 inputs" in line and 0 < max_abs < 5e-3  # fp16 rounding, visible but small
    assert MEMORY.live == 0


def test_compare_covers_min_and_max_of_a_dynamic_profile(monkeypatch, tmp_path, dynamic_onnx):
    trt = fake_tensorrt.install_for_build(monkeypatch, "10.3.0")
    result = cli.ensure_engine(dynamic_onnx, "fp32", "32x32:64x64:96x128", cache_dir=str(tmp_path),
                               log=lambda m: None)
    info = cli.read_onnx_info(dynamic_onnx)
    inputs = cli.compare_inputs(info, result.sidecar["shapes"], None, count=2)
    assert sorted(x.shape for x in inputs) == [(1, 3, 32, 32), (1, 3, 64, 64), (1, 3, 64, 64),
                                               (1, 3, 96, 128)]
    stats = cli.compare_with_onnxruntime(result.engine_path, dynamic_onnx, inputs,
                                         buffers=FakeDeviceBuffers())
    assert stats == {"max_abs": 0.0, "mean_abs": 0.0, "inputs": 4}
    assert trt._fake.executions == 4 and MEMORY.live == 0


def test_bad_inputs_exit_2_with_a_reason(monkeypatch, capsys, tmp_path, static_onnx):
    fake_tensorrt.install_for_build(monkeypatch, "10.3.0")
    cases = [([tmp_path / "missing.onnx"], "no such ONNX file"),
             ([static_onnx, "-o", tmp_path / "x.trt"], ".engine or .plan"),
             ([static_onnx, "--shapes", "128x128"], "fixed input shape"),
             ([static_onnx, "--shapes", "huge"], "--shapes")]
    for args, message in cases:
        code, _, err = _run(args + ["--cache-dir", tmp_path], capsys)
        assert code == 2 and message in err and "Traceback" not in err, (args, err)


def test_parse_failure_is_a_build_error(monkeypatch, capsys, tmp_path, static_onnx):
    """The fake 8.5 parser rejects opset 18 (as the real one rejects opset-18 Pad): exit 1."""
    fake_tensorrt.install_for_build(monkeypatch, "8.5.2.2")
    model = onnx.load(static_onnx)
    model.opset_import[0].version = 18
    path = tmp_path / "opset18.onnx"
    onnx.save(model, str(path))
    code, _, err = _run([path, "--cache-dir", tmp_path], capsys)
    assert code == 1 and "could not parse" in err and "opset 17" in err


def test_without_tensorrt_one_sentence_and_exit_2(monkeypatch, capsys, static_onnx):
    monkeypatch.setitem(sys.modules, "tensorrt", None)  # import tensorrt -> ImportError
    code, out, err = _run([static_onnx], capsys)
    assert code == 2 and out == ""
    assert err.strip() == f"error: {TENSORRT_MISSING}"
    assert "python3-libnvinfer" in err and "requirements-gpu.txt" in err


def test_module_entry_point_without_tensorrt_imports_no_torch(static_onnx):
    code = ("import runpy, sys\n"
            "sys.modules['tensorrt'] = None\n"
            f"sys.argv = ['export.tensorrt', {static_onnx!r}]\n"
            "try:\n"
            "    runpy.run_module('export.tensorrt', run_name='__main__')\n"
            "except SystemExit as stop:\n"
            "    print('torch' in sys.modules, file=sys.stderr)\n"
            "    sys.exit(stop.code)\n")
    done = run_python(code)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert lines == [f"error: {TENSORRT_MISSING}", "False"]


def test_help_explains_with_examples(capsys):
    with pytest.raises(SystemExit) as stop:
        cli.main(["--help"])
    out = capsys.readouterr().out
    assert stop.value.code == 0 and "examples:" in out and "--calib-data" in out


# ----------------------------------------------------------------------------- real TensorRT

@pytest.mark.gpu
@pytest.mark.tensorrt
@pytest.mark.parametrize("precision, atol", [("fp32", 2e-3), ("fp16", 5e-2)])
def test_real_engine_matches_onnxruntime(tmp_path, static_onnx, precision, atol):
    import tensorrt

    from engines.tensorrt_engine import TensorRTEngine
    result = cli.ensure_engine(static_onnx, precision, cache_dir=str(tmp_path))
    assert result.built and result.sidecar["trt_version"] == tensorrt.__version__
    batch = np.random.default_rng(3).uniform(-1, 1, (1, 3, 64, 64)).astype(np.float32)
    expected = ort.InferenceSession(static_onnx).run(None, {"input": batch})[0]
    with TensorRTEngine(result.engine_path) as engine:
        output = engine.infer(batch)
        assert engine.metadata["palette"] == "facades"
    assert np.abs(output - expected).max() < atol
    assert not cli.ensure_engine(static_onnx, precision, cache_dir=str(tmp_path)).built


@pytest.mark.gpu
@pytest.mark.tensorrt
def test_real_dynamic_engine_and_compare(tmp_path, capsys, dynamic_onnx):
    code, out, err = _run([dynamic_onnx, "--precision", "fp32", "--shapes", "32x32:64x64:128x128",
                           "--compare", "--cache-dir", tmp_path, "-o", tmp_path / "d.engine"], capsys)
    assert code == 0, err
    line = next(text for text in out.splitlines() if text.startswith("compare"))
    assert float(line.split("max |diff| ")[1].split(",")[0]) < 2e-3
    assert os.path.isfile(tmp_path / "d.engine.json")
