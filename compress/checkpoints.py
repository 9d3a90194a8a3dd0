"""``python -m compress.checkpoints``: convert official ``.pth`` generators to the project's
safetensors format (with the metadata the app and exporters need), and inspect any checkpoint.

    python -m compress.checkpoints convert OFFICIAL.pth --arch ARCH [--config STR] -o out.safetensors
    python -m compress.checkpoints inspect FILE

The format itself (reading, saving, guessing an architecture from tensor shapes) lives in
``compress.models.checkpoints``.
"""
import argparse
import json
import os
import sys
from typing import List, Optional

from compress.common.cli import command_parser, run_command
from compress.models.checkpoints import (INPUT_KINDS, MetadataError, describe_candidates,
                                         guess_architecture, load_generator, read_state_dict, save_generator)
from compress.models.profile import add_build_arguments, build_kwargs, parse_size


def _convert(args: argparse.Namespace) -> int:
    overrides = build_kwargs(args)
    if args.arch:
        overrides["arch"] = args.arch
    try:
        model, _ = load_generator(args.checkpoint, **overrides)
    except MetadataError as error:  # a broken header: the tensors are fine, the metadata is rewritten
        print(f"note: {str(error).split('; re-save')[0]}; ignoring it", file=sys.stderr)
        model, _ = load_generator(args.checkpoint, ignore_metadata=True, **overrides)
    resolution = parse_size(args.size) if args.size else None
    meta = save_generator(model, args.output, overwrite=args.force, resolution=resolution,
                          palette=args.palette, input_kind=args.input_kind,
                          source=os.path.basename(args.checkpoint))
    print(f"wrote {args.output}: {meta['arch']} {json.dumps(meta['build'])}, "
          f"{meta['macs'] / 1e9:.2f}G MACs, {meta['params']:,} params")
    return 0


def _inspect(args: argparse.Namespace) -> int:
    state, meta = read_state_dict(args.checkpoint)
    print(f"{args.checkpoint}: {len(state)} tensors, "
          f"{sum(v.numel() for v in state.values()):,} values")
    if meta:
        print(json.dumps(meta, indent=2, sort_keys=True))
    else:
        candidates = guess_architecture(state)
        print("no project metadata (official checkpoint); shapes fit: "
              + (describe_candidates(candidates) if candidates else "no zoo generator"))
    return 0


EXAMPLES = """examples:
  # the released horse->zebra compressed generator (arch and config inferred from its shapes)
  python -m compress.checkpoints convert latest_net_G.pth -o h2z.safetensors --input-kind image
  # an official pix2pix teacher, with what the app needs to draw for it
  python -m compress.checkpoints convert edges2shoes_net_G.pth --arch resnet_9blocks --ngf 64 \\
      -o e2s_teacher.safetensors --input-kind sketch
  python -m compress.checkpoints convert facades_net_G.pth --arch resnet_9blocks -o facades.safetensors \\
      --size 256x256 --palette facades --input-kind label
  # what a file holds: its metadata, or the architectures its tensor shapes fit
  python -m compress.checkpoints inspect assets/models/facades/compressed.safetensors
"""


def main(argv: Optional[List[str]] = None) -> int:
    parser = command_parser("python -m compress.checkpoints", "Convert and inspect generator checkpoints.",
                            EXAMPLES)
    commands = parser.add_subparsers(dest="command", required=True)
    convert = commands.add_parser(
        "convert", help="official .pth -> project .safetensors with metadata",
        formatter_class=argparse.RawDescriptionHelpFormatter, epilog=EXAMPLES,
        description="Load an official GAN Compression generator (a plain state_dict, read with "
                    "weights_only=True) strictly and write it in the project's format.")
    convert.add_argument("checkpoint", help="official .pth file (or a project .safetensors)")
    add_build_arguments(convert, arch_required=False)
    convert.add_argument("-o", "--output", required=True, help="output .safetensors path")
    convert.add_argument("--size", help="model resolution HxW for metadata and MACs (default 256)")
    convert.add_argument("--palette", help="palette name in assets/palettes (label-map models)")
    convert.add_argument("--input-kind", choices=INPUT_KINDS, help="what the model takes as input")
    convert.add_argument("--force", action="store_true", help="overwrite the output if it exists")
    inspect = commands.add_parser("inspect", help="print a checkpoint's metadata or guessed arch")
    inspect.add_argument("checkpoint")
    args = parser.parse_args(argv)
    return run_command(lambda: _convert(args) if args.command == "convert" else _inspect(args))


if __name__ == "__main__":
    sys.exit(main())
