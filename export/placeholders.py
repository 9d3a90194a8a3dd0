"""``python -m export.placeholders``: deterministic untrained stand-ins for the demo's models.

Until the trained facades generators land, the app, its tests and ``make demo`` run on a pair
built here: a randomly initialised pix2pix-style facades label -> photo teacher
(``resnet_9blocks``, small ngf, input = palette colours) and a sub-network extracted from a
randomly initialised once-for-all supernet (``super_mobile_resnet_9blocks`` ->
``sub_mobile_resnet_9blocks``), the same shapes and MAC ratio a real compressed pair has. Both
are saved as safetensors with metadata (palette "facades", input kind "label", "placeholder":
true, which the window title reports) and exported to ONNX (opset 17, metadata inside).

This is a build step, run as its own entry point: it imports torch and compress.models, which
the app's runtime path never does.
"""
import argparse
import os
import sys
import warnings
from typing import Dict, List, Optional, Tuple

DEFAULT_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                           "build", "placeholder_models")
TEACHER_NGF = 32  # the paper's facades teacher has ngf 64 (56.8G MACs at 256x256); 32 keeps a CPU demo usable
SUPERNET_NGF = 32
STUDENT_CONFIG = "16_16_16_16_16_16_16_16"  # ~10x fewer MACs than the ngf-32 teacher
SEED = 0


def _metadata(model, size: Tuple[int, int], role: str, profile: bool) -> Dict:
    from compress.models.checkpoints import generator_metadata
    return generator_metadata(model, resolution=size, palette="facades", input_kind="label",
                              profile=profile, placeholder=True, role=role, dataset="facades",
                              note="untrained placeholder (random weights, seed 0): outputs are "
                                   "not photos; replaced by the trained models")


def build_models(size: Tuple[int, int], teacher_ngf: int = TEACHER_NGF,
                 supernet_ngf: int = SUPERNET_NGF, student_config: str = STUDENT_CONFIG,
                 seed: int = SEED):
    """The (teacher, student) pair in eval mode, identical for identical arguments."""
    import torch

    from compress.models import build_generator, extract_subnet
    torch.manual_seed(seed)
    teacher = build_generator("resnet_9blocks", ngf=teacher_ngf).eval()
    torch.manual_seed(seed + 1)
    supernet = build_generator("super_mobile_resnet_9blocks", ngf=supernet_ngf)
    student = extract_subnet(supernet, student_config).eval()
    return teacher, student


def make_placeholders(out_dir: str = DEFAULT_DIR, size: Tuple[int, int] = (256, 256),
                      teacher_ngf: int = TEACHER_NGF, supernet_ngf: int = SUPERNET_NGF,
                      student_config: str = STUDENT_CONFIG, overwrite: bool = False,
                      profile: bool = True, onnx: bool = True) -> Dict[str, str]:
    """Write original/compressed .safetensors (and .onnx) into ``out_dir``; returns the paths
    by name ("original.safetensors", "original.onnx", ...). Existing files are kept unless
    ``overwrite`` (rebuilding yields the same weights anyway). ``profile=False`` skips the MAC
    count (seconds of tracing; tests at 64x64 do not need it)."""
    from compress.models.checkpoints import save_generator
    teacher, student = build_models(size, teacher_ngf, supernet_ngf, student_config)
    paths: Dict[str, str] = {}
    os.makedirs(out_dir, exist_ok=True)
    for role, model in (("original", teacher), ("compressed", student)):
        checkpoint = os.path.join(out_dir, f"{role}.safetensors")
        meta = _metadata(model, size, role, profile)
        if overwrite or not os.path.exists(checkpoint):
            save_generator(model, checkpoint, meta=meta, overwrite=overwrite)
        paths[f"{role}.safetensors"] = checkpoint
        if onnx:
            path = os.path.join(out_dir, f"{role}.onnx")
            if overwrite or not os.path.exists(path):
                _export(model, path, meta, size, overwrite)
            paths[f"{role}.onnx"] = path
    return paths


def _export(model, path: str, meta: Dict, size: Tuple[int, int], overwrite: bool) -> None:
    """ONNX via export.onnx (opset 17, slimmed, metadata inside)."""
    from export.onnx import export_onnx
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the legacy exporter's deprecation chatter
        # s2d output conv: the same function, faster on the CPU runtimes the demo uses
        export_onnx(model, path, meta=meta, size=size, overwrite=overwrite, output_conv="s2d")


def _size(text: str) -> Tuple[int, int]:
    parts = text.lower().split("x")
    try:
        values = [int(p) for p in parts]
    except ValueError:
        values = []
    if len(values) == 1:
        values *= 2
    if len(values) != 2 or min(values) < 4 or values[0] % 4 or values[1] % 4:
        raise argparse.ArgumentTypeError(f"bad size {text!r}: HEIGHTxWIDTH, multiples of 4 (e.g. 256)")
    return values[0], values[1]


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m export.placeholders",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Build the untrained, deterministic facades teacher/student pair the demo "
                    "uses until the trained models land (safetensors + ONNX with metadata).",
        epilog="examples:\n  python -m export.placeholders\n"
               "  python -m export.placeholders --out /tmp/tiny --size 64 --teacher-ngf 8\n"
               "then: python -m app --original build/placeholder_models/original.onnx "
               "--compressed build/placeholder_models/compressed.onnx")
    parser.add_argument("--out", default=DEFAULT_DIR, help=f"output folder (default {DEFAULT_DIR})")
    parser.add_argument("--size", type=_size, default=(256, 256), help="HxW (default 256)")
    parser.add_argument("--teacher-ngf", type=int, default=TEACHER_NGF,
                        help=f"teacher width (default {TEACHER_NGF})")
    parser.add_argument("--supernet-ngf", type=int, default=SUPERNET_NGF,
                        help=f"supernet width (default {SUPERNET_NGF})")
    parser.add_argument("--student-config", default=STUDENT_CONFIG,
                        help=f"sub-network channels (default {STUDENT_CONFIG})")
    parser.add_argument("--force", action="store_true", help="rebuild existing files")
    args = parser.parse_args(argv)
    try:
        paths = make_placeholders(args.out, args.size, args.teacher_ngf, args.supernet_ngf,
                                  args.student_config, overwrite=args.force)
    except (ValueError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    for name in sorted(paths):
        print(f"{paths[name]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
