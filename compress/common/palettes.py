"""Class palettes: the one source of truth for class ids, names and colours.

Each palette is a JSON file ``assets/palettes/<name>.json`` (id, name, RGB per class, plus the
background id the eraser paints and the id ignored in evaluation). Data loading, the engines'
pre-processing and the app all read palettes through this module. It needs only numpy (no
torch), so the lean Jetson path (ONNX / TensorRT engines) can use it.
"""
import json
import os
from dataclasses import dataclass
from typing import List, Optional, Tuple

import numpy as np

# compress/common/palettes.py -> the repository root -> assets/palettes
_REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PALETTE_DIR = os.path.join(_REPO, "assets", "palettes")


@dataclass(frozen=True)
class Palette:
    """Classes of a label-map dataset. ``colors[i]`` is the RGB of class id ``ids[i]``."""

    name: str
    ids: Tuple[int, ...]
    names: Tuple[str, ...]
    colors: Tuple[Tuple[int, int, int], ...]
    background_id: int
    ignore_id: Optional[int] = None
    description: str = ""

    @property
    def num_classes(self) -> int:
        """Label ids run from 0 to num_classes - 1 (the one-hot width of a SPADE input)."""
        return max(self.ids) + 1

    def lut(self) -> np.ndarray:
        """(num_classes, 3) uint8 colour per id; ids absent from the palette are black."""
        table = np.zeros((self.num_classes, 3), dtype=np.uint8)
        table[list(self.ids)] = np.asarray(self.colors, dtype=np.uint8)
        return table

    def name_of(self, class_id: int) -> str:
        return self.names[self.ids.index(class_id)]

    def validate(self, label_map: np.ndarray, source: str = "label map") -> np.ndarray:
        """Return ``label_map`` if it is a 2-D integer map of known ids, else raise ValueError."""
        label_map = np.asarray(label_map)
        if label_map.ndim != 2:
            raise ValueError(f"{source}: a label map must be 2-D class ids (H, W), got shape "
                             f"{label_map.shape}; colour images go through Palette.to_ids first")
        if not np.issubdtype(label_map.dtype, np.integer):
            raise ValueError(f"{source}: label ids must be integers, got {label_map.dtype}")
        unknown = sorted(set(np.unique(label_map).tolist()) - set(self.ids))
        if unknown:
            raise ValueError(f"{source}: class ids {unknown[:10]} are not in the '{self.name}' palette "
                             f"(valid ids {min(self.ids)}..{max(self.ids)}); wrong palette or dataset?")
        return label_map

    def colorize(self, label_map: np.ndarray, source: str = "label map") -> np.ndarray:
        """(H, W) ids -> (H, W, 3) uint8 RGB."""
        return self.lut()[self.validate(label_map, source)]

    def to_ids(self, rgb: np.ndarray) -> np.ndarray:
        """(H, W, 3) RGB -> (H, W) uint8 ids of the nearest palette colour (JPEG-safe).
        Where two classes share a colour, the lower id wins."""
        return self.nearest(rgb)[0]

    def nearest(self, rgb: np.ndarray, pixels_per_block: int = 1 << 20) -> Tuple[np.ndarray, np.ndarray]:
        """(ids, distance): the nearest palette class of every pixel and its Euclidean RGB
        distance to that class colour (uint8 ids, float32 distances; (H, W) each).

        A colour lookup over blocks of rows: each block's distinct colours are matched once, so
        memory stays proportional to the block, not to pixels x classes (an 8000x8000 map needs
        well under 1 GB; every pixel against every class at once needed 17.6 GB)."""
        rgb = np.asarray(rgb)
        if rgb.ndim != 3 or rgb.shape[2] != 3:
            raise ValueError(f"expected an (H, W, 3) RGB image, got shape {rgb.shape}")
        colors = np.asarray(self.colors, dtype=np.int32)
        class_ids = np.asarray(self.ids, dtype=np.uint8)
        ids = np.empty(rgb.shape[:2], np.uint8)
        distance = np.empty(rgb.shape[:2], np.float32)
        rows = max(1, pixels_per_block // max(1, rgb.shape[1]))
        for top in range(0, rgb.shape[0], rows):
            block = rgb[top:top + rows].astype(np.int32)
            keys = (block[..., 0] << 16) | (block[..., 1] << 8) | block[..., 2]  # one int per colour
            unique, inverse = np.unique(keys.ravel(), return_inverse=True)
            squared = np.zeros((len(unique), len(colors)), np.int32)
            for channel, shift in enumerate((16, 8, 0)):  # one (colours, classes) array at a time
                squared += (((unique >> shift) & 255)[:, None] - colors[None, :, channel]) ** 2
            best = squared.argmin(axis=1)  # argmin keeps the first (lowest id) of equal colours
            best_distance = np.sqrt(squared[np.arange(len(unique)), best]).astype(np.float32)
            ids[top:top + rows] = class_ids[best][inverse].reshape(keys.shape)
            distance[top:top + rows] = best_distance[inverse].reshape(keys.shape)
        return ids, distance


def available_palettes() -> List[str]:
    return sorted(f[:-5] for f in os.listdir(PALETTE_DIR) if f.endswith(".json"))


def load_palette(name_or_path: str) -> Palette:
    """Load ``assets/palettes/<name>.json`` or a JSON file path."""
    path = name_or_path
    if not path.endswith(".json"):
        path = os.path.join(PALETTE_DIR, name_or_path + ".json")
    if not os.path.isfile(path):
        raise ValueError(f"no palette {name_or_path!r} ({path} not found); "
                         f"available: {', '.join(available_palettes())}")
    try:
        with open(path) as handle:
            data = json.load(handle)
        classes = sorted(data["classes"], key=lambda c: c["id"])
        ids = tuple(int(c["id"]) for c in classes)
        colors = tuple(tuple(int(v) for v in c["rgb"]) for c in classes)
    except (ValueError, KeyError, TypeError) as error:
        raise ValueError(f"{path}: not a valid palette file ({error}); expected "
                         '{"name", "background_id", "classes": [{"id", "name", "rgb"}]}') from None
    if len(set(ids)) != len(ids) or any(i < 0 for i in ids) or any(len(c) != 3 for c in colors):
        raise ValueError(f"{path}: class ids must be unique non-negative ints with 3-value RGB colours")
    return Palette(name=data.get("name", os.path.basename(path)[:-5]), ids=ids,
                   names=tuple(str(c["name"]) for c in classes), colors=colors,
                   background_id=int(data["background_id"]), ignore_id=data.get("ignore_id"),
                   description=data.get("description", ""))
