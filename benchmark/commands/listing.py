"""``list``: the registered encoders and fusions with their sizes, default hyperparameters and
where each comes from (built-in, a ``--plugin``, or an installed plug-in's entry point)."""

from __future__ import annotations

import argparse
import warnings
from collections.abc import Callable
from typing import Any

from rich.markup import escape

from benchmark.commands.common import add_plugin_flag, console, natural_width, print_wide
from benchmark.commands.models import named
from benchmark.errors import one_line
from benchmark.progress import passing_bar
from benchmark.wording import plural, settings


def defaults_cell(defaults: dict) -> str:
    """An entry's defaults as ``--model-arg`` takes them (``width=16 depth=2``), as text: a
    plug-in's value may hold brackets that would read as console markup."""
    return escape(settings(defaults)) or "-"


def built(make: Callable[[], Any]) -> tuple[Any, str]:
    """``make()`` built on the meta device and ""; or None and why it cannot be built (a model
    timm lists that fails, a plug-in's bug), so that one such model does not end the listing."""
    from architectures import meta_build

    try:
        with meta_build(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # a model's notice would break the bar
            return make(), ""
    except Exception as exc:  # the factories and timm raise many kinds; all mean "cannot build"
        return None, f"cannot be built: {one_line(exc)}; "


def cannot_run(arch: str, fusion: str) -> str:
    """Why the model of ``arch`` x ``fusion`` with their defaults cannot take 1x28x28 images,
    for the entry's row, with the sizes that run it where there are any (a ViT left at 224
    pixels); "" where it can. The meta-device dry run ``run`` refuses a model by."""
    from architectures import CannotRunError, check_model

    try:
        check_model(arch, fusion, {})
    except CannotRunError as exc:
        return f"{exc.why}; "
    return ""


def entry_cells(entry: Any, why: str) -> list[str]:
    """An entry's defaults, origin and description (after why it cannot be built, if so)."""
    return [defaults_cell(entry.defaults), escape(entry.origin), escape(why + entry.description)]


def print_entries(title: str, columns: tuple[str, ...], rows: list[list[str]]) -> None:
    """One table of entries, whole where it fits. On a terminal too narrow for it (80 columns
    for a table 210 wide), its two text columns folded into slivers that broke words
    ("Depthwise-sep" / "arable"): there the table keeps the figures and defaults, and each
    entry's origin and description follow it as a line of their own, wrapped at words."""
    from rich.table import Table

    def table(count: int) -> Any:  # of the first ``count`` columns
        made = Table(title=title)
        for col in columns[:count]:
            made.add_column(col, overflow="fold")
        for row in rows:
            made.add_row(*row[:count])
        return made

    whole = table(len(columns))
    if not console.is_terminal or natural_width(whole) <= console.width:
        print_wide(whole)
        return
    print_wide(table(len(columns) - 2))
    notes = Table.grid(padding=(0, 2))
    notes.add_column(no_wrap=True)
    notes.add_column()
    for row in rows:
        notes.add_row(row[0], f"\\[{row[-2]}] {row[-1]}")  # cells are escaped markup
    console.print(notes)


def cmd_list(args: argparse.Namespace) -> int:
    """Encoders and fusions with parameter counts and origin. Models are built on the meta device,
    as ``check_model`` builds them (``meta_build``: sizes without memory or weight initialisation,
    so that listing a timm family takes seconds, not minutes; docs/commands.md has the figures);
    a model that cannot be built gets a row saying why, and the listing goes on."""
    from architectures import ENCODERS, FUSIONS, count_params, create_model

    names = ENCODERS.select(args.encoders)
    fusions = FUSIONS.select(args.fusions)  # a typo in either is the one line, before a table
    broken, refused, rows = [], [], []
    doing = "building and checking" if args.check else "building"
    for name in passing_bar(names, f"{doing} {plural(len(names), 'encoder')}"):
        entry = ENCODERS.get(name)
        enc, why = built(entry.factory)
        if enc is None:
            broken.append(name)
        elif args.check and (why := cannot_run(name, "concat")):
            refused.append(name)
        cells = [str(enc.num_features), f"{count_params(enc):,}"] if enc else ["-", "-"]
        rows.append([name, *cells, *entry_cells(entry, why)])
    print_entries(
        "encoders (features D, parameters; defaults as --model-arg takes them)",
        ("encoder", "D", "params", "defaults", "origin", "description"),
        rows,
    )
    rows = []
    for name in fusions:
        entry = FUSIONS.get(name)
        model, why = built(lambda name=name: create_model("gap_cnn", name))
        if model is None:
            broken.append(name)
        elif args.check and (why := cannot_run("gap_cnn", name)):
            refused.append(name)
        cells = [f"{count_params(m):,}" for m in (model.fusion, model)] if model else ["-", "-"]
        rows.append([name, *cells, *entry_cells(entry, why)])
    print_entries(
        "fusions (parameters on gap_cnn features; with gap_cnn total)",
        ("fusion", "params", "model params", "defaults", "origin", "description"),
        rows,
    )
    listed = f"the {plural(len(names), 'encoder')} and {plural(len(fusions), 'fusion')} listed"
    if broken:
        console.print(
            f"{len(broken)} of {listed} cannot be built (their rows say why): {named(broken)}",
            markup=False,
        )
    if refused:
        console.print(
            f"{len(refused)} of {listed} cannot run on 1x28x28 images with their defaults (their "
            f"rows say why; run, tune and compare refuse them): {named(refused)}",
            markup=False,
        )
    sized = any("img_size" in ENCODERS.get(name).defaults for name in names)  # a ViT listed
    timm = any(name.startswith("timm:") for name in names) and not args.check
    console.print(
        "Any timm model: --arch timm:<name> (e.g. timm:resnet18); a family's sizes: "
        "--encoders 'timm:mobilenetv3_small*' (timm.list_models' wildcards)."
        + (
            " img_size=None: timm's, 224 pixels for most ViTs; train one with --model-arg "
            "img_size=28 --model-arg patch_size=7."
            if sized
            else ""
        )
        + (
            " Many timm models shrink a 28x28 image to nothing with their defaults: --check "
            "says which (a dry run of each, as run checks a model)."
            if timm
            else ""
        ),
        markup=False,
    )
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "list",
        help="registered encoders and fusions with parameter counts",
        description="Encoders and fusions with their feature width, parameter counts (an encoder "
        "alone; a fusion on the default gap_cnn, and the two together), defaults and origin: "
        "built-in, a --plugin, or an installed plug-in's entry point. Models are sized without "
        "allocating weights, so even --encoders 'timm:*' (1,371 models) takes about 2 min on 2 "
        "cores; a model that cannot be built gets a row saying why.",
    )
    p.add_argument("--encoders", default="all", help="names or wildcards [all]")
    p.add_argument("--fusions", default="all", help="names or wildcards [all]")
    p.add_argument(
        "--check",
        action="store_true",
        help="also run two 1x28x28 images through each model on the meta device, as run checks "
        "it, and say which cannot take MNIST with its defaults (about twice the time: "
        "'timm:resnet*' 66 s against 30 s on a busy 2-core VM; 15 of its 75 models refused)",
    )
    add_plugin_flag(p, cmd_list)
