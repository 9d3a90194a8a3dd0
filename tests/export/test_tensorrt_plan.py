"""The TensorRT build decisions that need no TensorRT: precision plans per version (8.5, 10,
11), shape profiles, cache keys and paths, atomic writes and the GPU-name probe (the sidecar
reader is engines.tensorrt_engine.read_sidecar, tested with the runner)."""
import os

import pytest

from export import trt_cache
from export.trt_build import (OnnxInfo, PrecisionError, parse_shapes, parse_trt_version,
                              precision_plan, resolve_profile)
from engines.tensorrt_engine import sidecar_path
from export.trt_cache import (atomic_write_bytes, calibration_cache_path, engine_cache_path,
                              engine_key, key_hash, timing_cache_path)

SHAPES = {"input": ((1, 3, 64, 64), (1, 3, 64, 64), (1, 3, 64, 64))}


# ----------------------------------------------------------------------------- precision plans

@pytest.mark.parametrize("version, precision, network_flags, builder_flags, convert, calibrate", [
    ("8.5.2.2", "fp32", ("EXPLICIT_BATCH",), (), False, False),
    ("8.5.2.2", "fp16", ("EXPLICIT_BATCH",), ("FP16",), False, False),
    ("8.5.2.2", "int8", ("EXPLICIT_BATCH",), ("INT8", "FP16", "PREFER_PRECISION_CONSTRAINTS"), False, True),
    ("10.3.0", "fp32", (), (), False, False),
    ("10.3.0", "fp16", (), ("FP16",), False, False),
    ("10.3.0", "int8", (), ("INT8", "FP16", "PREFER_PRECISION_CONSTRAINTS"), False, True),
    ("11.4.0", "fp32", (), (), False, False),
    ("11.4.0", "fp16", (), (), True, False),
])
def test_precision_plan_per_version(version, precision, network_flags, builder_flags, convert,
                                    calibrate):
    plan = precision_plan(version, precision)
    assert plan.network_flags == network_flags
    assert plan.builder_flags == builder_flags
    assert plan.convert_onnx_to_fp16 is convert
    assert plan.calibrate is calibrate and plan.pin_sensitive_layers is calibrate
    assert plan.require_plugins is version.startswith("8.")


def test_trt11_never_uses_removed_builder_flags():
    removed = {"FP16", "INT8", "OBEY_PRECISION_CONSTRAINTS", "PREFER_PRECISION_CONSTRAINTS"}
    for precision in ("fp32", "fp16"):
        for dla in (None, 0):
            if precision == "fp32" and dla is not None:
                continue
            assert not removed & set(precision_plan("11.4.0", precision, dla).builder_flags)
    qdq = precision_plan("11.4.0", "int8", onnx_has_qdq=True)
    assert qdq.builder_flags == () and not qdq.calibrate


def test_trt11_int8_without_qdq_says_how_to_quantize():
    with pytest.raises(PrecisionError, match="Q/DQ ONNX.*ModelOpt"):
        precision_plan("11.4.0", "int8")


def test_fp16_typed_onnx_is_not_converted_again_on_11():
    plan = precision_plan("11.4.0", "fp16", onnx_is_fp16=True)
    assert not plan.convert_onnx_to_fp16 and "already FP16" in plan.notes[0]


def test_qdq_onnx_on_10_is_explicit_int8_without_calibration():
    plan = precision_plan("10.3.0", "int8", onnx_has_qdq=True)
    assert plan.builder_flags == ("INT8", "FP16") and not plan.calibrate and not plan.pin_sensitive_layers


def test_dla_plans():
    plan = precision_plan("8.5.2.2", "fp16", dla_core=1)
    assert plan.builder_flags == ("FP16", "GPU_FALLBACK") and plan.dla_core == 1
    with pytest.raises(PrecisionError, match="only FP16 or INT8"):
        precision_plan("8.5.2.2", "fp32", dla_core=0)
    with pytest.raises(PrecisionError, match="Q/DQ"):
        precision_plan("8.5.2.2", "int8", dla_core=0, onnx_has_qdq=True)
    with pytest.raises(PrecisionError, match="0 or more"):
        precision_plan("10.3.0", "fp16", dla_core=-1)


def test_unknown_precision_and_old_or_future_versions():
    with pytest.raises(PrecisionError, match="fp32, fp16, int8"):
        precision_plan("10.3.0", "bf16")
    with pytest.raises(PrecisionError, match="8.5 or newer"):
        precision_plan("8.4.3.1", "fp32")
    future = precision_plan("12.0.1", "fp16")
    assert future.convert_onnx_to_fp16 and any("newer than" in n for n in future.notes)
    assert parse_trt_version("10.16.1.11") == (10, 16)
    with pytest.raises(ValueError, match="unrecognised"):
        parse_trt_version("ten")


# ----------------------------------------------------------------------------- shapes

def _info(dims, metadata=None):
    return OnnxInfo(path="m.onnx", metadata=metadata or {"arch": "sub_mobile_resnet_9blocks",
                                                         "resolution": [128, 96]},
                    input_name="input", input_dims=dims, output_names=["output"], opset=17,
                    op_types=["Conv"], is_fp16=False, has_qdq=False)


def test_parse_shapes():
    assert parse_shapes("256x256") == ((256, 256),) * 3
    assert parse_shapes("128x128:256x256:512x512") == ((128, 128), (256, 256), (512, 512))
    assert parse_shapes("1x3x64x64") == ((1, 3, 64, 64),) * 3
    for bad in ("256", "1x2x3", "a:b", "64x64:128x128", "0x64"):
        with pytest.raises(ValueError, match="--shapes"):
            parse_shapes(bad)


def test_static_onnx_keeps_its_shape_and_needs_no_profile():
    shapes, dynamic = resolve_profile(_info([1, 3, 64, 64]))
    assert shapes == SHAPES and dynamic is False
    with pytest.raises(ValueError, match="fixed input shape.*--dynamic"):
        resolve_profile(_info([1, 3, 64, 64]), "128x128")


def test_dynamic_onnx_defaults_to_its_metadata_resolution():
    shapes, dynamic = resolve_profile(_info([None, 3, None, None]))
    assert shapes == {"input": ((1, 3, 128, 96),) * 3} and dynamic is True
    shapes, _ = resolve_profile(_info([None, 3, None, None]), "64x64:128x128:256x256")
    assert shapes["input"] == ((1, 3, 64, 64), (1, 3, 128, 128), (1, 3, 256, 256))


def test_profile_errors_name_the_fix():
    info = _info([None, 3, None, None])
    with pytest.raises(ValueError, match="multiples of 4"):
        resolve_profile(info, "66x64")
    with pytest.raises(ValueError, match="min <= opt <= max"):
        resolve_profile(info, "256x256:128x128:512x512")
    with pytest.raises(ValueError, match="does not fit"):
        resolve_profile(info, "1x4x64x64")
    with pytest.raises(PrecisionError, match="no dynamic shapes"):
        resolve_profile(info, "64x64:128x128:256x256", dla_core=0)
    spade = _info([1, 13, None, None], {"arch": "sub_mobile_spade", "build": {}})
    with pytest.raises(ValueError, match="multiples of 32"):
        resolve_profile(spade, "48x48")


# ----------------------------------------------------------------------------- cache keys

def _key(**changes):
    args = dict(trt_version="8.5.2.2", gpu="Xavier (sm_72)", precision="fp16", shapes=SHAPES,
                dla_core=None, onnx_sha256="ab" * 32)
    args.update(changes)
    return engine_key(**args)


def test_engine_key_changes_with_everything_an_engine_depends_on():
    base = key_hash(_key())
    assert key_hash(_key()) == base and len(base) == 16
    variants = [_key(trt_version="10.3.0"), _key(gpu="Orin (sm_87)"), _key(precision="fp32"),
                _key(dla_core=0), _key(onnx_sha256="cd" * 32),
                _key(shapes={"input": ((1, 3, 64, 64), (1, 3, 128, 128), (1, 3, 256, 256))})]
    hashes = {key_hash(k) for k in variants}
    assert base not in hashes and len(hashes) == len(variants)


def test_cache_paths(tmp_path):
    path = engine_cache_path(str(tmp_path), "/models/horse2zebra.onnx", _key())
    assert os.path.basename(path) == f"horse2zebra-{key_hash(_key())}.engine"
    assert sidecar_path(path) == path + ".json"
    timing = timing_cache_path(str(tmp_path), "8.5.2.2", "Xavier (sm_72)")
    assert timing != timing_cache_path(str(tmp_path), "10.3.0", "Xavier (sm_72)")
    assert timing == timing_cache_path(str(tmp_path), "8.5.2.2", "Xavier (sm_72)")
    data = tmp_path / "a.png"
    data.write_bytes(b"x")
    calib = calibration_cache_path(str(tmp_path), "m.onnx", "ab", "8.5.2.2", "Xavier (sm_72)",
                                   (1, 3, 64, 64), [str(data)])
    assert calib.endswith(".calib") and calib != calibration_cache_path(
        str(tmp_path), "m.onnx", "ab", "8.5.2.2", "Orin (sm_87)", (1, 3, 64, 64), [str(data)])


def test_default_cache_dir_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("GAN_COMPRESSION_CACHE", str(tmp_path))
    assert trt_cache.default_cache_dir() == str(tmp_path / "tensorrt")
    monkeypatch.delenv("GAN_COMPRESSION_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert trt_cache.default_cache_dir() == str(tmp_path / "xdg" / "gan-compression" / "tensorrt")


def test_atomic_write_leaves_no_temp_files_and_respects_overwrite(tmp_path, monkeypatch):
    target = tmp_path / "sub" / "x.engine"
    atomic_write_bytes(str(target), b"first")
    with pytest.raises(FileExistsError, match="--force"):
        atomic_write_bytes(str(target), b"second", overwrite=False)
    assert target.read_bytes() == b"first"

    def crash(*args):
        raise OSError("disk full")
    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="could not write .*x.engine: disk full"):
        atomic_write_bytes(str(target), b"third", overwrite=True)  # cache entries replace explicitly
    assert target.read_bytes() == b"first"
    assert sorted(p.name for p in target.parent.iterdir()) == ["x.engine"]


def test_gpu_identity_without_a_driver_says_what_is_missing(monkeypatch):
    monkeypatch.setattr(trt_cache, "_load_libcuda", lambda: None)
    with pytest.raises(trt_cache.GpuUnavailable, match="libcuda"):
        trt_cache.gpu_identity()


def test_gpu_identity_reads_name_and_compute_capability(monkeypatch):
    class FakeLibcuda:  # the driver API calls gpu_identity makes, by ctypes
        def cuInit(self, flags):
            return 0

        def cuDeviceGet(self, device, index):
            return 0 if index == 0 else 101

        def cuDeviceGetName(self, buffer, size, device):
            buffer.value = b"Xavier"
            return 0

        def cuDeviceGetAttribute(self, value, attribute, device):
            value._obj.value = {75: 7, 76: 2}[attribute]
            return 0

    monkeypatch.setattr(trt_cache, "_load_libcuda", FakeLibcuda)
    assert trt_cache.gpu_identity() == "Xavier (sm_72)"
    with pytest.raises(trt_cache.GpuUnavailable, match="no CUDA device 1"):
        trt_cache.gpu_identity(1)
