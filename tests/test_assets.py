"""The shipped model pairs (assets/models/facades: label map -> photo, the default;
assets/models/edges2shoes: sketch -> shoe): they load strictly, each student keeps the 10x MAC
budget, the ONNX files match their checkpoints on real inputs, the app opens facades by default
and finds both pairs, and each model card quotes the measured numbers it ships with."""
import json
from pathlib import Path
from typing import Dict, Tuple

import numpy as np
import pytest
import torch

from compress.data import build_dataset
from compress.models.checkpoints import load_generator
from compress.models.profile import count_macs
from engines.factory import open_engine
from tests.conftest import DATASETS

REPO = Path(__file__).resolve().parents[1]
MODEL_DIR = REPO / "assets" / "models"
ROLES = ("original", "compressed")
# What each pair's metadata must say, and the real inputs (kept in the repo) it is checked on.
PAIRS = {
    "facades": {"input_kind": "label", "palette": "facades",
                "dataset": ("labelmap", DATASETS / "facades" / "256", "val", {"palette": "facades"})},
    "edges2shoes": {"input_kind": "sketch", "palette": None,
                    "dataset": ("aligned", DATASETS / "edges2shoes_mini", "train", {})},
}
PAIR_ROLES = [(pair, role) for pair in PAIRS for role in ROLES]


def _model(pair: str, role: str, ext: str) -> str:
    return str(MODEL_DIR / pair / f"{role}.{ext}")


@pytest.fixture(scope="module", params=list(PAIRS))
def real_inputs(request):
    mode, root, split, options = PAIRS[request.param]["dataset"]
    dataset = build_dataset(mode, str(root), split, load_size=128, max_items=4, flip=False,
                            random_crop=False, **options)
    return request.param, torch.stack([dataset[i]["A"] for i in range(len(dataset))]).numpy()


@pytest.mark.parametrize("pair,role", PAIR_ROLES)
def test_checkpoints_load_strictly_with_the_demo_metadata(pair, role):
    model, meta = load_generator(_model(pair, role, "safetensors"))  # strict by default
    assert meta["palette"] == PAIRS[pair]["palette"] and meta["input_kind"] == PAIRS[pair]["input_kind"]
    assert meta["resolution"] == [128, 128]
    counted = count_macs(model, (1, 3, 128, 128))
    assert counted["macs"] == meta["macs"] and counted["params"] == meta["params"]


@pytest.mark.parametrize("pair", list(PAIRS))
def test_student_has_at_least_ten_times_fewer_macs(pair):
    teacher, _ = load_generator(_model(pair, "original", "safetensors"))
    student, meta = load_generator(_model(pair, "compressed", "safetensors"))
    assert meta["arch"] == "sub_mobile_resnet_9blocks"
    ratio = count_macs(teacher, (1, 3, 128, 128))["macs"] / count_macs(student, (1, 3, 128, 128))["macs"]
    assert ratio >= 10.0


@pytest.mark.parametrize("role", ROLES)
def test_onnx_matches_the_checkpoint_on_real_inputs(role, real_inputs):
    pair, batch = real_inputs
    with open_engine(_model(pair, role, "safetensors")) as reference, \
            open_engine(_model(pair, role, "onnx")) as engine:
        assert engine.metadata["input_kind"] == PAIRS[pair]["input_kind"]
        assert engine.metadata["palette"] == PAIRS[pair]["palette"] and engine.resolution == (128, 128)
        for image in batch:
            expected = reference.infer(image[None])
            output = engine.infer(image[None])
            assert np.abs(output - expected).max() <= 1e-4
            assert expected.std() > 0.1  # a trained picture, not a flat one


# Compute ladders (issue 16): the other students of a pair, in <pair>/ladder/, besides compressed.*
# (how the facades rungs were chosen: assets/models/facades/provenance/ladder/README.md). A pair
# that ships one is listed here; these tests check its files and its speedup span.
LADDERS: Dict[str, Tuple[str, ...]] = {"facades": ("quality", "fast")}
LADDER_RUNGS = [(pair, rung) for pair, rungs in LADDERS.items() for rung in rungs]


@pytest.mark.parametrize("pair,rung", LADDER_RUNGS)
def test_ladder_rungs_load_strictly_and_their_onnx_matches(pair, rung):
    path = MODEL_DIR / pair / "ladder" / f"{rung}.safetensors"
    model, meta = load_generator(str(path))
    assert meta["rung"] == rung and meta["arch"] == "sub_mobile_resnet_9blocks"
    assert count_macs(model, (1, 3, 128, 128))["macs"] == meta["macs"]
    assert meta["speedup"] == pytest.approx(meta["teacher_latency_ms"] / meta["latency_ms"], abs=0.01)
    mode, root, split, options = PAIRS[pair]["dataset"]
    dataset = build_dataset(mode, str(root), split, load_size=128, max_items=2, flip=False,
                            random_crop=False, **options)
    with open_engine(str(path)) as reference, open_engine(str(path.with_suffix(".onnx"))) as engine:
        assert engine.metadata["rung"] == rung and engine.metadata["latency_ms"] == meta["latency_ms"]
        for item in range(len(dataset)):
            image = dataset[item]["A"].numpy()[None]
            assert np.abs(engine.infer(image) - reference.infer(image)).max() <= 1e-4


@pytest.mark.parametrize("pair", list(LADDERS))
def test_the_ladder_spans_slow_to_fast_rungs_timed_against_one_teacher(pair):
    from app import model_pairs
    folder = MODEL_DIR / pair
    rungs = model_pairs.ladder_rungs(str(folder), str(folder / "compressed.onnx"))
    assert len(rungs) >= 3
    metas = [load_generator(str(Path(path).with_suffix(".safetensors")))[1] for path in rungs]
    assert len({meta["teacher_latency_ms"] for meta in metas}) == 1  # speedups from one timing session
    speedups = sorted(meta["speedup"] for meta in metas)
    assert speedups[0] <= 4.0 and speedups[-1] >= 8.0, speedups  # the span, as measured


def test_the_app_opens_the_trained_pair_by_default_and_finds_both():
    from app import model_files, model_pairs
    original, compressed = model_files.default_models()
    assert Path(original) == MODEL_DIR / "facades" / "original.onnx"
    assert Path(compressed) == MODEL_DIR / "facades" / "compressed.onnx"
    names = [pair.name for pair in model_pairs.discover_pairs()]
    assert {"facades", "edges2shoes"} <= set(names)


@pytest.mark.parametrize("pair", list(PAIRS))
def test_model_card_quotes_the_shipped_measurements(pair):
    card = (MODEL_DIR / pair / "MODEL_CARD.md").read_text(encoding="utf-8")
    results = json.loads((MODEL_DIR / pair / "metrics.json").read_text(encoding="utf-8"))
    assert {"teacher", "student"} <= set(results["generators"])
    for row in results["generators"].values():  # the ladder's rungs too, where scored
        assert f"{row['fid']:.1f}" in card and f"{row['kid']:.4f}" in card
        if "miou" in row:
            assert f"{row['miou']:.2f}" in card
    for threads in ("1thread", "2threads"):
        latency = json.loads((MODEL_DIR / pair / f"latency_{threads}.json").read_text(encoding="utf-8"))
        means = [f"{row['engine']['mean_ms']:.2f}" for row in latency["results"]]
        assert all(mean in card for mean in means), (threads, means)
    assert "python -m compress.evaluate" in card and "python -m engines.bench" in card
