"""``list``: the registered encoders and fusions with their sizes, default hyperparameters and
where each comes from (built-in, a ``--plugin``, or an installed plug-in's entry point)."""

from __future__ import annotations

import argparse

from rich.markup import escape

from benchmark.commands.common import add_plugin_flag, console, print_wide
from benchmark.progress import format_params, passing_bar


def defaults_cell(defaults: dict) -> str:
    """An entry's defaults as ``--model-arg`` takes them (``width=16 depth=2``), as text: a
    plug-in's value may hold brackets that would read as console markup."""
    return escape(format_params(defaults)) or "-"


def cmd_list(args: argparse.Namespace) -> int:
    """Encoders and fusions with parameter counts (encoder alone; fusion on the default gap_cnn)
    and their origin: built-in, a --plugin, or an installed plug-in's entry point. Models are
    built on the meta device, as ``check_model`` builds them: sizes without memory or weight
    initialisation (``meta_build``; on a 2-core EPYC, ``--encoders 'timm:resnet*'``, 75 models:
    10 s, 17 s where the meta device ran the initialisers and 60 s built for real;
    ``'timm:vit_*'``, 214: 23 s against 91 s, each also built once to find the image and patch
    sizes it takes), under a progress bar that goes when done."""
    from rich.table import Table

    from architectures import ENCODERS, FUSIONS, count_params, create_model, meta_build

    table = Table(title="encoders (features D, parameters; defaults as --model-arg takes them)")
    for col in ("encoder", "D", "params", "defaults", "origin", "description"):
        table.add_column(col, overflow="fold")
    names = ENCODERS.select(args.encoders)
    for name in passing_bar(names, f"building {len(names)} encoders"):
        entry = ENCODERS.get(name)
        with meta_build():
            enc = entry.factory()
        table.add_row(
            name,
            str(enc.num_features),
            f"{count_params(enc):,}",
            defaults_cell(entry.defaults),
            escape(entry.origin),
            escape(entry.description),
        )
    print_wide(table)
    table = Table(title="fusions (parameters on gap_cnn features; with gap_cnn total)")
    for col in ("fusion", "params", "model params", "defaults", "origin", "description"):
        table.add_column(col, overflow="fold")
    for name in FUSIONS.select(args.fusions):
        entry = FUSIONS.get(name)
        with meta_build():
            model = create_model("gap_cnn", name)
        table.add_row(
            name,
            f"{count_params(model.fusion):,}",
            f"{count_params(model):,}",
            defaults_cell(entry.defaults),
            escape(entry.origin),
            escape(entry.description),
        )
    print_wide(table)
    console.print(
        "Any timm model: --arch timm:<name> (e.g. timm:resnet18); a family's sizes: "
        "--encoders 'timm:mobilenetv3_small*' (timm.list_models' wildcards). img_size=None: "
        "timm's, 224 pixels for most ViTs; train one with --model-arg img_size=28 --model-arg "
        "patch_size=7.",
        markup=False,
    )
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "list",
        help="registered encoders and fusions with parameter counts",
        description=cmd_list.__doc__,
    )
    p.add_argument("--encoders", default="all", help="names or wildcards [all]")
    p.add_argument("--fusions", default="all", help="names or wildcards [all]")
    add_plugin_flag(p, cmd_list)
