"""The one way every ``python -m compress.<command>`` parses its arguments and ends.

Each command's ``main(argv=None)`` builds an ``argparse`` parser for its own flags (the config
file, ``--force`` ...) with ``command_parser``, then calls ``run_command``:

- ``split_overrides`` sends every ``--key=value`` that is not one of the parser's own flags to the
  config (argparse would take a value with spaces, or one starting with ``-``, for something else);
- errors a user can fix (``ValueError``, ``OSError``) print one line, ``error: ...``, exit code 2;
- Ctrl-C exits with 130 and says how to continue (trainings resume when rerun).
"""
import argparse
import sys
from typing import Callable, List, Optional, Sequence, Tuple

RESUME_HINT = "interrupted: rerun the same command to resume from the last checkpoint"


def command_parser(prog: str, description: str, epilog: str = "", config_help: Optional[str] = None,
                   force_help: Optional[str] = None) -> argparse.ArgumentParser:
    """An ``ArgumentParser`` for a command: no abbreviations (``--lr`` must not match ``--lr_D``),
    the epilog (examples, settings) printed as written; with ``config_help`` an optional positional
    TOML ``config``, with ``force_help`` a ``--force`` flag (the commands that run from a config)."""
    parser = argparse.ArgumentParser(prog=prog, description=description, epilog=epilog, allow_abbrev=False,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    if config_help:
        parser.add_argument("config", nargs="?", help=config_help)
    if force_help:
        parser.add_argument("--force", action="store_true", help=force_help)
    return parser


def split_overrides(parser: argparse.ArgumentParser, argv: Optional[Sequence[str]]
                    ) -> Tuple[List[str], List[str]]:
    """(the parser's own arguments, the ``--key=value`` config overrides) of ``argv``
    (``sys.argv[1:]`` when None). An option the parser knows stays with the parser."""
    own_flags = set(parser._option_string_actions)  # argparse's public API has no listing
    own, overrides = [], []
    for arg in (sys.argv[1:] if argv is None else argv):
        is_override = arg.startswith("--") and arg.split("=", 1)[0] not in own_flags
        (overrides if is_override else own).append(arg)
    return own, overrides


def parse_command(parser: argparse.ArgumentParser, argv: Optional[Sequence[str]]
                  ) -> Tuple[argparse.Namespace, List[str]]:
    """``parser.parse_args`` on the command's own arguments; returns (args, config overrides)."""
    own, overrides = split_overrides(parser, argv)
    return parser.parse_args(own), overrides


def run_command(body: Callable[[], int], interrupted: str = RESUME_HINT) -> int:
    """Run a command's body and turn what it raises into one line and an exit code."""
    try:
        return body()
    except (ValueError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # a second Ctrl-C: the last checkpoint on disk is kept as it was
        print(interrupted, file=sys.stderr)
        return 130
