"""``predict``: MNIST-style preprocessing of ordinary images; the command's output and errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from PIL import Image, ImageDraw

from benchmark.cli import main
from benchmark.commands.common import console
from benchmark.predict import preprocess


def page_with_digit(
    digit_u8: torch.Tensor,
    canvas: tuple[int, int],
    size: int,
    at: tuple[int, int],
    paper: int = 255,
    ink: int = 0,
) -> Image.Image:
    """An MNIST digit as someone would draw it: dark ink on light paper, at another size."""
    x = digit_u8[0].float() / 255  # white on black
    light = (paper + (ink - paper) * x).round().to(torch.uint8)
    glyph = Image.fromarray(light.numpy()).resize((size, size), Image.BICUBIC)
    page = Image.new("L", canvas, paper)
    page.paste(glyph, at)
    return page


def draw_pages(data, folder: Path) -> tuple[list[Path], list[int]]:
    """The first 100 test digits as PNG files: 64x64 and 100x80 pages, off-white paper on some."""
    paths, labels = [], []
    for i in range(100):
        digit = data.test.images[i]
        if i % 4 == 3:  # greyish paper, grey pencil
            page = page_with_digit(digit, (100, 80), 60, (10, 8), paper=225, ink=40)
        elif i % 2:
            page = page_with_digit(digit, (100, 80), 56, (26, 14))
        else:
            page = page_with_digit(digit, (64, 64), 44, (8, 12))
        paths.append(folder / f"{i:03d}.png")
        page.save(paths[-1])
        labels.append(int(data.test.labels[i]))
    return paths, labels


@pytest.fixture(scope="module")
def drawn(synthetic, tmp_path_factory: pytest.TempPathFactory) -> tuple[list[Path], list[int]]:
    """The synthetic set's first 100 test digits, drawn on pages (``draw_pages``)."""
    return draw_pages(synthetic, tmp_path_factory.mktemp("drawn"))


@pytest.mark.parametrize("data", ["synthetic", pytest.param("real", marks=pytest.mark.slow)])
def test_predict_gets_drawn_digits_right(
    data: str, request: pytest.FixtureRequest, tmp_path: Path, capsys
) -> None:
    """A model trained on the set gets its drawn test digits right: seven-segment digits in the
    fast tier, real handwriting (a 12k-image run on MNIST) in the slow one."""
    if data == "real":
        run = request.getfixturevalue("real_trained_run")
        paths, labels = draw_pages(request.getfixturevalue("mnist"), tmp_path)
    else:
        run, (paths, labels) = (
            request.getfixturevalue("trained_run"),
            request.getfixturevalue("drawn"),
        )
    addends = [i % 10 for i in range(len(paths))]
    argv = ["predict", "--run", str(run), "--json"]
    for path, addend in zip(paths, addends, strict=True):
        argv += ["--image", str(path), "--addend", str(addend)]
    assert main(argv) == 0
    results = json.loads(capsys.readouterr().out)
    assert [r["image"] for r in results] == [str(p) for p in paths]
    assert [r["addend"] for r in results] == addends
    correct = sum(r["digit"] == label for r, label in zip(results, labels, strict=True))
    assert correct >= 95, correct
    for r in results:  # late_sum: the sum follows from the digit, with the same probability
        assert r["sum"] == r["digit"] + r["addend"]
        assert r["sum_prob"] == pytest.approx(r["digit_prob"], abs=1e-5)
        assert sum(r["digit_probs"]) == pytest.approx(1, abs=1e-5)
        assert len(r["sum_probs"]) == 19


def test_a_run_that_learned_nothing_is_warned_of_and_json_stays_whole(
    trained_run: Path, drawn: tuple[list[Path], list[int]], tmp_path: Path, capsys
) -> None:
    """``run`` and the report call a run at 11% digit accuracy one that learned nothing;
    predict printed its guesses without a word."""
    import shutil

    argv = ["--image", str(drawn[0][0]), "--addend", "4", "--json"]
    assert main(["predict", "--run", str(trained_run), *argv]) == 0
    assert capsys.readouterr().err == ""  # it learned: nothing to say
    run = shutil.copytree(trained_run, tmp_path / "run")
    metrics = json.loads((run / "metrics.json").read_text())
    metrics["test"]["digit_acc"] = 0.112
    (run / "metrics.json").write_text(json.dumps(metrics))
    assert main(["predict", "--run", str(run), *argv]) == 0
    out, err = capsys.readouterr()
    assert json.loads(out)[0]["addend"] == 4
    assert err == (
        "warning: this run's test digit accuracy is 11.2%, under 20%, near chance (10%): it "
        "learned nothing, and its predictions are guesses\n"
    )


def test_a_run_not_there_is_said_before_an_image_not_there(tmp_path: Path, capsys) -> None:
    """Typed in the wrong folder, both are missing: the run is what was wrong."""
    argv = ["predict", "--run", str(tmp_path / "run"), "--image", "seven.png", "--addend", "1"]
    assert main(argv) == 2
    assert f"--run {tmp_path / 'run'}: no such directory" in capsys.readouterr().err


def test_single_addend_applies_to_every_image_in_a_table(
    trained_run: Path, drawn: tuple[list[Path], list[int]], capsys, monkeypatch
) -> None:
    monkeypatch.setattr(console, "width", 300)  # no wrapped rows
    paths, labels = drawn
    assert (
        main(
            [
                "predict",
                "--run",
                str(trained_run),
                "--image",
                str(paths[0]),
                "--image",
                str(paths[1]),
                "--addend",
                "4",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "p(digit)" in out and "p(sum)" in out
    for path, label in zip(paths[:2], labels[:2], strict=True):
        row = next(line for line in out.splitlines() if path.name in line)
        cells = [c.strip() for c in row.split("│") if c.strip()]
        assert cells[1:3] == ["4", str(label)] and cells[4] == str(label + 4)


def test_a_folder_stands_for_its_png_and_jpeg_files_in_name_order(
    trained_run: Path, drawn: tuple[list[Path], list[int]], tmp_path: Path, capsys
) -> None:
    paths, _ = drawn
    folder = tmp_path / "pages"
    (folder / "sub").mkdir(parents=True)
    for name, source in [("1.png", 0), ("2.PNG", 1), ("sub/3.png", 2), ("notes.txt", 3)]:
        (folder / name).write_bytes(paths[source].read_bytes())
    argv = ["predict", "--run", str(trained_run), "--image", str(folder), "--addend", "4"]
    assert main([*argv, "--image", str(paths[4]), "--json"]) == 0
    found = json.loads(capsys.readouterr().out)
    assert [r["image"] for r in found] == [
        str(folder / "1.png"),
        str(folder / "2.PNG"),
        str(paths[4]),
    ]
    files = [x for i in (0, 1, 4) for x in ("--image", str(paths[i]))]
    assert main(["predict", "--run", str(trained_run), *files, "--addend", "4", "--json"]) == 0
    each = json.loads(capsys.readouterr().out)  # the same files named one by one
    assert [r["digit_probs"] for r in found] == [r["digit_probs"] for r in each]
    assert [r["addend"] for r in found] == [4, 4, 4]


def test_heads_that_disagree_are_named_under_the_table(
    trained_run: Path, drawn: tuple[list[Path], list[int]], capsys, monkeypatch
) -> None:
    """A fusion with a sum head of its own can answer 9 and 4 for addend 2; the table alone
    left the reader to spot it. late_sum (the trained run) never does: no line."""
    from benchmark import predict as library

    paths, _ = drawn
    argv = ["predict", "--run", str(trained_run), "--addend", "2"]
    argv += [x for path in paths[:5] for x in ("--image", str(path))]
    assert main(argv) == 0
    assert "disagree" not in capsys.readouterr().out
    assert main([*argv, "--json"]) == 0
    digit = json.loads(capsys.readouterr().out)[0]["digit"]
    found = library.predict
    monkeypatch.setattr(  # every sum one more than the digit head's
        library, "predict", lambda *a: [{**r, "sum": r["sum"] + 1} for r in found(*a)]
    )
    assert main(argv) == 0
    out = " ".join(capsys.readouterr().out.split())
    named = f"{paths[0].name} ({digit} + 2 is {digit + 2}, the sum head says {digit + 3})"
    assert f"the digit and sum heads disagree for {named}" in out
    assert f"{paths[2].name} (" in out and f"{paths[3].name} (" not in out
    assert " and 2 more: a fusion with a sum head of its own" in out


def test_the_table_gives_each_heads_own_probability_under_the_runs_name(
    trained_run: Path, drawn: tuple[list[Path], list[int]], capsys, monkeypatch
) -> None:
    """late_sum's two probabilities are equal, so a p(sum) column showing the digit's went
    unseen: a fusion with a sum head of its own answers them apart. Three disagreements are
    all named, none counted as "and 0 more"."""
    from benchmark import predict as library
    from benchmark import runs

    monkeypatch.setattr(console, "width", 300)  # no wrapped rows
    monkeypatch.setattr(runs, "load_run", lambda run_dir: None)  # what it answers is stubbed
    monkeypatch.setattr(
        library,
        "predict",
        lambda model, images, addends: [
            {"addend": int(a), "digit": 3, "digit_prob": 0.25, "sum": int(a) + 4, "sum_prob": 0.75}
            for a in addends
        ],
    )
    paths = drawn[0][:3]
    argv = ["predict", "--run", str(trained_run), "--addend", "2"]
    assert main([*argv, *(x for path in paths for x in ("--image", str(path)))]) == 0
    out = capsys.readouterr().out
    assert f"predictions of {trained_run.name}" in out
    for path in paths:
        row = next(line for line in out.splitlines() if path.name in line)
        cells = [c.strip() for c in row.split("│") if c.strip()]
        assert cells[1:] == ["2", "3", "0.250", "6", "0.750"]
    said = " ".join(out.split())
    named = [f"{path.name} (3 + 2 is 5, the sum head says 6)" for path in paths]
    assert f"disagree for {named[0]}, {named[1]} and {named[2]}: a fusion" in said


def test_preprocess_matches_mnist_conventions(synthetic) -> None:
    """Ink bounding box 20 pixels on its long side, centre of mass at the centre, white on black,
    and the same result whatever the polarity and contrast of the drawing."""
    digit = synthetic.test.images[0]
    dark_on_light = preprocess(page_with_digit(digit, (90, 120), 70, (5, 30)))
    light_on_dark = preprocess(page_with_digit(digit, (90, 120), 70, (5, 30), paper=10, ink=250))
    assert dark_on_light.shape == (1, 28, 28)
    assert 0 <= dark_on_light.min() and dark_on_light.max() <= 1
    assert (light_on_dark - dark_on_light).abs().max() < 0.05
    x = dark_on_light[0]
    ink = (x > 0.2).nonzero()
    extent = ink.max(0).values - ink.min(0).values + 1
    assert int(extent.max()) in (19, 20)
    grid = torch.arange(28.0)
    centre = torch.stack([(x.sum(1) * grid).sum(), (x.sum(0) * grid).sum()]) / x.sum()
    assert torch.allclose(centre, torch.tensor([13.5, 13.5]), atol=0.75)
    assert x[0].abs().max() == 0 and x[:, 0].abs().max() == 0  # black border
    mnist_like = synthetic.test.images[0, 0].float() / 255
    assert (x - mnist_like).abs().mean() < 0.1  # close to the original MNIST digit


def test_a_rectangle_is_cropped_scaled_and_centred_exactly() -> None:
    """A 10x20 block: its ink box is exactly 10x20 after scaling (the crop keeps its last row and
    column) and its centre of mass is exactly the field's (13.5, 13.5); the conventions' test
    above allows a pixel of slack for a drawn digit's antialiasing. A one-pixel line is a glyph."""
    page = Image.new("L", (60, 60), 255)
    ImageDraw.Draw(page).rectangle([20, 10, 29, 29], fill=0)  # columns 20-29, rows 10-29
    x = preprocess(page)[0]
    ink = (x > 0.5).nonzero()
    assert (ink.max(0).values - ink.min(0).values + 1).tolist() == [20, 10]
    assert float(x.sum()) == pytest.approx(200.0)
    grid = torch.arange(28.0)
    centre = torch.stack([(x.sum(1) * grid).sum(), (x.sum(0) * grid).sum()]) / x.sum()
    assert centre.tolist() == pytest.approx([13.5, 13.5])
    line = Image.new("L", (60, 60), 255)
    ImageDraw.Draw(line).line([(30, 10), (30, 40)], fill=0, width=1)
    assert preprocess(line).shape == (1, 28, 28)


def test_predict_answers_in_eval_mode_whatever_mode_the_model_was_left_in(
    trained_run: Path, drawn
) -> None:
    """Batch norm's batch statistics (and dropout) would make an answer depend on the other
    images predicted with it."""
    from benchmark import runs
    from benchmark.predict import load_image, predict

    images = torch.stack([load_image(p) for p in drawn[0][:4]])
    addends = torch.tensor([0, 3, 5, 9])
    model = runs.load_run(trained_run)
    expected = predict(model, images, addends)
    assert predict(model.train(), images, addends) == expected
    assert not model.training


def test_jpeg_reads_like_png(synthetic, tmp_path: Path) -> None:
    page = page_with_digit(synthetic.test.images[1], (64, 64), 44, (8, 12))
    page.save(tmp_path / "d.png")
    page.convert("RGB").save(tmp_path / "d.jpg", quality=85)
    png, jpg = (preprocess(Image.open(tmp_path / name)) for name in ("d.png", "d.jpg"))
    assert (png - jpg).abs().mean() < 0.02


@pytest.mark.parametrize("fmt", ["GIF", "BMP", "WEBP"])
def test_a_file_named_by_itself_may_be_any_format_pillow_reads(
    fmt: str, synthetic, tmp_path: Path
) -> None:
    """As the docs say (they said PNG or JPEG alone); a folder still stands for its PNG and
    JPEG files only."""
    from benchmark.predict import image_files, load_image

    page = page_with_digit(synthetic.test.images[1], (64, 64), 44, (8, 12))
    page.save(tmp_path / "d.png")
    page.save(tmp_path / f"d.{fmt.lower()}", **({"lossless": True} if fmt == "WEBP" else {}))
    png, other = (load_image(tmp_path / f"d.{x}") for x in ("png", fmt.lower()))
    assert (png - other).abs().mean() < 0.02
    assert [p.name for p in image_files(tmp_path)] == ["d.png"]


def test_a_16_bit_image_with_a_bright_background_is_read_at_full_depth(tmp_path: Path) -> None:
    import numpy as np
    from PIL import Image

    from benchmark.predict import load_image

    pixels = np.full((56, 56), 65000, dtype=np.uint16)  # bright paper
    pixels[14:42, 25:31] = 1000  # a dark stroke: a "1"
    path = tmp_path / "one16.png"
    Image.fromarray(pixels).save(path)
    x = load_image(path)
    assert x.shape == (1, 28, 28) and float(x.max()) == pytest.approx(1.0)
    assert float(x[0, :, :4].max()) < 0.05  # background black after the inversion


def test_a_32_bit_image_holding_8_bit_levels_is_read_as_8_bit_not_as_blank() -> None:
    """Pillow's mode "I" (a 32-bit integer TIFF, an int32 array) often holds 0..255: read as
    16-bit, its ink would be at most 255/65535 and the digit taken for a blank page."""
    import numpy as np

    pixels = np.full((56, 56), 255, dtype=np.int32)  # white paper
    pixels[14:42, 25:31] = 0  # a black stroke: a "1"
    page = Image.fromarray(pixels)
    assert page.mode == "I"
    x = preprocess(page)[0]
    assert float(x.max()) == pytest.approx(1.0) and float(x[:, :4].max()) < 0.05


def test_transparent_background_counts_as_paper() -> None:
    page = Image.new("RGBA", (50, 50), (0, 0, 0, 0))  # transparent black
    ImageDraw.Draw(page).line([(25, 5), (25, 45)], fill=(0, 0, 0, 255), width=4)
    x = preprocess(page)[0]
    assert x.max() == pytest.approx(1) and x[:, 14].sum() > x[:, 4].sum()


def test_a_phone_photo_is_read_upright_as_its_exif_orientation_says() -> None:
    """A camera stores its pixels as the sensor lay and says in EXIF how to turn them: a "1"
    stored on its side must reach the model standing, as every viewer shows it."""
    import io

    page = Image.new("L", (50, 50), 255)
    ImageDraw.Draw(page).line([(25, 5), (25, 45)], fill=0, width=4)  # a standing "1"
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: turn 90 degrees clockwise to show
    buf = io.BytesIO()
    page.transpose(Image.Transpose.ROTATE_90).save(buf, format="PNG", exif=exif)
    with Image.open(io.BytesIO(buf.getvalue())) as stored:
        x = preprocess(stored)[0]
    ink = x > 0.5
    assert int(ink.any(1).sum()) > 2 * int(ink.any(0).sum())  # taller than wide: upright


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("count", "2 images but 3 addends"),
        ("count_short", "3 images but 2 addends"),
        ("missing", "no such file; expected an image file (PNG, JPEG, ...)"),
        ("device", "/dev/null: not a regular file; expected an image file (PNG, JPEG, ...)"),
        ("too_long", "cannot read it (File name too long)"),
        ("directory", "a folder without PNG or JPEG files"),
        ("unreadable", "cannot read it as an image"),
        ("blank", "no digit found"),
        ("addend", "addend must be an integer 0..9, got '10'"),
        ("negative", "addend must be an integer 0..9, got '-1'"),
        ("word", "addend must be an integer 0..9, got 'x'"),  # it read as addend 0
        ("run", "no config.json there; expected a finished run directory"),
        ("no_run", "nope: no such directory; expected a finished run directory"),
        ("file_run", "text.png: a file; expected a finished run directory"),
    ],
)
def test_bad_input_is_one_line_exit_2(
    case: str, expected: str, trained_run: Path, drawn, tmp_path: Path, capsys
) -> None:
    good = str(drawn[0][0])
    argv = {
        "count": [
            "--image",
            good,
            "--image",
            good,
            "--addend",
            "1",
            "--addend",
            "2",
            "--addend",
            "3",
        ],
        "count_short": [*("--image", good) * 3, "--addend", "1", "--addend", "2"],
        "missing": ["--image", str(tmp_path / "nope.png"), "--addend", "1"],
        "device": ["--image", "/dev/null", "--addend", "1"],
        "too_long": ["--image", str(tmp_path / ("a" * 300 + ".png")), "--addend", "1"],
        "directory": ["--image", str(tmp_path / "empty"), "--addend", "1"],
        "unreadable": ["--image", str(tmp_path / "text.png"), "--addend", "1"],
        "blank": ["--image", str(tmp_path / "blank.png"), "--addend", "1"],
        "addend": ["--image", good, "--addend", "10"],
        "negative": ["--image", good, "--addend=-1"],
        "word": ["--image", good, "--addend", "x"],
        "run": ["--image", good, "--addend", "1"],
        "no_run": ["--image", good, "--addend", "1"],
        "file_run": ["--image", good, "--addend", "1"],
    }[case]
    (tmp_path / "text.png").write_text("not an image")
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("no image here")
    Image.new("L", (30, 30), 255).save(tmp_path / "blank.png")
    run = {"run": tmp_path, "no_run": tmp_path / "nope", "file_run": tmp_path / "text.png"}.get(
        case, trained_run
    )
    try:
        code = main(["predict", "--run", str(run), *argv])
    except SystemExit as exc:  # argparse-level errors
        code = exc.code
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and expected in err, err


# The reference model committed with its weights (README "Use a trained model"): on a fresh
# clone, predict and export work without training anything or finding MNIST.
REFERENCE = Path(__file__).resolve().parents[1] / "results" / "runs"
REFERENCE = REFERENCE / "20261203-012558-gap_cnn-embed_add-s0-ce6cd2"
EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def test_the_committed_reference_model_predicts_the_example_digits(capsys) -> None:
    console.width = 200
    argv = ["predict", "--run", str(REFERENCE), "--json"]
    argv += ["--image", str(EXAMPLES / "seven.png"), "--image", str(EXAMPLES / "zero.png")]
    assert main([*argv, "--addend", "3", "--addend", "9"]) == 0
    found = json.loads(capsys.readouterr().out)
    assert [(p["digit"], p["sum"]) for p in found] == [(7, 10), (0, 9)]


def test_the_committed_reference_model_exports(tmp_path: Path) -> None:
    out = tmp_path / "reference.pt"
    argv = ["export", "--run", str(REFERENCE), "--format", "torchscript", "--out", str(out)]
    assert main(argv) == 0
    model = torch.jit.load(str(out))
    digit_logits, sum_logits = model(torch.zeros(2, 1, 28, 28), torch.tensor([1, 2]))
    assert digit_logits.shape == (2, 10) and sum_logits.shape == (2, 19)


def test_predict_starts_without_torch_dynamo() -> None:
    """``predict`` builds its model on the CPU with no meta-device dry run, whose kernels import
    torch._dynamo (2-3 s of a 5 s command here): neither the run's model nor the checks of the
    installed plug-ins may bring it back."""
    code = "import sys; from benchmark.cli import main; status = main(sys.argv[1:]); "
    code += "print('torch._dynamo' in sys.modules); sys.exit(status)"
    argv = ["predict", "--run", str(REFERENCE), "--image", str(EXAMPLES / "seven.png")]
    done = subprocess.run(
        [sys.executable, "-c", code, *argv, "--addend", "3", "--json"],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == "False"


@pytest.mark.parametrize("git", ["checkout", "no .git", "no git"])
def test_a_committed_run_without_weights_names_the_one_with_them(
    git: str, capsys, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Git keeps one run's weights: predict on another committed run is refused (exit 2) in one
    line that names the run it can use and how to train this one again."""
    from benchmark import rundir

    if git != "checkout":  # a copy of the repository without .git, or a machine without git
        said = subprocess.CompletedProcess([], 128, b"", b"fatal: not a git repository")
        no_git = OSError(2, "No such file or directory: 'git'")
        monkeypatch.setattr(rundir.subprocess, "run", lambda *a, **k: (
            said if git == "no .git" else (_ for _ in ()).throw(no_git)))  # fmt: skip
    runs = sorted(p for p in REFERENCE.parent.iterdir() if p.is_dir())
    other = next(p for p in runs if not (p / "model.pt").exists())
    image = str(EXAMPLES / "seven.png")
    assert main(["predict", "--run", str(other), "--image", image, "--addend", "1"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert f"reference model's: {REFERENCE});" in err and f"--config {other / 'config.json'}" in err


@pytest.mark.parametrize("with_weights", [3, 4])
def test_a_committed_run_without_weights_names_up_to_three_with_them_and_past_that_the_readme(
    with_weights: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """More runs with weights than three made the line a list of paths: the README lists them."""
    from benchmark import rundir
    from benchmark.errors import UsageError

    monkeypatch.setattr(rundir, "committed", lambda run_dir: True)
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "config.json").write_text("{}")
    rundir.write_status(mine, "complete")
    kept = [tmp_path / f"weights-{i}" for i in range(with_weights)]
    for run in kept:
        run.mkdir()
        (run / "model.pt").write_bytes(b"")
    with pytest.raises(UsageError) as refused:
        rundir.check_finished(mine, "--run")
    named = ", ".join(map(str, kept))
    said = f": {named})" if with_weights <= 3 else ", see the README)"
    assert f"git keeps only the reference model's{said}" in str(refused.value)


@pytest.mark.parametrize("status", ["complete", "interrupted", "failed", "running"])
def test_a_run_of_ones_own_without_weights_says_what_to_do(
    status: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Outside git's committed runs, "git keeps only the reference model's" named a sibling
    run as the reference; an unfinished run was not told how to go on."""
    import shutil

    from benchmark import rundir

    runs = sorted(p for p in REFERENCE.parent.iterdir() if p.is_dir())
    for run in (REFERENCE, next(p for p in runs if p != REFERENCE)):
        shutil.copytree(run, tmp_path / run.name)
    mine = tmp_path / REFERENCE.name
    (mine / "model.pt").unlink()
    why = "No space left on device; once fixed, resume with `...`" if status == "failed" else ""
    rundir.write_status(mine, status, why)
    argv = ["predict", "--run", str(mine), "--image", str(EXAMPLES / "seven.png"), "--addend", "1"]
    assert main(argv) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "reference" not in err
    said = {
        "complete": "its weights are not here (removed, or not copied with the run); train it "
        f"again with `python -m benchmark run --config {mine / 'config.json'}`",
        "interrupted": "the run is not finished (status: interrupted); resume it with "
        f"`python -m benchmark run --resume {mine}`",
        "failed": f"the run is not finished (status: failed): {why}",  # its message: why
        "running": "the run is not finished (status: running); if its process was killed, "
        f"resume it with `python -m benchmark run --resume {mine}`",  # else it trains now
    }[status]
    assert err.endswith(said)


@pytest.mark.parametrize("side", [40, 50])  # over Pillow's limit (a warning), over twice (an error)
def test_an_image_too_large_to_read_safely_is_one_line(
    side: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Pillow's DecompressionBombWarning came out raw, two lines of its source on stderr, and
    its error spoke of a "decompression bomb DOS attack"."""
    from benchmark.errors import UsageError
    from benchmark.predict import load_image

    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # a 40x40 image over it, as 10,000² is
    path = tmp_path / "big.png"
    Image.new("L", (side, side), 255).save(path)
    with pytest.raises(UsageError) as caught:
        load_image(path)
    assert str(caught.value) == (
        f"--image {path}: too large to read (Image size ({side * side} pixels) exceeds limit of "
        f"{1000 if side == 40 else 2000} pixels); scale it down (the model sees 28x28)"
    )
    assert capsys.readouterr().err == ""


def test_an_image_of_several_frames_is_refused_rather_than_read_at_its_first(
    tmp_path: Path,
) -> None:
    """A GIF of a "7" then a "1" was read as its first frame without a word, and one whose
    first frame was blank said "no digit found"."""
    from benchmark.errors import UsageError
    from benchmark.predict import load_image

    frames = [Image.new("L", (28, 28), 255) for _ in range(2)]
    ImageDraw.Draw(frames[1]).line([(14, 4), (14, 24)], fill=0, width=3)
    path = tmp_path / "two.gif"
    frames[0].save(path, save_all=True, append_images=frames[1:])
    with pytest.raises(UsageError, match=r"two\.gif: 2 frames; give one image of a digit$"):
        load_image(path)
    frames[1].save(tmp_path / "one.gif")
    assert load_image(tmp_path / "one.gif").shape[-2:] == (28, 28)
