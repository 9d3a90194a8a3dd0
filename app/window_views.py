"""The main window's comparison views (a mixin of `app.main_window.MainWindow`): the compute
slider, the difference view and "original renders on stroke end".

- **Compute slider** (under the compressed pane, when the pair ships a ladder): switches the
  compressed pane between the pair's students live. The worker opens the new rung on its own
  thread (the GUI never waits), drops the requests queued for the old one, and renders the
  current drawing as soon as the rung is open; the old output stays on screen until then.

- **Difference view** (View menu, Ctrl+D): the compressed pane shows a heat map of
  |original − compressed| with its PSNR (`app.difference`), computed on the GUI thread (a few
  hundred microseconds at 128×128) for the newest request both panes have rendered.
- **Original renders on stroke end** (View menu, ``--original-on-release``): while a stroke is
  drawn, the throttled requests go to the compressed pane only; the original renders the
  stroke's final state when the mouse is released. A slow teacher (a Jetson, a busy CPU) then
  never holds the student's live feedback back, and the original pane says it is waiting.
"""
import os
from typing import Dict, List, Optional, Tuple

from PyQt6.QtGui import QImage

from app import model_files, model_pairs
from app.compute_slider import ComputeSlider
from app.difference import DifferenceTracker
from app.image_io import numpy_to_qimage, qimage_to_rgb
from app.window_files import PANES

RELEASE_NOTE = "\u23f8 renders when the stroke ends"


class WindowViews:
    """Difference view and release-only rendering of the original pane; needs the MainWindow
    attributes ``panes``, ``workers``, ``label_map``, ``paths``, ``metadata`` and ``_last_request``."""

    def _init_views(self, original_on_release: bool) -> None:
        self.original_on_release = bool(original_on_release)
        self.differences = DifferenceTracker(qimage_to_rgb)  # converts only when it compares
        self._sent_ids: Dict[str, int] = {}  # pane -> newest request id submitted to its worker
        self.compute_slider = ComputeSlider()
        self.compute_slider.rungSelected.connect(self.switch_rung)

    # -- compute ladder -------------------------------------------------------------------------
    def update_rungs(self) -> None:
        """Show the slider when the open pair ships a ladder and the compressed pane runs one
        of its rungs (hidden otherwise)."""
        pairs = model_pairs.discover_pairs() if self.pair_name else []  # no pair: no ladder to read
        pair = next((p for p in pairs if p.name == self.pair_name), None)
        rungs = pair.rungs if pair is not None else ()
        metadata = []
        for path in rungs:
            try:
                metadata.append(model_files.peek_metadata(path))
            except (OSError, ValueError):
                metadata.append({})
        self.compute_slider.set_rungs(rungs, metadata, self.paths.get("compressed"))

    def ladder_labels(self) -> List[Tuple[str, str]]:
        """(label, path) of each rung the slider offers (empty without a ladder)."""
        slider = self.compute_slider
        return [(f"rung {i + 1}: {meta.get('rung') or os.path.splitext(os.path.basename(path))[0]}", path)
                for i, (path, meta) in enumerate(zip(slider.paths, slider.metadata))]

    def switch_rung(self, path: str) -> None:
        """Run the compressed pane on another rung of the ladder, without blocking the GUI."""
        if os.path.abspath(path) == os.path.abspath(self.paths.get("compressed", "")):
            return
        try:
            metadata = model_files.peek_metadata(path)
        except (OSError, ValueError) as error:  # deleted or corrupt since the ladder was listed
            self.show_error("Compute ladder", str(error))
            self.compute_slider.set_rungs(self.compute_slider.paths, self.compute_slider.metadata,
                                          self.paths.get("compressed"))  # back to the rung that runs
            return
        self.paths["compressed"] = self.opened_paths["compressed"] = path
        self.metadata["compressed"] = metadata
        self.engine_info.pop("compressed", None)
        self.differences.clear()  # the heat map of the old rung no longer applies
        self.panes["compressed"].set_difference(-1, None, None)
        self.panes["compressed"].set_status(f"switching to {os.path.basename(path)}...")
        backend = self.backend if model_files.backend_of(path) == self.backend else None
        self.workers["compressed"][0].request_open(path, backend, self.device, self.threads)
        self._update_title()

    def _build_view_menu(self, view_menu) -> None:
        self.difference_action = self._action(
            "&Difference |original \u2212 compressed|", self.set_difference_view, "Ctrl+D", checkable=True,
            tip="The compressed pane shows how far its output is from the original's: a heat map and PSNR")
        self.release_action = self._action(
            "Original renders on stroke &end", self.set_original_on_release, checkable=True,
            tip="While drawing, only the compressed model renders; the original renders on release")
        self.release_action.setChecked(self.original_on_release)
        view_menu.addAction(self.difference_action)
        view_menu.addAction(self.release_action)

    # -- which panes a request goes to ----------------------------------------------------------
    def render_targets(self, drawing: bool) -> Tuple[str, ...]:
        """The panes a new request goes to; records it as sent. Mid-stroke with release-only
        rendering: the compressed pane only, and the original pane says it is waiting."""
        if drawing and self.original_on_release:
            self.panes["original"].set_stale(True, RELEASE_NOTE)
            targets: Tuple[str, ...] = ("compressed",)
        else:
            targets = PANES
        for name in targets:
            self._sent_ids[name] = self.request_id
        return targets

    def send(self, name: str, request) -> None:
        """Submit ``request`` to one pane's worker (recorded, see catch_up_original)."""
        self._sent_ids[name] = request.request_id
        self.workers[name][0].submit(request)

    def catch_up_original(self) -> int:
        """The stroke ended with no new edit since the last (compressed-only) request: send
        that request to the original too. Returns its id, or -1 when the original is current."""
        last = self._last_request
        if last is None or last.version != self.label_map.version:
            return -1
        if self._sent_ids.get("original") == last.request_id:
            return -1
        self.send("original", last)
        return last.request_id

    def set_original_on_release(self, on: bool) -> None:
        self.original_on_release = bool(on)
        if hasattr(self, "release_action"):
            self.release_action.setChecked(self.original_on_release)
        if not self.original_on_release:
            self.catch_up_original()

    # -- difference view ----------------------------------------------------------------------
    def set_difference_view(self, on: bool) -> None:
        self.differences.enabled = bool(on)
        if hasattr(self, "difference_action"):
            self.difference_action.setChecked(self.differences.enabled)
        self.panes["compressed"].set_show_difference(self.differences.enabled)
        if self.differences.enabled:
            self._show_difference(self.differences.update())

    def track_output(self, name: str, request_id: int, image: QImage) -> None:
        """A pane rendered ``request_id``: keep its pixels; update the heat map when both match."""
        self._show_difference(self.differences.add(name, request_id, image))

    def _show_difference(self, difference: Optional[Tuple]) -> None:
        if difference is None:
            return
        heat, psnr_db = difference
        self.panes["compressed"].set_difference(self.differences.request_id, numpy_to_qimage(heat), psnr_db)
