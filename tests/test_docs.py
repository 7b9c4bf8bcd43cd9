"""Every command the README and docs/ show parses with the real command-line parser.

A dry parse: ``build_parser().parse_args(argv)`` checks each command, flag and flag value the way
the program would, without calling the command (no training, nothing written). A renamed or
removed flag, an unknown command or a value a flag refuses fails here, naming the page and line.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import io
import re
import shlex
from pathlib import Path

import pytest

from benchmark.cli import build_parser

REPO = Path(__file__).resolve().parents[1]
PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
PROGRAMS = (("python", "-m", "benchmark"), ("digitsum-bench",))
SHELL_BLOCKS = {"", "bash", "sh", "shell", "console"}
FENCE = re.compile(r"^```([^\n`]*)\n(.*?)^```", re.MULTILINE | re.DOTALL)
INLINE = re.compile(r"`([^`\n]+)`")
SEPARATORS = {"&&", "||", ";", "|"}
ASSIGNMENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*=")


def commands_in_line(line: str) -> list[list[str]]:
    """The argv (after the program name) of each benchmark command in one shell line: comments
    dropped, ``&&``/``;``/``|`` split, leading ``VAR=value`` assignments skipped."""
    words = shlex.split(line, comments=True)
    segments: list[list[str]] = [[]]
    for word in words:
        if word in SEPARATORS:
            segments.append([])
        else:
            segments[-1].append(word)
    found = []
    for segment in segments:
        while segment and ASSIGNMENT.match(segment[0]):
            segment = segment[1:]
        for program in PROGRAMS:
            if tuple(segment[: len(program)]) == program:
                found.append(segment[len(program) :])
    return found


def shown_commands(text: str) -> list[tuple[int, list[str]]]:
    """(line number, argv) of every benchmark command in a markdown text: each line of a shell
    code block (``\\`` continuations joined) and each inline code span outside the blocks that
    holds more than the program's name."""
    found = []
    for block in FENCE.finditer(text):
        if block.group(1).strip() not in SHELL_BLOCKS:
            continue
        first = text.count("\n", 0, block.start(2)) + 1
        lines = block.group(2).split("\n")
        i = 0
        while i < len(lines):
            start, line = i, lines[i]
            while line.endswith("\\") and i + 1 < len(lines):
                i += 1
                line = line[:-1] + " " + lines[i]
            found += [(first + start, argv) for argv in commands_in_line(line)]
            i += 1
    prose = FENCE.sub(lambda m: "\n" * m.group(0).count("\n"), text)
    for span in INLINE.finditer(prose):
        line = prose.count("\n", 0, span.start()) + 1
        # a bare program name in a sentence names the program; it is not a command line
        found += [(line, argv) for argv in commands_in_line(span.group(1)) if argv]
    return found


@functools.cache
def parser() -> argparse.ArgumentParser:
    """The real parser, built once: parsing leaves it as it was, and building it is most of
    the cost of each check."""
    return build_parser()


def parse_error(argv: list[str]) -> str | None:
    """Why the real parser refuses ``argv`` (None when it accepts it); ``--help`` and
    ``--version`` count as accepted when they exit 0."""
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            parser().parse_args(argv)
        except SystemExit as exc:
            asked_for_help = bool({"-h", "--help", "--version"} & set(argv))
            if exc.code != 0 or not asked_for_help:
                return err.getvalue().strip() or f"exit status {exc.code}"
    return None


def all_shown() -> list[tuple[str, int, list[str]]]:
    return [
        (page.relative_to(REPO).as_posix(), line, argv)
        for page in PAGES
        for line, argv in shown_commands(page.read_text(encoding="utf-8"))
    ]


def test_every_shown_command_parses() -> None:
    shown = all_shown()
    assert len(shown) >= 30, f"expected the docs to show many commands, found {len(shown)}"
    refused = [
        f"{page}:{line}: {shlex.join(argv)}\n    {why}"
        for page, line, argv in shown
        if (why := parse_error(argv)) is not None
    ]
    assert not refused, "commands the parser refuses:\n" + "\n".join(refused)


def test_every_command_is_shown_somewhere() -> None:
    """The manual covers each command the program has."""
    shown = {argv[0] for _, _, argv in all_shown() if argv}
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    assert set(sub.choices) <= shown, set(sub.choices) - shown


@pytest.mark.parametrize(
    "argv",
    [
        ["run", "--no-such-flag"],
        ["train", "--arch", "gap_cnn"],
        ["compare", "--seeds", "0-4"],
        ["run", "--precision", "fp16"],
        ["export", "--run", "x", "--format", "pickle"],
    ],
)
def test_the_check_catches_what_the_program_refuses(argv: list[str]) -> None:
    assert parse_error(argv) is not None


def test_extraction_joins_continuations_and_skips_prefixes_and_comments() -> None:
    text = "\n".join(
        [
            "Run `python -m benchmark list` or `pip install x` with `python -m benchmark`.",
            "```bash",
            "# python -m benchmark run --commented-out",
            "MNIST_ROOT=../shared/mnist OMP_NUM_THREADS=2 python -m benchmark run \\",
            "    --arch gap_cnn --epochs 1   # a comment",
            "ruff check . && digitsum-bench report --out 'output/a b'",
            "```",
            "```python",
            'subprocess.run("python -m benchmark run --ignored")',
            "```",
        ]
    )
    assert shown_commands(text) == [
        (4, ["run", "--arch", "gap_cnn", "--epochs", "1"]),
        (6, ["report", "--out", "output/a b"]),
        (1, ["list"]),
    ]


def test_the_readme_shows_the_commands_ci_runs() -> None:
    """``.ci/run`` runs the README's set-up and test commands (its pip is only quieter)."""
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    ci = (REPO / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    mirrored = [ci[i + 1] for i, line in enumerate(ci) if line.startswith("# README:")]
    assert len(mirrored) == 2
    for command in mirrored:
        assert command.replace(" install -q ", " install ") in readme, command


TINY = {  # what each command that trains gets on top of the README's flags: a tiny budget
    "run": ["--epochs", "1", "--train-subset", "256", "--seeds", "0", "--eval-batch-size", "100"],
    "compare": ["--arch", "gap_cnn", "--fusion", "late_sum", "--trials", "1", "--seeds", "0"],
}
TINY["compare"] += ["--train-subset", "256", "--no-report"]


@pytest.mark.slow
def test_every_readme_command_runs(
    small_data, installed_plugins, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    """Each command line of the README, in order, as written: those that train at a tiny
    budget (and on a few images), everything written under a temporary directory."""
    from importlib.metadata import entry_points

    from benchmark.cli import main

    monkeypatch.chdir(REPO)  # the README's paths are relative to the checkout
    example = any(ep.name == "example" for ep in entry_points(group="digitsum_bench.plugins"))
    for line, argv in shown_commands((REPO / "README.md").read_text(encoding="utf-8")):
        if "dwsep_cnn" in argv and not example:
            continue  # the example package is not installed here (.ci/run installs it)
        argv = [a.replace("output/", f"{tmp_path}/") for a in argv]
        extra = [*TINY.get(argv[0], [])]
        if argv[0] in ("run", "compare", "report") and "--results-dir" not in argv:
            extra += ["--results-dir", str(tmp_path)]
        status = main([*argv, *extra])
        out = capsys.readouterr()
        assert status == 0, f"README.md:{line}: {' '.join(argv)}\n{out.err[-2000:]}"
    assert (tmp_path / "report.md").is_file() and (tmp_path / "reference.onnx").is_file()
