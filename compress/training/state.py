"""Resumable training state: what a checkpoint holds and how it is written and read back.

A training checkpoint (``train_state.pt`` in the run folder) is one ``torch.save`` of plain
containers: model and optimiser state_dicts, LR-scheduler state, counters, the best validation
score, and per rank the RNG states (Python, NumPy, torch, CUDA) plus recipe extras such as
CycleGAN's image pools. Nothing in it is an arbitrary Python object, so it loads back with
``torch.load(weights_only=True)``: opening a checkpoint never executes code. It is written with
`compress.common.atomic.atomic_write` (temp file + rename): a run killed while saving keeps the
previous checkpoint intact.
"""
import contextlib
import os
import random
from typing import Any, Dict, Iterator

import numpy as np
import torch

from compress.common.atomic import atomic_write

FORMAT = "gan-compression-train/1"


# ----------------------------------------------------------------------------- RNG

def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2 ** 32)
    torch.manual_seed(seed)  # also seeds every CUDA device


def rng_state() -> Dict[str, Any]:
    """The global RNG states as plain data (tensors, ints, floats, tuples)."""
    version, internal, gauss = random.getstate()
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state: Dict[str, Any] = {
        "python": (version, tuple(internal), gauss),
        "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "cached_gaussian": float(cached)},
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: Dict[str, Any]) -> None:
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    n = state["numpy"]
    np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"],
                         n["cached_gaussian"]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])


@contextlib.contextmanager
def preserved_rng() -> Iterator[None]:
    """Run a block (validation, image logging) without disturbing the training RNG streams, so
    that a run with more or fewer evaluations trains identically."""
    saved = rng_state()
    try:
        yield
    finally:
        set_rng_state(saved)


# ----------------------------------------------------------------------------- files

def save_training_state(path: str, state: Dict[str, Any]) -> None:
    """Atomically write ``state`` (plain containers of tensors/numbers/strings) to ``path``."""
    payload = dict(state, format=FORMAT)
    atomic_write(path, lambda temp: torch.save(payload, temp), overwrite=True)


def load_training_state(path: str) -> Dict[str, Any]:
    """Read a checkpoint written by `save_training_state`; ValueError naming the file otherwise."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise
    except Exception as error:  # unpickling errors come in several types
        raise ValueError(f"{path}: cannot read the training checkpoint ({str(error).splitlines()[0]}); "
                         "delete it (or pass --force) to start the run over") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise ValueError(f"{path}: not a training checkpoint of this project "
                         f"(format {state.get('format') if isinstance(state, dict) else None!r})")
    return state


def to_device(obj: Any, device: torch.device) -> Any:
    """Move every tensor in a nested dict/list/tuple to ``device``."""
    if isinstance(obj, torch.Tensor):
        return obj.to(device)
    if isinstance(obj, dict):
        return {k: to_device(v, device) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(to_device(v, device) for v in obj)
    return obj


def exists(path: str) -> bool:
    return os.path.isfile(path)
