"""``report --against DIR``: the user's runs set beside a reference's main comparison, built from
synthetic run directories (``make_run``): no training here."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from conftest import leave_undrawn, make_run, one_line

from benchmark.cli import main

PLAN = {
    "key": "ref00001",
    "budget": {"epochs": 1, "train_subset": None, "holdout_pairs": 0},
    "fixed": {},
    "studies": [],
    "pairs": [["gap_cnn", "concat"], ["gap_cnn", "late_sum"]],
    "seeds": [0, 1, 2],
    "trials": 20,
    "max_params": 2000,
}


def make_reference(root: Path) -> Path:
    """A reference results directory: two combinations at 1 epoch, three seeds each, and a
    comparison.json naming them (cap 2,000 parameters)."""
    for seed, (a, b) in enumerate(((0.95, 0.90), (0.96, 0.91), (0.97, 0.92))):
        make_run(root / "runs", f"ref-a{seed}", seed=seed, sum_acc=a, val_curve=(0.9,))
        make_run(root / "runs", f"ref-b{seed}", fusion="late_sum", seed=seed, sum_acc=b,
                 config_hash="b0000000", val_curve=(0.9,))  # fmt: skip
    (root / "comparison.json").write_text(json.dumps({"plan": PLAN, "stages": {}}))
    return root


def make_yours(root: Path, device: str | None = None) -> Path:
    """The user's runs: a combination of their own at the reference budget (3 seeds), the
    reference's own default configuration again, and one run at another budget."""
    for seed, acc in enumerate((0.955, 0.965, 0.96)):
        run = make_run(root / "runs", f"my-{seed}", arch="my_cnn", fusion="gated", seed=seed,
                       sum_acc=acc, params=1500, config_hash="m0000000",
                       val_curve=(0.9,))  # fmt: skip
        if device:
            found = json.loads((run / "metrics.json").read_text())
            found.update(device=device, precision="fp32")
            (run / "metrics.json").write_text(json.dumps(found))
    make_run(root / "runs", "my-same", sum_acc=0.99, val_curve=(0.9,))
    make_run(root / "runs", "my-long", arch="my_cnn", fusion="gated", sum_acc=0.99, params=1500,
             config_hash="m1111111")  # 2 epochs  # fmt: skip
    return root


def report_against(tmp_path: Path, device: str | None = None) -> tuple[str, pd.DataFrame]:
    reference = make_reference(tmp_path / "reference")
    yours = make_yours(tmp_path / "output", device)
    assert main(["report", "--results-dir", str(yours), "--against", str(reference)]) == 0
    return (yours / "report.md").read_text(), pd.read_csv(yours / "summary.csv")


@pytest.fixture(scope="module")
def against(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, pd.DataFrame]:
    """``report_against`` on the same kind of device, once for the tests that read it: the root
    it was written under, report.md and summary.csv."""
    root = tmp_path_factory.mktemp("against")
    with pytest.MonkeyPatch.context() as patch:  # ``undrawn``, for the module
        leave_undrawn(patch)
        return root, *report_against(root)


def test_against_shows_both_sides_in_the_main_comparison(
    against: tuple[Path, str, pd.DataFrame],
) -> None:
    tmp_path, text, summary = against
    main_rows = summary[summary["section"] == "main"]
    assert set(main_rows["label"]) == {
        "gap_cnn x concat",
        "gap_cnn x late_sum",
        "my_cnn x gated [yours]",
        "gap_cnn x concat [yours]",  # the reference's configuration, trained again: kept apart
    }
    best = main_rows[main_rows["standing"] == "best"]
    assert list(best["label"]) == ["gap_cnn x concat"]  # the reference's best, not a user's
    mine = main_rows.set_index("label").loc["my_cnn x gated [yours]"]
    assert mine["standing"] == "≈" and 0.05 <= mine["p_vs_best"] <= 1
    assert "Yours beside a reference: 5 runs of yours (marked [yours]) and 6 runs" in text
    assert "the reference's best, **gap_cnn x concat**," in text
    assert "Yours against the reference's best: gap_cnn x concat [yours]: 1.00% error, " in text
    assert "my_cnn x gated [yours]: 4.00% error, indistinguishable from it (p = 1.000)" in text
    assert (  # and says what sets it apart
        "1 group of yours is not in the main comparison, as it differs from the reference's "
        "protocol (see below): my_cnn x gated (epochs 2) [yours]." in text
    )
    assert "| my_cnn x gated [yours] | no | 3 | 4.00 ± " in text
    assert "nothing else differs. Rows marked [yours] are your runs, tested against the " in text
    other = summary[summary["section"] == "other"]
    assert list(other["label"]) == ["my_cnn x gated (epochs 2) [yours]"]
    assert "| my_cnn x gated [yours] | epochs 2 |" in text  # marked in that table too
    for name in ("forest", "pareto"):
        assert (tmp_path / "output" / "plots" / f"{name}.png").is_file()


def test_the_terminals_answer_says_where_your_groups_went(
    against: tuple[Path, str, pd.DataFrame],
) -> None:
    """report printed the reference's answer alone: where the user's groups stand, or why they
    are left out of the main comparison, was in report.md only."""
    from benchmark.report import answer_lead

    lead = answer_lead(against[1])
    assert (
        lead.startswith("At the main comparison's budget")
        and "the reference's best, gap_cnn" in lead
    )
    assert "Yours against the reference's best: gap_cnn x concat [yours]: 1.00% error, " in lead
    assert "1 group of yours is not in the main comparison, as it differs from the " in lead
    assert "protocol (see report.md): my_cnn x gated (epochs 2) [yours]." in lead


def test_a_damaged_reference_run_is_named_not_dropped_in_silence(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A reference run whose metrics.json was cut short left the reference one run short
    ("5 runs of the reference") with no word in the terminal, report.md or summary.csv."""
    reference = make_reference(tmp_path / "reference")
    cut = reference / "runs" / "ref-a2" / "metrics.json"
    cut.write_text(cut.read_text()[:100])
    (reference / "runs" / "NOTES.txt").write_text("a stray file is no run left out\n")
    yours = make_yours(tmp_path / "output")
    assert main(["report", "--results-dir", str(yours), "--against", str(reference)]) == 0
    said = "reference: left out ref-a2: corrupt metrics.json: "
    assert said in capsys.readouterr().out.replace("\n", " ")
    text = (yours / "report.md").read_text()
    notes = text.split("## Notes on the inputs\n\n")[1].split("\n\n")[0]
    assert notes.startswith(f"- {said}")
    assert "## Bench measurements" not in text  # a note is no bench row: not listed there
    assert "NOTES.txt" not in text


def test_against_marks_yours_in_the_forest_and_pareto_plots(tmp_path: Path) -> None:
    from benchmark.report import beside, load_inputs, summarize
    from benchmark.report.plots import forest_figure, pareto_figure
    from benchmark.report.reference import from_comparison

    reference, yours = make_reference(tmp_path / "ref"), make_yours(tmp_path / "out")
    theirs = load_inputs(str(reference / "runs" / "*"), str(reference / "none"))
    theirs.comparison = {"plan": PLAN}
    inputs = beside(load_inputs(str(yours / "runs" / "*"), str(yours / "none")), theirs)
    summary = summarize(inputs.runs, inputs.bench, from_comparison(theirs.comparison))
    forest = forest_figure(summary)
    labels = [t.get_text() for t in forest.axes[0].get_yticklabels()]
    assert "my_cnn x gated [yours]" in labels
    assert "yours (diamond)" in [t.get_text() for t in forest.legends[0].get_texts()]
    key = {h.get_label(): h for h in forest.legends[0].legend_handles}  # best: as it is drawn
    best = key["best (the larger marker, the dashed line)"].get_markersize()
    assert best > key["indistinguishable from the best (Welch, 5%)"].get_markersize()
    pareto = pareto_figure(summary)
    assert "yours (ringed)" in [t.get_text() for t in pareto.legends[0].get_texts()]


def test_a_users_fusion_keeps_one_marker_and_the_references_theirs_in_every_plot(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each plot chose its own markers: the Pareto plot the reference's fusions first and the
    user's after, the validation curves from the fusions they drew (here only the user's), so
    the user's gated was a triangle in one and the circle that is concat's in the other."""
    from conftest import one_pixel_png

    from benchmark.report import plots

    reference, yours = make_reference(tmp_path / "reference"), make_yours(tmp_path / "output")
    for seed in (3, 4, 5):  # curves of two epochs: a line, not a dot
        make_run(yours / "runs", f"my-curve-{seed}", arch="my_cnn", fusion="gated", seed=seed,
                 params=1500, config_hash="m0000000", val_curve=(0.9, 0.95))  # fmt: skip
    figures = {}
    monkeypatch.setattr(plots, "stamped", lambda found, stamp: figures.update(found) or {
        name: one_pixel_png(None) for name in found})  # fmt: skip
    assert main(["report", "--results-dir", str(yours), "--against", str(reference)]) == 0
    keys = figures["pareto"].legends[0].legend_handles
    pareto = {h.get_label(): h.get_marker() for h in keys if hasattr(h, "get_marker")}
    drawn = {line.get_label().split(",")[0]: line.get_marker()
             for ax in figures["val_curves"].axes for line in ax.get_lines()}  # fmt: skip
    assert drawn["gated"] == pareto["gated"] == "^", (drawn, pareto)
    assert pareto["concat"] == "o" and pareto["late_sum"] == "s"


def test_a_references_repeated_seed_is_left_out_and_noted(tmp_path: Path) -> None:
    from benchmark.report import beside, load_inputs

    reference, yours = make_reference(tmp_path / "ref"), make_yours(tmp_path / "out")
    make_run(reference / "runs", "ref-a1-again", seed=1, sum_acc=0.5, val_curve=(0.9,))
    theirs = load_inputs(str(reference / "runs" / "*"), str(reference / "none"))
    inputs = beside(load_inputs(str(yours / "runs" / "*"), str(yours / "none")), theirs)
    assert "ref-a1-again" not in set(inputs.runs["run"]) and inputs.repeats.empty  # yours: none
    assert "reference: 1 run repeating a seed its group already has, left out" in inputs.notes


@pytest.mark.usefixtures("undrawn")
def test_a_references_damaged_comparison_json_is_named(tmp_path: Path, capsys) -> None:
    """Its budget fell back to the one most default runs used, another answer, and the console
    said nothing: one line names the file and what is done instead."""
    reference, yours = make_reference(tmp_path / "ref"), make_yours(tmp_path / "out")
    (reference / "comparison.json").write_text('{"plan": ')
    assert main(["report", "--results-dir", str(yours), "--against", str(reference)]) == 0
    out = "".join("".join(capsys.readouterr()).split())  # the path may wrap anywhere
    said = f"reference:{reference / 'comparison.json'}:unreadable(notvalidJSON"
    assert said in out and "itsbudgetistakenfromitsrunsinstead" in out


@pytest.mark.usefixtures("undrawn")
def test_a_reference_without_comparison_json_sets_the_budget_by_its_own_runs(
    tmp_path: Path,
) -> None:
    """Its budget is the one most of *its* default runs used: the user's runs, counted with
    theirs, set the budget to 2 epochs and the user's run was called the reference's best."""
    reference = make_reference(tmp_path / "ref")
    (reference / "comparison.json").unlink()
    yours = tmp_path / "out"
    for seed in range(8):  # more default runs than the reference has, at another budget
        make_run(yours / "runs", f"my-{seed}", seed=seed, sum_acc=0.99)  # 2 epochs
    assert main(["report", "--results-dir", str(yours), "--against", str(reference)]) == 0
    text = (yours / "report.md").read_text()
    assert "Main comparison: 1 epoch" in text
    assert "[yours]**" not in text.split("## The answer", 1)[1].split("\n\n", 2)[1]


@pytest.mark.usefixtures("undrawn")
@pytest.mark.usefixtures("undrawn")  # reads tables, not figures
def test_timings_only_beside_the_same_kind_of_device(
    tmp_path: Path, against: tuple[Path, str, pd.DataFrame]
) -> None:
    text, summary = report_against(tmp_path, device="cuda: NVIDIA H200")
    mine = summary.set_index("label").loc["my_cnn x gated [yours]"]
    assert pd.isna(mine["train_seconds_mean"]) and pd.notna(mine["test_sum_err_mean"])
    theirs = summary.set_index("label").loc["gap_cnn x concat"]
    assert pd.notna(theirs["train_seconds_mean"])
    row = next(line for line in text.splitlines() if "my_cnn x gated [yours] |" in line)
    assert "| - | - |" in row  # train s, train img/s
    # the devices named are those of the rows shown timed: the reference's one machine
    assert "| timed on |" not in text and "Timings (cpu: Test CPU (2 threads)) are from" in text
    # the same kind of device: timings kept
    _, _, same = against
    assert pd.notna(same.set_index("label").loc["my_cnn x gated [yours]", "train_seconds_mean"])


@pytest.mark.usefixtures("undrawn")  # reads tables, not figures
def test_your_row_timed_elsewhere_reads_untimed_and_names_no_device(tmp_path: Path) -> None:
    """Your group timed on an H200 beside a reference timed on two CPUs: its time to the target
    reads "-" though every seed reached it, and the "timed on" column, there for the
    reference's two machines, leaves your untimed row blank."""
    reference = make_reference(tmp_path / "reference")
    yours = make_yours(tmp_path / "output", device="cuda: NVIDIA H200")
    for seed in range(3):  # 99.5% validation sum accuracy at the first epoch
        (yours / "runs" / f"my-{seed}" / "history.csv").write_text(
            "epoch,train_loss,train_sum_acc,val_digit_acc,val_sum_acc,val_joint_acc,lr,seconds\n"
            "1,0.1,0.9,0.9,0.995,0.9,0.001,10.0\n"
        )
    for run in (reference / "runs").glob("ref-b*"):
        found = json.loads((run / "metrics.json").read_text())
        (run / "metrics.json").write_text(json.dumps(found | {"cpu_features": "avx512"}))
    assert main(["report", "--results-dir", str(yours), "--against", str(reference)]) == 0
    text = (yours / "report.md").read_text()
    section = text[text.index("## Main comparison") : text.index("\n## ", text.index("## Main"))]
    header, _, *lines = [
        line[2:-2].split(" | ") for line in section.splitlines() if line[:1] == "|"
    ]
    rows = {row[1]: dict(zip(header, row, strict=True)) for row in lines}
    mine = rows["my_cnn x gated [yours]"]
    assert (mine["train s"], mine["s to 99% val"], mine["timed on"]) == ("-", "-", "")
    assert rows["gap_cnn x late_sum"]["timed on"] == "cpu: Test CPU (2 threads) with avx512"


@pytest.mark.usefixtures("undrawn")  # reads tables, not figures
@pytest.mark.parametrize(
    ("theirs", "kept"), [(None, True), ("avx2", True), ("avx512 bf16 amx", False)]
)
def test_timings_beside_a_cpu_of_the_same_name_and_features(
    theirs: str | None, kept: bool, tmp_path: Path
) -> None:
    """Your runs record their CPU's features (avx2); the reference's runs on a CPU of the same
    name either did not (older runs: the same machine, as far as can be told), or recorded the
    same features, or other ones (another CPU sold under that name: timings left out)."""
    reference = make_reference(tmp_path / "reference")
    yours = make_yours(tmp_path / "output")
    for root, features in ((yours, "avx2"), (reference, theirs)):
        for run in (root / "runs").iterdir():
            found = json.loads((run / "metrics.json").read_text())
            if features:
                (run / "metrics.json").write_text(json.dumps(found | {"cpu_features": features}))
    assert main(["report", "--results-dir", str(yours), "--against", str(reference)]) == 0
    summary = pd.read_csv(yours / "summary.csv").set_index("label")
    assert pd.notna(summary.loc["my_cnn x gated [yours]", "train_seconds_mean"]) == kept


def test_only_your_main_groups_timed_on_another_kind_of_device_lose_their_timings() -> None:
    """Every timing of such a group goes, time to target too; your groups outside the main
    comparison keep theirs, and with no reference group to set them beside, all of yours do."""
    from benchmark.report.aggregate import comparable_timings

    timings = {"train_seconds_mean": 10.0, "train_seconds_std": 1.0, "target_seconds": 20.0}
    timings |= {"train_images_per_s_mean": 100.0, "train_images_per_s_std": 5.0}
    summary = pd.DataFrame(
        [
            timings | {"section": section, "yours": yours, "timing_device": device}
            for section, yours, device in (
                ("main", False, "cpu: EPYC"),
                ("main", True, "cuda: NVIDIA H200"),
                ("main", True, "cpu: EPYC with avx2"),  # the reference's did not record features
                ("other", True, "cuda: NVIDIA H200"),
            )
        ]
    )
    kept = comparable_timings(summary)[list(timings)]
    assert kept.notna().all(axis=1).tolist() == [True, False, True, True]
    assert kept.loc[1].isna().all()
    assert comparable_timings(summary[1:]).equals(summary[1:])


def test_the_tuning_table_lists_the_references_combinations_before_yours() -> None:
    """The reference's pairs first, whatever their names, then yours."""
    from benchmark.report.aggregate import tuned_vs_default

    figures = {"fusion": "concat", "precision": "fp32", "test_sum_err_mean": 2.0, "n": 3}
    figures |= {"test_sum_err_ci": 0.1, "test_sum_acc_mean": 0.98, "test_sum_acc_std": 0.001}
    figures |= {"params": 1000, "same_as_default": False, "section": "main"}
    summary = pd.DataFrame(
        [
            figures
            | {"arch": arch, "yours": yours, "tuned": tuned, "config_hash": f"{arch}{tuned}"}
            for arch, yours in (("small_cnn", False), ("gap_cnn", True))
            for tuned in (False, True)
        ]
    )
    pairs = tuned_vs_default(summary)
    assert pairs[["arch", "yours"]].values.tolist() == [["small_cnn", False], ["gap_cnn", True]]


def test_against_the_results_directory_itself_is_a_usage_error(tmp_path: Path) -> None:
    reference = make_reference(tmp_path / "reference")
    assert main(["report", "--results-dir", str(reference), "--against", str(reference)]) == 2


def test_a_reference_with_no_complete_run_is_refused_in_one_line_writing_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A reference whose runs/ holds nothing finished has no best to test yours against: a
    report of yours alone under the --against heading would read as a comparison."""
    reference = tmp_path / "reference"
    (reference / "runs").mkdir(parents=True)
    (reference / "comparison.json").write_text(json.dumps({"plan": PLAN, "stages": {}}))
    yours = make_yours(tmp_path / "output")
    assert main(["report", "--results-dir", str(yours), "--against", str(reference)]) == 2
    said = one_line(capsys.readouterr().err)
    assert said.endswith(f"--against {reference}: no complete run in {reference / 'runs'}")
    assert not (yours / "report.md").exists() and not (yours / "summary.csv").exists()


@pytest.mark.usefixtures("undrawn")  # reads tables, not figures
def test_your_own_studies_do_not_make_the_reference_partial(tmp_path: Path) -> None:
    """The reference's protocol names its studies; the user's optuna.db holds only a study of
    their own (a tune of their plug-in): the report said the reference was partial, every one
    of its studies at "0 of 20 finished trials"."""
    import optuna

    reference = make_reference(tmp_path / "reference")
    plan = PLAN | {"studies": ["gap_cnn__concat__e1", "gap_cnn__late_sum__e1"]}
    (reference / "comparison.json").write_text(json.dumps({"plan": plan, "stages": {}}))
    yours = make_yours(tmp_path / "output")
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    study = optuna.create_study(
        study_name="my_cnn__gated__e1", storage=f"sqlite:///{yours / 'optuna.db'}"
    )
    study.add_trial(optuna.trial.create_trial(params={}, distributions={}, value=0.5))
    assert main(["report", "--results-dir", str(yours), "--against", str(reference)]) == 0
    text = (yours / "report.md").read_text()
    assert "my_cnn__gated__e1" in text  # the user's study, in its section
    assert "study gap_cnn__concat__e1 has" not in text  # (its synthetic runs are partial)
    assert "of 20 finished trials" not in text


@pytest.mark.usefixtures("undrawn")
def test_a_reference_group_its_study_left_at_the_default_is_named_so(tmp_path: Path) -> None:
    """The reference's own report names a tuned group whose study's best trial was its defaults
    trial the default; set beside yours, from the study digest that report left, it still is."""
    reference = make_reference(tmp_path / "reference")
    source = {"study": "gap_cnn__late_sum__e1", "trial": 0}
    plan = PLAN | {"studies": [source["study"]]}
    (reference / "comparison.json").write_text(json.dumps({"plan": plan, "stages": {}}))
    for seed, acc in enumerate((0.90, 0.91, 0.92)):
        run = make_run(reference / "runs", f"ref-t{seed}", fusion="late_sum", seed=seed,
                       sum_acc=acc, tuned=True, config_hash="t0000000",
                       val_curve=(0.9,))  # fmt: skip
        found = json.loads((run / "metrics.json").read_text())
        found["config"] |= {"model_args": {"head_dropout": 0.0}, "tuned_from": source}
        (run / "metrics.json").write_text(json.dumps(found))
    digest = {"name": source["study"], "epochs": 1, "finished": 20, "over_cap": 0,
              "best_value": 0.9, "best_trial": 0, "trained": 20, "unpruned": 20,
              "pruner": None, "files": [], "defaults_trial": 0}  # fmt: skip
    (reference / "studies").mkdir()
    (reference / "studies" / "digest.json").write_text(
        json.dumps({"stamp": "of another machine", "studies": [digest]})
    )
    yours = make_yours(tmp_path / "output")
    assert main(["report", "--results-dir", str(yours), "--against", str(reference)]) == 0
    summary = pd.read_csv(yours / "summary.csv").set_index("label")
    assert summary.loc["gap_cnn x late_sum (tuned)", "same_as_default"]
    assert not summary.loc["gap_cnn x late_sum", "same_as_default"]


def test_many_groups_of_yours_away_from_the_main_comparison_are_counted() -> None:
    """Past three named, the rest are counted: "; ...." ended the sentence in four dots."""
    import pandas as pd

    from benchmark.report.answer import yours_sentences

    labels = [f"gap_cnn x concat (epochs {e}) [yours]" for e in range(1, 6)]
    summary = pd.DataFrame({"label": labels, "yours": True, "section": "other"})
    (said,) = yours_sentences(summary)
    assert said.endswith("(epochs 3) [yours]; and 2 more.") and "...." not in said


def test_a_sentence_names_your_default_group_as_every_sentence_does() -> None:
    """Beside tuned groups, the answer said "gap_cnn x concat (default) [yours]" in one sentence
    and "gap_cnn x concat [yours]" in the next: one labelling for every sentence."""
    import pandas as pd

    from benchmark.report.answer import said

    rows = pd.DataFrame(
        {
            "arch": ["gap_cnn"] * 3,
            "fusion": ["concat"] * 3,
            "sizes": ["", "", ""],
            "tuned": [True, False, False],
            "section": ["main", "main", "other"],
            "differs": ["", "", "epochs 2"],
            "yours": [False, True, True],
            "precision": ["fp32"] * 3,
            "config_hash": ["a", "b", "c"],
            "label": ["gap_cnn x concat (tuned)", "gap_cnn x concat [yours]", "x"],
        }
    )
    assert list(said(rows)["label"]) == [
        "gap_cnn x concat (tuned)",
        "gap_cnn x concat (default) [yours]",
        "gap_cnn x concat (epochs 2) [yours]",
    ]
    assert said(rows.iloc[1:]).equals(rows.iloc[1:])  # no tuned group: nothing to tell apart


def test_beside_a_reference_the_studies_and_the_cost_say_whose_they_are() -> None:
    """Tuning studies listed yours alone and Cost of the protocol the reference's, neither
    saying so."""
    from benchmark.report.render import cost_section
    from benchmark.report.studies import StudyDigest, studies_section

    study = StudyDigest("gap_cnn__concat__e1__p1", 1, 2, 0, 0.9, 1, 2, 2, None, ())
    text = studies_section([study], "mine/optuna.db", yours=True)
    assert (
        "Yours, beside the reference (whose are in its own report): every tuning study in " in text
    )
    assert "\nEvery tuning study in `optuna.db`" in studies_section([study])
    plan = {
        "key": "k",
        "pairs": [["gap_cnn", "concat"]],
        "trials": 2,
        "max_params": 9,
        "seeds": [0],
    }
    found = {"plan": plan, "stages": {"tune": {"cpu": 60.0}}}
    assert "## Cost of the protocol (the reference's, in `results`)\n" in cost_section(
        found, against="results"
    )
    assert "## Cost of the protocol\n" in cost_section(found)


def test_the_best_is_the_references_even_where_yours_is_lower() -> None:
    """Your groups are tested against the reference's best: were the best one of yours, the
    reference's groups would be measured against your runs instead."""
    from benchmark.report.aggregate import best_key

    errors = {("ref", False): [2.0, 2.1, 1.9], ("mine", True): [1.0, 1.1, 0.9]}
    assert best_key(errors) == ("ref", False)
    assert best_key({("mine", True): [1.0, 1.1]}) == ("mine", True)  # none of theirs: yours


def test_against_written_into_the_reference_itself_is_refused_leaving_it_as_it_was(
    tmp_path: Path,
) -> None:
    """--out naming the reference replaced its own report.md and summary.csv with yours."""
    reference = make_reference(tmp_path / "reference")
    yours = make_yours(tmp_path / "output")
    (reference / "report.md").write_text("the reference's own report\n")

    def files() -> dict[str, bytes]:
        return {str(p): p.read_bytes() for p in sorted(reference.rglob("*")) if p.is_file()}

    before = files()
    argv = ["report", "--results-dir", str(yours), "--out", str(reference)]
    assert main([*argv, "--against", str(reference)]) == 2
    assert files() == before
