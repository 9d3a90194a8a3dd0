"""Shared test set-up: headless Qt, the read-only shared/ folder, and GPU/TensorRT markers."""
import os
from pathlib import Path

import pytest
import torch

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
# Tiny test models gain nothing from intra-op threads, and on a loaded 2-core machine OpenMP
# synchronisation makes them many times slower.
torch.set_num_threads(1)

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
H2Z_CHECKPOINT = SHARED / "fixtures" / "gan-compression" / "horse2zebra_compressed_net_G.pth"


def pytest_collection_modifyitems(config, items):
    has_gpu = torch.cuda.is_available()
    try:
        import tensorrt  # noqa: F401
        has_trt = True
    except ImportError:
        has_trt = False
    for item in items:
        if "gpu" in item.keywords and not has_gpu:
            item.add_marker(pytest.mark.skip(reason="needs an NVIDIA GPU"))
        if "tensorrt" in item.keywords and not has_trt:
            item.add_marker(pytest.mark.skip(reason="needs TensorRT (requirements-gpu.txt / JetPack)"))


@pytest.fixture(autouse=True)
def _seeded():
    torch.manual_seed(0)


@pytest.fixture
def h2z_checkpoint() -> Path:
    if not H2Z_CHECKPOINT.is_file():
        pytest.fail(f"missing {H2Z_CHECKPOINT}: the shared/ folder must sit beside the repository")
    return H2Z_CHECKPOINT
