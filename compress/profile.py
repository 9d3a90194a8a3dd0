"""``python -m compress.profile``: a generator's MACs (the paper's convention and true MACs) and
parameters, built with random weights from its architecture arguments.

    python -m compress.profile --arch sub_mobile_resnet_9blocks --config 16_16_32_16_32_32_16_16

The counting rules (and why they differ from today's torchprofile) are in ``compress.models.profile``.
"""
import argparse
import json
import sys
from typing import List, Optional

from compress.models.profile import add_build_arguments, build_kwargs, human, parse_size, profile_arch


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m compress.profile",
        description="Count a generator's MACs (paper convention and true) and parameters on a "
                    "batch of one, with random weights.",
        epilog="examples:\n"
               "  python -m compress.profile --arch resnet_9blocks --ngf 64\n"
               "  python -m compress.profile --arch sub_mobile_resnet_9blocks "
               "--config 16_16_32_16_32_32_16_16\n"
               "  python -m compress.profile --arch spade --ngf 64 --semantic-nc 36 "
               "--num-upsampling-layers more --size 256x512",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    add_build_arguments(parser)
    parser.add_argument("--size", default="256", help="input size: 256 or HEIGHTxWIDTH (default 256)")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    args = parser.parse_args(argv)
    try:
        result = profile_arch(args.arch, parse_size(args.size), **build_kwargs(args))
    except ValueError as error:
        parser.error(str(error))
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(f"{result['arch']} @ {result['height']}x{result['width']}"
              + (f"  config {result['config']}" if "config" in result else ""))
        print(f"  MACs (paper, torchprofile): {human(result['macs'])}  ({result['macs']:,})")
        print(f"  MACs (true):                {human(result['true_macs'])}  ({result['true_macs']:,})")
        print(f"  parameters:                 {human(result['params'])}  ({result['params']:,})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
