"""The main window's menus, toolbar and shortcuts (a mixin of `app.main_window.MainWindow`).

Kept apart from the window's behaviour so that each stays readable: this module only wires
actions to the window's methods (``open_pair``, ``set_tool``, ``undo``, ...). The Model > Pair
menu lists `app.model_pairs.discover_pairs` (shipped pairs, then the placeholders) and switches
both panes at once; File menu texts follow the canvas mode (label map or sketch).
"""
from typing import Callable, Dict

from PyQt6.QtGui import QAction, QActionGroup, QKeySequence, QShortcut

from app import model_files, model_pairs
from app.canvas import TOOLS
from app.palette_panel import SWATCH_KEYS

TOOL_KEYS = {"brush": "B", "eraser": "E", "fill": "F", "rectangle": "R", "line": "L"}
FILE_TEXTS = {  # canvas kind -> (open, save) menu texts
    "label": ("&Open label map...", "&Save label map..."),
    "sketch": ("&Open sketch...", "&Save sketch..."),
}


class WindowActions:
    """Builds the actions of a QMainWindow that has the MainWindow methods they call."""

    def _action(self, text: str, slot: Callable, shortcut=None, checkable: bool = False,
                tip: str = "") -> QAction:
        action = QAction(text, self)
        if shortcut:
            shortcuts = shortcut if isinstance(shortcut, (list, tuple)) else [shortcut]
            action.setShortcuts([QKeySequence(s) for s in shortcuts])
        action.setCheckable(checkable)
        action.setStatusTip(tip)
        action.setToolTip(f"{text.replace('...', '').replace('&', '')}"
                          + (f" ({action.shortcut().toString()})" if shortcut else ""))
        action.triggered.connect(slot)
        return action

    def _build_actions(self) -> None:
        menu = self.menuBar()
        self._build_file_menu(menu.addMenu("&File"))
        self._build_edit_and_tools(menu.addMenu("&Edit"), menu.addMenu("&Tools"))
        self._build_model_menu(menu.addMenu("&Model"))
        self._build_view_menu(menu.addMenu("&View"))  # app.window_views
        menu.addMenu("&Benchmark").addAction(self._action("&Run benchmark...", self.open_benchmark, "Ctrl+B"))
        menu.addMenu("&Help").addAction(self._action("&Keyboard shortcuts", self.show_shortcuts, "F1"))
        self._build_toolbar()
        # The number row selects swatches (1..9, 0, -, =), as class keys in paint programs.
        for index, key in enumerate(SWATCH_KEYS):
            shortcut = QShortcut(QKeySequence(key), self)
            shortcut.activated.connect(lambda i=index: self.palette_panel.select_index(i))
        QShortcut(QKeySequence("Esc"), self).activated.connect(self.status_line.dismiss)
        self._update_history_actions()
        self._update_file_actions()

    def _build_file_menu(self, file_menu) -> None:
        self.open_map_action = self._action(FILE_TEXTS["label"][0], self.open_label_map_dialog, "Ctrl+O")
        file_menu.addAction(self.open_map_action)
        self.sample_action = self._action("&Random sample", self.random_sample, "Ctrl+N",
                                          tip="Load a sample from assets/samples")
        file_menu.addAction(self.sample_action)
        file_menu.addSeparator()
        self.save_map_action = self._action(FILE_TEXTS["label"][1], self.save_label_map_dialog, "Ctrl+S")
        file_menu.addAction(self.save_map_action)
        file_menu.addAction(self._action("Save &outputs...", self.save_outputs_dialog, "Ctrl+Shift+S"))
        file_menu.addAction(self._action("Save side-by-side &composite...", self.save_composite_dialog))
        file_menu.addSeparator()
        file_menu.addAction(self._action("&Quit", self.close, "Ctrl+Q"))

    def _build_edit_and_tools(self, edit_menu, tools_menu) -> None:
        self.undo_action = self._action("&Undo", self.undo, "Ctrl+Z")
        self.redo_action = self._action("&Redo", self.redo, ["Ctrl+Shift+Z", "Ctrl+Y"])
        self.clear_action = self._action("&Clear", self.clear_canvas, "Ctrl+Backspace",
                                         tip="Fill the canvas with the background (white paper for sketches)")
        for action in (self.undo_action, self.redo_action, self.clear_action):
            edit_menu.addAction(action)
        self.tool_group = QActionGroup(self)
        self.tool_actions: Dict[str, QAction] = {}
        for tool in TOOLS:
            action = self._action(tool.capitalize(), lambda _c=False, t=tool: self.set_tool(t),
                                  TOOL_KEYS[tool], checkable=True)
            self.tool_group.addAction(action)
            tools_menu.addAction(action)
            self.tool_actions[tool] = action
        self.tool_actions["brush"].setChecked(True)

    def _build_model_menu(self, model_menu) -> None:
        pair_menu = model_menu.addMenu("&Pair")
        self.pair_group = QActionGroup(self)
        self.pair_actions: Dict[str, QAction] = {}
        for pair in model_pairs.discover_pairs():
            text = pair.name + (" (untrained)" if pair.placeholder else "")
            action = self._action(text, lambda _c=False, p=pair: self.open_pair_guarded(p), checkable=True,
                                  tip=f"Open {pair.original} and {pair.compressed} in the two panes")
            self.pair_group.addAction(action)
            pair_menu.addAction(action)
            self.pair_actions[pair.name] = action
        pair_menu.setEnabled(bool(self.pair_actions))
        model_menu.addAction(self._action("Open &original model...",
                                          lambda: self.open_model_dialog("original")))
        model_menu.addAction(self._action("Open &compressed model...",
                                          lambda: self.open_model_dialog("compressed")))
        backend_menu = model_menu.addMenu("&Backend")
        self.backend_group = QActionGroup(self)
        installed = model_files.installed_backends()
        for name in ("auto",) + tuple(model_files.BACKEND_MODULES):
            action = self._action(name if name != "auto" else "auto (from the file extension)",
                                  lambda _c=False, b=name: self.set_backend(None if b == "auto" else b),
                                  checkable=True)
            action.setEnabled(name == "auto" or name in installed)
            action.setChecked(name == (self.backend or "auto"))
            self.backend_group.addAction(action)
            backend_menu.addAction(action)
        model_menu.addSeparator()
        self.live_action = self._action("&Live rendering", self.set_live, "Ctrl+L", checkable=True,
                                        tip="Render while drawing; off: render with Ctrl+Return")
        self.live_action.setChecked(True)
        self.render_action = self._action("&Render now", lambda: self.submit_render(force=True),
                                          ["Ctrl+Return", "Ctrl+Enter"])
        model_menu.addAction(self.live_action)
        model_menu.addAction(self.render_action)

    def _build_toolbar(self) -> None:
        from PyQt6.QtWidgets import QToolBar
        toolbar = QToolBar("Tools")
        toolbar.setMovable(False)
        self.addToolBar(toolbar)
        for tool in TOOLS:
            toolbar.addAction(self.tool_actions[tool])
        toolbar.addSeparator()
        for action in (self.undo_action, self.redo_action, self.clear_action):
            toolbar.addAction(action)
        toolbar.addSeparator()
        for action in (self.live_action, self.render_action, self.sample_action):
            toolbar.addAction(action)

    def _update_file_actions(self) -> None:
        """Menu texts and enabled tools of the current canvas kind; the checked pair."""
        if not hasattr(self, "open_map_action"):
            return  # the document is set up before the actions exist
        open_text, save_text = FILE_TEXTS[self.kind]
        self.open_map_action.setText(open_text)
        self.save_map_action.setText(save_text)
        for tool in ("fill", "rectangle"):  # sketches are pen, eraser and lines
            self.tool_actions[tool].setEnabled(self.kind == "label")
        for name, action in self.pair_actions.items():
            action.setChecked(name == self.pair_name)
