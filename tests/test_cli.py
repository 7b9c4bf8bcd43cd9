"""The program names itself as it was started and says its version."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import pytest
from conftest import exit_status, one_line, screen

from benchmark.cli import build_parser, main

REPO = Path(__file__).resolve().parents[1]


def test_version_prints_the_package_version(capsys) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--version"])
    assert exited.value.code == 0
    assert capsys.readouterr().out.strip().endswith(f" {version('digitsum-bench')}")


def test_no_command_is_one_line_naming_the_commands(capsys) -> None:
    assert exit_status([]) == 2
    line = one_line(capsys.readouterr().err)
    assert "required" in line and "{list,run,tune,compare,report," in line


def test_the_console_script_names_itself(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "argv", ["/venv/bin/digitsum-bench", "--help"])
    assert build_parser().format_usage().startswith("usage: digitsum-bench ")
    monkeypatch.setattr(sys, "argv", [str(REPO / "benchmark" / "__main__.py")])
    assert build_parser().format_usage().startswith("usage: python -m benchmark ")


def test_the_parser_built_once_gives_every_parse_its_own_values() -> None:
    """The parser is built once per process: what one command line appended or set is not
    left behind for the next one."""
    parser = build_parser()
    first = parser.parse_args(["run", "--plugin", "a.py", "--plugin", "b", "--seed", "3"])
    assert first.plugin == ["a.py", "b"] and first.seed == 3
    again = build_parser().parse_args(["run"])
    assert build_parser() is parser
    assert again.plugin == [] and again.seed is None and again.func is first.func


@pytest.mark.skipif(not shutil.which("digitsum-bench"), reason="package not installed")
def test_the_installed_console_script() -> None:
    shown = subprocess.run(
        ["digitsum-bench", "--help"], capture_output=True, text=True, timeout=120, check=True
    )
    assert shown.stdout.startswith("usage: digitsum-bench")
    shown = subprocess.run(
        ["digitsum-bench", "--version"], capture_output=True, text=True, timeout=120, check=True
    )
    assert shown.stdout.strip() == f"digitsum-bench {version('digitsum-bench')}"


def test_help_loads_no_heavy_library() -> None:
    """``--help`` of every command answers without torch, timm, pandas or Optuna: a comma-list
    rule imported from ``architectures`` had made each take 2 s where 0.3 s does."""
    code = (
        "import sys\nfrom benchmark.cli import COMMAND_PARSERS, build_parser, main\n"
        "for command in ['', *COMMAND_PARSERS[build_parser().prog]]:\n"
        "    try:\n        main([command, '--help'] if command else ['--help'])\n"
        "    except SystemExit:\n        pass\n"
        "heavy = ('torch', 'timm', 'pandas', 'optuna', 'matplotlib', 'scipy')\n"
        "print('loaded:', [m for m in heavy if m in sys.modules], file=sys.stderr)\n"
    )
    shown = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    assert shown.stderr.strip().splitlines()[-1] == "loaded: []"
    from benchmark.cli import COMMAND_PARSERS, build_parser

    commands = COMMAND_PARSERS[build_parser().prog]
    assert shown.stdout.count("usage: ") == 1 + len(commands)  # the top one and each command's


@pytest.mark.parametrize("flag", ["--encoders", "--fusions"])
def test_a_list_of_an_unknown_name_is_its_one_line_and_no_table(flag: str, capsys) -> None:
    """A typo in --fusions used to print the whole encoder table before its error line."""
    assert main(["list", "--encoders", "gap_cnn", "--fusions", "concat", flag, "concatt"]) == 2
    shown = capsys.readouterr()
    assert shown.out == ""
    assert "unknown " in one_line(shown.err) and "'concatt'" in shown.err


def test_print_config_writes_the_json_alone_to_stdout(capsys) -> None:
    """Its notes go to stderr, so the JSON can be written to a file that ``--config`` reads."""
    assert main(["run", "--model-arg", "width=16", "--print-config"]) == 0
    shown = capsys.readouterr()
    assert json.loads(shown.out)["arch"] == "gap_cnn"
    assert "model args at the model's default, left out" in shown.err


def test_a_reader_that_goes_away_ends_the_command_quietly(
    monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    """``run --print-config | head -1``: stdout's reader closed early is exit status 1 and no
    line on stderr (it was "error: [Errno 32] Broken pipe"), as rich's console does it."""
    reader, writer = os.pipe()
    os.close(reader)
    with os.fdopen(writer, "w") as gone:
        monkeypatch.setattr(sys, "stdout", gone)
        assert main(["run", "--print-config"]) == 1
        gone.write("the exit's flush")  # stdout now leads nowhere: no second error
        gone.flush()
        monkeypatch.undo()
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize("name", ["timm", "torchvision"])
def test_recorded_versions_are_the_packages_own_without_importing_them(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run records ``timm`` and ``torchvision`` as their ``__version__`` says (torchvision's
    with its CUDA build), read without the two seconds their import costs a process."""
    import importlib

    from benchmark.hardware import package_version, versions

    said = importlib.import_module(name).__version__
    for module in [m for m in sys.modules if m == name or m.startswith(f"{name}.")]:
        monkeypatch.delitem(sys.modules, module)
    assert package_version(name) == said
    assert name not in sys.modules
    assert versions()[name] == said


def test_lists_hint_at_a_timm_family_lists_it_with_each_models_feature_width(capsys) -> None:
    """The hint under ``list`` is a command that works; MobileNetV3's features are 1,024 wide
    (the head after its pooling), not the 288-576 channels timm calls num_features."""
    assert main(["list", "--encoders", "gap_cnn", "--fusions", "concat"]) == 0
    hint = " ".join(capsys.readouterr().out.split()).split("a family's sizes: ")[1]
    family = hint.split("'")[1]
    assert main(["list", "--encoders", family, "--fusions", "concat"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].strip()  # into a pipe no bar, and no blank line where it would have been
    rows = [line.split("│") for line in lines if "timm:" in line]
    widths = {cells[1].strip(): cells[2].strip() for cells in rows if len(cells) > 3}
    assert widths == {f"timm:mobilenetv3_small_{m}": "1024" for m in ("050", "075", "100")}
    assert {cells[5].strip() for cells in rows if len(cells) > 3} == {f"timm {version('timm')}"}


def test_list_shows_a_progress_bar_on_a_terminal_while_it_builds(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A timm family takes a while to build (214 ViTs: 23 s): on a terminal a bar
    counts the encoders, and goes when the tables are printed; the ViT hint is a command."""
    import io

    from rich.console import Console

    out = io.StringIO()
    terminal = Console(file=out, width=100, force_terminal=True, color_system=None)
    monkeypatch.setattr("benchmark.commands.listing.console", terminal)
    monkeypatch.setattr("benchmark.commands.common.console", terminal)
    monkeypatch.setattr("benchmark.progress.console", terminal)
    assert main(["list", "--encoders", "timm:test_vit,gap_cnn", "--fusions", "concat"]) == 0
    shown = out.getvalue()
    assert "building 2 encoders" in shown and "100%" in shown
    assert "timm:test_vit" in shown.split("building 2 encoders")[-1]  # the table after the bar
    lines = screen(shown, width=100)  # what the terminal shows at the end
    assert not any("building 2 encoders" in line or "100%" in line for line in lines), lines
    assert any("│ timm:test_vit" in line for line in lines)
    words = " ".join(shown.split())
    assert "Many timm models shrink a 28x28 image to nothing with their defaults: --check" in words
    hint = words.split("train one with ")[1].split(".")[0]
    assert main(["run", "--arch", "timm:test_vit", *hint.split(), "--print-config"]) == 0


@pytest.mark.parametrize("width", [80, 250])
def test_list_in_a_narrow_terminal_breaks_no_word(
    width: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """At 80 columns the six-column tables folded their text into slivers ("Depthwise-sep" /
    "arable", "fc_features=1" / "28"): a narrow terminal gets the figures and defaults as a
    table, then each entry's origin and description wrapped at words; a wide one the table."""
    import io

    from rich.console import Console

    from architectures import ENCODERS, FUSIONS

    out = io.StringIO()
    terminal = Console(file=out, width=width, force_terminal=True, color_system=None)
    for module in ("listing", "common"):
        monkeypatch.setattr(f"benchmark.commands.{module}.console", terminal)
    monkeypatch.setattr("benchmark.progress.console", terminal)
    assert main(["list", "--encoders", "small_cnn,gap_cnn", "--fusions", "bilinear"]) == 0
    lines = screen(out.getvalue(), width=width)
    words = " ".join(" ".join(lines).split())
    for entry in (ENCODERS.get("small_cnn"), ENCODERS.get("gap_cnn"), FUSIONS.get("bilinear")):
        if width == 80:
            assert f"[{entry.origin}] {entry.description}" in words
        else:
            assert entry.description in words and f"│ {entry.origin}" in words
    assert "width=16 fc_features=128 dropout=0" in words
    headers = [line for line in lines if "encoder" in line and "┃" in line]
    assert ("origin" in headers[0]) is (width == 250)


def test_a_list_table_as_wide_as_the_terminal_is_whole_and_one_column_wider_is_split(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The origin and description leave the table only where it does not fit: a table
    exactly the terminal's width fits."""
    import io

    from rich.console import Console

    from benchmark.commands import listing

    columns = ("encoder", "D", "params", "defaults", "origin", "description")
    rows = [["gap_cnn", "64", "85,357", "width=16", "built-in", "Global average pooling CNN"]]

    def shown(width: int) -> list[str]:
        term = Console(file=io.StringIO(), width=width, force_terminal=True, color_system=None)
        monkeypatch.setattr(listing, "console", term)
        monkeypatch.setattr("benchmark.commands.common.console", term)
        listing.print_entries("encoders", columns, rows)
        return term.file.getvalue().splitlines()

    width = max(map(len, shown(250)))  # the whole table's
    assert any("┃ origin" in line for line in shown(width))
    assert not any("┃ origin" in line for line in shown(width - 1))


def test_suggested_commands_paste_whole_with_a_space_in_a_path(tmp_path: Path, capsys) -> None:
    """``--results-dir 'my results'``: the hints said ``--results-dir my results``, which a
    shell splits in two; they are quoted as a shell reads them."""
    import shlex

    from benchmark import rundir

    run_dir = tmp_path / "my results" / "runs" / "r1"
    assert shlex.split(rundir.resume_command(run_dir))[-1] == str(run_dir)
    results = tmp_path / "my results"
    argv = ["run", "--tuned", "--epochs", "1", "--results-dir", str(results), "--print-config"]
    assert exit_status(argv) == 2
    hint = one_line(capsys.readouterr().err).split("run `", 1)[1].split("` first")[0]
    assert shlex.split(hint)[-2:] == ["--results-dir", str(results)]


@pytest.mark.parametrize("command", ["run", "tune", "compare", "bench", "datapath"])
def test_a_model_argument_given_twice_is_refused(command: str, tmp_path: Path, capsys) -> None:
    """``--model-arg width=8 --model-arg width=16``: the last won without a word."""
    argv = [command, "--model-arg", "width=8", "--model-arg", "width=16"]
    assert exit_status([*argv, "--results-dir", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    sweep = ", or sweep it as width=8,16" if command in ("run", "bench") else ""
    assert f"--model-arg width given twice (width=8 and width=16); give it once{sweep}\n" in err
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("width", [40, 60, 200])
def test_a_table_wider_than_the_terminal_folds_its_cells_and_loses_nothing(
    width: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """bench's table at 80 columns read "ga…", "206,9…"; predict's file names "/tmp/tmp.LC4…":
    every letter and digit of every cell is still there, however narrow the terminal."""
    import io
    from collections import Counter

    from rich.console import Console
    from rich.table import Table

    from benchmark.commands import common

    term = Console(file=io.StringIO(), width=width, force_terminal=True, color_system=None)
    monkeypatch.setattr(common, "console", term)
    headers = ["image", "params", "MMACs", "infer/s", "b1 ms", "train/s", "compile s"]
    cells = ["/tmp/tmp.LC4wcqOxwD/digits/seven.png", "206,922", "7.35", "21,345", "1.23",
             "4,618", "12.5"]  # fmt: skip
    table = Table()
    for header in headers:  # as bench's: numbers kept on one line where they fit
        table.add_column(header, no_wrap=True)
    table.add_row(*cells)
    common.print_wide(table)
    out = term.file.getvalue()
    assert "…" not in out
    assert Counter(c for c in out if c.isalnum()) == Counter(
        c for c in "".join(headers + cells) if c.isalnum()
    )


@pytest.mark.parametrize(("encoders", "told"), [("gap_cnn", False), ("timm:test_vit", True)])
def test_list_tells_of_img_size_only_where_a_listed_encoder_takes_it(
    encoders: str, told: bool, capsys
) -> None:
    """The ViT footnote sat under gap_cnn alone, and beside resnets, where it means nothing."""
    assert main(["list", "--encoders", encoders, "--fusions", "concat"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert ("img_size=None: timm's, 224 pixels for most ViTs" in out) is told


@pytest.mark.parametrize("terminal", [True, False])
def test_a_title_wider_than_its_table_is_a_line_of_its_own(
    terminal: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """bench's title wrapped at its table's width, mid-phrase ("..., batch" / "1024 ...")."""
    import io

    from rich.console import Console
    from rich.table import Table

    from benchmark.commands import common

    term = Console(file=io.StringIO(), width=100, force_terminal=terminal, color_system=None)
    monkeypatch.setattr(common, "console", term)
    monkeypatch.setattr("benchmark.progress.console", term)  # the one console, its owner's
    title = "bench on cpu: AMD EPYC (2 threads) with avx512 bf16, bf16, inference batch 1024"
    table = Table("arch", "params", title=title)
    table.add_row("gap_cnn", "85,357")
    table.caption = "all runs"  # centred under the table: padded on both sides
    common.print_wide(table)
    lines = term.file.getvalue().splitlines()
    assert lines[0] == title and "gap_cnn" in " ".join(lines[1:])
    if not terminal:  # a pipe: no line ends in the spaces that pad a row or a caption
        assert lines[-1].strip() == "all runs"
        assert not any(line.endswith(" ") for line in lines), lines


@pytest.mark.parametrize(
    ("argv", "hint"),
    [
        (["run", "--lr", "-inf"], "--lr=VALUE"),  # argparse takes "-inf" for a flag, not "-1"
        (["tune", "--storage"], "--storage=VALUE"),  # or nothing at all came after it
    ],
)
def test_a_flag_without_its_value_says_how_to_give_one_that_begins_with_a_dash(
    argv: list[str], hint: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert exit_status(argv) == 2
    line = one_line(capsys.readouterr().err)
    assert line.endswith(f"expected one argument (a value that begins with '-' is given as {hint})")


def test_list_gives_each_fusion_its_own_size_and_the_models_with_gap_cnn(capsys) -> None:
    """A fusion's params column is the fusion alone; the model's is it and gap_cnn's encoder."""
    assert main(["list", "--encoders", "gap_cnn", "--fusions", "concat,late_sum"]) == 0
    rows = [
        [cell.strip() for cell in line.split("│")[1:-1]]
        for line in capsys.readouterr().out.splitlines()
        if line.startswith("│")
    ]
    sizes = {row[0]: [int(cell.replace(",", "")) for cell in row[1:3]] for row in rows}
    encoder = sizes.pop("gap_cnn")[1]
    assert set(sizes) == {"concat", "late_sum"}
    for fusion, model in sizes.values():
        assert 0 < fusion < model == fusion + encoder


def test_list_names_every_fusion_unless_told(capsys) -> None:
    from architectures import FUSIONS

    assert main(["list", "--encoders", "gap_cnn"]) == 0
    out = capsys.readouterr().out
    assert all(f"│ {name} " in out for name in FUSIONS.names())


def test_an_entry_without_defaults_shows_a_dash_and_a_bracket_as_text() -> None:
    from benchmark.commands.listing import defaults_cell

    assert defaults_cell({}) == "-"
    assert defaults_cell({"act": "[relu]"}) == "act=\\[relu]"


def test_a_mistyped_name_is_matched_only_to_a_near_one() -> None:
    """``epochz`` meant ``epochs``; ``depth`` to a model that takes ``width`` is another
    parameter, not a typo of it, and no "did you mean" should send the user there."""
    from benchmark.wording import closest

    assert closest("epochz", ["epochs", "seeds"]) == "epochs"
    assert closest("depth", ["width", "dropout"]) is None
