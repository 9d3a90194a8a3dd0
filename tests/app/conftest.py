"""Fixtures of the app tests: a slow fake engine that records which thread touches it (the tiny
placeholder model pair, ``tiny_models``, comes from tests/conftest.py)."""
import threading
import time
from pathlib import Path
from typing import List

import numpy as np
import pytest

from engines.base import Engine, InputSpec

from tests.conftest import TINY_MODEL_SIZE as SIZE


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
