"""The placeholder pair: deterministic, flagged as placeholders, a real MAC gap, loadable
without torch (ONNX metadata)."""
import pytest
import torch

from app import model_files
from export.placeholders import build_models, main


def test_placeholders_are_deterministic():
    first, second = (build_models((64, 64), 8, 8, "8_8_8_8_8_8_8_8") for _ in range(2))
    for a, b in zip(first, second):
        for (key, tensor), (_, other) in zip(a.state_dict().items(), b.state_dict().items()):
            assert torch.equal(tensor, other), key


def test_placeholder_files_carry_their_metadata(tiny_models):
    for role in ("original", "compressed"):
        onnx_meta = model_files.peek_metadata(tiny_models[f"{role}.onnx"])
        checkpoint_meta = model_files.peek_metadata(tiny_models[f"{role}.safetensors"])
        for meta in (onnx_meta, checkpoint_meta):
            assert meta["placeholder"] is True and meta["palette"] == "facades"
            assert meta["input_kind"] == "label" and meta["resolution"] == [64, 64]
            assert meta["role"] == role
    teacher = model_files.peek_metadata(tiny_models["original.onnx"])
    student = model_files.peek_metadata(tiny_models["compressed.onnx"])
    assert teacher["arch"] == "resnet_9blocks" and student["arch"] == "sub_mobile_resnet_9blocks"
    assert teacher["macs"] > 2 * student["macs"]  # ngf 8 vs all-8 sub-network: 2.3x


def test_cli_rejects_bad_sizes(capsys):
    with pytest.raises(SystemExit):
        main(["--size", "30"])  # not a multiple of 4
    assert "multiples of 4" in capsys.readouterr().err
