"""Hardening: every bad value ends in one line naming what was wrong and what is accepted, exit 2,
before the data loads and with nothing written; every damaged file we read is one line naming it,
exit 1; resumes race safely; a completed run stays completed.

The tables below are built per class of input (each flag's edge values, each model argument's
type and range, each kind of damaged file), so that a new flag or hyperparameter is covered by
adding it, not by remembering to write a test.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from tests.test_reliability import child, exit_status, one_line

HUGE = str(2**70)
INT_FLAGS = {  # flag: the values refused, besides wrong types and HUGE
    "--epochs": ["0", "-1"],
    "--batch-size": ["0", "-3", "55001"],
    "--eval-batch-size": ["0", "-1"],
    "--holdout-pairs": ["-1", "51"],
    "--threads": ["0", "-2", "257"],
    "--train-subset": ["0", "-5", "127"],
    "--seed": ["-1"],
}
FLOAT_FLAGS = {  # flag: the finite values refused, besides nan, inf, -inf and wrong types
    "--lr": ["0", "-0.1", "1e-400"],
    "--momentum": ["-0.1", "1", "1.5"],
    "--weight-decay": ["-1e-4"],
    "--warmup": ["-0.1", "1"],
    "--label-smoothing": ["-0.1", "1"],
    "--sum-loss-weight": ["-1"],
    "--aug-shift": ["-0.05"],
    "--aug-degrees": ["-10"],
}
CHOICE_FLAGS = ("--optimizer", "--schedule", "--device", "--precision", "--log")
BOOL_FLAGS = ("--augment", "--compile", "--channels-last")


def flag_rows() -> list[tuple[list[str], str]]:
    """(argv, a fragment of the one line expected) for each flag's edge values."""
    rows: list[tuple[list[str], str]] = []
    for flag, values in INT_FLAGS.items():
        name = flag[2:].replace("-", "_")
        rows += [([f"{flag}={v}"], name) for v in values]
        rows += [([f"{flag}={HUGE}"], name), ([flag, "1.5"], "invalid int value")]
        rows += [([flag, "abc"], "invalid int value"), ([flag, "0x10"], "invalid int value")]
    for flag, values in FLOAT_FLAGS.items():
        name = flag[2:].replace("-", "_")
        rows += [([f"{flag}={v}"], name) for v in values]
        rows += [([f"{flag}={v}"], f"{name} must be a finite number") for v in ("nan", "inf")]
        rows += [([f"{flag}=-inf"], f"{name} must be a finite number"), ([flag, "1e400"], name)]
        rows += [([flag, "abc"], "invalid float value"), ([flag, ""], "is empty")]
    for flag in CHOICE_FLAGS:
        rows += [([flag, "bogus"], "expected one of"), ([flag, ""], "is empty")]
    rows += [([f"{flag}=yes"], "ignored explicit argument") for flag in BOOL_FLAGS]
    return rows


NAME_ROWS = [
    (["--arch", ""], "no encoder given; valid: gap_cnn"),
    (["--arch", ","], "no encoder given"),
    (["--arch", " , "], "no encoder given"),
    (["--fusion", ""], "no fusion given; valid:"),
    (["--fusion", " , "], "no fusion given"),
    (["--arch", "nope"], "unknown encoder 'nope'; valid: gap_cnn"),
    (["--fusion", "nope"], "unknown fusion 'nope'; valid:"),
    (["--arch", "gap_*x"], "matches nothing"),
    (["--arch", "timm:"], "unknown encoder 'timm:'"),
    (["--arch", "timm:no_such_model_xyz"], "unknown timm model"),
    (["--arch", "timm:vit_tiny_patch16_224"], "cannot run on 1x28x28 images"),
    (["--model-arg", "nope=1"], "unknown hyperparameter 'nope'"),
    (["--model-arg", "width"], "expected KEY=VALUE"),
    (["--model-arg", "=3"], "expected KEY=VALUE"),
    (["--fusion", "late_sum", "--model-arg", "hidden=3"], "unknown hyperparameter 'hidden'"),
    (["--seed", "1", "--seeds", "1,2"], "not both"),
    (["--seeds", f"0,{2**64}"], "seed must be in 0..2**63-1"),
    (["--seeds", "x"], "comma-separated integers"),
]


def model_arg_rows() -> list[tuple[list[str], str]]:
    """Every hyperparameter of every registered encoder and fusion (and a timm one), each with
    the values its annotated type and declared range refuse."""
    from architectures import ENCODERS, FUSIONS

    rows: list[tuple[list[str], str]] = []
    pairs = [(ENCODERS, arch, "concat") for arch in ENCODERS.names()]
    pairs += [(ENCODERS, "timm:resnet10t", "concat")]
    pairs += [(FUSIONS, "gap_cnn", fusion) for fusion in FUSIONS.names()]
    for registry, arch, fusion in pairs:
        entry = registry.get(arch if registry is ENCODERS else fusion)
        for key, default in entry.defaults.items():
            span = entry.ranges[key]
            bad = ["abc", "true", "''", "nan", "inf", "-inf", str(span.low - 1), "1e400"]
            if isinstance(default, int):
                bad += ["1.5", str(span.high + 1), HUGE]
            else:
                bad += [str(span.high + 0.5)] + (["1"] if span.open_high else [])
            names = ["--arch", arch, "--fusion", fusion]
            rows += [([*names, "--model-arg", f"{key}={v}"], f"{key}=") for v in bad]
    return rows


CASES = [*flag_rows(), *NAME_ROWS, *model_arg_rows()]


@pytest.mark.parametrize("flags, expected", CASES, ids=[" ".join(f) for f, _ in CASES])
def test_bad_values_end_in_one_line_before_anything_is_written(
    flags: list[str], expected: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    def no_data(*args, **kwargs):
        raise AssertionError("bad input must be rejected before the data is loaded")

    monkeypatch.setattr("benchmark.data.load_mnist", no_data)
    monkeypatch.chdir(tmp_path)
    results = tmp_path / "results"
    assert exit_status(["run", *flags, "--results-dir", str(results)]) == 2
    err = capsys.readouterr().err
    assert expected in one_line(err)
    assert not results.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # nothing written anywhere here


def test_the_table_covers_every_config_flag() -> None:
    """A new TrainConfig field gets its edge values in the table above, or a reason here."""
    import dataclasses

    from benchmark.config import TrainConfig

    covered = {*INT_FLAGS, *FLOAT_FLAGS, *CHOICE_FLAGS, *BOOL_FLAGS}
    elsewhere = {
        "--arch": "NAME_ROWS",
        "--fusion": "NAME_ROWS",
        "--model-args": "model_arg_rows",
        "--tuned-from": "no flag: set by --tuned",
        "--auto-probe": "no flag: set by a run whose precision or layout a cpu probe chose",
        "--data-dir": "a path: the damaged-data cases below",
    }
    flags = {"--" + f.name.replace("_", "-") for f in dataclasses.fields(TrainConfig)}
    assert flags == covered | set(elsewhere)


def test_declared_ranges_hold_the_defaults_and_the_search_spaces() -> None:
    """Each numeric hyperparameter declares its range next to its factory, and that range holds
    its default and every value its search space may suggest."""
    from architectures import ENCODERS, FUSIONS

    class Bounds:  # a trial that records the extremes each suggestion may take
        def __init__(self) -> None:
            self.seen: dict[str, list[float]] = {}

        def suggest_float(self, name: str, low: float, high: float, **kw) -> float:
            self.seen[name] = [low, high]
            return low

        def suggest_int(self, name: str, low: int, high: int, **kw) -> int:
            self.seen[name] = [low, high]
            return low

        def suggest_categorical(self, name: str, choices: list) -> object:
            self.seen[name] = [c for c in choices if not isinstance(c, bool)]
            return choices[0]

    entries = [ENCODERS.get(n) for n in [*ENCODERS.names(), "timm:resnet10t"]]
    entries += [FUSIONS.get(n) for n in FUSIONS.names()]
    for entry in entries:
        assert set(entry.ranges) == set(entry.defaults), entry.name
        trial = Bounds()
        entry.search_space(trial)
        for key, span in entry.ranges.items():
            for value in [entry.defaults[key], *trial.seen.get(key, [])]:
                assert value in span, (entry.name, key, value, str(span))


def test_results_dir_that_is_a_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys):
    monkeypatch.setattr("benchmark.data.load_mnist", lambda *a, **k: pytest.fail("data loaded"))
    target = tmp_path / "results"
    target.write_text("not a directory")
    assert exit_status(["run", "--results-dir", str(target / "sub")]) == 2
    assert "is a file; expected a directory" in one_line(capsys.readouterr().err)
    assert target.read_text() == "not a directory"


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write into a read-only directory")
def test_results_dir_read_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys):
    monkeypatch.setattr("benchmark.data.load_mnist", lambda *a, **k: pytest.fail("data loaded"))
    tmp_path.chmod(0o500)
    try:
        assert exit_status(["run", "--results-dir", str(tmp_path / "r")]) == 2
        assert "is not writable" in one_line(capsys.readouterr().err)
    finally:
        tmp_path.chmod(0o700)


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is present here")
@pytest.mark.parametrize("devices", ["cuda", "cpu,cuda"])  # a sweep: every device is checked
def test_cuda_without_cuda(
    devices: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    monkeypatch.setattr("benchmark.data.load_mnist", lambda *a, **k: pytest.fail("data loaded"))
    assert exit_status(["run", "--device", devices, "--results-dir", str(tmp_path / "r")]) == 2
    assert "CUDA is not available" in one_line(capsys.readouterr().err)
    assert not (tmp_path / "r").exists()


def test_every_registered_model_passes_the_dry_run() -> None:
    """The meta-device check must not refuse what trains: every encoder x fusion, defaults."""
    from architectures import ENCODERS, FUSIONS, check_model

    for arch in [*ENCODERS.names(), "timm:resnet10t"]:
        for fusion in FUSIONS.names():
            check_model(arch, fusion, {})


# ------------------------------------------------------------------------ config files


@pytest.mark.slow
def test_a_run_config_reprints_as_itself_and_flags_override_it(
    trained_run: Path, tmp_path: Path, capsys
) -> None:
    import json

    from benchmark.cli import main

    saved = json.loads((trained_run / "config.json").read_text())
    argv = ["run", "--config", str(trained_run / "config.json"), "--print-config"]
    assert main([*argv, "--results-dir", str(tmp_path / "r")]) == 0
    assert json.loads(capsys.readouterr().out) == saved
    assert main([*argv, "--lr", "0.0123", "--results-dir", str(tmp_path / "r")]) == 0
    assert json.loads(capsys.readouterr().out) == {**saved, "lr": 0.0123}
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize(
    "content, name, expected",
    [
        ("{", "c.json", "not valid JSON"),
        ("[1, 2]", "c.json", "expected an object of config fields"),
        ('{"lrr": 1}', "c.json", "unknown config key(s) lrr"),
        ('{"batch_size": 0}', "c.json", "batch_size must be a positive integer"),
        ('{"batch_size": "x"}', "c.json", "batch_size"),
        ('{"model_args": 3}', "c.json", "--config"),
        ("lr = [", "c.toml", "not valid TOML"),
        (None, "missing.json", "cannot read it"),
    ],
)
def test_bad_config_files(
    content: str | None, name: str, expected: str, tmp_path: Path, monkeypatch, capsys
) -> None:
    monkeypatch.setattr("benchmark.data.load_mnist", lambda *a, **k: pytest.fail("data loaded"))
    path = tmp_path / name
    if content is not None:
        path.write_text(content)
    argv = ["run", "--config", str(path), "--results-dir", str(tmp_path / "r")]
    assert exit_status(argv) == 2
    assert expected in one_line(capsys.readouterr().err)
    assert not (tmp_path / "r").exists()


def test_toml_config(tmp_path: Path, capsys) -> None:
    import json

    (tmp_path / "c.toml").write_text('arch = "small_cnn"\nlr = 0.002\n[model_args]\nwidth = 8\n')
    argv = ["run", "--config", str(tmp_path / "c.toml"), "--print-config", "--epochs", "2"]
    assert exit_status(argv) == 0
    printed = json.loads(capsys.readouterr().out)
    assert (printed["arch"], printed["lr"], printed["epochs"]) == ("small_cnn", 0.002, 2)
    assert printed["model_args"] == {"width": 8}


def test_any_config_flag_sweeps_a_comma_list(capsys) -> None:
    """--lr a,b --batch-size c,d --seeds 0,1: the cartesian product, every value checked."""
    import json

    argv = ["run", "--lr", "1e-3,3e-3", "--batch-size", "64,128", "--seeds", "0,1"]
    assert exit_status([*argv, "--optimizer", "sgd", "--print-config"]) == 0
    configs = json.loads(capsys.readouterr().out)
    assert sorted((c["lr"], c["batch_size"], c["seed"]) for c in configs) == [
        (lr, b, s) for lr in (1e-3, 3e-3) for b in (64, 128) for s in (0, 1)
    ]
    assert {c["optimizer"] for c in configs} == {"sgd"}
    assert exit_status([*argv[:3], "--lr", "1e-3,inf", "--print-config"]) == 2
    assert "lr must be a finite number" in one_line(capsys.readouterr().err)
    assert exit_status(["run", "--schedule", "cosine,linear", "--print-config"]) == 2
    assert "expected one of onecycle, cosine, constant" in one_line(capsys.readouterr().err)


# ------------------------------------------------------------------------ damaged files


def no_data_load(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("benchmark.data.load_mnist", lambda *a, **k: pytest.fail("data loaded"))


def interrupted_run(run_dir: Path, cfg=None) -> Path:
    """A run directory as an interrupt leaves it: config.json and status.json."""
    from benchmark import files, runs
    from benchmark.config import TrainConfig

    files.write_json(run_dir / runs.CONFIG, (cfg or TrainConfig()).to_dict())
    runs.write_status(run_dir, "interrupted", "stopped by a signal")
    return run_dir


def checkpoint_of(cfg, step: int = 0) -> dict:
    from benchmark.trainer import build_state

    state = build_state(cfg, torch.device("cpu"))
    state.step = step
    return state.state_dict()


CONFIG_DAMAGE = [
    ("{", "not valid JSON"),
    ("", "not valid JSON"),
    ("\udcff", "unreadable"),
    ("[1, 2]", "expected an object of config fields"),
    ('"gap_cnn"', "expected an object of config fields"),
    ('{"batch_size": 0}', "batch_size must be a positive integer"),
    ('{"batch_size": "x"}', "batch_size must be of type int"),
    ('{"seed": 1e30}', "seed must be of type int"),
    ('{"lr": NaN}', "lr must be a finite number"),
    ('{"epochs": 100000000000000000000000}', "epochs must fit in 64 bits"),
    ('{"lrr": 1}', "unknown config key(s) lrr"),
    ('{"arch": "nope"}', "unknown encoder 'nope'"),
    ('{"arch": ""}', "arch is empty"),
    ('{"model_args": 3}', "model_args must be of type dict"),
    ('{"model_args": {"width": -1}}', "width=-1 for gap_cnn: expected int in 1..256"),
    ('{"model_args": {"dropout": 1}}', "dropout=1 for gap_cnn: expected float in [0, 1)"),
    ('{"optimizer": "adam"}', "optimizer 'adam' is not one of: adamw, sgd"),
    (None, "Is a directory"),
]


@pytest.mark.parametrize("content, expected", CONFIG_DAMAGE)
def test_a_damaged_config_json_on_resume_is_one_line(
    content: str | None, expected: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    from benchmark import runs

    no_data_load(monkeypatch)
    run_dir = interrupted_run(tmp_path / "run")
    path = run_dir / runs.CONFIG
    path.unlink()
    if content is None:
        path.mkdir()
    else:
        path.write_bytes(content.encode(errors="surrogateescape"))
    before = (run_dir / runs.STATUS).read_text()
    assert exit_status(["run", "--resume", str(run_dir)]) == 1
    line = one_line(capsys.readouterr().err)
    assert str(path) in line and expected in line
    assert (run_dir / runs.STATUS).read_text() == before  # not marked running, nothing trained
    assert not (run_dir / runs.CHECKPOINT).exists() and not (run_dir / runs.METRICS).exists()


def checkpoint_damage() -> list[tuple[str, object, str]]:
    """(id, what to put in checkpoint.pt: bytes, an object to torch.save, or None for a
    directory, the expected fragment)."""
    from benchmark.config import TrainConfig

    cfg = TrainConfig()
    valid = checkpoint_of(cfg)
    return [
        ("zip-of-junk", b"PK\x03\x04" + bytes(range(256)) * 8, "truncated or not a torch file"),
        ("pickle-junk", bytes(range(256)) * 8, "refused to load"),
        ("empty", b"", "truncated or not a torch file"),
        ("directory", None, "IsADirectoryError"),
        ("a-list", [1, 2, 3], "not a checkpoint of this run"),
        ("a-tensor", torch.zeros(3), "not a checkpoint of this run"),
        ("missing-keys", {"model": valid["model"]}, "not a checkpoint of this run"),
        ("wrong-types", {**valid, "generator": "x"}, "not a checkpoint of this run"),
        ("another-model", checkpoint_of(TrainConfig(arch="small_cnn")), "not a checkpoint"),
        ("step-mid-epoch", {**valid, "step": 7}, "does not fit this run's config"),
        ("more-epochs", {**valid, "history": [{}] * 9}, "not a checkpoint of this run"),
    ]


@pytest.mark.parametrize("damage", checkpoint_damage(), ids=lambda d: d[0])
def test_a_damaged_checkpoint_on_resume_is_one_line(
    damage: tuple, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    from benchmark import runs

    no_data_load(monkeypatch)
    _, content, expected = damage
    run_dir = interrupted_run(tmp_path / "run")
    path = run_dir / runs.CHECKPOINT
    if content is None:
        path.mkdir()
    elif isinstance(content, bytes):
        path.write_bytes(content)
    else:
        torch.save(content, path)
    assert exit_status(["run", "--resume", str(run_dir)]) == 1
    line = one_line(capsys.readouterr().err)
    assert str(path) in line and expected in line
    assert not (run_dir / runs.METRICS).exists()


@pytest.mark.parametrize("damage", ["random-bytes", "truncated", "a-list", "another-model"])
def test_damaged_weights_for_predict_are_one_line(damage: str, tmp_path: Path, capsys) -> None:
    from PIL import Image, ImageDraw

    from architectures import create_model
    from benchmark import files, runs
    from benchmark.config import TrainConfig

    run_dir = tmp_path / "run"
    files.write_json(run_dir / runs.CONFIG, TrainConfig().to_dict())
    runs.write_status(run_dir, "complete")
    path = run_dir / runs.MODEL
    if damage == "a-list":
        torch.save([1, 2], path)
    elif damage == "another-model":
        torch.save(create_model("small_cnn", "concat").state_dict(), path)
    else:
        torch.save(create_model("gap_cnn", "concat").state_dict(), path)
        blob = path.read_bytes()
        path.write_bytes(blob[: len(blob) // 3] if damage == "truncated" else os.urandom(999))
    image = tmp_path / "digit.png"
    page = Image.new("L", (40, 40), 255)
    ImageDraw.Draw(page).line([(20, 8), (20, 32)], fill=0, width=3)
    page.save(image)
    argv = ["predict", "--run", str(run_dir), "--image", str(image), "--addend", "1"]
    assert exit_status(argv) == 1
    assert str(path) in one_line(capsys.readouterr().err)


def idx_damage() -> list[tuple[str, str, object, str]]:
    """(id, file, damage: bytes -> bytes, or "missing" / "directory", expected fragment)."""

    def put(offset: int, value: int):
        return lambda b: b[:offset] + value.to_bytes(4, "big") + b[offset + 4 :]

    def label(index: int, value: int):
        return lambda b: b[: 8 + index] + bytes([value]) + b[9 + index :]

    train, labels, test = (
        "train-images-idx3-ubyte",
        "t10k-labels-idx1-ubyte",
        "t10k-images-idx3-ubyte",
    )
    return [
        ("truncated", labels, lambda b: b[:-100], "truncated or corrupt"),
        ("extended", labels, lambda b: b + b"\0" * 7, "truncated or corrupt"),
        ("header-only", test, lambda b: b[:16], "truncated or corrupt"),
        ("too-short", labels, lambda b: b[:5], "too short for an IDX header"),
        ("empty", labels, lambda b: b"", "too short for an IDX header"),
        ("wrong-magic", labels, put(0, 2051), "IDX magic number 2051, expected 2049"),
        ("count-vs-size", train, put(4, 59_999), "IDX header says 59999 x 28 x 28 but"),
        ("not-28x28", train, lambda b: put(8, 56)(put(12, 14)(b)), "56 x 14, expected"),
        ("other-count", labels, lambda b: put(4, 10_001)(b) + b"\1", "expected 10000 items"),
        ("label-12", labels, label(17, 12), "labels outside 0-9 (label 12 at item 17)"),
        ("label-255", "train-labels-idx1-ubyte", label(0, 255), "(label 255 at item 0)"),
        ("missing", labels, "missing", "missing (3 of the 4 MNIST files are there)"),
        ("directory", test, "directory", "missing (3 of the 4 MNIST files are there)"),
    ]


@pytest.mark.parametrize("damage", idx_damage(), ids=lambda d: d[0])
def test_damaged_mnist_is_one_line_naming_the_file(
    damage: tuple, tmp_path: Path, mnist_root: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    """Through the CLI (``--data-dir``): exit 1, one line naming the file, no run directory; and
    never a fall-back to $MNIST_ROOT, which holds good files."""
    _, name, change, expected = damage
    raw = tmp_path / "mnist" / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for other in ("train-images", "train-labels", "t10k-images", "t10k-labels"):
        target = raw / f"{other}-idx{3 if 'images' in other else 1}-ubyte"
        source = mnist_root / "MNIST" / "raw" / target.name
        if target.name != name:
            target.symlink_to(source)
        elif change == "directory":
            target.mkdir()
        elif change != "missing":
            target.write_bytes(change(source.read_bytes()))
    monkeypatch.setenv("MNIST_ROOT", str(mnist_root))
    results = tmp_path / "results"
    argv = ["run", "--data-dir", str(tmp_path / "mnist"), "--results-dir", str(results)]
    assert exit_status(argv) == 1
    line = one_line(capsys.readouterr().err)
    assert str(raw / name) in line and expected in line
    assert not results.exists()


def damaged_versions(blob: bytes, seed: int, count: int = 30) -> list[bytes]:
    """Seeded random bytes, truncations and bit flips of ``blob``: ``count`` of each."""
    import random

    rng = random.Random(seed)
    out = [rng.randbytes(rng.randrange(0, 2 * len(blob) + 2)) for _ in range(count)]
    out += [blob[: rng.randrange(len(blob))] for _ in range(count)]
    for _ in range(count):
        flipped = bytearray(blob)
        for _ in range(rng.randrange(1, 8)):
            flipped[rng.randrange(len(flipped))] ^= 1 << rng.randrange(8)
        out.append(bytes(flipped))
    return out


def json_mutations(obj: object, seed: int, count: int = 30) -> list[bytes]:
    """Valid JSON of the wrong shape: one value somewhere in ``obj`` replaced by a foreign one."""
    import json
    import random

    rng = random.Random(seed)
    foreign = [None, "x", "", [], {}, [1], {"a": 1}, True, -1, 0, 1e308, float("nan"), 2**70]

    def mutate(value: object) -> object:
        if isinstance(value, dict) and value and rng.random() < 0.7:
            key = rng.choice(list(value))
            return {**value, key: mutate(value[key])}
        return rng.choice(foreign)

    return [json.dumps(mutate(obj)).encode() for _ in range(count)]


def good_run_files(run_dir: Path) -> None:
    """Every file a run directory holds, written by the real writers (two epochs done)."""
    from architectures import create_model
    from benchmark import files, runs
    from benchmark.config import TrainConfig
    from benchmark.metrics import names
    from benchmark.trainer import EpochStats

    cfg = TrainConfig(epochs=3)
    figures = {name: 0.5 for name in names()}
    stats = [EpochStats(e, 0.5, 0.9, dict(figures), 1e-3, 2.0) for e in (1, 2)]
    interrupted_run(run_dir, cfg)
    runs.write_history(run_dir, stats)
    files.save_torch(run_dir / runs.CHECKPOINT, checkpoint_of(cfg))
    files.save_torch(run_dir / runs.MODEL, create_model(cfg.arch, cfg.fusion).state_dict())
    metrics = {"arch": cfg.arch, "fusion": cfg.fusion, "config_hash": "abc", "seed": 0}
    metrics |= {"params": 10, "tuned": False, "config": cfg.to_dict(), "test": figures}
    files.write_json(run_dir / runs.METRICS, metrics)


def read_back(reader: str, run_dir: Path) -> None:
    """Read one damaged file the way the program does; a clean refusal raises, a read that
    succeeds must return something of the promised shape."""
    from benchmark import files, runs
    from benchmark.config import TrainConfig
    from benchmark.data import read_idx

    if reader == runs.CONFIG:
        runs.load_config(run_dir).validate()
    elif reader == runs.METRICS:
        found = runs.read_metrics(run_dir)
        assert all(files.is_number(files.lookup(found, k)) for k in runs.required_numbers())
    elif reader == runs.STATUS:
        assert all(isinstance(x, str) for x in runs.read_status(run_dir))
    elif reader == runs.HISTORY:
        rows = runs.read_history(run_dir)
        assert rows is None or all(isinstance(v, float) for r in rows for v in r.values())
    elif reader == runs.CHECKPOINT:
        runs.resume_state(run_dir, TrainConfig(epochs=3), torch.device("cpu"))
    elif reader == runs.MODEL:
        runs.load_run(run_dir)
    else:  # an IDX file
        values = read_idx(run_dir / reader)
        assert "labels" not in reader or int(values.max()) <= 9


def test_every_file_reader_fuzzed_ends_cleanly(tmp_path: Path, mnist_root: Path) -> None:
    """Random bytes, truncations and bit flips (and, for JSON, valid JSON of the wrong shape) of
    every file we read: each read succeeds with the promised shape or is refused with the
    reader's one clean error (one line naming the file); never another exception."""
    import json
    import shutil

    from benchmark import runs
    from benchmark.errors import DamagedFileError

    good = tmp_path / "good"
    good_run_files(good)
    raw = mnist_root / "MNIST" / "raw"
    for name in ("t10k-labels-idx1-ubyte", "t10k-images-idx3-ubyte"):
        shutil.copy(raw / name, good / name)
    json_shapes = {runs.CONFIG, runs.METRICS, runs.STATUS}
    tried = clean = 0
    for seed, name in enumerate(sorted(p.name for p in good.iterdir())):
        blob = (good / name).read_bytes()
        # fewer of the costly ones: 8 MB of images; weights, which build a model to load into
        fewer = {"t10k-images-idx3-ubyte": 4, runs.MODEL: 15}
        damaged = damaged_versions(blob, seed, count=fewer.get(name, 30))
        if name in json_shapes:
            damaged += json_mutations(json.loads(blob), seed)
        for data in damaged:  # one file damaged at a time, the others good
            (good / name).write_bytes(data)
            tried += 1
            try:
                read_back(name, good)
            except (DamagedFileError, runs.IncompleteRun) as exc:
                message = str(exc)
                assert "\n" not in message, message
                named = isinstance(exc, runs.IncompleteRun) or str(good / name) in message
                assert named, message
            clean += 1
        (good / name).write_bytes(blob)
    assert clean == tried >= 600
    print(f"fuzz: {tried} damaged files read, {clean} ended cleanly")


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_the_image_reader_fuzzed_ends_cleanly(fmt: str, tmp_path: Path) -> None:
    """``predict``'s images: damaged PNGs and JPEGs are read or refused with one line naming the
    file (a bad input: ``UsageError``), never another exception (PIL raises SyntaxError,
    struct.error ... for broken chunks)."""
    import io

    from PIL import Image, ImageDraw

    from benchmark.errors import UsageError
    from benchmark.predict import load_image

    page = Image.new("L", (40, 40), 255)
    ImageDraw.Draw(page).line([(20, 8), (20, 32)], fill=0, width=3)
    buffer = io.BytesIO()
    page.save(buffer, fmt)
    path = tmp_path / f"digit.{fmt.lower()}"
    for data in damaged_versions(buffer.getvalue(), seed=1, count=150):
        path.write_bytes(data)
        try:
            assert load_image(path).shape == (1, 28, 28)
        except UsageError as exc:
            assert str(path) in str(exc) and "\n" not in str(exc), str(exc)


def test_a_non_numeric_history_value_costs_that_run_its_curve_not_the_report(
    tmp_path: Path,
) -> None:
    """The report reads runs through these readers: the damaged history is dropped (None), the
    run's metrics still count, and nothing raises."""
    from benchmark import runs

    run_dir = tmp_path / "run"
    good_run_files(run_dir)
    path = run_dir / runs.HISTORY
    header, first, *rest = path.read_text().splitlines()
    path.write_text("\n".join([header, first.replace("0.5", "abc", 1), *rest]) + "\n")
    assert runs.read_history(run_dir) is None
    assert runs.read_metrics(run_dir)["arch"] == "gap_cnn"


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


@pytest.mark.slow
def test_two_resumes_started_at_once_train_the_run_once(tmp_path: Path, mnist_root: Path) -> None:
    import subprocess
    import sys

    from benchmark import files, runs
    from benchmark.config import TrainConfig

    cfg = TrainConfig(epochs=1, train_subset=3000, data_dir=str(mnist_root), threads=1)
    run_dir = tmp_path / "run"
    files.write_json(run_dir / runs.CONFIG, cfg.to_dict())
    runs.write_status(run_dir, "interrupted", "stopped by a signal")
    argv = [sys.executable, "-m", "benchmark", "run", "--resume", str(run_dir)]
    procs = [
        subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    results = sorted((p.wait(timeout=600), p.stderr.read()) for p in procs)
    assert [code for code, _ in results] == [0, 2], results
    loser = results[1][1]  # refused while the other trains, or after it finished
    assert "still running (pid" in loser or "already complete" in loser, loser
    assert loser.count("\n") == 1
    assert runs.read_metrics(run_dir)["seed"] == 0


# ------------------------------------------------------------------------ leftovers, late signals


def test_a_temporary_left_by_a_killed_writer_is_removed_when_the_run_is_next_claimed(
    tmp_path: Path,
) -> None:
    """SIGKILL in the middle of an atomic write leaves its temporary (no clean-up runs); the
    next claim of the run directory (every resume) removes it, and nothing else."""
    import signal

    from benchmark import files, runs

    run_dir = interrupted_run(tmp_path / "run")
    writer = (
        "import sys, time; from pathlib import Path; from benchmark import files\n"
        "class Slow:\n"
        "    def __reduce__(self):\n"
        "        print('writing', flush=True); time.sleep(60); return (int, ())\n"
        "files.save_torch(Path(sys.argv[1]) / 'checkpoint.pt', {'w': Slow()})\n"
    )
    with child(writer, str(run_dir), ready="writing") as proc:
        proc.send_signal(signal.SIGKILL)
        assert proc.wait(timeout=30) == -signal.SIGKILL
    (left,) = [p for p in run_dir.iterdir() if files.TEMPORARY.fullmatch(p.name)]
    assert left.name.startswith(".checkpoint.pt.")
    (run_dir / "notes.tmp").write_text("a user's file")
    (run_dir / ".hidden.tmp").write_text("not one of ours either")
    with runs.claimed(run_dir):
        assert not left.exists()
    names = {p.name for p in run_dir.iterdir()}
    assert names == {runs.CONFIG, runs.STATUS, runs.LOCK, "notes.tmp", ".hidden.tmp"}


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write into a read-only directory")
def test_resume_of_a_read_only_run_directory_is_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    no_data_load(monkeypatch)
    run_dir = interrupted_run(tmp_path / "run")
    run_dir.chmod(0o500)
    try:
        assert exit_status(["run", "--resume", str(run_dir)]) == 2
        assert "cannot create its lock file" in one_line(capsys.readouterr().err)
    finally:
        run_dir.chmod(0o700)


SMALL = ["--train-subset", "256", "--batch-size", "64", "--epochs", "1", "--eval-batch-size", "100"]


@pytest.mark.parametrize("when", ["during-the-last-writes", "after-them"])
@pytest.mark.parametrize("signum", ["SIGINT", "SIGTERM"])
@pytest.mark.parametrize("how", ["run", "resume"])
def test_a_run_that_completed_exits_0_when_a_signal_arrives_as_it_closes(
    how: str, signum: str, when: str, small_data, tmp_path: Path, monkeypatch, capsys
) -> None:
    """The signal changes nothing: the run is complete, so the exit status says so."""
    import signal

    from benchmark import runs
    from benchmark.config import TrainConfig

    sig = getattr(signal, signum)
    real_status, real_finish = runs.write_status, runs.finish

    def status_then_signal(run_dir: Path, status: str, *args, **kwargs) -> None:
        real_status(run_dir, status, *args, **kwargs)
        if status == "complete":  # inside the deferred group of the final writes
            os.kill(os.getpid(), sig)

    def finish_then_signal(*args, **kwargs):
        metrics = real_finish(*args, **kwargs)
        os.kill(os.getpid(), sig)
        return metrics

    if when == "during-the-last-writes":
        monkeypatch.setattr(runs, "write_status", status_then_signal)
    else:
        monkeypatch.setattr(runs, "finish", finish_then_signal)
    if how == "run":
        assert exit_status(["run", *SMALL, "--results-dir", str(tmp_path)]) == 0
        (run_dir,) = (tmp_path / "runs").iterdir()
    else:
        cfg = TrainConfig(train_subset=256, batch_size=64, epochs=1, eval_batch_size=100)
        run_dir = interrupted_run(tmp_path / "run", cfg)
        assert exit_status(["run", "--resume", str(run_dir)]) == 0
    assert capsys.readouterr().err == ""
    assert runs.read_status(run_dir)[0] == "complete"
