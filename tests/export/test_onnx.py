"""ONNX export of every generator family: opset 17 / IR 8, TensorRT-8.5 op whitelist, metadata,
and ONNX Runtime parity with PyTorch on random inputs and real facades images (<= 1e-4)."""
import glob
import os

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

import export.onnx as onnx_export
from compress.models.checkpoints import save_generator
from compress.models import build_generator
from engines.base import INPUT_NAME, METADATA_KEY, OUTPUT_NAME
from engines.onnx_engine import read_onnx_metadata
from export.onnx import check_onnx, export_onnx, image_input, main
from export.onnx_passes import OnnxCompatibilityError, check_ops, check_opset_ir, is_reflect_pad
from tests.conftest import DATASETS

ATOL = 1e-4
FACADES = DATASETS / "facades" / "256" / "val"
H2Z = ["--arch", "sub_mobile_resnet_9blocks", "--config", "16_16_32_16_32_32_16_16"]
SPADE_TINY = {"semantic_nc": 13, "ngf": 8, "crop_size": 64}  # 13 = facades ids 0..12

# Every family of the zoo, tiny (3 residual blocks for the ResNets, 64 px), supernets included.
FAMILIES = [
    ("resnet_9blocks", {"ngf": 8, "n_blocks": 3}),
    ("mobile_resnet_9blocks", {"ngf": 8, "n_blocks": 3}),
    ("sub_mobile_resnet_9blocks", {"config": "8_8_16_8_16_16_8_8", "n_blocks": 3}),
    ("legacy_sub_mobile_resnet_9blocks", {"config": "8_8_8_16_8_8", "n_blocks": 3}),
    ("super_mobile_resnet_9blocks", {"ngf": 16, "n_blocks": 3, "config": "8_16_8_16_8_16_8_8"}),
    ("spade", SPADE_TINY),
    ("mobile_spade", SPADE_TINY),
    ("sub_mobile_spade", dict(SPADE_TINY, config="4_8_4_8_4_8_4_8")),
    ("super_mobile_spade", dict(SPADE_TINY, config="4_8_4_8_4_8_4_8")),
]


def tiny(arch, build):
    model = build_generator(arch, **build).eval()
    with torch.no_grad():  # non-trivial batch-norm statistics, so a wrong slice would show
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-0.5, 0.5)
                module.running_var.uniform_(0.5, 2.0)
    return model


def facades_file(model):
    """A real facades photo (ResNet family) or label map (SPADE)."""
    files = sorted(glob.glob(str(FACADES / ("*.png" if model.family == "spade" else "*.jpg"))))
    if not files:
        pytest.fail(f"missing facades images under {FACADES} (tests/fixtures/datasets)")
    return files[0]


def assert_deployable_file(path, channels, dynamic):
    proto = onnx.load(str(path))
    check_opset_ir(proto)  # opset 17, IR 8, default domain only
    check_ops(proto)  # TensorRT 8.5 whitelist
    assert proto.opset_import[0].version == 17 and proto.ir_version == 8
    dims = [d.dim_param or d.dim_value for d in proto.graph.input[0].type.tensor_type.shape.dim]
    assert proto.graph.input[0].name == INPUT_NAME and proto.graph.output[0].name == OUTPUT_NAME
    if dynamic:
        assert dims == ["batch", channels, "height", "width"]
    else:
        assert dims[:2] == [1, channels]
    return proto


@pytest.mark.parametrize("arch, build", FAMILIES, ids=[f[0] for f in FAMILIES])
def test_every_family_exports_dynamic_and_matches_pytorch(tmp_path, arch, build):
    model = tiny(arch, build)
    path = tmp_path / f"{arch}.onnx"
    label = model.family == "spade"
    meta_in = {"palette": "facades", "input_kind": "label"} if label else {"input_kind": "image"}
    info = export_onnx(model, str(path), meta=meta_in, size=(64, 64), dynamic=True)
    assert info["exporter"] == "torchscript" and info["nodes"] < info["nodes_exported"]
    assert_deployable_file(path, model.input_nc, dynamic=True)

    meta = read_onnx_metadata(str(path))
    expected_arch = arch.replace("super_", "sub_")  # supernets export their active sub-network
    assert meta["arch"] == expected_arch
    assert meta["resolution"] == [64, 64] and meta["macs"] > 0 and meta["params"] > 0
    assert meta["input_kind"] == meta_in["input_kind"] and meta.get("palette") == meta_in.get("palette")
    assert meta["onnx"]["dynamic"] and meta["onnx"]["multiple_of"] == (32 if label else 4)
    if arch.startswith("super_"):
        assert meta["extracted_from"] == {"arch": arch, "config": build["config"]}
        assert meta["build"]["config"] == build["config"]
        assert meta["params"] < sum(p.numel() for p in model.parameters())

    real = image_input(model, facades_file(model), (64, 64), palette="facades")
    if label:
        assert real.sum(axis=1).min() == 1 and len(np.unique(real.argmax(axis=1))) >= 4  # one-hot
    else:
        assert -1 <= real.min() < -0.5 and 0.5 < real.max() <= 1
    result = check_onnx(str(path), model, inputs={"facades": real})
    diffs = result["max_abs_diff"]
    # two random resolutions (the second non-square, batch 2) plus the real image
    assert sorted(diffs) == sorted(["random_1x64x64", "facades",
                                    "random_2x96x96" if label else "random_2x60x68"])
    assert result["passed"] and max(diffs.values()) <= ATOL, diffs


def test_reflect_pad_slice_form_is_identical(tmp_path):
    model = tiny("mobile_resnet_9blocks", {"ngf": 8, "n_blocks": 3})
    keep, sliced = tmp_path / "keep.onnx", tmp_path / "slice.onnx"
    export_onnx(model, str(keep), size=(64, 64), dynamic=True)
    info = export_onnx(model, str(sliced), size=(64, 64), dynamic=True, reflect_pad="slice")
    assert info["reflect_pads_rewritten"] == 2 + 2 * 3  # stem, output, two per block
    proto = assert_deployable_file(sliced, 3, dynamic=True)
    assert not any(is_reflect_pad(node) for node in proto.graph.node)
    assert "Pad" not in info["op_counts"] and info["op_counts"]["Slice"] == 2 * 12 + 6 * 4
    assert read_onnx_metadata(str(sliced))["onnx"]["reflect_pad"] == "slice"

    sessions = [ort.InferenceSession(str(p), providers=["CPUExecutionProvider"]) for p in (keep, sliced)]
    rng = np.random.default_rng(0)
    for shape in [(1, 3, 64, 64), (2, 3, 44, 72)]:
        x = rng.uniform(-1, 1, shape).astype(np.float32)
        a, b = (s.run(None, {INPUT_NAME: x})[0] for s in sessions)
        assert np.abs(a - b).max() <= 1e-6
    assert check_onnx(str(sliced), model)["worst"] <= ATOL


def test_parity_check_detects_a_different_model(tmp_path):
    model = tiny("sub_mobile_resnet_9blocks", {"config": "8_8_8_8_8_8_8_8", "n_blocks": 3})
    path = tmp_path / "m.onnx"
    export_onnx(model, str(path), size=(32, 32))
    assert check_onnx(str(path), model)["passed"]
    with torch.no_grad():
        model.model[-2].bias.add_(0.05)  # output conv (no norm after it to cancel the shift)
    result = check_onnx(str(path), model)
    assert not result["passed"] and result["worst"] > 1e-3


def test_spade_checkpoint_cli_static_with_metadata(tmp_path, capsys):
    model = tiny("spade", SPADE_TINY)
    checkpoint = tmp_path / "spade.safetensors"
    saved = save_generator(model, str(checkpoint), palette="facades", input_kind="label")
    out = tmp_path / "spade.onnx"
    label_map = facades_file(model)
    assert main([str(checkpoint), "-o", str(out), "--check", "--check-image", label_map]) == 0
    text = capsys.readouterr().out
    assert "parity OK" in text and f"image:{os.path.basename(label_map)}" in text
    proto = assert_deployable_file(out, 13, dynamic=False)
    assert [d.dim_value for d in proto.graph.input[0].type.tensor_type.shape.dim] == [1, 13, 64, 64]
    meta = read_onnx_metadata(str(out))
    for key in ("arch", "build", "palette", "input_kind", "resolution", "macs", "params"):
        assert meta[key] == saved[key], key
    assert meta["onnx"]["input_shape"] == [1, 13, 64, 64] and not meta["onnx"]["dynamic"]
    props = {p.key: p.value for p in proto.metadata_props}
    assert METADATA_KEY in props and props["arch"] == "spade" and props["palette"] == "facades"


def test_supernet_checkpoint_exports_its_active_subnet(tmp_path, capsys):
    supernet = tiny("super_mobile_resnet_9blocks", {"ngf": 16, "n_blocks": 3})
    supernet.set_config("8_8_16_8_8_16_8_16")
    checkpoint = tmp_path / "supernet.safetensors"
    save_generator(supernet, str(checkpoint), resolution=(32, 32))
    out = tmp_path / "sub.onnx"
    assert main([str(checkpoint), "-o", str(out), "--check"]) == 0
    meta = read_onnx_metadata(str(out))
    assert meta["arch"] == "sub_mobile_resnet_9blocks" and meta["resolution"] == [32, 32]
    assert meta["extracted_from"]["arch"] == "super_mobile_resnet_9blocks"
    assert meta["build"]["config"] == "8_8_16_8_8_16_8_16"
    assert "parity OK" in capsys.readouterr().out


def test_cli_refuses_overwrite_and_bad_sizes(tmp_path, capsys):
    model = tiny("sub_mobile_resnet_9blocks", {"config": "8_8_8_8_8_8_8_8", "n_blocks": 3})
    checkpoint = tmp_path / "m.safetensors"
    save_generator(model, str(checkpoint), resolution=(32, 32), profile=False)
    out = tmp_path / "m.onnx"
    out.write_bytes(b"user data")
    assert main([str(checkpoint), "-o", str(out)]) == 2
    assert "exists; pass --force" in capsys.readouterr().err
    assert out.read_bytes() == b"user data"
    with pytest.raises(FileExistsError):
        export_onnx(model, str(out), size=(32, 32))
    assert main([str(checkpoint), "-o", str(out), "--force", "--size", "40x48"]) == 0
    assert read_onnx_metadata(str(out))["onnx"]["input_shape"] == [1, 3, 40, 48]

    blank = tmp_path / "blank.png"  # a constant image: InstanceNorm parity is undefined there
    from PIL import Image
    Image.new("RGB", (32, 32), (120, 40, 200)).save(blank)
    assert main([str(checkpoint), "-o", str(tmp_path / "b.onnx"), "--check-image", str(blank)]) == 2
    assert "blank.png is a constant image" in capsys.readouterr().err

    blocker = tmp_path / "a_file"  # a read-only or full target gets one line naming the path
    blocker.write_text("")
    assert main([str(checkpoint), "-o", str(blocker / "m.onnx")]) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith(f"error: could not write {blocker / 'm.onnx'}") and "\n" not in error

    bad = tmp_path / "bad.onnx"
    assert main([str(checkpoint), "-o", str(bad), "--size", "30x32"]) == 2
    assert "multiples of 4" in capsys.readouterr().err and not bad.exists()
    with pytest.raises(SystemExit) as exit_info:
        main([str(checkpoint), "-o", str(bad), "--size", "32", "--dynamic"])
    assert exit_info.value.code == 2
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0 and "examples:" in capsys.readouterr().out


def test_failed_export_leaves_nothing_behind(tmp_path, monkeypatch):
    model = tiny("sub_mobile_resnet_9blocks", {"config": "8_8_8_8_8_8_8_8", "n_blocks": 3})
    model.train()

    def reject(*args, **kwargs):
        raise OnnxCompatibilityError("rejected for the test")

    monkeypatch.setattr(onnx_export, "check_deployable", reject)
    with pytest.raises(OnnxCompatibilityError):
        export_onnx(model, str(tmp_path / "m.onnx"), size=(32, 32))
    assert os.listdir(str(tmp_path)) == []
    assert model.training  # the caller's model is never switched to eval or modified


def test_released_h2z_generator_exports_and_matches(tmp_path, h2z_checkpoint, capsys):
    out = tmp_path / "h2z.onnx"
    photo = facades_file(build_generator("resnet_9blocks", ngf=8))
    assert main([str(h2z_checkpoint), *H2Z, "-o", str(out), "--check", "--check-image", photo]) == 0
    printed = capsys.readouterr().out
    assert "512 -> 128 nodes after onnxslim" in printed and "parity OK" in printed
    proto = assert_deployable_file(out, 3, dynamic=False)
    assert [d.dim_value for d in proto.graph.input[0].type.tensor_type.shape.dim] == [1, 3, 256, 256]
    ops = {op: sum(n.op_type == op for n in proto.graph.node)
           for op in ("Conv", "ConvTranspose", "InstanceNormalization", "Pad")}
    assert ops == {"Conv": 40, "ConvTranspose": 2, "InstanceNormalization": 41, "Pad": 20}
    meta = read_onnx_metadata(str(out))
    assert meta["arch"] == "sub_mobile_resnet_9blocks"
    assert meta["build"]["config"] == "16_16_32_16_32_32_16_16"
    assert meta["macs"] == 2_546_204_672 and meta["params"] == 356_867  # paper: 2.55G MACs

    from compress.models.checkpoints import load_generator
    model, _ = load_generator(str(h2z_checkpoint))
    sliced = tmp_path / "h2z_slice.onnx"
    export_onnx(model, str(sliced), meta=meta, reflect_pad="slice")
    real = image_input(model, photo, (256, 256))
    result = check_onnx(str(sliced), model, inputs={"photo": real})
    assert result["passed"] and result["worst"] <= ATOL, result
    keep_out, slice_out = (ort.InferenceSession(str(p), providers=["CPUExecutionProvider"])
                           .run(None, {INPUT_NAME: real})[0] for p in (out, sliced))
    assert np.abs(keep_out - slice_out).max() <= 1e-6
    assert keep_out.std() > 0.05  # real weights, real picture


@pytest.mark.slow
def test_dynamo_exporter_is_downgraded_to_opset17(tmp_path):
    """torch's dynamo exporter leaves reflect-pad models at opset 18; the downgrade pass must
    bring the file to opset 17 / IR 8 with the reflect Pads intact and the same outputs."""
    model = tiny("mobile_resnet_9blocks", {"ngf": 8, "n_blocks": 1})
    path = tmp_path / "dynamo.onnx"
    info = export_onnx(model, str(path), size=(32, 32), dynamic=True, exporter="dynamo")
    assert info["exporter"] == "dynamo"
    proto = assert_deployable_file(path, 3, dynamic=True)
    assert sum(is_reflect_pad(n) for n in proto.graph.node) == 4
    result = check_onnx(str(path), model)
    assert result["passed"] and len(result["max_abs_diff"]) == 2, result


def test_cli_random_weights_for_latency_studies(tmp_path, capsys):
    out = tmp_path / "random.onnx"
    assert main(["random", "--arch", "sub_mobile_resnet_9blocks", "--config", "8_8_8_8_8_8_8_8",
                 "--size", "64", "-o", str(out), "--check"]) == 0
    meta = read_onnx_metadata(str(out), required=True)
    assert meta["random_weights"] is True and meta["resolution"] == [64, 64]
    assert meta["build"]["config"] == "8_8_8_8_8_8_8_8"
    assert main(["random", "-o", str(tmp_path / "x.onnx")]) != 0  # needs --arch
    assert "needs --arch" in capsys.readouterr().err


def test_output_conv_s2d_export_matches_pytorch(tmp_path):
    model = build_generator("sub_mobile_resnet_9blocks", config="8_8_8_8_8_8_8_8").eval()
    path = tmp_path / "s2d.onnx"
    info = export_onnx(model, str(path), size=(64, 64), dynamic=True, output_conv="s2d")
    assert info["output_convs_rewritten"] == 1 and info["op_counts"]["DepthToSpace"] == 1
    assert info["metadata"]["onnx"]["output_conv"] == "s2d"
    result = check_onnx(str(path), model)
    assert result["passed"], result


def test_rung_latency_metadata_is_kept_at_its_size_and_dropped_at_another(tmp_path):
    """A compute-ladder rung's measured latency travels into the ONNX file only at the size it
    was timed at (compress.ladder stamps it on the checkpoint)."""
    from export.onnx import MEASURED_AT_RESOLUTION, export_metadata
    model = build_generator("sub_mobile_resnet_9blocks", config="8_8_16_8_16_16_8_8", n_blocks=3).eval()
    rung = {"rung": "fast", "latency_ms": 3.2, "teacher_latency_ms": 30.0, "speedup": 9.4,
            "latency_setting": {"backend": "onnxruntime"}}
    meta = save_generator(model, str(tmp_path / "fast.safetensors"), resolution=(64, 64), **rung)
    same = export_metadata(model, meta, (64, 64))
    assert {k: same[k] for k in rung} == rung
    other = export_metadata(model, meta, (128, 128))
    assert other["rung"] == "fast" and not set(MEASURED_AT_RESOLUTION) & set(other)
    assert main([str(tmp_path / "fast.safetensors"), "-o", str(tmp_path / "fast.onnx")]) == 0
    assert read_onnx_metadata(str(tmp_path / "fast.onnx"))["speedup"] == 9.4
