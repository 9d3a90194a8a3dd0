"""Model pairs: an original (teacher) and a compressed (student) generator trained on one dataset.

The shipped pairs are the folders ``assets/models/<name>/`` holding ``original.onnx`` and
``compressed.onnx`` (facades, edges2shoes, ...); the untrained placeholders that
``python -m export.placeholders`` builds into ``build/placeholder_models/`` are the pair
"placeholders". A pair may ship a compute ladder: more students of other budgets in
``<folder>/ladder/*.onnx``; with the default student they are the pair's ``rungs``, ordered from
the fewest MACs to the most, which the compressed pane's compute slider switches between.
The Model > Pair menu, ``python -m app --pair NAME`` and the "switch the pair?"
offer (when a pane is given a model of another input kind) all come from `discover_pairs`.
Qt-free and torch-free: metadata is peeked as `app.model_files` does.
"""
import os
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Tuple

from app import model_files

PLACEHOLDER_PAIR = "placeholders"
LADDER_DIR = "ladder"  # inside a pair's folder: the other students of its compute ladder


@dataclass(frozen=True)
class ModelPair:
    name: str          # folder name: "facades", "edges2shoes", or "placeholders"
    original: str      # path of the original (teacher) model
    compressed: str    # path of the compressed (student) model
    rungs: Tuple[str, ...] = ()  # compute ladder: students by MACs, compressed among them (or empty)

    @property
    def placeholder(self) -> bool:
        return self.name == PLACEHOLDER_PAIR

    def students(self) -> Tuple[str, ...]:
        """Every compressed model of the pair: the ladder's rungs, or just the default student."""
        return self.rungs or (self.compressed,)


def discover_pairs(model_dir: Optional[str] = None, placeholder_dir: Optional[str] = None) -> List[ModelPair]:
    """Every complete pair, shipped ones first (by name), then the placeholders if built
    (default folders: `app.model_files.MODEL_DIR` and ``PLACEHOLDER_DIR``)."""
    model_dir = model_files.MODEL_DIR if model_dir is None else model_dir
    placeholder_dir = model_files.PLACEHOLDER_DIR if placeholder_dir is None else placeholder_dir
    pairs = []
    if os.path.isdir(model_dir):
        for name in sorted(os.listdir(model_dir)):
            pair = _pair_in(name, os.path.join(model_dir, name))
            if pair is not None:
                pairs.append(pair)
    placeholders = _pair_in(PLACEHOLDER_PAIR, placeholder_dir)
    return pairs + ([placeholders] if placeholders is not None else [])


def _pair_in(name: str, folder: str) -> Optional[ModelPair]:
    original, compressed = (os.path.join(folder, f"{role}.onnx") for role in ("original", "compressed"))
    if os.path.isfile(original) and os.path.isfile(compressed):
        return ModelPair(name, original, compressed, ladder_rungs(folder, compressed))
    return None


def ladder_rungs(folder: str, compressed: str) -> Tuple[str, ...]:
    """The default student plus ``<folder>/ladder/*.onnx``, ordered by their metadata's MACs
    (fewest first; unreadable files are left out: opening them would report the problem);
    empty when the pair ships no ladder."""
    ladder = os.path.join(folder, LADDER_DIR)
    if not os.path.isdir(ladder):
        return ()
    paths = [compressed] + [os.path.join(ladder, name) for name in sorted(os.listdir(ladder))
                            if name.lower().endswith(".onnx")]
    macs = {}
    for path in paths:
        try:
            macs[path] = float(model_files.peek_metadata(path).get("macs") or 0)
        except (OSError, ValueError):
            continue
    return tuple(sorted(macs, key=lambda path: (macs[path], path))) if len(macs) > 1 else ()


def find_pair(name: str, pairs: Optional[List[ModelPair]] = None) -> ModelPair:
    """The pair called ``name``; ValueError listing the available ones."""
    pairs = discover_pairs() if pairs is None else pairs
    for pair in pairs:
        if pair.name == name:
            return pair
    available = ", ".join(p.name for p in pairs) or "none (build placeholders: python -m export.placeholders)"
    raise ValueError(f"no model pair {name!r}; available: {available} (folders of {model_files.MODEL_DIR} "
                     "holding original.onnx and compressed.onnx)")


def document_key(metadata: Dict[str, Any]) -> tuple:
    """What one canvas can serve: (input kind, palette). Models with equal keys share a canvas."""
    kind = model_files.canvas_kind(metadata)
    return kind, (metadata.get("palette") if kind == "label" else None)


def pair_for(metadata: Dict[str, Any], pairs: List[ModelPair]) -> Optional[ModelPair]:
    """The first pair whose models draw on the same kind of canvas as ``metadata`` (trained
    pairs before the placeholders); None when there is none or the metadata says too little."""
    try:
        wanted = document_key(metadata)
    except ValueError:
        return None
    for pair in pairs:
        try:
            if document_key(model_files.peek_metadata(pair.original)) == wanted:
                return pair
        except (OSError, ValueError):
            continue  # an unreadable pair is skipped here; opening it reports the problem
    return None


# the quality a benchmark plot shows, in order of preference: (metrics.json key, axis label)
QUALITY_METRICS = (("miou", "validation mIoU (%), higher is better"),
                   ("kid", "validation KID, lower is better"),
                   ("fid", "validation FID, lower is better"))


def model_quality(paths: List[str]) -> Tuple[str, Dict[str, float]]:
    """(axis label, {path: score}) of the models among ``paths`` that a pair's ``metrics.json``
    (written by ``python -m compress.evaluate``, beside ``original.onnx``) scores: a generator
    entry matches a model when both files have the same name without extension and both are,
    or both are not, in the ``ladder/`` folder. The metric is the first of `QUALITY_METRICS`
    that scores any of them; ({} when none is scored, e.g. a model from elsewhere)."""
    scores: Dict[str, Dict[str, float]] = {}
    generators_of: Dict[str, List[Dict[str, Any]]] = {}  # pair folder -> its metrics.json entries
    for path in paths:
        folder = _pair_folder(path)
        if folder not in generators_of:
            generators_of[folder] = _read_generators(folder)
        entry = next((e for e in generators_of[folder] if _match_key(e["path"]) == _match_key(path)), None)
        if entry:
            scores[path] = {k: float(v) for k, v in entry.items() if isinstance(v, (int, float))}
    for key, label in QUALITY_METRICS:
        found = {path: values[key] for path, values in scores.items() if key in values}
        if found:
            return label, found
    return "", {}


def _match_key(path: str) -> Tuple[bool, str]:
    folder = os.path.basename(os.path.dirname(os.path.abspath(path)))
    return folder == LADDER_DIR, os.path.splitext(os.path.basename(path))[0]


def _pair_folder(path: str) -> str:
    """The pair folder a model file belongs to (a rung's is the folder above ``ladder/``)."""
    folder = os.path.dirname(os.path.abspath(path))
    return os.path.dirname(folder) if os.path.basename(folder) == LADDER_DIR else folder


def _read_generators(folder: str) -> List[Dict[str, Any]]:
    """The generator entries (with a ``path``) of ``<folder>/metrics.json``; [] without one."""
    import json
    try:
        with open(os.path.join(folder, "metrics.json"), encoding="utf-8") as handle:
            generators = json.load(handle).get("generators") or {}
    except (OSError, ValueError, AttributeError):
        return []  # no (readable) scores: the plot just leaves the quality panel out
    return [e for e in generators.values() if isinstance(e, dict) and e.get("path")]


def pick_rung(compressed: str, choice: str) -> str:
    """The rung ``choice`` ("fastest", "slowest", or a rung's name: its metadata ``rung`` or
    file name) of the ladder of the pair holding ``compressed``; ValueError listing the rungs.
    Speed is the metadata's measured ``latency_ms`` where every rung has one, else MACs."""
    folder = _pair_folder(compressed)
    if folder != os.path.dirname(os.path.abspath(compressed)):  # a rung: the pair's default student
        compressed = os.path.join(folder, "compressed.onnx")
    rungs = ladder_rungs(folder, compressed)
    if not rungs:
        raise ValueError(f"{folder} ships no compute ladder (no {LADDER_DIR}/*.onnx beside compressed.onnx)")
    metadata = {path: model_files.peek_metadata(path) for path in rungs}
    names = {path: str(meta.get("rung") or os.path.splitext(os.path.basename(path))[0])
             for path, meta in metadata.items()}
    if choice in ("fastest", "slowest"):
        timed = all(isinstance(meta.get("latency_ms"), (int, float)) for meta in metadata.values())
        ordered = sorted(rungs, key=lambda p: float(metadata[p]["latency_ms"])) if timed else list(rungs)
        return ordered[0] if choice == "fastest" else ordered[-1]
    for path, name in names.items():
        if choice in (name, os.path.splitext(os.path.basename(path))[0]):
            return path
    raise ValueError(f"no rung {choice!r} in {folder}; rungs: {', '.join(names.values())} "
                     "(or fastest / slowest)")
