"""``export``: a trained run as a standalone ONNX or TorchScript model (see ``benchmark.export``
for the inputs and outputs of the exported graph)."""

from __future__ import annotations

import argparse
from pathlib import Path

from benchmark.commands.common import UsageError, add_plugin_flag, console, path_text
from benchmark.files import check_writable

# format: default file name in the run directory (the exporters are in benchmark.export)
FORMATS = {"onnx": "model.onnx", "torchscript": "model.torchscript.pt"}


def cmd_export(args: argparse.Namespace) -> int:
    """Write a trained run's model as ONNX or TorchScript: (images, addends) -> both logits."""
    from benchmark import files, rundir, runs
    from benchmark.export import EXPORTERS, onnx_exporter

    run_dir = Path(args.run)
    rundir.check_finished(run_dir, "--run")
    out = Path(args.out) if args.out else run_dir / FORMATS[args.format]
    if out.is_dir():
        raise UsageError(f"--out {out} is a directory; expected a file path")
    if out.name in rundir.OWN_FILES and (out.parent / rundir.CONFIG).is_file():
        raise UsageError(  # a run's weights or records, lost to an export: never
            f"--out {out} is a run's own {out.name}; give another path, or none for "
            f"{run_dir / FORMATS[args.format]}"
        )
    check_writable(out.parent, "--out", out)
    data = EXPORTERS[args.format](runs.load_run(run_dir))
    files.write_bytes(out, data)
    how = f" with the {onnx_exporter()} exporter" if args.format == "onnx" else ""
    console.print(
        f"wrote {out}{how} ({len(data) / 1e6:.2f} MB): inputs images (B,1,28,28) float in "
        f"[0,1] and addends (B,) int64 -> outputs digit_logits (B,10) and sum_logits (B,19)",
        soft_wrap=True,
    )
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "export",
        help="write a trained run's model as ONNX or TorchScript",
        description=cmd_export.__doc__,
    )
    p.add_argument(
        "--run", type=path_text, required=True, metavar="RUN_DIR", help="a finished run directory"
    )
    p.add_argument("--format", required=True, choices=sorted(FORMATS), help="output format")
    p.add_argument(
        "--out",
        type=path_text,
        metavar="PATH",
        help="output file [RUN_DIR/model.onnx or RUN_DIR/model.torchscript.pt]",
    )
    add_plugin_flag(p, cmd_export)
