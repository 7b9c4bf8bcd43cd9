"""Command line: ``python -m benchmark <command>``: parse, dispatch, and turn the expected
failures into one line and an exit status. Each command lives in ``benchmark.commands``."""

from __future__ import annotations

import argparse
import errno
import functools
import gc
import os
import re
import signal
import sys
from pathlib import Path
from typing import NoReturn

from benchmark import wording
from benchmark.commands import (
    bench,
    common,
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
    Terminated,
    interrupts_as_exceptions,
)
from benchmark.errors import DamagedFileError, TrainingFailed, UsageError, WriteFailed

COMMANDS = (listing, run, tune, compare, report, bench, datapath, predict, export)


class ArgumentParser(argparse.ArgumentParser):
    """argparse that reports a usage error as one line (no usage dump) and exit status 2."""

    def error(self, message: str) -> NoReturn:
        if found := re.fullmatch(r"argument (--[\w-]+).*: expected one argument", message):
            # argparse reads "-inf" (not "-1") after a flag as another flag
            message += f" (a value that begins with '-' is given as {found[1]}=VALUE)"
        elif found := re.fullmatch(
            r"argument (--[\w-]+).*: invalid (int|float) value: '(.*)'", message
        ):
            # argparse's own words say what was wrong, not what is taken
            message += "; expected an integer" if found[2] == "int" else "; expected a number"
            action = self._option_string_actions.get(found[1])
            if "," in found[3] and "[," not in str(getattr(action, "metavar", "")):
                ladder = ", and compare --epochs takes a ladder" if found[1] == "--epochs" else ""
                message += f" (one value here; a comma list sweeps in run{ladder})"
        sys.stderr.write(f"{self.prog}: error: {message}\n")
        raise SystemExit(EXIT_USAGE)


def program_name() -> str:
    """How the user started us: the console script by its name, else ``python -m benchmark``."""
    script = Path(sys.argv[0]).name
    return script if script.startswith("digitsum-bench") else "python -m benchmark"


def package_version() -> str:
    """The installed distribution's version (a clone used without ``pip install`` has none)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("digitsum-bench")
    except PackageNotFoundError:
        return "unknown (not installed: pip install -e .)"


def build_parser() -> ArgumentParser:
    """The command line's parser, built once per process and program name: ``parse_args``
    leaves it as it was, and building it again takes 7 ms (its sub-commands' flags), which a
    caller of ``main`` in a loop, such as the tests, would pay every time."""
    return parser_named(program_name())


@functools.cache
def parser_named(prog: str) -> ArgumentParser:
    parser = ArgumentParser(
        prog=prog,
        usage="%(prog)s [-h] [--version] COMMAND ...",  # by hand: see sub.metavar below
        description="digitsum-bench: compare architectures on MNIST digit + addend",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {package_version()}")
    sub = parser.add_subparsers(  # prog: else the commands' would be the usage line above
        title="commands", dest="command", required=True, parser_class=ArgumentParser, prog=prog
    )
    for command in COMMANDS:
        command.add_parser(sub)
    # named so in the commands' list and in the error of a command line without one (the
    # usage line above says COMMAND: the choices there ran to 87 columns)
    sub.metavar = "{" + ",".join(sub.choices) + "}"
    COMMAND_PARSERS[prog] = dict(sub.choices)
    return parser


COMMAND_PARSERS: dict[str, dict[str, argparse.ArgumentParser]] = {}  # by program name


def unrecognized(prog: str, command: str, extras: list[str]) -> str:
    """What a command line gave that ``command`` does not take, in one line with a hint: the
    commands that take such a flag (``--val-subset`` is tune's, not run's), else the nearest
    flag of its own (``--seed``: ``--seeds``), and where its flags are listed."""
    parsers = COMMAND_PARSERS[prog]
    flags = {name: {o for a in p._actions for o in a.option_strings} for name, p in parsers.items()}
    hint = ""
    given = next((e.split("=")[0] for e in extras if e.startswith("--")), None)
    if given:
        others = [name for name, theirs in flags.items() if given in theirs]
        near = wording.closest(given, flags[command])
        if others:
            hint = f"; {given} is a flag of {wording.listing(others)}"
        elif near:
            hint = f"; did you mean {near}?"
    return (
        f"unrecognized arguments: {' '.join(extras)}{hint} ({prog} {command} --help lists "
        "its flags)"
    )


def is_unknown_name(exc: BaseException) -> bool:
    """A registry look-up error; if ``architectures`` was never imported, it cannot be one."""
    registry = sys.modules.get("architectures.registry")
    return registry is not None and isinstance(exc, registry.UnknownNameError)


def stopped(prog: str, interrupt: KeyboardInterrupt) -> int:
    """The one line and exit status of a command stopped by SIGINT (130) or SIGTERM (143)."""
    if isinstance(interrupt, Terminated):
        sys.stderr.write(f"{prog}: terminated (SIGTERM)\n")
        return EXIT_SIGTERM
    sys.stderr.write(f"{prog}: interrupted (SIGINT)\n")
    return EXIT_SIGINT


def signal_came() -> KeyboardInterrupt | None:
    """The interrupt of the SIGINT or SIGTERM that came while the command ran, if one did: an
    ONNX export cut short by Ctrl-C ended in a half-imported module's AttributeError, which the
    exporter wrapped, and the command told the user the model could not be converted."""
    if not common._stopping:
        return None
    return Terminated() if common._stopping[0] == signal.SIGTERM else KeyboardInterrupt()


def interrupt_behind(exc: BaseException) -> KeyboardInterrupt | None:
    """The interrupt that ``exc`` was raised while handling, if any: a library's clean-up cut
    short by the signal is still that signal (a SIGTERM inside Optuna's storage commit of a
    trial makes its ``finally`` raise ``UnboundLocalError``), not a crash with a traceback."""
    seen: set[int] = set()
    found: BaseException | None = exc
    while found is not None and id(found) not in seen:
        if isinstance(found, KeyboardInterrupt):
            return found
        seen.add(id(found))
        found = found.__cause__ or found.__context__
    return None


def os_error_line(exc: OSError) -> str:
    """An ``OSError`` as one line: the file and the errno's meaning (``WriteFailed`` says it)."""
    if isinstance(exc, WriteFailed) or not (exc.filename and exc.strerror):
        return str(exc)
    return f"{exc.filename}: {exc.strerror}"


def main(argv: list[str] | None = None, *, restore_signals: bool = True) -> int:
    """Run one command. From here on the first SIGINT or SIGTERM stops the work and later ones
    are ignored (``interrupts_as_exceptions``); the process's entry point passes
    ``restore_signals=False``, so that a late Ctrl-C is ignored while the interpreter exits."""
    with interrupts_as_exceptions(restore=restore_signals):
        return dispatch(argv)


def entry() -> None:
    """The process's entry point (``python -m benchmark``, the ``digitsum-bench`` script). What
    is left in memory is frozen out of the garbage collector before the interpreter exits, so
    that exiting does not walk every object of pandas, SciPy and Optuna once more: that took
    0.6-0.8 s after a report whose work takes 2.5 s."""
    status = main(restore_signals=False)
    gc.freeze()
    sys.exit(status)


def dispatch(argv: list[str] | None) -> int:
    prog = program_name()
    try:
        args, extras = build_parser().parse_known_args(argv)
        command, prog = args.command, f"{prog} {args.command}"
        if extras:
            raise UsageError(unrecognized(program_name(), command, extras))
        args.argv = sys.argv[1:] if argv is None else list(argv)  # as typed: for worker processes
        status = int(args.func(args) or 0)
        sys.stdout.flush()  # here, where a reader gone away is met, not in the interpreter's exit
        return status
    except (UsageError, DamagedFileError) as exc:
        if (came := signal_came()) is not None:  # what a library cut short by it raised
            return stopped(prog, came)
        sys.stderr.write(f"{prog}: error: {exc}\n")
        return EXIT_USAGE if isinstance(exc, UsageError) else EXIT_FAILED
    except TrainingFailed as exc:
        sys.stderr.write(f"{prog}: training stopped: {exc}\n")
        return EXIT_FAILED
    except BrokenPipeError:  # stdout's reader went away (`| head`): quiet, as rich's console is
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # so the exit's flush too
        return EXIT_FAILED
    except OSError as exc:  # a full or read-only disk, a permission: the system's, not a bug
        if exc.errno == errno.ENAMETOOLONG:  # but a path given, or made of one, is no path
            where = f"{exc.filename}: " if exc.filename else ""
            sys.stderr.write(f"{prog}: error: {where}name too long; give a shorter path\n")
            return EXIT_USAGE
        sys.stderr.write(f"{prog}: error: {os_error_line(exc)}\n")
        return EXIT_FAILED
    except KeyboardInterrupt as exc:  # Terminated (SIGTERM) is one too
        return stopped(prog, exc)
    except Exception as exc:
        interrupt = interrupt_behind(exc)
        if interrupt is not None:
            return stopped(prog, interrupt)
        if not is_unknown_name(exc):
            raise
        plugins = sys.modules.get("benchmark.plugins")  # a broken one may be why
        note = plugins.unknown_note(str(exc)) if plugins else ""
        sys.stderr.write(f"{prog}: error: {exc}{note}\n")
        return EXIT_USAGE
