"""``python -m compress.profile``: a generator's MACs (the paper's convention and true MACs) and
parameters, built with random weights from its architecture arguments.

    python -m compress.profile --arch sub_mobile_resnet_9blocks --config 16_16_32_16_32_32_16_16

The counting rules (and why they differ from today's torchprofile) are in ``compress.models.profile``.
"""
import json
import sys
from typing import List, Optional

from compress.common.cli import command_parser, run_command
from compress.models.profile import add_build_arguments, build_kwargs, human, parse_size, profile_arch


EXAMPLES = """examples:
  python -m compress.profile --arch resnet_9blocks --ngf 64
  python -m compress.profile --arch sub_mobile_resnet_9blocks --config 16_16_32_16_32_32_16_16
  python -m compress.profile --arch spade --ngf 64 --semantic-nc 36 --num-upsampling-layers more \\
      --size 256x512
"""


def _report(result: dict) -> str:
    config = f"  config {result['config']}" if "config" in result else ""
    return "\n".join([
        f"{result['arch']} @ {result['height']}x{result['width']}{config}",
        f"  MACs (paper, torchprofile): {human(result['macs'])}  ({result['macs']:,})",
        f"  MACs (true):                {human(result['true_macs'])}  ({result['true_macs']:,})",
        f"  parameters:                 {human(result['params'])}  ({result['params']:,})"])


def main(argv: Optional[List[str]] = None) -> int:
    parser = command_parser(
        "python -m compress.profile",
        "Count a generator's MACs (paper convention and true) and parameters on a batch of one, "
        "with random weights.", EXAMPLES)
    add_build_arguments(parser)
    parser.add_argument("--size", default="256", help="input size: 256 or HEIGHTxWIDTH (default 256)")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    args = parser.parse_args(argv)

    def body() -> int:
        result = profile_arch(args.arch, parse_size(args.size), **build_kwargs(args))
        print(json.dumps(result, indent=2) if args.json else _report(result))
        return 0
    return run_command(body)


if __name__ == "__main__":
    sys.exit(main())
