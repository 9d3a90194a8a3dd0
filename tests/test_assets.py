"""The embedded default models (assets/models/facades): they load strictly, the student keeps the
10x MAC budget, the ONNX files match their checkpoints on real validation label maps, the app
opens this pair by default, and the model card quotes the measured numbers it ships with."""
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from compress.models.checkpoints import load_generator
from compress.data import build_dataset
from compress.models.profile import count_macs
from engines.factory import open_engine
from tests.conftest import DATASETS

REPO = Path(__file__).resolve().parents[1]
MODELS = REPO / "assets" / "models" / "facades"
FACADES = DATASETS / "facades" / "256"
ROLES = ("original", "compressed")


@pytest.fixture(scope="module")
def val_inputs():
    dataset = build_dataset("labelmap", str(FACADES), "val", palette="facades", load_size=128,
                            max_items=4, flip=False, random_crop=False)
    return torch.stack([dataset[i]["A"] for i in range(len(dataset))])


@pytest.mark.parametrize("role", ROLES)
def test_checkpoints_load_strictly_with_the_demo_metadata(role):
    model, meta = load_generator(str(MODELS / f"{role}.safetensors"))  # strict by default
    assert meta["palette"] == "facades" and meta["input_kind"] == "label"
    assert meta["resolution"] == [128, 128]
    counted = count_macs(model, (1, 3, 128, 128))
    assert counted["macs"] == meta["macs"] and counted["params"] == meta["params"]


def test_student_has_at_least_ten_times_fewer_macs():
    teacher, _ = load_generator(str(MODELS / "original.safetensors"))
    student, meta = load_generator(str(MODELS / "compressed.safetensors"))
    assert meta["arch"] == "sub_mobile_resnet_9blocks"
    ratio = count_macs(teacher, (1, 3, 128, 128))["macs"] / count_macs(student, (1, 3, 128, 128))["macs"]
    assert ratio >= 10.0


@pytest.mark.parametrize("role", ROLES)
def test_onnx_matches_the_checkpoint_on_real_label_maps(role, val_inputs):
    batch = val_inputs.numpy()
    with open_engine(str(MODELS / f"{role}.safetensors")) as reference, \
            open_engine(str(MODELS / f"{role}.onnx")) as engine:
        assert engine.metadata["palette"] == "facades" and engine.resolution == (128, 128)
        for image in batch:
            expected = reference.infer(image[None])
            output = engine.infer(image[None])
            assert np.abs(output - expected).max() <= 1e-4
            assert expected.std() > 0.1  # a trained picture, not a flat one


def test_the_app_opens_the_trained_pair_by_default():
    from app import model_files
    original, compressed = model_files.default_models()
    assert Path(original) == MODELS / "original.onnx" and Path(compressed) == MODELS / "compressed.onnx"


def test_model_card_quotes_the_shipped_measurements():
    card = (MODELS / "MODEL_CARD.md").read_text(encoding="utf-8")
    results = json.loads((MODELS / "metrics.json").read_text(encoding="utf-8"))
    for name in ("teacher", "student"):
        row = results["generators"][name]
        assert f"{row['fid']:.1f}" in card and f"{row['miou']:.2f}" in card
    assert "python -m compress.evaluate" in card and "python -m engines.bench" in card
