"""The `timelaw` command line: one subcommand per job, each registered by the module that does the job."""
from __future__ import annotations

import argparse
import sys

from timelaw._version import __version__


def _registrars():
    """The modules that add subcommands; imported here so `timelaw --help` lists every job."""
    from timelaw.plan import cli as plan_cli
    from timelaw.devices import cli as devices_cli
    from timelaw.laws import cli as laws_cli
    from timelaw.training import cli as pilot_cli
    from timelaw.theory import cli as theory_cli
    from timelaw import runs_cli  # last: it adds the training-log options to `fit` and `calibrate`

    return [plan_cli.register, devices_cli.register, laws_cli.register, theory_cli.register, pilot_cli.register,
            runs_cli.register]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="timelaw", description="What your GPU time buys.")
    parser.add_argument("--version", action="version", version=f"timelaw {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for register in _registrars():
        register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "func"):
        parser.print_help()
        return 2
    try:
        return args.func(args)
    except (ValueError, ImportError) as error:  # bad input, or a missing extra: one line, in flags, no traceback
        from timelaw.cli_errors import report_error

        return report_error(args.command, error)  # re-raises an ImportError that is not a missing extra


if __name__ == "__main__":
    sys.exit(main())
