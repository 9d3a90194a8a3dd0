"""How far the compressed output is from the original's: a heat map of |original − compressed|
and its PSNR, for the app's difference view (Qt-free, so it is tested without a display).

The two panes render the same request on two threads and finish at different times;
`DifferenceTracker` keeps each pane's newest output and answers only when both show the same
request, so the map never compares a stroke with an older one.
"""
import math
from typing import Any, Callable, Dict, Optional, Tuple

import cv2
import numpy as np

# The heat map's gain: a mean absolute channel difference of 64/255 (a quarter of the range)
# or more is full scale. Fixed rather than normalised per frame, so that colours mean the same
# from stroke to stroke and a near-perfect student does not look as wrong as a bad one.
FULL_SCALE_DIFFERENCE = 64.0


def psnr_db(original: np.ndarray, compressed: np.ndarray) -> float:
    """PSNR (dB) of two uint8 images of one shape, peak 255; inf when they are identical."""
    _check_pair(original, compressed)
    mse = float(np.mean((original.astype(np.float64) - compressed.astype(np.float64)) ** 2))
    return math.inf if mse == 0.0 else 10.0 * math.log10(255.0 ** 2 / mse)


def difference_map(original: np.ndarray, compressed: np.ndarray) -> Tuple[np.ndarray, float]:
    """(heat map, PSNR dB) of two uint8 RGB images (H, W, 3) of one shape.

    The heat map is uint8 RGB (H, W, 3): the per-pixel mean absolute difference over the
    channels, scaled so that FULL_SCALE_DIFFERENCE is full scale, in the perceptually uniform
    inferno colour map (black: equal, yellow: far apart)."""
    _check_pair(original, compressed)
    absolute = np.abs(original.astype(np.int16) - compressed.astype(np.int16)).mean(axis=2)
    scaled = np.clip(absolute * (255.0 / FULL_SCALE_DIFFERENCE), 0, 255).astype(np.uint8)
    heat_bgr = cv2.applyColorMap(scaled, cv2.COLORMAP_INFERNO)
    return np.ascontiguousarray(heat_bgr[:, :, ::-1]), psnr_db(original, compressed)


def _check_pair(original: np.ndarray, compressed: np.ndarray) -> None:
    if original.shape != compressed.shape or original.ndim != 3 or original.shape[2] != 3:
        raise ValueError(f"difference of two RGB images of one size, got {original.shape} and "
                         f"{compressed.shape}")


class DifferenceTracker:
    """The newest output of each pane. While ``enabled``, `add` returns the difference once both
    panes have rendered the same request (None before, or while one pane is behind); `update`
    computes it from the outputs kept so far (when the view is switched on). Outputs of
    different resolutions are compared at the original's (the compressed one is resized).

    Outputs are kept as they arrive and converted by ``to_rgb`` (e.g. QImage -> uint8 RGB) only
    when a difference is computed, so an idle difference view costs nothing per frame."""

    def __init__(self, to_rgb: Callable[[Any], np.ndarray] = np.asarray):
        self._outputs: Dict[str, Tuple[int, Any]] = {}
        self._to_rgb = to_rgb
        self.enabled = False
        self.request_id = -1  # the request the last difference was computed for
        self.latest: Optional[Tuple[np.ndarray, float]] = None

    def add(self, pane: str, request_id: int, output: Any) -> Optional[Tuple[np.ndarray, float]]:
        self._outputs[pane] = (request_id, output)
        return self.update() if self.enabled else None

    def update(self) -> Optional[Tuple[np.ndarray, float]]:
        original, compressed = self._outputs.get("original"), self._outputs.get("compressed")
        if original is None or compressed is None or original[0] != compressed[0]:
            return None
        if original[0] == self.request_id:
            return self.latest  # already computed for this request
        reference, candidate = self._to_rgb(original[1]), self._to_rgb(compressed[1])
        if candidate.shape != reference.shape:  # models of different resolutions
            candidate = cv2.resize(candidate, (reference.shape[1], reference.shape[0]),
                                   interpolation=cv2.INTER_LINEAR)
        self.request_id = original[0]
        self.latest = difference_map(reference, candidate)
        return self.latest

    def clear(self) -> None:
        self._outputs.clear()
        self.request_id, self.latest = -1, None
