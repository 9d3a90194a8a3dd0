"""Shared test set-up: headless Qt, the read-only shared/ folder, and GPU/TensorRT markers."""
import os
import subprocess
import sys
from pathlib import Path
from typing import Dict

import pytest
import torch

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
# Tiny test models gain nothing from intra-op threads, and on a loaded 2-core machine OpenMP
# synchronisation makes them many times slower.
torch.set_num_threads(1)

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
H2Z_CHECKPOINT = SHARED / "fixtures" / "gan-compression" / "horse2zebra_compressed_net_G.pth"
# Tiny real copies of the shared datasets, kept in the repository (tests/fixtures/datasets/SOURCE.md):
# every unit test reads these, so a fresh clone without ../shared runs the suite.
DATASETS = REPO / "tests" / "fixtures" / "datasets"
FULL_DATASETS = SHARED / "datasets"  # the complete sets: only the tests marked by needs_shared


def run_python(code: str, **kwargs) -> "subprocess.CompletedProcess[str]":
    """``code`` in a fresh interpreter at the repository root (for what one process cannot show:
    which modules an import pulls in, a clean exit, a blocked package); output captured as text."""
    kwargs.setdefault("timeout", 120)
    return subprocess.run([sys.executable, "-c", code], cwd=str(REPO), capture_output=True, text=True,
                          **kwargs)


def needs_shared(path: Path) -> Path:
    """``path`` inside ../shared, or skip the test saying what to put where."""
    if not path.exists():
        pytest.skip(f"needs {path} (the project's shared data folder beside the repository, present "
                    "in CI; see README 'Data' for where each dataset comes from)")
    return path


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


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny models are dominated by per-op overhead: one intra-op thread is several times faster
    than two on the shared 2-core test machines; commands that set their own thread count
    (cpu_threads) are undone after each test."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture
def h2z_checkpoint() -> Path:
    return needs_shared(H2Z_CHECKPOINT)


TINY_MODEL_SIZE = 64


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory) -> Dict[str, str]:
    """original/compressed .safetensors and .onnx: facades label -> photo at 64x64, ngf 8, built
    once per session by the placeholder CLI in-process (which is also its smoke test)."""
    from export.placeholders import main as placeholder_main
    folder = tmp_path_factory.mktemp("tiny_placeholders")
    code = placeholder_main(["--out", str(folder), "--size", str(TINY_MODEL_SIZE), "--teacher-ngf", "8",
                             "--supernet-ngf", "8", "--student-config", "8_8_8_8_8_8_8_8"])
    assert code == 0
    return {f"{role}.{ext}": str(folder / f"{role}.{ext}")
            for role in ("original", "compressed") for ext in ("safetensors", "onnx")}


@pytest.fixture(scope="module")
def static_onnx():
    """A tiny facades label model exported at a fixed size (tests/fakes/tiny_onnx.py)."""
    from tests.fakes.tiny_onnx import tiny_onnx
    return tiny_onnx("label", palette="facades")


@pytest.fixture(scope="module")
def dynamic_onnx():
    """The same with dynamic height and width."""
    from tests.fakes.tiny_onnx import tiny_onnx
    return tiny_onnx("label", dynamic=True, palette="facades")
