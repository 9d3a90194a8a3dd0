"""``python -m app`` in-process: start-up checks give a message and an exit code; --screenshot
renders the window offscreen with both outputs."""
import os
import subprocess
import sys
from pathlib import Path

import pytest
from PyQt6.QtGui import QImage

from app.__main__ import EXIT_DISPLAY, EXIT_MODEL, EXIT_USAGE, main
from tests.app.helpers import with_metadata


def test_missing_model_is_one_clear_line(tmp_path, capsys):
    missing = tmp_path / "nope.onnx"
    assert main(["--original", str(missing), "--compressed", str(missing)]) == EXIT_MODEL
    error = capsys.readouterr().err
    assert "model file not found" in error and str(missing) in error and "Traceback" not in error


def test_incompatible_models_are_refused(tiny_models, tmp_path, capsys):
    other = with_metadata(tiny_models["compressed.onnx"], tmp_path / "city.onnx", palette="cityscapes")
    assert main(["--original", tiny_models["original.onnx"], "--compressed", str(other)]) == EXIT_MODEL
    assert "different palettes" in capsys.readouterr().err


def test_photo_models_are_refused(tiny_models, tmp_path, capsys):
    photo = [with_metadata(tiny_models[f"{n}.onnx"], tmp_path / f"{n}.onnx", input_kind="image",
                           palette=None) for n in ("original", "compressed")]
    assert main(["--original", str(photo[0]), "--compressed", str(photo[1])]) == EXIT_MODEL
    assert "translates photos" in capsys.readouterr().err


def test_no_display_is_reported(tiny_models, monkeypatch, capsys):
    for name in ("QT_QPA_PLATFORM", "DISPLAY", "WAYLAND_DISPLAY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr("sys.platform", "linux")
    code = main(["--original", tiny_models["original.onnx"], "--compressed", tiny_models["compressed.onnx"]])
    assert code == EXIT_DISPLAY and "no display" in capsys.readouterr().err


def test_missing_x11_libraries_are_named_with_their_packages(tiny_models, monkeypatch, capsys):
    import ctypes.util
    for name in ("QT_QPA_PLATFORM", "WAYLAND_DISPLAY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DISPLAY", ":0")
    monkeypatch.setattr("sys.platform", "linux")
    real = ctypes.util.find_library
    monkeypatch.setattr(ctypes.util, "find_library",
                        lambda name: None if name in ("xcb-icccm", "xcb-cursor") else real(name) or "lib.so")
    code = main(["--original", tiny_models["original.onnx"], "--compressed", tiny_models["compressed.onnx"]])
    err = capsys.readouterr().err
    assert code == EXIT_DISPLAY
    assert "sudo apt install libxcb-cursor0 libxcb-icccm4" in err


def test_screenshot_draws_a_facade_and_shows_both_outputs(tiny_models, tmp_path, capsys):
    path = tmp_path / "shot.png"
    args = ["--original", tiny_models["original.onnx"], "--compressed", tiny_models["compressed.onnx"],
            "--threads", "1", "--screenshot", str(path)]
    assert main(args) == 0
    image = QImage(str(path))
    assert image.width() > 2 * image.height() > 0
    assert main(args) == EXIT_USAGE  # never replaces a file without --force
    assert "--force" in capsys.readouterr().err
    assert main(args + ["--force"]) == 0


def test_help_explains_with_examples(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    assert "examples:" in capsys.readouterr().out


def test_onnx_models_run_without_torch(tiny_models, tmp_path):
    """The Jetson path: with torch unimportable, the app opens ONNX models and renders."""
    repo = Path(__file__).resolve().parents[2]
    script = ("import sys; sys.modules['torch'] = None  # any torch import now fails\n"
              "from app.__main__ import main\n"
              f"code = main(['--original', {tiny_models['original.onnx']!r}, '--compressed', "
              f"{tiny_models['compressed.onnx']!r}, '--threads', '1', '--screenshot', "
              f"{str(tmp_path / 'no_torch.png')!r}])\n"
              "assert 'compress.models' not in sys.modules\n"
              "sys.exit(code)\n")
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", PYTHONPATH=str(repo))
    result = subprocess.run([sys.executable, "-c", script], cwd=repo, env=env, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "no_torch.png").is_file()


def test_backend_without_a_matching_file_is_reported(tiny_models, capsys):
    args = ["--original", tiny_models["original.onnx"], "--compressed", tiny_models["compressed.onnx"],
            "--backend", "tensorrt"]
    assert main(args) == EXIT_MODEL
    error = capsys.readouterr().err
    assert "original.engine" in error and "export.tensorrt" in error


def test_bad_sample_files_exit_cleanly_with_one_line(tiny_models, tmp_path):
    """A corrupt, empty, missing or out-of-palette --sample: one error line and exit code 3 (the
    worker threads are stopped first; before, Qt aborted with SIGABRT, rc 134)."""
    import numpy as np
    from PIL import Image
    corrupt, empty, outside = tmp_path / "corrupt.png", tmp_path / "empty.png", tmp_path / "outside.png"
    corrupt.write_bytes(bytes(range(200)))
    empty.write_bytes(b"")
    Image.fromarray(np.full((32, 32), 40, np.uint8), mode="L").save(outside)  # id 40: no facades class
    repo = Path(__file__).resolve().parents[2]
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", PYTHONPATH=str(repo))
    for sample in (corrupt, empty, tmp_path / "missing.png", outside):
        result = subprocess.run(
            [sys.executable, "-m", "app", "--original", tiny_models["original.onnx"], "--compressed",
             tiny_models["compressed.onnx"], "--threads", "1", "--sample", str(sample), "--screenshot",
             str(tmp_path / "shot.png")], cwd=repo, env=env, capture_output=True, text=True, timeout=120)
        assert result.returncode == EXIT_MODEL, (sample, result.returncode, result.stderr)
        lines = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
        assert len(lines) == 1 and sample.name in lines[0], result.stderr
        assert "Traceback" not in result.stderr and "terminate called" not in result.stderr
