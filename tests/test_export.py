"""``export``: ONNX (onnxruntime) and TorchScript models give PyTorch's outputs, -inf included."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from conftest import one_line

from architectures import ENCODERS, FUSIONS, create_model
from benchmark import files, load_run, rundir
from benchmark.cli import main
from benchmark.config import TrainConfig
from benchmark.data import to_float
from benchmark.export import holds_a_model


def assert_same_outputs(got: tuple, want: tuple[torch.Tensor, torch.Tensor]) -> None:
    for g, w in zip(got, want, strict=True):
        g = torch.as_tensor(g)
        assert g.shape == w.shape
        assert torch.equal(torch.isinf(g), torch.isinf(w))  # late_sum's impossible sums stay -inf
        torch.testing.assert_close(g, w, atol=1e-4, rtol=1e-4, equal_nan=False)


def inputs(data, batch: int) -> tuple[torch.Tensor, torch.Tensor]:
    images = to_float(data.test.images[:batch])
    return images, torch.arange(batch) % 10


def untrained_run(tmp_path: Path, arch: str, fusion: str) -> Path:
    """A run directory holding a freshly initialised model: enough to check export parity."""
    cfg = TrainConfig(arch=arch, fusion=fusion)
    torch.manual_seed(0)
    model = create_model(cfg.arch, cfg.fusion)
    run_dir = tmp_path / "run"
    files.write_json(run_dir / rundir.CONFIG, cfg.to_dict())
    files.save_torch(run_dir / rundir.MODEL, model.state_dict())
    return run_dir


def export_onnx(run_dir: Path, out: Path) -> object:
    ort = pytest.importorskip("onnxruntime")
    onnx = pytest.importorskip("onnx")
    assert main(["export", "--run", str(run_dir), "--format", "onnx", "--out", str(out)]) == 0
    onnx.checker.check_model(str(out))
    return ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])


@pytest.mark.parametrize(
    "exporter",
    [pytest.param("dynamo", marks=pytest.mark.slow), "torchscript"],  # dynamo: 6 s to trace
)
def test_onnx_matches_pytorch_late_sum(
    exporter: str, trained_run: Path, synthetic, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Both ONNX exporters: torch's dynamo one (onnxscript) and the TorchScript-based fallback."""
    if exporter == "dynamo":
        pytest.importorskip("onnxscript")
    monkeypatch.setattr("benchmark.export.onnx_exporter", lambda: exporter)
    session = export_onnx(trained_run, tmp_path / "m.onnx")
    assert holds_a_model(tmp_path / "m.onnx", "onnx")  # so an export again may replace it
    model = load_run(trained_run)
    for batch in (1, 7):  # the batch axis is dynamic
        images, addends = inputs(synthetic, batch)
        with torch.no_grad():
            want = model(images, addends)
        assert torch.isinf(want[1]).any()  # so the -inf check means something
        feed = {"images": images.numpy(), "addends": addends.numpy()}
        assert_same_outputs(session.run(["digit_logits", "sum_logits"], feed), want)


def test_torchscript_matches_pytorch_late_sum(trained_run: Path, synthetic, tmp_path: Path) -> None:
    """Without --out, into the run directory under the name the docs give."""
    run_dir = tmp_path / "run"
    shutil.copytree(trained_run, run_dir)
    assert main(["export", "--run", str(run_dir), "--format", "torchscript"]) == 0
    scripted = torch.jit.load(str(run_dir / "model.torchscript.pt"))
    model = load_run(trained_run)
    for batch in (1, 7):
        images, addends = inputs(synthetic, batch)
        with torch.no_grad():
            assert_same_outputs(scripted(images, addends), model(images, addends))


@pytest.mark.parametrize("name", [rundir.MODEL, rundir.CONFIG, rundir.METRICS])
def test_an_export_never_overwrites_a_runs_own_files(
    name: str, trained_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--out RUN/model.pt`` wrote the TorchScript over the run's weights, which no longer
    loaded; a run's own files are refused in one line, nothing written."""
    run_dir = tmp_path / "run"
    shutil.copytree(trained_run, run_dir)
    target = run_dir / name
    before = target.read_bytes()
    argv = ["export", "--run", str(run_dir), "--format", "torchscript", "--out", str(target)]
    assert main(argv) == 2
    assert f"--out {target} is a run's own {name}" in one_line(capsys.readouterr().err)
    assert target.read_bytes() == before and not (run_dir / "model.torchscript.pt").exists()


OTHER_MODELS = [("gap_cnn", f) for f in FUSIONS.select("all") if f != "late_sum"] + [
    (e, "concat") for e in ENCODERS.select("all") if e != "gap_cnn"
]


# the slow tier: 5-8 s of export each on 2 cores (the fast tier exports late_sum both ways)
@pytest.mark.slow
@pytest.mark.parametrize(("arch", "fusion"), OTHER_MODELS)
def test_both_formats_match_pytorch_other_models(
    arch: str, fusion: str, synthetic, tmp_path: Path
) -> None:
    run_dir = untrained_run(tmp_path, arch, fusion)
    images, addends = inputs(synthetic, 5)
    with torch.no_grad():
        want = load_run(run_dir)(images, addends)
    session = export_onnx(run_dir, tmp_path / "m.onnx")
    assert_same_outputs(
        session.run(None, {"images": images.numpy(), "addends": addends.numpy()}), want
    )
    assert main(["export", "--run", str(run_dir), "--format", "torchscript"]) == 0
    scripted = torch.jit.load(str(run_dir / "model.torchscript.pt"))  # the default --out
    with torch.no_grad():
        assert_same_outputs(scripted(images, addends), want)


def test_bad_run_or_format_is_exit_2_and_writes_nothing(tmp_path: Path, capsys) -> None:
    out = tmp_path / "m.onnx"
    assert main(["export", "--run", str(tmp_path), "--format", "onnx", "--out", str(out)]) == 2
    assert "expected a finished run directory" in capsys.readouterr().err
    with pytest.raises(SystemExit) as info:
        main(["export", "--run", str(tmp_path), "--format", "tflite", "--out", str(out)])
    assert info.value.code == 2
    assert "choose from 'onnx', 'torchscript'" in capsys.readouterr().err
    assert not out.exists()


@pytest.mark.parametrize("name", ["optuna.db", "comparison.json", "notes"])
def test_an_export_never_overwrites_a_file_of_another_kind(
    name: str, trained_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--out results/optuna.db`` wrote the ONNX model over every study, and
    ``comparison.json`` lost its hours of stage times: an existing file is replaced only when
    its name says it is an export of that format."""
    target = tmp_path / name
    target.write_bytes(b"precious")
    argv = ["export", "--run", str(trained_run), "--format", "onnx", "--out", str(target)]
    assert main(argv) == 2
    line = one_line(capsys.readouterr().err)
    assert f"--out {target} exists and is not an ONNX file (it does not end in .onnx)" in line
    assert target.read_bytes() == b"precious"


@pytest.mark.parametrize(
    ("name", "kind", "content"),
    [
        ("best.pt", "torchscript", "weights"),  # torch.save's zip: no compiled code in it
        ("best.pth", "torchscript", b"not a zip"),
        ("notes.onnx", "onnx", b"# my notes on the ONNX export\n"),
    ],
)
def test_an_export_never_overwrites_a_file_of_its_suffix_that_holds_no_such_model(
    name: str, kind: str, content: object, trained_run: Path, tmp_path: Path, capsys
) -> None:
    """A user's weights saved as best.pt were replaced by the TorchScript export: the suffix
    is not enough, the file must hold a model of that format."""
    target = tmp_path / name
    if content == "weights":
        torch.save({"w": torch.ones(2)}, target)
    else:
        target.write_bytes(content)
    before = target.read_bytes()
    argv = ["export", "--run", str(trained_run), "--format", kind, "--out", str(target)]
    assert main(argv) == 2
    assert f"--out {target} exists and does not hold a" in one_line(capsys.readouterr().err)
    assert target.read_bytes() == before


def test_an_earlier_export_is_replaced(trained_run: Path, tmp_path: Path, capsys) -> None:
    target = tmp_path / "m.pt"
    argv = ["export", "--run", str(trained_run), "--out", str(target)]
    assert main(argv) == 0 and "(replacing" not in capsys.readouterr().out
    target.write_bytes(target.read_bytes())  # a new mtime, the same archive
    assert main(argv) == 0
    assert f"wrote {target} (replacing the file there)" in capsys.readouterr().out
    torch.jit.load(str(target))


def test_a_run_that_learned_nothing_is_warned_of_as_it_is_exported(
    trained_run: Path, tmp_path: Path, capsys
) -> None:
    """predict warned of a run at chance; export wrote its model without a word."""
    run = shutil.copytree(trained_run, tmp_path / "run")
    argv = ["export", "--run", str(run), "--out", str(tmp_path / "m.pt")]
    assert main(argv) == 0 and capsys.readouterr().err == ""  # it learned: nothing to say
    metrics = json.loads((run / "metrics.json").read_text())
    metrics["test"]["digit_acc"] = 0.112
    (run / "metrics.json").write_text(json.dumps(metrics))
    assert main(argv) == 0
    assert capsys.readouterr().err == (
        "warning: this run's test digit accuracy is 11.2%, under 20%, near chance (10%): it "
        "learned nothing, and the model written guesses\n"
    )


@pytest.mark.parametrize(
    ("argv", "said"),
    [
        ([], "--format onnx or --format torchscript is needed, or an --out ending in .onnx"),
        (["--out", "m.bin"], "--format onnx or --format torchscript is needed"),
        (
            ["--format", "torchscript", "--out", "m.onnx"],
            "m.onnx names an ONNX file; give --format onnx",
        ),
        (
            ["--format", "onnx", "--out", "m.pt"],
            "m.pt names a TorchScript file; give --format torchscript",
        ),
    ],
)
def test_a_format_neither_given_nor_named_or_contradicted_is_one_line(
    argv: list[str], said: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    monkeypatch.chdir(tmp_path)
    run_dir = untrained_run(tmp_path, "gap_cnn", "concat")
    before = sorted(tmp_path.rglob("*"))
    assert main(["export", "--run", str(run_dir), *argv]) == 2
    assert said in one_line(capsys.readouterr().err)
    assert sorted(tmp_path.rglob("*")) == before


def test_a_missing_run_is_named_before_a_missing_format(tmp_path: Path, capsys) -> None:
    """The format was asked for first: fixing it only met the wrong path next."""
    assert main(["export", "--run", str(tmp_path / "nowhere")]) == 2
    assert f"--run {tmp_path / 'nowhere'}: no such directory" in one_line(capsys.readouterr().err)


@pytest.mark.parametrize("out", ["m.onnx", "m.PT"])
def test_the_outs_suffix_names_the_format_when_none_is_given(
    out: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from benchmark import export

    run_dir = untrained_run(tmp_path, "gap_cnn", "concat")
    for kind in ("onnx", "torchscript"):  # what each would write, without exporting
        monkeypatch.setitem(export.EXPORTERS, kind, lambda model, kind=kind: kind.encode())
    assert main(["export", "--run", str(run_dir), "--out", str(tmp_path / out)]) == 0
    assert (tmp_path / out).read_bytes() == (b"onnx" if out.endswith("onnx") else b"torchscript")


@pytest.mark.parametrize(
    "where", ["a directory", "a directory, no format", "under a file", "a new directory"]
)
def test_an_out_that_cannot_be_written_is_refused_before_exporting(
    where: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    """Exporting takes seconds (ONNX); a ``--out`` that cannot be a file is one line first."""
    from benchmark import export

    run_dir = untrained_run(tmp_path, "gap_cnn", "concat")
    monkeypatch.setitem(export.EXPORTERS, "onnx", lambda model: pytest.fail("exported"))
    blocker = tmp_path / "afile"
    blocker.write_text("x")
    out, said = {
        "a directory": (tmp_path, f"--out {tmp_path} is a directory; expected a file path"),
        "a directory, no format": (tmp_path, f"--out {tmp_path} is a directory; expected a file"),
        "under a file": (blocker / "m.onnx", f"--out {blocker / 'm.onnx'}: {blocker} is a file"),
        # a folder not there yet, named as one: it wrote a file called "new"
        "a new directory": (f"{tmp_path}/new/", f"--out {tmp_path}/new/ is a directory; expected"),
    }[where]
    kind = [] if where.endswith("no format") else ["--format", "onnx"]  # it said --format needed
    assert main(["export", "--run", str(run_dir), *kind, "--out", str(out)]) == 2
    assert said in one_line(capsys.readouterr().err)
    assert blocker.read_text() == "x" and not (tmp_path / "new").exists()


def test_a_timm_vit_traces_without_warnings_and_matches_pytorch_at_any_batch(
    synthetic, tmp_path: Path
) -> None:
    """timm's ViT asserts its image size in Python, which the tracer warns of; the tracer's own
    check at a second batch size shows the trace is right, so nothing is printed, and the
    model gives PyTorch's outputs at batch sizes it was not traced at."""
    import io
    import warnings

    from benchmark.export import to_torchscript

    model = create_model("timm:test_vit", "late_sum", img_size=28, patch_size=7).eval()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        data = to_torchscript(model)
    assert [w for w in caught if issubclass(w.category, torch.jit.TracerWarning)] == []
    traced = torch.jit.load(io.BytesIO(data))
    for batch in (1, 7):
        images, addends = inputs(synthetic, batch)
        with torch.no_grad():
            assert_same_outputs(traced(images, addends), model(images, addends))


def test_a_model_handed_over_in_training_mode_is_traced_as_it_predicts(synthetic) -> None:
    """``to_torchscript`` traces the model in evaluation mode whatever mode it is given in: a
    trace in training mode keeps dropout (different outputs each call) and batch statistics.
    (``to_onnx`` needs no such test with the TorchScript exporter: torch.onnx exports in
    evaluation mode by default.)"""
    import io

    from benchmark.export import to_torchscript

    torch.manual_seed(0)
    model = create_model("gap_cnn", "concat", dropout=0.5, head_dropout=0.5).train()
    traced = torch.jit.load(io.BytesIO(to_torchscript(model)))
    assert not model.training
    images, addends = inputs(synthetic, 8)
    with torch.no_grad():
        assert_same_outputs(traced(images, addends), model(images, addends))


class BatchBaked(torch.nn.Module):
    """Its output's batch comes from a Python int: traced, it keeps the tracing batch."""

    def forward(self, images: torch.Tensor, addends: torch.Tensor) -> tuple:
        rows = int(images.shape[0])
        return torch.zeros(rows, 10), images.reshape(rows, -1)[:, :19]


def test_a_trace_that_holds_only_at_its_batch_is_refused_in_one_line(
    trained_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    from benchmark import runs
    from benchmark.export import to_torchscript

    with pytest.raises(ValueError, match="does not match PyTorch at another batch size"):
        to_torchscript(BatchBaked())
    monkeypatch.setattr(runs, "load_run", lambda run_dir: BatchBaked())
    out = tmp_path / "m.pt"
    assert main(["export", "--run", str(trained_run), "--out", str(out)]) == 2
    line = one_line(capsys.readouterr().err)
    assert "--format torchscript: the traced model does not match PyTorch" in line
    assert line.endswith("export --format onnx instead") and not out.exists()


def test_a_model_the_onnx_exporter_cannot_convert_is_one_line_naming_the_cause(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The dynamo exporter's failure is a page of next steps in colour; its cause is the line."""
    from benchmark.export import to_onnx

    def fails(*args, **kwargs):
        try:
            raise ValueError("Cannot view a tensor with shape [s34, 16, 3, 32]!\n\nWhile ...")
        except ValueError as cause:
            raise torch.onnx.OnnxExporterError("Failed to decompose \x1b[96m...\x1b[0m") from cause

    monkeypatch.setattr(torch.onnx, "export", fails)
    with pytest.raises(ValueError) as caught:
        to_onnx(create_model("gap_cnn", "concat"), exporter="dynamo")
    assert str(caught.value) == (
        "the ONNX exporter cannot convert this model (ValueError: Cannot view a tensor with "
        "shape [s34, 16, 3, 32]!); export --format torchscript instead"
    )


@pytest.mark.slow
def test_a_timm_relpos_vit_is_refused_as_onnx_and_exported_as_torchscript(
    trained_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    """timm's relative-position ViT has a view torch.export cannot take with a free batch: the
    export says why in one line and writes nothing; TorchScript takes the same model."""
    from benchmark import runs

    model = create_model("timm:test_vit_relpos", "concat", img_size=28, patch_size=7).eval()
    monkeypatch.setattr(runs, "load_run", lambda run_dir: model)
    out = tmp_path / "m.onnx"
    assert main(["export", "--run", str(trained_run), "--out", str(out)]) == 2
    line = one_line(capsys.readouterr().err)
    assert "--format onnx: the ONNX exporter cannot convert this model (" in line
    assert not out.exists()
    assert main(["export", "--run", str(trained_run), "--out", str(tmp_path / "m.pt")]) == 0


@pytest.mark.parametrize(
    ("kind", "name", "how"),
    [
        ("onnx", "model.onnx", " with the torchscript exporter"),
        ("torchscript", "model.torchscript.pt", ""),
    ],
)
def test_without_out_each_format_goes_into_the_run_under_its_own_name_and_is_said(
    kind: str, name: str, how: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    """The docs' RUN_DIR/model.onnx and RUN_DIR/model.torchscript.pt; the line names the ONNX
    exporter only for an ONNX file, and the size written."""
    from benchmark import export

    run_dir = untrained_run(tmp_path, "gap_cnn", "concat")
    monkeypatch.setattr(export, "onnx_exporter", lambda: "torchscript")
    monkeypatch.setitem(export.EXPORTERS, kind, lambda model: b"x" * 1_500_000)
    assert main(["export", "--run", str(run_dir), "--format", kind]) == 0
    assert (run_dir / name).read_bytes() == b"x" * 1_500_000
    assert " ".join(capsys.readouterr().out.split()).startswith(
        f"wrote {run_dir / name}{how} (1.50 MB): inputs images (B,1,28,28)"
    )


def test_a_run_file_name_outside_any_run_is_an_ordinary_out(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Only a run's own files are refused (a config.json beside them): ``--out
    deploy/model.pt`` with no run there is written."""
    from benchmark import export

    run_dir = untrained_run(tmp_path, "gap_cnn", "concat")
    monkeypatch.setitem(export.EXPORTERS, "torchscript", lambda model: b"scripted")
    out = tmp_path / "deploy" / rundir.MODEL
    out.parent.mkdir()
    assert main(["export", "--run", str(run_dir), "--out", str(out)]) == 0
    assert out.read_bytes() == b"scripted"


def test_a_folder_where_the_default_export_goes_is_refused_before_exporting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    from benchmark import export

    run_dir = untrained_run(tmp_path, "gap_cnn", "concat")
    monkeypatch.setitem(export.EXPORTERS, "onnx", lambda model: pytest.fail("exported"))
    (run_dir / "model.onnx").mkdir()
    assert main(["export", "--run", str(run_dir), "--format", "onnx"]) == 2
    line = one_line(capsys.readouterr().err)
    assert line.endswith(f"--out {run_dir / 'model.onnx'} is a directory; expected a file path")
    assert list((run_dir / "model.onnx").iterdir()) == []
