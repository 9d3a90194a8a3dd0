"""PalettePanel: the class swatches built from the model's palette file, and the brush size.

In label mode each class of the palette (ids, names and colours from assets/palettes/*.json)
gets a swatch button with its name; digits 1-9 and 0 select the first ten classes (the window
binds the keys). In sketch mode the swatches are ink and paper. The panel only selects values;
the canvas paints them.
"""
from typing import List, Optional, Sequence, Tuple

from PyQt6.QtCore import QSize, Qt, pyqtSignal
from PyQt6.QtGui import QColor, QIcon, QPixmap
from PyQt6.QtWidgets import (QButtonGroup, QLabel, QScrollArea, QSizePolicy, QSlider, QToolButton,
                             QVBoxLayout, QWidget)

from app import tools
from compress.common.palettes import Palette

INK, PAPER = 0, 255  # gray values of a sketch (edges2shoes: dark strokes on a white page)
Swatch = Tuple[int, str, Tuple[int, int, int]]  # value, name, RGB


def palette_swatches(palette: Palette) -> List[Swatch]:
    """Swatches of a label palette; the ignore id (unused / void) is not drawable."""
    return [(class_id, name, tuple(color))  # type: ignore[misc]
            for class_id, name, color in zip(palette.ids, palette.names, palette.colors)
            if class_id != palette.ignore_id]


def sketch_swatches() -> List[Swatch]:
    return [(INK, "ink", (0, 0, 0)), (PAPER, "paper (erase)", (255, 255, 255))]


SWATCH_KEYS = "1234567890-="  # the number row: facades' 12 classes all get a key


def digit_label(index: int) -> str:
    """The key that selects swatch ``index``: 1..9, 0, then - and = (the number row), none after."""
    return SWATCH_KEYS[index] if index < len(SWATCH_KEYS) else ""


class PalettePanel(QWidget):
    """Swatches (one checked at a time) above a brush-size slider."""

    valueSelected = pyqtSignal(int)
    brushSizeChanged = pyqtSignal(int)

    def __init__(self, parent: Optional[QWidget] = None):
        super().__init__(parent)
        self.swatches: List[Swatch] = []
        self.buttons: List[QToolButton] = []
        self.group = QButtonGroup(self)
        self.group.setExclusive(True)
        self.group.idClicked.connect(self._clicked)

        self._swatch_box = QWidget()
        self._swatch_layout = QVBoxLayout(self._swatch_box)
        self._swatch_layout.setContentsMargins(0, 0, 0, 0)
        self._swatch_layout.setSpacing(2)
        scroll = QScrollArea()  # cityscapes has 30+ classes: scroll rather than grow
        scroll.setWidget(self._swatch_box)
        scroll.setWidgetResizable(True)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        scroll.setFrameShape(QScrollArea.Shape.NoFrame)

        self.title = QLabel("<b>Classes</b>")
        self.size_label = QLabel()
        self.size_slider = QSlider(Qt.Orientation.Horizontal)
        self.size_slider.setRange(tools.MIN_BRUSH_PX, tools.MAX_BRUSH_PX)
        self.size_slider.setToolTip("Brush diameter in model pixels (mouse wheel on the canvas)")
        self.size_slider.valueChanged.connect(self._size_changed)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 6, 6, 6)
        layout.addWidget(self.title)
        layout.addWidget(scroll, stretch=1)
        layout.addWidget(self.size_label)
        layout.addWidget(self.size_slider)
        self.setMinimumWidth(170)
        self.setMaximumWidth(230)
        self.set_brush_size(8)

    # -- content ---------------------------------------------------------------------------
    def set_swatches(self, swatches: Sequence[Swatch], title: str = "Classes",
                     selected: Optional[int] = None) -> None:
        """Replace the swatches; ``selected`` is the value to check (default the first)."""
        for button in self.buttons:
            self.group.removeButton(button)
        while self._swatch_layout.count():  # buttons and the trailing stretch: nothing accumulates
            item = self._swatch_layout.takeAt(0)
            if item.widget() is not None:
                item.widget().deleteLater()
        self.swatches, self.buttons = list(swatches), []
        self.title.setText(f"<b>{title}</b>")
        for index, (value, name, color) in enumerate(self.swatches):
            button = QToolButton()
            key = digit_label(index)
            button.setText(f"{name}" + (f"   [{key}]" if key else ""))
            button.setToolTip(f"{name}: id {value}, RGB {tuple(color)}" + (f"; key {key}" if key else ""))
            button.setIcon(self._swatch_icon(color))
            button.setIconSize(QSize(22, 16))
            button.setCheckable(True)
            button.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
            button.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
            self.group.addButton(button, index)
            self._swatch_layout.addWidget(button)
            self.buttons.append(button)
        self._swatch_layout.addStretch(1)
        values = [value for value, _, _ in self.swatches]
        if self.swatches:
            self.select_index(values.index(selected) if selected in values else 0)

    @staticmethod
    def _swatch_icon(color: Tuple[int, int, int]) -> QIcon:
        pixmap = QPixmap(22, 16)  # GUI thread only, like every widget here
        pixmap.fill(QColor(*color))
        return QIcon(pixmap)

    # -- selection ---------------------------------------------------------------------------
    @property
    def selected_value(self) -> Optional[int]:
        index = self.group.checkedId()
        return self.swatches[index][0] if 0 <= index < len(self.swatches) else None

    def select_index(self, index: int) -> bool:
        """Check swatch ``index`` (a digit key) and announce its value; False if out of range."""
        if not 0 <= index < len(self.buttons):
            return False
        self.buttons[index].setChecked(True)
        self._clicked(index)
        return True

    def select_value(self, value: int) -> bool:
        values = [v for v, _, _ in self.swatches]
        return value in values and self.select_index(values.index(value))

    def _clicked(self, index: int) -> None:
        self.valueSelected.emit(self.swatches[index][0])

    # -- brush size -----------------------------------------------------------------------------
    def set_brush_size(self, diameter_px: int) -> None:
        """Show ``diameter_px`` (e.g. after a wheel turn on the canvas) without echoing it."""
        self.size_slider.blockSignals(True)
        self.size_slider.setValue(tools.clamp_brush(diameter_px))
        self.size_slider.blockSignals(False)
        self.size_label.setText(f"Brush size: {self.size_slider.value()} px")

    def _size_changed(self, value: int) -> None:
        self.size_label.setText(f"Brush size: {value} px")
        self.brushSizeChanged.emit(value)
