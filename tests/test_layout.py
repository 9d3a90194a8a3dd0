"""The architecture rules of DEVELOPERS.md, checked on the source itself.

Dependencies flow one way (app -> engines -> compress.models; export -> compress.models and
engines); engines and export see only compress.models and the torch-free compress.common; the
packages below compress's commands never import a command; only app/ imports Qt; every module
has a docstring; files stay under ~500 lines and functions under 80; compress/ keeps its
commands on top and everything else in packages; README's code map lists every module.
"""
import ast
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("app", "compress", "engines", "export")
TOP_LEVEL = ("app", "compress", "export", "engines", "tests", "assets", "requirements.txt", "README.md")


def modules(package):
    return sorted((REPO / package).rglob("*.py"))


def imported_roots(path):
    tree = ast.parse(path.read_text(), filename=str(path))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def test_top_level_layout_matches_the_product_card():
    for name in TOP_LEVEL:
        assert (REPO / name).exists(), f"missing top-level {name}"


# package -> import prefixes it must never use
FORBIDDEN = {
    "compress": ("app", "engines", "export", "PyQt6", "PyQt5", "PySide6"),
    # export may use the runtime (engines) to verify what it builds: the same pre-processing for
    # INT8 calibration and the same runners for parity checks. engines never imports export.
    "export": ("app", "PyQt6", "PyQt5", "PySide6"),
    "engines": ("app", "export", "PyQt6", "PyQt5", "PySide6"),
    # the app runs on a Jetson without torch when both models are ONNX files or engines
    "app": ("export", "torch", "torchvision"),
}


# What engines/ and export/ may use of compress/: the networks with their checkpoint and MAC helpers
# (compress.models) and the torch-free foundations (compress.common); no training code.
MODEL_SIDE = (["compress", "models"], ["compress", "common"])
# compress/'s commands (python -m compress.X); the packages below them never import one
COMMANDS = ("checkpoints", "distill", "evaluate", "extract", "finetune", "ladder", "pipeline", "profile",
            "search", "supernet", "train", "train_segmenter")


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_dependencies_flow_one_way(package):
    for path in modules(package):
        for name in imported_roots(path):
            root = name.split(".")[0]
            assert root not in FORBIDDEN[package], f"{path.relative_to(REPO)} imports {name}"
            if package == "app" and root == "compress":
                assert name in ("compress.common.palettes", "compress.common.atomic"), \
                    f"{path.relative_to(REPO)} imports {name}: app reaches models through engines"
            if package in ("engines", "export") and root == "compress":
                assert name.split(".")[:2] in MODEL_SIDE, \
                    f"{path.relative_to(REPO)} may use the model side of compress only, not {name}"


@pytest.mark.parametrize("package", PACKAGES)
def test_every_module_has_a_docstring_and_stays_readable(package):
    for path in modules(package):
        tree = ast.parse(path.read_text())
        assert ast.get_docstring(tree), f"{path.relative_to(REPO)} has no module docstring"
        lines = path.read_text().count("\n")
        assert lines <= 500, f"{path.relative_to(REPO)} has {lines} lines; split it"
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = node.end_lineno - node.lineno + 1
                assert length <= 80, f"{path.relative_to(REPO)}: {node.name} has {length} lines; split it"


def test_compress_keeps_commands_on_top_and_the_rest_in_packages():
    top = sorted(p.stem for p in (REPO / "compress").glob("*.py") if p.stem != "__init__")
    assert top == sorted(COMMANDS), "compress/ holds the commands only; put library code in a package"
    for path in modules("compress"):
        if path.parent == REPO / "compress":
            continue
        for name in imported_roots(path):
            parts = name.split(".")
            assert not (parts[0] == "compress" and len(parts) == 2 and parts[1] in COMMANDS), \
                f"{path.relative_to(REPO)} imports the command module {name}; move what it needs below"


def test_common_is_torch_free():
    """compress.common is what the app uses on a Jetson without torch."""
    for path in sorted((REPO / "compress" / "common").glob("*.py")):
        for name in imported_roots(path):
            assert name.split(".")[0] not in ("torch", "torchvision"), \
                f"{path.relative_to(REPO)} imports {name}"
            assert not name.startswith("compress.") or name.startswith("compress.common."), \
                f"{path.relative_to(REPO)} imports {name}: common depends on nothing else of compress"


def test_readme_code_map_lists_every_module():
    text = (REPO / "README.md").read_text()
    listed = set(re.findall(r"^\| `((?:app|compress|engines|export)/[\w/]+\.py)` \|", text, re.M))
    present = {str(p.relative_to(REPO)) for package in PACKAGES for p in modules(package)}
    assert not present - listed, f"README code map misses {sorted(present - listed)}"
    assert not listed - present, f"README code map lists modules that are gone: {sorted(listed - present)}"


def test_gpu_requirements_install_with_pip_alone_and_keep_calibrated_int8():
    """tensorrt>=10 resolved to 11.x (no calibrated INT8, no JetPack/DLA in 11.0-11.4), and the
    pycuda sdist fails to build without the CUDA toolkit headers on a pip-only desktop."""
    lines = [line.split("#")[0].strip() for line in (REPO / "requirements-gpu.txt").read_text().splitlines()]
    specs = {line.split(";")[0].split("<")[0].split(">")[0].split("=")[0].strip(): line
             for line in lines if line}
    assert "<11" in specs["tensorrt"] and "pycuda" not in specs
