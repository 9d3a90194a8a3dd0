"""ComputeSlider: picks the compressed pane's student from a pair's compute ladder.

A pair that ships a ladder (`app.model_pairs.ladder_rungs`) has students of several budgets,
ordered from the fewest MACs to the most. The slider moves along them: left is faster, right
draws with more compute. Its label shows the rung's name, MACs and the latency measured when the
rung was built (metadata ``latency_ms``, if any). Dragging emits once, on release, so that a
sweep across the ladder does not open every rung on the way; the keyboard moves one rung at a time.
Hidden when the pair has fewer than two rungs.
"""
import os
from typing import Any, Dict, List, Optional, Sequence

from PyQt6.QtCore import Qt, pyqtSignal
from PyQt6.QtWidgets import QHBoxLayout, QLabel, QSlider, QWidget

from engines.bench_results import human_count


def rung_text(index: int, count: int, path: str, metadata: Dict[str, Any]) -> str:
    """"rung 2/3 · default · 354M MACs · 9.6 ms measured" for the slider's label."""
    name = metadata.get("rung") or os.path.splitext(os.path.basename(path))[0]
    text = f"rung {index + 1}/{count} \u00b7 {name} \u00b7 {human_count(metadata.get('macs'), '?')} MACs"
    latency_ms = metadata.get("latency_ms")
    if isinstance(latency_ms, (int, float)):
        text += f" \u00b7 {latency_ms:.1f} ms measured"
    return text


class ComputeSlider(QWidget):
    """``rungSelected(path)`` is emitted when the user picks another rung."""

    rungSelected = pyqtSignal(str)

    def __init__(self, parent: Optional[QWidget] = None):
        super().__init__(parent)
        self.paths: List[str] = []
        self.metadata: List[Dict[str, Any]] = []
        self.slider = QSlider(Qt.Orientation.Horizontal)
        self.slider.setTracking(False)  # a drag emits once, on release
        self.slider.setPageStep(1)
        self.slider.setTickPosition(QSlider.TickPosition.TicksBelow)
        self.slider.setToolTip("Compute: left is faster, right uses more MACs (the pair's compute ladder)")
        self.label = QLabel()
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 2, 0, 0)
        layout.addWidget(QLabel("Compute"))
        layout.addWidget(self.slider, stretch=1)
        layout.addWidget(self.label, stretch=2)
        self.slider.valueChanged.connect(self._on_value)
        self.setVisible(False)

    def set_rungs(self, paths: Sequence[str], metadata: Sequence[Dict[str, Any]],
                  current: Optional[str]) -> None:
        """Show ``paths`` (fewest MACs first) with ``current`` selected; no signal is emitted."""
        self.paths, self.metadata = list(paths), list(metadata)
        index = self.index_of(current)
        self.slider.blockSignals(True)
        self.slider.setRange(0, max(0, len(self.paths) - 1))
        self.slider.setValue(max(index, 0))
        self.slider.blockSignals(False)
        self.setVisible(len(self.paths) >= 2 and index >= 0)
        self._update_label()

    def index_of(self, path: Optional[str]) -> int:
        if path is None:
            return -1
        wanted = os.path.abspath(path)
        return next((i for i, p in enumerate(self.paths) if os.path.abspath(p) == wanted), -1)

    def select(self, index: int) -> None:
        """Move to rung ``index`` (as the user would; emits rungSelected when it changes)."""
        self.slider.setValue(index)

    def _on_value(self, index: int) -> None:
        self._update_label()
        if 0 <= index < len(self.paths):
            self.rungSelected.emit(self.paths[index])

    def _update_label(self) -> None:
        index = self.slider.value()
        if 0 <= index < len(self.paths):
            self.label.setText(rung_text(index, len(self.paths), self.paths[index], self.metadata[index]))
        else:
            self.label.setText("")
