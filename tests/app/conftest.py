"""Fixtures of the app tests: a tiny placeholder pair (64x64, ngf 8) built once, and a slow fake
engine that records which thread touches it."""
import threading
import time
from pathlib import Path
from typing import Dict, List

import numpy as np
import pytest
import torch

from export.placeholders import main as placeholder_main
from engines.base import Engine, InputSpec

SIZE = 64


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory) -> Dict[str, str]:
    """original/compressed .safetensors and .onnx: facades label -> photo at 64x64, built by the
    placeholder CLI in-process (its smoke test)."""
    folder = tmp_path_factory.mktemp("tiny_placeholders")
    # One torch thread: on a busy machine multi-threaded instance norm on tiny tensors spends
    # 5x longer waiting for its threads than computing (measured: 34 s vs 6 s for this build).
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        code = placeholder_main(["--out", str(folder), "--size", str(SIZE), "--teacher-ngf", "8",
                                 "--supernet-ngf", "8", "--student-config", "8_8_8_8_8_8_8_8"])
    finally:
        torch.set_num_threads(previous)
    assert code == 0
    return {f"{role}.{ext}": str(folder / f"{role}.{ext}")
            for role in ("original", "compressed") for ext in ("safetensors", "onnx")}


class SlowEngine(Engine):
    """Sleeps ``delay_s`` per inference and returns the input; logs the threads it runs on."""

    backend = "fake"

    def __init__(self, path: str, delay_s: float, log: List):
        super().__init__(path)
        self.delay_s, self.log = delay_s, log
        self.metadata = {"arch": "fake", "palette": "facades", "input_kind": "label",
                         "resolution": [SIZE, SIZE], "macs": 1000, "params": 10}
        self.input_spec = InputSpec("input", 3, SIZE, SIZE)
        self.log.append(("open", threading.get_ident()))

    def _run(self, batch: np.ndarray) -> np.ndarray:
        self.log.append(("run", threading.get_ident()))
        time.sleep(self.delay_s)
        return np.tanh(batch)

    def close(self) -> None:
        self.log.append(("close", threading.get_ident()))
        super().close()


@pytest.fixture
def slow_opener():
    """(opener, log): an open_engine stand-in building SlowEngines of 150 ms."""
    log: List = []

    def opener(path, backend=None, device=None, threads=None, **options):
        return SlowEngine(path, 0.15, log)
    return opener, log


@pytest.fixture
def sample_label_map() -> Path:
    return Path(__file__).resolve().parents[2] / "assets" / "samples" / "facades" / "cmp_b0006.png"
