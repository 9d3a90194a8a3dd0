"""LabelMap: the document the user draws, stored as the model consumes it, plus undo/redo.

The map holds one uint8 per model pixel: a class id in label mode (colourised only for
display), a gray level in sketch mode (0 ink, 255 paper). Undo/redo keep whole copies of the
map in bounded stacks: at 256x256 one copy is 64 KB, so 100 levels cost about 6.4 MB, and a
copy per stroke is simpler and more robust than replaying vector strokes. Pure numpy, no Qt.

A stroke is bracketed by `begin_stroke` / `end_stroke`; tools write into `ids` in place and
the caller reports changes with `mark_changed`, which bumps `version` (the render request
counter compares versions to skip renders of an unchanged map).
"""
from collections import deque
from typing import Deque, Optional

import numpy as np

DEFAULT_HISTORY = 100


class LabelMap:
    """A uint8 (height, width) map with a bounded undo/redo history of copies."""

    def __init__(self, height: int, width: int, fill_value: int, max_history: int = DEFAULT_HISTORY):
        if height < 1 or width < 1:
            raise ValueError(f"a label map needs a positive size, got {height}x{width}")
        if not 0 <= int(fill_value) <= 255:
            raise ValueError(f"fill value must fit uint8 (0..255), got {fill_value}")
        if max_history < 1:
            raise ValueError(f"max_history must be >= 1, got {max_history}")
        self.fill_value = int(fill_value)
        self._ids = np.full((height, width), self.fill_value, dtype=np.uint8)
        self._undo: Deque[np.ndarray] = deque(maxlen=max_history)
        self._redo: Deque[np.ndarray] = deque(maxlen=max_history)
        self._in_stroke = False
        self._stroke_changed = False
        self.version = 0  # bumped on every change of the pixels

    # -- state ------------------------------------------------------------------------
    @property
    def ids(self) -> np.ndarray:
        """The live map; tools write into it during a stroke."""
        return self._ids

    @property
    def shape(self):
        return self._ids.shape

    @property
    def can_undo(self) -> bool:
        return bool(self._undo) and not self._in_stroke

    @property
    def can_redo(self) -> bool:
        return bool(self._redo) and not self._in_stroke

    @property
    def history_depth(self) -> int:
        return len(self._undo)

    def snapshot(self) -> np.ndarray:
        """An independent copy of the current map (what a render request carries)."""
        return self._ids.copy()

    # -- strokes ----------------------------------------------------------------------
    def begin_stroke(self) -> None:
        """Remember the map before an edit; the edit then becomes one undo step."""
        if self._in_stroke:
            self.end_stroke()  # a lost mouse release must not leave a dangling stroke
        self._undo.append(self._ids.copy())
        self._in_stroke, self._stroke_changed = True, False

    def mark_changed(self) -> None:
        """Tell the map that a tool changed pixels (bumps `version`)."""
        self.version += 1
        if self._in_stroke:
            self._stroke_changed = True

    def restore_stroke_start(self) -> bool:
        """Put back the map as it was when the stroke began (rectangle and line previews redraw
        from there on every mouse move). Returns True when pixels changed."""
        if not self._in_stroke:
            raise RuntimeError("restore_stroke_start() outside a stroke; call begin_stroke() first")
        start = self._undo[-1]
        if np.array_equal(start, self._ids):
            return False
        self._ids[...] = start
        self.version += 1
        return True

    def end_stroke(self) -> bool:
        """Finish the stroke; a stroke that changed nothing leaves no undo step. Returns
        whether the stroke changed the map."""
        if not self._in_stroke:
            return False
        self._in_stroke = False
        changed = self._stroke_changed and not np.array_equal(self._undo[-1], self._ids)
        if changed:
            self._redo.clear()  # a new edit forks the history: the redo branch is gone
        else:
            self._undo.pop()
        return changed

    # -- whole-map edits ----------------------------------------------------------------
    def replace(self, ids: np.ndarray) -> bool:
        """Load a new map of the same shape as one undoable step (open file, random sample)."""
        ids = np.asarray(ids)
        if ids.shape != self._ids.shape:
            raise ValueError(f"label map of shape {ids.shape} does not fit this canvas "
                             f"{self._ids.shape}; resize it first")
        if ids.dtype != np.uint8:
            if ids.size and (ids.min() < 0 or ids.max() > 255):
                raise ValueError("label map values must fit uint8 (0..255)")
            ids = ids.astype(np.uint8)
        if np.array_equal(ids, self._ids):
            return False
        self.begin_stroke()
        self._ids[...] = ids
        self.mark_changed()
        return self.end_stroke()

    def undo(self) -> bool:
        """Step back one edit; False when there is nothing to undo."""
        return self._step(self._undo, self._redo)

    def redo(self) -> bool:
        """Re-apply the last undone edit; False when there is nothing to redo."""
        return self._step(self._redo, self._undo)

    def _step(self, source: Deque[np.ndarray], target: Deque[np.ndarray]) -> bool:
        if self._in_stroke or not source:
            return False
        target.append(self._ids)
        self._ids = source.pop()
        self.version += 1
        return True

    def reset(self, fill_value: Optional[int] = None, height: Optional[int] = None,
              width: Optional[int] = None, initial: Optional[np.ndarray] = None) -> None:
        """Start a new document (another model resolution or mode): history is dropped. The map
        is ``fill_value`` everywhere, or ``initial`` (e.g. the old drawing, rescaled)."""
        if fill_value is not None:
            self.fill_value = int(fill_value)
        if initial is not None:
            height, width = np.asarray(initial).shape[:2]
        height = height or self._ids.shape[0]
        width = width or self._ids.shape[1]
        self._ids = np.full((height, width), self.fill_value, dtype=np.uint8)
        if initial is not None:
            self._ids[...] = np.asarray(initial, dtype=np.uint8)
        self._undo.clear()
        self._redo.clear()
        self._in_stroke = False
        self.version += 1
