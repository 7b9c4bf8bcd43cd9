"""Command line: ``python -m benchmark <command>``: parse, dispatch, and turn the expected
failures into one line and an exit status. Each command lives in ``benchmark.commands``."""

from __future__ import annotations

import sys

from benchmark.commands import (
    bench,
    compare,
    datapath,
    export,
    listing,
    predict,
    report,
    run,
    tune,
)
from benchmark.commands.common import (
    EXIT_FAILED,
    EXIT_SIGINT,
    EXIT_SIGTERM,
    EXIT_USAGE,
    ArgumentParser,
    Terminated,
)
from benchmark.errors import DamagedFileError, TrainingFailed, UsageError

COMMANDS = (listing, run, tune, compare, report, bench, datapath, predict, export)


def build_parser() -> ArgumentParser:
    parser = ArgumentParser(
        prog="python -m benchmark",
        description="digitsum-bench: compare architectures on MNIST digit + addend",
    )
    sub = parser.add_subparsers(dest="command", required=True, parser_class=ArgumentParser)
    for command in COMMANDS:
        command.add_parser(sub)
    return parser


def is_unknown_name(exc: BaseException) -> bool:
    """A registry look-up error; if ``architectures`` was never imported, it cannot be one."""
    registry = sys.modules.get("architectures.registry")
    return registry is not None and isinstance(exc, registry.UnknownNameError)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    prog = f"python -m benchmark {args.command}"
    try:
        return int(args.func(args) or 0)
    except UsageError as exc:
        sys.stderr.write(f"{prog}: error: {exc}\n")
        return EXIT_USAGE
    except DamagedFileError as exc:
        sys.stderr.write(f"{prog}: error: {exc}\n")
        return EXIT_FAILED
    except TrainingFailed as exc:
        sys.stderr.write(f"{prog}: training stopped: {exc}\n")
        return EXIT_FAILED
    except Terminated:
        sys.stderr.write(f"{prog}: terminated (SIGTERM)\n")
        return EXIT_SIGTERM
    except KeyboardInterrupt:
        sys.stderr.write(f"{prog}: interrupted (SIGINT)\n")
        return EXIT_SIGINT
    except Exception as exc:
        if not is_unknown_name(exc):
            raise
        sys.stderr.write(f"{prog}: error: {exc}\n")
        return EXIT_USAGE
