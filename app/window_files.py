"""The main window's file handling (a mixin of `app.main_window.MainWindow`): opening and
saving label maps and sketches, samples, rendered outputs and the side-by-side composite, and
opening a model into one pane (with the offer to switch the pair when its kind differs).

Every file action reports problems through the window's ``show_error`` (status bar and a
non-blocking message box) instead of raising into Qt's event loop.
"""
import os
from typing import Any, Callable, Dict, List, Optional

import numpy as np
from PyQt6.QtGui import QImage
from PyQt6.QtWidgets import QFileDialog, QMessageBox

from app import model_files
from app.image_io import (IMAGE_FILTER, composite, numpy_to_qimage, read_label_map, read_sketch,
                          write_image, write_label_map)

PANES = ("original", "compressed")  # the two result panes, left to right


class WindowFiles:
    """File actions of a QMainWindow that has MainWindow's document state (kind, palette,
    label_map, panes, engine_info) and methods (load_map, show_error, open_model, ...)."""

    def read_map_file(self, path: str) -> np.ndarray:
        if self.kind == "label":
            assert self.palette is not None
            return read_label_map(path, self.palette, self.label_map.shape)
        return read_sketch(path, self.label_map.shape)

    def open_label_map(self, path: str) -> None:
        self.load_map(self.read_map_file(path))
        self.status_line.info(f"opened {path}", 5000)

    def random_sample(self) -> Optional[str]:
        samples = model_files.samples_for(self.metadata.get("original", {}), self.kind)
        if not samples:
            self.show_error("Random sample", f"no samples for this model in "
                            f"{model_files.SAMPLES_DIR}; open a file with File > Open")
            return None
        path = self._rng.choice(samples)
        try:
            self.open_label_map(path)
        except (OSError, ValueError) as error:  # e.g. a sample of the wrong kind in that folder
            self.show_error("Random sample", str(error))
            return None
        return path

    def map_qimage(self) -> QImage:
        """The canvas as it looks (colourised labels or the sketch) at model resolution."""
        return numpy_to_qimage(self._colorize(self.label_map.ids))

    def save_label_map(self, path: str) -> None:
        if self.kind == "label":
            assert self.palette is not None
            write_label_map(path, self.label_map.ids, self.palette)
        else:
            write_image(path, numpy_to_qimage(self.label_map.ids))

    def save_outputs(self, base_path: str) -> List[str]:
        """Write each pane's output as <base>_<pane>.png; returns the paths."""
        stem = os.path.splitext(base_path)[0]
        written = []
        for name in PANES:
            image = self.panes[name].image
            if image is not None:
                write_image(f"{stem}_{name}.png", image)
                written.append(f"{stem}_{name}.png")
        if not written:
            raise ValueError("nothing rendered yet: draw something first")
        return written

    def composite_image(self) -> QImage:
        titles = ["input"] + [f"{name}: {info_line(self.engine_info.get(name, {}))}"
                              + _latency_text(self.panes[name]) for name in PANES]
        return composite([self.map_qimage()] + [self.panes[n].image for n in PANES], titles)

    def _ask_save(self, title: str, default: str, filters: str) -> Optional[str]:
        path, _ = QFileDialog.getSaveFileName(self, title, default, filters)
        return path or None

    def _guarded(self, title: str, action: Callable[[], Any]) -> None:
        try:
            action()
        except (OSError, ValueError) as error:
            self.show_error(title, str(error))

    def open_label_map_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open label map", model_files.SAMPLES_DIR, IMAGE_FILTER)
        if path:
            self._guarded("Open label map", lambda: self.open_label_map(path))

    def save_label_map_dialog(self) -> None:
        path = self._ask_save("Save label map (class-id PNG)", "label_map.png", "PNG (*.png)")
        if path:
            self._guarded("Save label map", lambda: self.save_label_map(path))

    def save_outputs_dialog(self) -> None:
        path = self._ask_save("Save outputs as <name>_original.png, <name>_compressed.png",
                              "output.png", "PNG (*.png)")
        if path:
            self._guarded("Save outputs", lambda: self.save_outputs(path))

    def save_composite_dialog(self) -> None:
        path = self._ask_save("Save side-by-side composite", "composite.png", IMAGE_FILTER)
        if path:
            self._guarded("Save composite", lambda: write_image(path, self.composite_image()))

    def open_model_dialog(self, name: str) -> None:
        start = os.path.dirname(self.paths.get(name, model_files.MODEL_DIR))
        path, _ = QFileDialog.getOpenFileName(self, f"Open {name} model", start, model_files.MODEL_FILTER)
        if path:
            self.open_model_guarded(name, path)

    def open_model_guarded(self, name: str, path: str) -> None:
        """Open ``path`` in pane ``name``; a model of another kind leads to the pair offer."""
        try:
            self.open_model(name, path)
        except model_files.PairMismatch as mismatch:
            metadata = mismatch.metadata  # read already: no second peek of the file
            self._guarded(f"Open {name} model", lambda: self.offer_pair_switch(name, path, metadata))
        except (OSError, ValueError) as error:
            self.show_error(f"Open {name} model", str(error))

    def _ask_user(self, title: str, question: str) -> bool:
        buttons = QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.Cancel  # novermin (Qt flags)
        return QMessageBox.question(self, title, question, buttons) == QMessageBox.StandardButton.Yes


def _latency_text(pane) -> str:
    """", 41.2 ms (EMA)" for the composite's caption ('' before the first frame)."""
    value = pane.total_ema.value_ms
    return "" if value is None else f", {value:.1f} ms per frame (EMA)"


def info_line(info: Dict[str, Any]) -> str:
    """"onnxruntime/cpu sub_mobile_resnet_9blocks 1.42G MACs" for status lines and captions."""
    if not info:
        return "not loaded"
    macs = info.get("metadata", {}).get("macs")
    return (f"{info.get('backend')}/{info.get('device')} {info.get('metadata', {}).get('arch', '?')}"
            + (f" {macs / 1e9:.2f}G MACs" if macs else ""))
