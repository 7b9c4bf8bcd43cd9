"""Plug-ins from outside the package: a ``.py`` file or module given to ``--plugin`` and an
installed distribution's entry point register encoders and fusions that every command can name;
a run remembers its plug-ins (resume, predict, report, compare reruns need no ``--plugin``); a bad
plug-in is one line, exit status 2, nothing written. Command lines that load a good plug-in run
either in child processes (where a fresh process is the point: reading a run back without
``--plugin``) or in this one inside ``plugins_undone`` (conftest's, which every test runs in),
so that this session's registry keeps only the built-ins."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from importlib.metadata import entry_points
from pathlib import Path

import pytest
from conftest import plugins_undone

from benchmark import plugins
from benchmark.cli import build_parser, main
from benchmark.errors import UsageError

REPO = Path(__file__).resolve().parents[1]
TINY = ["--epochs", "1", "--train-subset", "256", "--batch-size", "128", "--threads", "1"]

PLUGIN = '''
"""A plug-in written outside the repository."""
import torch
from torch import nn

from architectures import Range, register_encoder, register_fusion


class Encoder(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(1, channels, 3, stride=2, padding=1), nn.ReLU(),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        )
        self.num_features = channels

    def forward(self, x):
        return self.body(x)


class Fusion(nn.Module):
    def __init__(self, d: int) -> None:
        super().__init__()
        self.embed = nn.Embedding(10, d)
        self.digit, self.sum = nn.Linear(d, 10), nn.Linear(d, 19)

    def forward(self, features, addends):
        h = features * self.embed(addends)
        return self.digit(h), self.sum(h)


def space(trial):
    return {"channels": trial.suggest_categorical("channels", [4, 8])}


@register_encoder(search_space=space, ranges={"channels": Range(1, 64)})
def ext_cnn(channels: int = 8) -> nn.Module:
    """One strided convolution."""
    return Encoder(channels)


@register_fusion()
def ext_mix(in_features: int) -> nn.Module:
    """Features times an addend embedding."""
    return Fusion(in_features)
'''


def cli(*args: str | Path) -> subprocess.CompletedProcess[str]:
    """``python -m benchmark ARGS`` in a child process, in the environment the test set."""
    cmd = [sys.executable, "-m", "benchmark", *map(str, args)]
    return subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600)


def one_line(text: str) -> str:
    lines = text.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in text, text
    return lines[0]


def run_dirs(results: Path) -> list[Path]:
    return sorted((results / "runs").iterdir())


@pytest.fixture(scope="module")
def plugin_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("elsewhere") / "my_plugin.py"
    path.write_text(PLUGIN)
    return path


@pytest.fixture(scope="module")
def plugin_run(
    plugin_file: Path, synthetic_root: Path, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """A finished ext_cnn x ext_mix run trained through ``--plugin FILE`` (in this process, on
    the synthetic MNIST found through $MNIST_ROOT, the plug-in unloaded afterwards)."""
    import torch

    results = tmp_path_factory.mktemp("plugin-results")
    argv = ["run", "--plugin", plugin_file, "--arch", "ext_cnn", "--fusion", "ext_mix", *TINY,
            "--eval-batch-size", "5000", "--results-dir", results]  # fmt: skip
    threads = torch.get_num_threads()
    with pytest.MonkeyPatch.context() as mp, plugins_undone():
        mp.setenv("MNIST_ROOT", str(synthetic_root))
        try:
            assert main(list(map(str, argv))) == 0
        finally:
            torch.set_num_threads(threads)
    (run_dir,) = run_dirs(results)
    return run_dir


def test_every_command_that_names_architectures_takes_plugin() -> None:
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    for name in ("run", "tune", "compare", "bench", "list", "predict", "export"):
        assert "--plugin" in sub.choices[name]._option_string_actions, name


def test_list_shows_plugin_entries_with_their_origin(
    plugin_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from architectures import ENCODERS, FUSIONS

    argv = ["list", "--plugin", str(plugin_file), "--encoders", "ext_cnn,gap_cnn", "--fusions",
            "ext_mix"]  # fmt: skip
    with plugins_undone():
        assert main(argv) == 0
    rows = {line.split()[1]: line for line in capsys.readouterr().out.splitlines() if "│" in line}
    assert f"plug-in {plugin_file}" in rows["ext_cnn"] and "built-in" in rows["gap_cnn"]
    assert "width=16 depth=2 dropout=0 " in rows["gap_cnn"]  # as --model-arg takes them
    assert f"plug-in {plugin_file}" in rows["ext_mix"]
    # and unloaded again, for the tests after this one
    assert "ext_cnn" not in ENCODERS.entries and "ext_mix" not in FUSIONS.entries


def test_list_sizes_a_model_too_large_to_build(capsys) -> None:
    """``list`` builds on the meta device: a trillion parameters (4 TB in fp32) are counted,
    not allocated (a family of timm models listed in a sixth of the time, too). Registered
    here, not by a plug-in file: loading one runs its models on real images."""
    import torch
    from torch import nn

    from architectures import register_encoder

    class Huge(nn.Module):
        num_features = 4

        def __init__(self) -> None:
            super().__init__()
            self.w = nn.Parameter(torch.empty(10**6, 10**6))

    with plugins_undone():
        register_encoder("huge_cnn")(lambda: Huge())
        assert main(["list", "--encoders", "huge_cnn", "--fusions", "concat"]) == 0
    row = next(line for line in capsys.readouterr().out.splitlines() if "huge_cnn" in line)
    assert row.split("│")[2:4] == [" 4 ", " 1,000,000,000,000 "]


def test_list_check_names_the_models_that_cannot_take_mnist(capsys) -> None:
    """``list --check`` runs each model as ``run`` checks it: an encoder whose kernel is wider
    than 28 pixels and a fusion that fails on its input get rows saying why and a line naming
    them; the encoders and fusions that run get none. Without it nothing is run: no such row
    (and no word of --check: the footer gives it where a timm model is listed)."""
    from torch import nn

    from architectures import register_encoder, register_fusion

    class Wide(nn.Module):
        num_features = 4

        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(1, 4, 29)

        def forward(self, x):
            return self.conv(x).flatten(1)

    class Broken(nn.Module):
        def __init__(self, d: int) -> None:
            super().__init__()
            self.head = nn.Linear(d + 1, 19)

        def forward(self, features, addends):
            return self.head(features)[:, :10], self.head(features)

    argv = ["list", "--encoders", "wide_cnn,gap_cnn", "--fusions", "bad_mix,concat"]
    with plugins_undone():
        register_encoder("wide_cnn")(lambda: Wide())
        register_fusion("bad_mix")(lambda in_features: Broken(in_features))
        assert main([*argv, "--check"]) == 0
        checked = capsys.readouterr().out
        assert main(argv) == 0
        listed = capsys.readouterr().out
    rows = {line.split()[1]: line for line in checked.splitlines() if "│" in line}
    assert "cannot run on 1x28x28 images: RuntimeError: " in rows["wide_cnn"]
    assert "cannot run on 1x28x28 images: RuntimeError: " in rows["bad_mix"]
    assert not any("cannot run" in rows[name] for name in ("gap_cnn", "concat"))
    said = "2 of the 2 encoders and 2 fusions listed cannot run on 1x28x28 images with their"
    assert said in " ".join(checked.split())  # not "2 of 4": of what, a family of timm's?
    assert " wide_cnn, bad_mix" in " ".join(checked.split())
    assert "cannot run" not in listed and "--check" not in listed  # a timm model's footer


def test_a_run_records_its_plugin(plugin_run: Path, plugin_file: Path) -> None:
    config = json.loads((plugin_run / "config.json").read_text())
    assert (config["arch"], config["fusion"]) == ("ext_cnn", "ext_mix")
    (record,) = config["plugins"]
    assert record["plugin"] == str(plugin_file)
    assert record["sha256"] == hashlib.sha256(plugin_file.read_bytes()).hexdigest()
    assert record["entries"] == ["encoder ext_cnn", "fusion ext_mix"]
    assert json.loads((plugin_run / "metrics.json").read_text())["config"]["plugins"] == [record]


@pytest.mark.slow  # three commands in child processes: ten seconds on 2 cores
def test_predict_report_and_resume_need_no_plugin_flag(plugin_run: Path) -> None:
    image = REPO / "examples" / "seven.png"
    done = cli("predict", "--run", plugin_run, "--image", image, "--addend", "3", "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)[0]["addend"] == 3
    results = plugin_run.parent.parent
    done = cli("report", "--results-dir", results)
    assert done.returncode == 0, done.stderr
    assert "ext_cnn" in (results / "report.md").read_text()
    # interrupted after its last epoch's checkpoint: the resume only evaluates and writes
    for name in ("metrics.json", "model.pt"):
        (plugin_run / name).unlink()
    (plugin_run / "status.json").write_text('{"status": "interrupted", "message": ""}')
    done = cli("run", "--resume", plugin_run)
    assert done.returncode == 0, done.stderr
    assert json.loads((plugin_run / "status.json").read_text())["status"] == "complete"


def predicted_after_an_edit(plugin_run: Path, tmp_path: Path, edit: str) -> tuple[Path, Path]:
    """A copy of ``plugin_run`` whose plug-in became ``edit`` (as if edited in place: the
    recorded sha256 is the old code's), predicted from: exit status 2. Its folder, the file."""
    import shutil

    edited = tmp_path / "my_plugin.py"
    edited.write_text(edit)
    run_dir = shutil.copytree(plugin_run, tmp_path / "run")
    config = json.loads((run_dir / "config.json").read_text())
    config["plugins"][0]["plugin"] = str(edited)
    (run_dir / "config.json").write_text(json.dumps(config))
    image = REPO / "examples" / "seven.png"
    with plugins_undone():
        argv = ["predict", "--run", str(run_dir), "--image", str(image), "--addend", "1"]
        assert main(argv) == 2
    return run_dir, edited


def test_weights_a_changed_plugin_cannot_take_blame_the_plugin_not_the_file(
    plugin_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A plug-in edited after the run (its convolution without a bias) builds a model the
    weights do not fit: model.pt was called damaged (exit 1), the change only warned of."""
    edit = PLUGIN.replace("stride=2, padding=1)", "stride=2, padding=1, bias=False)")
    run_dir, edited = predicted_after_an_edit(plugin_run, tmp_path, edit)
    warning, error = capsys.readouterr().err.strip().split("\n")
    assert warning.startswith(f"warning: plug-in {edited} has changed since")
    assert " ".join(error.split()).endswith(
        f"{run_dir / 'model.pt'}: not weights of ext_cnn x ext_mix as plug-in {edited} builds it "
        "now: its code changed since the run (sha256 above); give the code the run was trained "
        "with (if it is that code, model.pt is damaged)"
    )


def test_weights_of_no_model_shape_are_the_files_fault_though_a_plugin_changed(
    plugin_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Only weights that do not fit the model built now (load_state_dict's RuntimeError: keys
    or shapes) can be a changed plug-in's doing. A model.pt holding a list (TypeError) is
    damaged whatever the plug-in's code: blaming the edit sent its user after the wrong fix."""
    import shutil

    import torch

    edited = tmp_path / "my_plugin.py"
    edited.write_text(PLUGIN + "\n# a comment: the sha256 changes, the model does not\n")
    run_dir = shutil.copytree(plugin_run, tmp_path / "run")
    config = json.loads((run_dir / "config.json").read_text())
    config["plugins"][0]["plugin"] = str(edited)
    (run_dir / "config.json").write_text(json.dumps(config))
    torch.save([1, 2], run_dir / "model.pt")
    image = REPO / "examples" / "seven.png"
    with plugins_undone():
        argv = ["predict", "--run", str(run_dir), "--image", str(image), "--addend", "1"]
        assert main(argv) == 1
    error = " ".join(capsys.readouterr().err.strip().split("\n")[-1].split())
    assert error.endswith(f"{run_dir / 'model.pt'}: not weights of ext_cnn x ext_mix (TypeError)")
    assert "changed since the run" not in error


def test_an_entry_a_changed_plugin_renamed_blames_the_plugin_not_the_file(
    plugin_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The plug-in's encoder renamed after the run: config.json was called damaged (exit 1)."""
    edit = PLUGIN.replace("def ext_cnn(", "def ext_cnn2(")
    run_dir, edited = predicted_after_an_edit(plugin_run, tmp_path, edit)
    error = " ".join(capsys.readouterr().err.strip().split("\n")[-1].split())
    assert f"{run_dir / 'config.json'}: unknown encoder 'ext_cnn'" in error, error
    assert error.endswith(
        f"but plug-in {edited} has changed since the run (sha256 above); give the code the run "
        "was trained with (if it is that code, config.json is damaged)"
    ), error


@pytest.mark.slow  # four commands in child processes: ten seconds on 2 cores
def test_a_missing_or_changed_plugin_is_said_in_one_line(
    plugin_run: Path, plugin_file: Path, tmp_path: Path
) -> None:
    image = REPO / "examples" / "seven.png"
    predict = ["predict", "--run", plugin_run, "--image", image, "--addend", "1", "--json"]
    moved = tmp_path / "moved.py"
    plugin_file.rename(moved)
    try:
        done = cli(*predict)
        assert done.returncode == 2
        line = one_line(done.stderr)
        assert str(plugin_file) in line and "cannot be found" in line and "--plugin" in line
        assert cli(*predict, "--plugin", moved).returncode == 0  # given at its new place
        moved.write_text(PLUGIN + "# edited\n")
        done = cli(*predict, "--plugin", moved)
        assert done.returncode == 0, done.stderr
        # the code run is the one given, not the one recorded (the next line: this tiny run
        # learned nothing, which predict warns of too)
        line = next(w for w in done.stderr.splitlines() if w.startswith("warning: plug-in"))
        assert f"plug-in {moved}, given for {plugin_file}, is not the code" in line, line
    finally:
        moved.write_text(PLUGIN)
        moved.rename(plugin_file)


@pytest.mark.slow  # two compares in child processes: a minute on 2 cores
def test_compare_with_a_plugin_completes_and_reruns_without_it(
    plugin_file: Path, tmp_path: Path
) -> None:
    argv = ["compare", "--arch", "ext_cnn,small_cnn", "--fusion", "late_sum", "--trials", "1",
            "--seeds", "0", "--epochs", "1", "--train-subset", "256", "--threads", "1",
            "--eval-batch-size", "5000", "--no-report", "--results-dir", tmp_path]  # fmt: skip
    done = cli(*argv, "--plugin", plugin_file)
    assert done.returncode == 0, done.stderr
    found = [json.loads((d / "config.json").read_text()) for d in run_dirs(tmp_path)]
    assert sorted(c["arch"] for c in found) == ["ext_cnn", "ext_cnn", "small_cnn", "small_cnn"]
    assert all(bool(c["plugins"]) == (c["arch"] == "ext_cnn") for c in found)
    plan = json.loads((tmp_path / "comparison.json").read_text())["plan"]
    assert [p["plugin"] for p in plan["plugins"]] == [str(plugin_file)]
    done = cli(*argv)  # the same protocol again, no --plugin: nothing left to do
    assert done.returncode == 0, done.stderr
    assert len(run_dirs(tmp_path)) == 4


# ------------------------------------------------------------------------ installed package


def example_installed() -> bool:
    return any(ep.name == "example" for ep in entry_points(group=plugins.GROUP))


needs_example = pytest.mark.skipif(
    not example_installed(),
    reason="the example plug-in is not installed: python -m pip install -e "
    "examples/digitsum-plugin-example",
)


def example_run(results: Path) -> Path:
    """A run of the installed example's dwsep_cnn x gated, trained in this process (as its
    entries are installed anyway) on the few synthetic images of ``small_data``."""
    argv = ["run", "--arch", "dwsep_cnn", "--fusion", "gated", *TINY, "--results-dir", results]
    assert main([*map(str, argv), "--eval-batch-size", "100"]) == 0
    (run_dir,) = run_dirs(results)
    return run_dir


@needs_example
def test_the_installed_example_is_found_without_plugin(
    tmp_path: Path, small_data, installed_plugins, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["list", "--encoders", "dwsep_cnn", "--fusions", "gated"]) == 0
    assert capsys.readouterr().out.count("entry point example (digitsum-plugin-example") == 2
    (record,) = json.loads((example_run(tmp_path) / "config.json").read_text())["plugins"]
    assert record["entry_point"] == "example" and record["plugin"] == "digitsum_plugin_example"
    assert record["distribution"].startswith("digitsum-plugin-example ")


@needs_example
def test_the_installed_examples_file_given_by_plugin_too_is_told_to_drop_it(
    installed_plugins, capsys: pytest.CaptureFixture[str]
) -> None:
    """The README's "install it, or give --plugin" done both ways read as a crash in the
    plug-in: "importing it raised ValueError: encoder 'dwsep_cnn' is already registered"."""
    source = Path(__file__).parents[1] / "examples" / "digitsum-plugin-example"
    given = source / "digitsum_plugin_example.py"
    assert main(["list", "--plugin", str(given)]) == 2
    line = one_line(capsys.readouterr().err)
    assert line.endswith(
        f"plug-in {given}: its encoder 'dwsep_cnn' is already registered by entry point example "
        "(digitsum-plugin-example 0.1.0), an installed package; drop --plugin if this is that "
        "package's file"
    )
    assert main(["list", "--encoders", "dwsep_cnn"]) == 0  # the installed one still works


@needs_example
@pytest.mark.slow  # a command in a child process: four seconds on 2 cores
def test_a_fresh_process_finds_the_installed_example(
    tmp_path: Path, small_data, installed_plugins
) -> None:
    image = REPO / "examples" / "zero.png"
    run_dir = example_run(tmp_path)
    done = cli("predict", "--run", run_dir, "--image", image, "--addend", "4", "--json")
    assert done.returncode == 0, done.stderr  # through the run's record of its plug-in


# ------------------------------------------------------------------------------ bad plug-ins

HEADER = "import torch\nfrom torch import nn\nfrom architectures import register_encoder, "
HEADER += "register_fusion\n"
BAD = {
    "import fails": (
        "import no_such_dependency_xyz\n",
        "ModuleNotFoundError: No module named 'no_such_dependency_xyz' (bad.py:4)",
    ),
    "raises while registering": (
        "@register_encoder()\ndef half_done() -> nn.Module:\n    return nn.Identity()\n"
        "raise RuntimeError('boom')\n",
        "RuntimeError: boom (bad.py:7)",
    ),
    "name taken": (
        "@register_encoder()\ndef gap_cnn() -> nn.Module:\n    return nn.Identity()\n",
        "its encoder 'gap_cnn' is a built-in one's name; give yours another name",
    ),
    "registers nothing": ("x = 1\n", "registers no encoder or fusion"),
    "hyperparameter clash": (
        "class E(nn.Module):\n    num_features = 4\n    def forward(self, x):\n"
        "        return x.flatten(1)[:, :4]\n"
        "@register_encoder()\ndef clash(hidden: int = 4) -> nn.Module:\n    return E()\n",
        "has hyperparameter 'hidden', which fusion",
    ),
    "wrong shapes": (
        "class F(nn.Module):\n    def __init__(self, d):\n        super().__init__()\n"
        "        self.head = nn.Linear(d, 9)\n"
        "    def forward(self, f, a):\n        return self.head(f), torch.zeros(len(f), 19)\n"
        "@register_fusion()\ndef nine(in_features: int) -> nn.Module:\n"
        "    return F(in_features)\n",
        "fusion 'nine' returns digit logits of shape (4, 9), expected (4, 10)",
    ),
    "cannot be built": (
        "@register_encoder()\ndef unbuildable(width: int = 3) -> nn.Module:\n"
        "    raise ValueError('width must be even')\n",
        "encoder 'unbuildable' with unbuildable x concat: building it raised ValueError: width "
        "must be even",
    ),
    "forward raises": (
        "class E(nn.Module):\n    num_features = 4\n    def forward(self, x):\n"
        "        raise RuntimeError('no forward')\n"
        "@register_encoder()\ndef broken() -> nn.Module:\n    return E()\n",
        "encoder 'broken' with broken x concat on 4 CPU images of 1x28x28 raised RuntimeError: "
        "no forward",
    ),
    "exits": ("import sys\nsys.exit(3)\n", "importing it called sys.exit(3) (bad.py:5)"),
    # said as it registers: each was found at the first model (a TypeError), or never
    "a hyperparameter without a default": (
        "@register_encoder()\ndef nodef(chans: int) -> nn.Module:\n    return nn.Identity()\n",
        "encoder 'nodef': its hyperparameter 'chans' has no default; give it one in nodef()",
    ),
    "ranges naming no hyperparameter": (
        "from architectures import Range\n@register_encoder(ranges={'chanels': Range(1, 9)})\n"
        "def typo(chans: int = 8) -> nn.Module:\n    return nn.Identity()\n",
        "encoder 'typo': ranges names 'chanels' (did you mean chans?), not one of its "
        "hyperparameters (chans)",
    ),
    "a default outside its own range": (
        "from architectures import Range\n@register_encoder(ranges={'chans': Range(16, 256)})\n"
        "def low(chans: int = 8) -> nn.Module:\n    return nn.Identity()\n",
        "encoder 'low': its default is out of its own range: chans=8 for low: expected int in "
        "16..256",
    ),
    "features of another width": (  # the fusion's matmul error named the wrong part
        "class E(nn.Module):\n    num_features = 8\n    def forward(self, x):\n"
        "        return x.flatten(1)[:, :7]\n"
        "@register_encoder()\ndef narrow() -> nn.Module:\n    return E()\n",
        "encoder 'narrow' returns features of shape (4, 7), expected (4, num_features=8) (with "
        "narrow x concat on 4 CPU images of 1x28x28)",
    ),
    "a batch of one": (  # .squeeze() drops the batch dimension too: predict of one image failed
        "class E(nn.Module):\n    num_features = 4\n    def forward(self, x):\n"
        "        return nn.functional.adaptive_avg_pool2d(x.expand(-1, 4, -1, -1), 1).squeeze()\n"
        "@register_encoder()\ndef squeezed() -> nn.Module:\n    return E()\n",
        "encoder 'squeezed' returns features of shape (4,), expected (1, num_features=4) (with "
        "squeezed x concat on 1 CPU image of 1x28x28)",
    ),
    "features of another batch": (  # the fusion's concatenation error named the wrong part
        "class E(nn.Module):\n    num_features = 4\n    def forward(self, x):\n"
        "        return x.flatten(1)[:, :4].repeat(2, 1)\n"
        "@register_encoder()\ndef doubled() -> nn.Module:\n    return E()\n",
        "encoder 'doubled' returns features of shape (8, 4), expected (4, num_features=4) (with "
        "doubled x concat on 4 CPU images of 1x28x28)",
    ),
    "no num_features": (
        "class E(nn.Module):\n    def forward(self, x):\n        return x.flatten(1)[:, :4]\n"
        "@register_encoder()\ndef wide() -> nn.Module:\n    return E()\n",
        "encoder wide's num_features is not set: set self.num_features = D",
    ),
    "num_features of another type": (
        "class E(nn.Module):\n    num_features = 4.0\n    def forward(self, x):\n"
        "        return x.flatten(1)[:, :4]\n"
        "@register_encoder()\ndef wide() -> nn.Module:\n    return E()\n",
        "encoder wide's num_features is 4.0, not a positive integer: set self.num_features = D",
    ),
    "a factory returning no module": (
        "@register_fusion()\ndef lam(in_features: int) -> nn.Module:\n"
        "    return lambda f, a: (f, f)\n",
        "fusion lam's factory returned a function, not a torch.nn.Module",
    ),
    # names that could never be selected (a comma list's items, every entry, timm's prefix) or
    # would split a study's name: each was registered and listed
    **{
        f"named {name}": (
            f"@register_encoder({name!r})\ndef named() -> nn.Module:\n    return nn.Identity()\n",
            f"importing it raised ValueError: encoder name {name!r}: expected letters and digits",
        )
        for name in ("a,b", "all", "timm:mine", "x__y", "my enc")
    },
    "a training setting's name": (  # the defaults trial took it for the learning rate
        "@register_encoder()\ndef lr_enc(lr: float = 0.1) -> nn.Module:\n"
        "    return nn.Identity()\n",
        "encoder 'lr_enc' has hyperparameter 'lr', a name training uses (--lr): tuning names "
        "both by it, so rename it",
    ),
    "non-finite outputs": (
        "class E(nn.Module):\n    num_features = 4\n    def forward(self, x):\n"
        "        return torch.full((len(x), 4), float('nan'))\n"
        "@register_encoder()\ndef nans() -> nn.Module:\n    return E()\n",
        "encoder 'nans' returns non-finite features",
    ),
    # the logits a fusion returns: +inf, no possible sum for an addend, a third output
    **{
        f"sum logits {case}": (
            "class F(nn.Module):\n    def __init__(self, d):\n        super().__init__()\n"
            "        self.head = nn.Linear(d, 10)\n"
            "    def forward(self, f, a):\n"
            f"        s = torch.zeros(len(f), 19)\n        {edit}\n"
            "        return self.head(f), s\n"
            "@register_fusion()\ndef odd_sums(in_features: int) -> nn.Module:\n"
            "    return F(in_features)\n",
            f"fusion 'odd_sums' returns {said} (with gap_cnn x odd_sums on 4 CPU images",
        )
        for case, edit, said in (
            ("of +inf", "s[:, 3] = float('inf')", "non-finite logits"),
            (
                "all -inf for one addend",
                "s[a == 1] = float('-inf')",
                "sum logits that are all -inf for some image",
            ),
        )
    },
    "infinite digit logits": (
        "class F(nn.Module):\n    def __init__(self, d):\n        super().__init__()\n"
        "        self.head = nn.Linear(d, 10)\n"
        "    def forward(self, f, a):\n"
        "        return self.head(f) - float('inf'), torch.zeros(len(f), 19)\n"
        "@register_fusion()\ndef inf_digits(in_features: int) -> nn.Module:\n"
        "    return F(in_features)\n",
        "fusion 'inf_digits' returns non-finite logits",
    ),
    "three outputs": (
        "class F(nn.Module):\n    def __init__(self, d):\n        super().__init__()\n"
        "        self.head = nn.Linear(d, 10)\n"
        "    def forward(self, f, a):\n"
        "        return self.head(f), torch.zeros(len(f), 19), f\n"
        "@register_fusion()\ndef triple(in_features: int) -> nn.Module:\n"
        "    return F(in_features)\n",
        "fusion 'triple' returns tuple, expected (digit_logits, sum_logits)",
    ),
}


def test_a_num_features_of_numpys_integer_is_taken(tmp_path: Path, capsys) -> None:
    """A width from np.prod: nn.Linear takes it, and so does the check (an int only refused it)."""
    path = tmp_path / "np_width.py"
    path.write_text(
        HEADER + "import numpy as np\nclass E(nn.Module):\n    num_features = np.int64(4)\n"
        "    def forward(self, x):\n        return x.flatten(1)[:, :4]\n"
        "@register_encoder()\ndef np_width() -> nn.Module:\n    return E()\n"
    )
    with plugins_undone():
        assert main(["list", "--plugin", str(path), "--encoders", "np_width"]) == 0
    assert "np_width" in capsys.readouterr().out


def test_the_check_leaves_the_global_random_state_as_it_was(tmp_path: Path) -> None:
    """Its forwards drew from the caller's generator (a forward that samples, as a noisy
    encoder's), so what followed a plug-in's load depended on the check."""
    path = tmp_path / "noisy.py"
    path.write_text(
        HEADER + "class E(nn.Module):\n    num_features = 4\n    def forward(self, x):\n"
        "        f = x.flatten(1)[:, :4]\n        return f + f.new_empty(f.shape).normal_()\n"
        "@register_encoder()\ndef noisy() -> nn.Module:\n    return E()\n"
    )
    import torch

    torch.manual_seed(123)
    before = torch.random.get_rng_state()
    with plugins_undone():
        assert main(["list", "--plugin", str(path), "--encoders", "noisy"]) == 0
    assert torch.equal(torch.random.get_rng_state(), before)


@pytest.mark.parametrize("case", sorted(BAD))
def test_a_bad_plugin_is_one_line_exit_2_and_nothing_written(
    case: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """In this process (a failed plug-in leaves nothing registered, see the last test)."""
    body, expected = BAD[case]
    path = tmp_path / "bad.py"
    path.write_text(HEADER + body)
    results = tmp_path / "results"
    assert main(["run", "--plugin", str(path), *TINY, "--results-dir", str(results)]) == 2
    line = one_line(capsys.readouterr().err)
    assert f"plug-in {path}" in line and expected in line, line
    assert not results.exists()


def test_a_forward_that_reads_its_data_is_checked_on_the_cpu(tmp_path: Path, capsys) -> None:
    """The dry run's meta tensors hold no data: an encoder that reads a value (``.item()``) was
    refused as one that "cannot run on 1x28x28 images", with no way round it."""
    path = tmp_path / "reads.py"
    path.write_text(
        HEADER + "class E(nn.Module):\n    num_features = 4\n    def forward(self, x):\n"
        "        f = x.flatten(1)[:, :4]\n"
        "        return f / 2 if f.abs().max().item() > 1e6 else f\n"
        "@register_encoder()\ndef reads() -> nn.Module:\n    return E()\n"
    )
    argv = ["run", "--plugin", str(path), "--arch", "reads", "--print-config"]
    assert main(argv) == 0 and '"arch": "reads"' in capsys.readouterr().out


BAD_SPACES = {  # a search space that cannot be tuned: (its body, what the line says)
    "raises": ("    raise RuntimeError('space broken')\n", "raised RuntimeError: space broken"),
    "returns None": ("    return None\n", "returned NoneType, expected a dict"),
    "unknown name": (
        "    return {'kernel': trial.suggest_int('nosuch', 1, 4)}\n",
        "suggests 'nosuch', not one of spaced's hyperparameters (kernel)",
    ),
    "a typo": (
        "    return {'kernal': trial.suggest_int('kernal', 1, 4)}\n",
        "suggests 'kernal' (did you mean kernel?), not one of spaced's hyperparameters (kernel)",
    ),
    "training's name": (
        "    return {'kernel': trial.suggest_int('lr', 1, 4)}\n",
        "suggests 'lr', a name training tunes",
    ),
    "training's name when it augments": (  # the defaults' training space suggests no aug_*
        "    return {'kernel': trial.suggest_int('aug_shift', 1, 4)}\n",
        "suggests 'aug_shift', a name training tunes",
    ),
    "out of range": (
        "    return {'kernel': trial.suggest_int('kernel', 1, 1000)}\n",
        "for spaced: expected int in 1..10",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_SPACES))
@pytest.mark.parametrize("command", ["tune", "compare"])
def test_a_search_space_that_cannot_be_tuned_is_one_line_before_any_trial(
    command: str, case: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Each gave a traceback from the first trial (out of range: after a trial had trained), or
    an Optuna message naming a FixedTrial; now one line names the plug-in's space, exit 2."""
    body, expected = BAD_SPACES[case]
    path = tmp_path / "spaces.py"
    path.write_text(
        HEADER + "from architectures import Range\n"
        "class E(nn.Module):\n    num_features = 4\n    def forward(self, x):\n"
        "        return x.flatten(1)[:, :4]\n"
        f"def space(trial):\n{body}"
        "@register_encoder(search_space=space, ranges={'kernel': Range(1, 10)})\n"
        "def spaced(kernel: int = 3) -> nn.Module:\n    return E()\n"
    )
    results = tmp_path / "results"
    argv = [command, "--plugin", str(path), "--arch", "spaced", "--fusion", "concat"]
    argv += [
        "--trials",
        "1",
        "--epochs",
        "1",
        "--train-subset",
        "256",
        "--results-dir",
        str(results),
    ]
    with plugins_undone():
        assert main(argv) == 2
    line = one_line(capsys.readouterr().err)
    assert f"spaced's search space (plug-in {path}) " in line and expected in line, line
    assert not results.exists()


def test_every_built_in_search_space_passes_its_check() -> None:
    from architectures import ENCODERS, FUSIONS
    from benchmark.commands.models import check_spaces

    check_spaces(
        [(arch, fusion) for arch in ENCODERS.select("*") for fusion in FUSIONS.select("*")]
    )


def test_two_encoders_may_suggest_one_name_with_choices_of_their_own() -> None:
    """Each space is drawn in a study of its own, as each combination's study holds one
    encoder: sharing one study across encoders refused gap_cnn's width beside a plug-in's."""
    from torch import nn

    from architectures import ENCODERS
    from benchmark.commands.models import check_spaces

    def space(trial: object) -> dict[str, int]:
        return {"width": trial.suggest_categorical("width", [3, 5])}

    @ENCODERS.register(search_space=space)
    def other_width(width: int = 3):  # unannotated: the registry evaluates annotations
        return nn.Flatten()

    try:
        check_spaces([("other_width", "concat"), ("gap_cnn", "concat")])
    finally:
        del ENCODERS.entries["other_width"]


@pytest.mark.parametrize(
    "recorded",
    ["x", [{"plugin": 1}], [{"plugin": "p.py", "sha256": "0" * 64, "entries": "encoder x"}]],
)
def test_a_config_given_with_bad_plugin_records_is_a_usage_error(
    recorded: object, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A file given to ``--config`` is input, as each of its fields is: exit 2 (a run's own
    config.json with such records is a damaged file, exit 1, when it is resumed)."""
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"arch": "gap_cnn", "plugins": recorded}))
    results = tmp_path / "results"
    assert main(["run", "--config", str(config), *TINY, "--results-dir", str(results)]) == 2
    line = one_line(capsys.readouterr().err)
    assert f"--config {config}: plugins must be a list of" in line, line
    assert not results.exists()


@pytest.mark.parametrize(
    "spec, expected",
    [
        ("missing.py", "no such file"),
        ("no_such_plugin_module", "no module of that name"),
        # there, but read as a module's name: it said "no module of that name"
        ("notes.txt", "a file, but not a .py file; give a .py file"),
    ],
)
def test_a_plugin_that_does_not_exist_is_one_line(
    spec: str,
    expected: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "notes.txt").write_text("my notes\n")
    given = str(tmp_path / spec) if spec.endswith(".py") else spec
    results = tmp_path / "results"
    assert main(["run", "--plugin", given, *TINY, "--results-dir", str(results)]) == 2
    line = one_line(capsys.readouterr().err)
    assert f"plug-in {given}: {expected}" in line
    assert not results.exists()


def test_a_broken_installed_plugin_is_a_warning_and_other_names_still_work(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """An installed entry point that cannot load costs its own names only: every command used
    to stop on it, even one that needs no plug-in."""
    from importlib import metadata

    real = metadata.entry_points
    broken = metadata.EntryPoint("broken", "no_such_plugin_module_xyz", plugins.GROUP)

    def installed(**select: str) -> metadata.EntryPoints:
        found = real(**select)
        return (
            metadata.EntryPoints([*found, broken]) if select.get("group") == broken.group else found
        )

    monkeypatch.setattr(metadata, "entry_points", installed)
    results = tmp_path / "results"
    with plugins_undone():
        plugins._entry_points_done = False
        assert main(["list", "--encoders", "gap_cnn", "--fusions", "concat"]) == 0
        out = capsys.readouterr()
        assert one_line(out.err) == (
            "warning: plug-in entry point broken (unknown): no module no_such_plugin_module_xyz; "
            "going on without it"
        )
        assert "gap_cnn" in out.out
        assert main(["run", "--arch", "its_cnn", *TINY, "--results-dir", str(results)]) == 2
        line = one_line(capsys.readouterr().err)
        assert "unknown encoder 'its_cnn'" in line, line
        assert "installed plug-ins not loaded: broken" in line, line
        record = {"plugin": "no_such_plugin_module_xyz", "sha256": "0" * 64,
                  "entries": ["encoder its_cnn"], "entry_point": "broken",
                  "distribution": "its-dist 0.1"}  # fmt: skip
        with pytest.raises(UsageError) as info:  # a run of it: not "is not installed"
            plugins.load_recorded({"plugins": [record]}, "r/config.json")
        assert "entry point broken of its-dist 0.1 is not loaded (it failed: see the warning" in (
            str(info.value)
        )
    assert not results.exists()


def test_a_directory_given_as_a_plugin_says_what_to_give(tmp_path: Path, capsys) -> None:
    """It said "no such file" of a directory that is there."""
    assert main(["list", "--plugin", str(tmp_path)]) == 2
    line = one_line(capsys.readouterr().err)
    assert f"plug-in {tmp_path}: a directory; give a .py file, or a package's dotted" in line


def test_a_failing_plugin_leaves_nothing_registered(tmp_path: Path) -> None:
    """In one process: what a plug-in registered before it failed is removed again."""
    from architectures import ENCODERS

    path = tmp_path / "half.py"
    path.write_text(HEADER + BAD["raises while registering"][0])
    with pytest.raises(UsageError, match="boom"):
        plugins.load(str(path))
    assert "half_done" not in ENCODERS.entries


def test_a_plugin_given_by_a_relative_path_names_the_line_that_raised(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The frames carried the path as given and the line was looked for under the resolved one:
    a plug-in given as ``../pl/bad.py`` was said to raise, with no file or line."""
    (tmp_path / "pl").mkdir()
    (tmp_path / "pl" / "bad.py").write_text(HEADER + "import no_such_dependency_xyz\n")
    (tmp_path / "here").mkdir()
    monkeypatch.chdir(tmp_path / "here")
    assert main(["list", "--plugin", "../pl/bad.py"]) == 2
    line = one_line(capsys.readouterr().err)
    assert line.endswith("No module named 'no_such_dependency_xyz' (bad.py:4)"), line


def test_a_plugin_file_imports_the_modules_beside_it(tmp_path: Path, capsys) -> None:
    """As a script does: a plug-in split into two files in one folder could not be loaded."""
    (tmp_path / "beside_layers_xyz.py").write_text(
        "from torch import nn\nclass E(nn.Module):\n    num_features = 4\n"
        "    def forward(self, x):\n        return x.flatten(1)[:, :4]\n"
    )
    (tmp_path / "split.py").write_text(
        HEADER + "from beside_layers_xyz import E\n"
        "@register_encoder()\ndef split_enc() -> nn.Module:\n    return E()\n"
    )
    with plugins_undone():
        argv = ["list", "--plugin", str(tmp_path / "split.py"), "--encoders", "split_enc"]
        assert main(argv) == 0
    assert "split_enc" in capsys.readouterr().out
    sys.modules.pop("beside_layers_xyz", None)


@pytest.mark.parametrize("module_first", [False, True])
def test_one_file_given_by_its_path_and_its_module_name_is_told_to_give_it_once(
    module_first: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    """Its entries were called a clash with themselves, and the user told to rename them."""
    path = tmp_path / "twice_xyz.py"
    path.write_text(
        HEADER + "class E(nn.Module):\n    num_features = 4\n    def forward(self, x):\n"
        "        return x.flatten(1)[:, :4]\n@register_encoder()\ndef twice() -> nn.Module:\n"
        "    return E()\n"
    )
    given = ["twice_xyz", str(path)] if module_first else [str(path), "twice_xyz"]
    with plugins_undone():
        monkeypatch.syspath_prepend(str(tmp_path))
        assert main(["list", "--plugin", given[0], "--plugin", given[1]]) == 2
    line = one_line(capsys.readouterr().err)
    assert line.endswith(f"plug-in {given[1]}: the same file as plug-in {given[0]}; give it once")
    sys.modules.pop("twice_xyz", None)


@pytest.mark.parametrize("moved", [False, True])
def test_a_changed_plugin_is_named_as_given_in_the_warning(
    moved: bool, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The warning named the recorded file, which was not the code being run, where ``--plugin``
    gave another in its place."""
    given = tmp_path / "other.py"
    given.write_text(PLUGIN + "# edited\n")
    recorded = tmp_path / "gone.py" if moved else given
    record = {"plugin": str(recorded), "sha256": "0" * 64, "entries": ["encoder ext_cnn"]}
    with plugins_undone():
        plugins.load(str(given))
        plugins.load_recorded({"plugins": [record]}, "r/config.json")
    said = f"plug-in {given} has changed since r/config.json was written"
    if moved:
        said = (
            f"plug-in {given}, given for {recorded}, is not the code r/config.json was written with"
        )
    assert one_line(capsys.readouterr().err).startswith(
        f"warning: {said} (sha256 000000000000 then, "
    )


@pytest.mark.parametrize(("name", "note"), [("my_encoder", True), ("tiny-resnet", False)])
def test_an_unknown_name_says_how_a_plugin_is_loaded(
    name: str, note: bool, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A plug-in's name typed without ``--plugin`` read as a name that does not exist; a near
    name is a typo, and gets the "did you mean" alone."""
    assert main(["run", "--arch", name, "--results-dir", str(tmp_path / "r")]) == 2
    line = one_line(capsys.readouterr().err)
    assert ("load with --plugin MODULE_OR_FILE: docs/plugins.md)" in line) is note, line
    assert f"unknown encoder {name!r}" in line


VIEW = (  # flattens with .view: fine in the contiguous layout, not in channels_last
    "class E(nn.Module):\n    num_features = 4 * 13 * 13\n    def __init__(self):\n"
    "        super().__init__()\n        self.conv = nn.Conv2d(1, 4, 3, stride=2)\n"
    "    def forward(self, x):\n        h = self.conv(x)\n        return h.view(len(h), -1)\n"
    "@register_encoder()\ndef view_enc() -> nn.Module:\n    return E()\n"
)


@pytest.mark.parametrize("command", ["run", "tune", "compare"])
def test_an_encoder_that_fails_in_channels_last_is_refused_before_anything_is_written(
    command: str, tmp_path: Path, synthetic_root: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    """The CPU probe chose channels_last unasked, and a plug-in flattening with ``.view`` passed
    every check, then failed at the first training step in a traceback (a study: every trial)."""
    path = tmp_path / "view.py"
    path.write_text(HEADER + VIEW)
    monkeypatch.setenv("MNIST_ROOT", str(synthetic_root))
    results = tmp_path / "results"
    argv = [command, "--plugin", str(path), "--arch", "view_enc", "--fusion", "concat"]
    argv += ["--epochs", "1", "--train-subset", "256", "--results-dir", str(results)]
    argv += ["--channels-last", *([] if command == "run" else ["--trials", "1"])]
    with plugins_undone():
        assert main(argv) == 2
    line = one_line(capsys.readouterr().err)
    assert "encoder view_enc fails in the channels_last memory layout chosen" in line, line
    assert "RuntimeError: view size is not compatible" in line
    assert line.endswith("rather than .view, or give --no-channels-last")
    assert not results.exists()


def test_an_encoder_that_fails_in_channels_last_trains_without_it(
    tmp_path: Path, synthetic_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "view.py"
    path.write_text(HEADER + VIEW)
    monkeypatch.setenv("MNIST_ROOT", str(synthetic_root))
    results = tmp_path / "results"
    argv = ["run", "--plugin", str(path), "--arch", "view_enc", "--fusion", "concat", *TINY]
    with plugins_undone():
        assert main([*argv, "--results-dir", str(results), "--no-channels-last"]) == 0
    assert (run_dirs(results)[0] / "metrics.json").is_file()


def test_the_cost_of_a_model_that_reads_its_data_is_measured_on_the_cpu(tmp_path: Path) -> None:
    """``run``'s time estimate counts MACs on the meta device, where ``.item()`` cannot run: a
    model the dry run had passed (on the CPU) stopped there in a traceback."""
    from benchmark.bench import model_cost

    path = tmp_path / "reads.py"
    path.write_text(
        HEADER + "class F(nn.Module):\n    def __init__(self, d):\n        super().__init__()\n"
        "        self.d, self.s = nn.Linear(d, 10), nn.Linear(d, 19)\n"
        "    def forward(self, f, a):\n        assert a.max().item() < 10\n"
        "        return self.d(f), self.s(f)\n"
        "@register_fusion()\ndef reads_fus(in_features: int) -> nn.Module:\n"
        "    return F(in_features)\n"
    )
    with plugins_undone():
        plugins.load(str(path))
        params, macs = model_cost("gap_cnn", "reads_fus", {})
    gap_params, gap_macs = model_cost("gap_cnn", "late_sum", {})  # its encoder's share, at least
    assert params > 0 and macs > gap_macs * 0.9, (params, macs, gap_macs)


def test_a_missing_plugin_recorded_with_no_entries_is_not_taken_for_another_one(
    tmp_path: Path,
) -> None:
    """A record that lists no entries proves nothing about a plug-in loaded otherwise: the empty
    set is a subset of every plug-in's entries, so any loaded one would stand in for the missing
    one, with only a warning, and the run would build its model from the wrong code."""
    record = {"plugin": str(tmp_path / "gone.py"), "sha256": "0" * 64, "entries": []}
    other = plugins.Plugin("other.py", "plug-in other.py", "1" * 64, ["encoder other_cnn"])
    with plugins_undone():
        plugins._loaded["other.py"] = other
        with pytest.raises(UsageError, match=r"gone\.py cannot be found; give it again"):
            plugins.load_recorded({"plugins": [record]}, "r/config.json")


def test_a_module_imported_before_plugins_load_is_told_so_not_called_empty(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Imported by other means first, its decorators ran then and cannot run again: the plug-in
    was said to register no encoder or fusion, which sends the user to code that is fine."""
    (tmp_path / "early_plugin_xyz.py").write_text(
        HEADER + "@register_encoder()\ndef early_enc() -> nn.Module:\n    return nn.Identity()\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    with plugins_undone():
        try:
            import early_plugin_xyz  # noqa: F401

            with pytest.raises(UsageError, match="already imported before plug-ins were loaded"):
                plugins.load("early_plugin_xyz")
        finally:
            sys.modules.pop("early_plugin_xyz", None)


def test_what_code_of_anothers_raised_is_its_type_and_first_line_of_words() -> None:
    """A message of many lines, or one opening on a blank, is named by its first words; one
    that says nothing by its type alone, with no dangling colon."""
    from benchmark.errors import one_line

    many = ValueError("\n  width must be even\n  got 3\n")
    assert one_line(many) == "ValueError: width must be even"
    assert one_line(RuntimeError()) == one_line(RuntimeError("  \n")) == "RuntimeError"


def test_a_search_space_wrong_at_only_some_of_its_points_is_found() -> None:
    """Each space is drawn at many points before a study runs it: one whose range runs past its
    entry's declared one is refused though its first point fits."""
    from torch import nn

    from architectures import ENCODERS, Range
    from benchmark.commands.models import check_spaces

    def space(trial: object) -> dict[str, int]:
        return {"kernel": trial.suggest_int("kernel", 1, 12)}

    @ENCODERS.register(search_space=space, ranges={"kernel": Range(1, 10)})
    def partly_spaced(kernel=3):  # unannotated: the registry evaluates annotations
        return nn.Flatten()

    try:
        with pytest.raises(ValueError, match="partly_spaced's search space .* int in 1..10"):
            check_spaces([("partly_spaced", "concat")])
    finally:
        del ENCODERS.entries["partly_spaced"]
