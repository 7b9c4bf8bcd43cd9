"""The report of a ladder of budgets (``benchmark.report.ladder``), on run directories written by
hand (``make_run``) and a comparison.json with rungs: nothing trains."""

from __future__ import annotations

import itertools
import json
import math
import shutil
from pathlib import Path
from types import SimpleNamespace

import optuna
import pandas as pd
import pytest
from conftest import leave_undrawn, level_bars, make_run

from benchmark import comparison
from benchmark.places import OPTUNA_DB as STORAGE
from benchmark.report import answer_lead, ladder_plots, load_inputs, write_report
from benchmark.report.equal_time import arithmetic_note
from benchmark.report.ladder import LADDER_PLOTS, Rung
from benchmark.report.stats import kendall
from benchmark.report.studies import StudyDigest, load_studies, studies_section

PAIRS = [("gap_cnn", "concat"), ("gap_cnn", "late_sum"), ("small_cnn", "concat")]
SEEDS = [0, 1, 2]
RUNGS = [1, 3, 9]
SECTIONS = [
    "## The answer across budgets",
    "## Ranks across budgets",
    "## Learning curves over budgets",
    "## Equal time",
    "## Tuned vs default per budget",
    "## Cost per budget",
]

# Test sum error % of each group (arch, fusion, tuned) at each rung, before a per-seed jitter:
# the 1-epoch winner (small_cnn x concat, tuned) falls to third at 9 epochs.
ERRORS = {
    ("gap_cnn", "concat", False): {1: 3.0, 3: 1.6, 9: 0.70},
    ("gap_cnn", "concat", True): {1: 2.0, 3: 1.2, 9: 0.50},
    ("gap_cnn", "late_sum", False): {1: 2.6, 3: 1.5, 9: 0.90},
    ("gap_cnn", "late_sum", True): {1: 1.8, 3: 1.0, 9: 0.60},
    ("small_cnn", "concat", False): {1: 2.2, 3: 1.4, 9: 1.10},
    ("small_cnn", "concat", True): {1: 1.2, 3: 1.1, 9: 0.80},
}


def plan(epochs: int) -> dict:
    """A ``compare`` plan of one rung, as ``Plan.to_dict`` writes it."""
    return {
        "key": f"key{epochs:04d}",
        "pairs": [list(p) for p in PAIRS],
        "seeds": SEEDS,
        "trials": 2,
        "max_params": 10_000,
        "budget": {"epochs": epochs, "train_subset": None, "holdout_pairs": 0},
        "fixed": {},
        "studies": [study(a, f, epochs) for a, f in PAIRS],
    }


def study(arch: str, fusion: str, epochs: int) -> str:
    return f"{arch}__{fusion}__e{epochs}__p10000"


def ladder_run(runs: Path, arch: str, fusion: str, tuned: bool, epochs: int, seed: int) -> Path:
    """A complete final run of the protocol at rung ``epochs`` (a tuned one names its study)."""
    error = ERRORS[(arch, fusion, tuned)][epochs] + 0.02 * (seed - 1)
    name = f"{arch}-{fusion}-{'t' if tuned else 'd'}-e{epochs}-s{seed}"
    run_dir = make_run(
        runs,
        name,
        arch=arch,
        fusion=fusion,
        seed=seed,
        sum_acc=1 - error / 100,
        tuned=tuned,
        config_hash=f"{'t' if tuned else 'd'}{epochs:07d}",
        val_curve=tuple(0.9 for _ in range(epochs)),
    )
    path = run_dir / "metrics.json"
    metrics = json.loads(path.read_text())
    metrics["train_seconds"] = 10.0 * epochs * (2 if arch == "small_cnn" else 1) + seed
    if tuned:
        metrics["config"]["tuned_from"] = {
            "study": study(arch, fusion, epochs),
            "budget": {"epochs": epochs, "train_subset": None},
        }
    path.write_text(json.dumps(metrics))
    return run_dir


def write_ladder(results: Path, rungs: list[int] = RUNGS, skip: int = 0) -> Path:
    """Every final run of every rung (the last ``skip`` of the top rung left out) and the
    comparison.json ``compare --epochs`` writes."""
    runs = results / "runs"
    items = list(itertools.product(RUNGS, PAIRS, (False, True), SEEDS))
    items = [i for i in items if i[0] in rungs]
    for epochs, (arch, fusion), tuned, seed in items[: len(items) - skip]:
        ladder_run(runs, arch, fusion, tuned, epochs, seed)
    entries = {
        str(e): {"plan": plan(e), "stages": {"tune": {"cpu": 60.0 * e}, "runs": {"cpu": 30.0 * e}}}
        for e in rungs
    }
    found = {**entries[str(rungs[-1])]}
    if len(rungs) > 1:
        found["rungs"] = entries
    (results / comparison.COMPARISON).write_text(json.dumps(found))
    return results


def report(results: Path, out: Path | None = None) -> str:
    inputs = load_inputs(str(results / "runs" / "*"), str(results / "bench" / "*.csv"), results)
    write_report(inputs, out or results)
    return ((out or results) / "report.md").read_text()


@pytest.fixture(scope="module")
def ladder(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """The full ladder (``write_ladder``) and its report, written once for the tests that read
    it; a test that writes into it again must leave it as it was (or copy it). Its figures are
    left undrawn (``leave_undrawn``): what they look like is the drawing tests'."""
    results = write_ladder(tmp_path_factory.mktemp("ladder"))
    with pytest.MonkeyPatch.context() as patch:
        leave_undrawn(patch)
        return results, report(results)


def test_a_ladder_report_answers_at_every_budget(ladder: tuple[Path, str]) -> None:
    tmp_path, text = ladder
    at = [text.index(section) for section in SECTIONS]
    assert at == sorted(at)
    assert text.index("## The answer\n") < at[0] < text.index("## Main comparison")
    assert "partial protocol" not in text
    assert "9 epochs" in text.split("## Main comparison")[0]  # the answer is the top rung's
    assert "not complete yet" not in text and "*The answer* above is the top rung's" in text
    answer = text[at[0] : at[1]]
    # the 1-epoch winner is fourth of six at 9 epochs, worse than the best there
    assert "At 1 epoch **small_cnn x concat (tuned)** is best: 1.20% (95% CI 1.15-1.25)" in answer
    assert "rank 4 of 6; worse than the best there, gap_cnn x concat (tuned)" in answer
    for name in LADDER_PLOTS:
        png = tmp_path / "plots" / f"{name}.png"
        assert png.read_bytes().startswith(b"\x89PNG")
        assert f"](plots/{name}.png)" in text
    ranks = text[at[1] : at[2]]
    assert (
        "| gap_cnn x concat | yes | 2.00 ± 0.05 (#3) | 1.20 ± 0.05 (#3) | 0.50 ± 0.05 (#1) |"
        in ranks
    )
    equal_time = text[at[3] : at[4]]
    head, *front = [line for line in equal_time.splitlines() if line.startswith("| ")]
    assert head == "| from s of training (per run) | combination | epochs | sum error % (95% CI) |"
    assert front == [  # seconds per run: 10 x epochs (x2 for small_cnn) + the mean seed
        "| 11.0 | gap_cnn x late_sum (tuned) | 1 | 1.80 ± 0.05 |",
        "| 21.0 | small_cnn x concat (tuned) | 1 | 1.20 ± 0.05 |",
        "| 31.0 | gap_cnn x late_sum (tuned) | 3 | 1.00 ± 0.05 |",
        "| 91.0 | gap_cnn x concat (tuned) | 9 | 0.50 ± 0.05 |",
    ]
    cost = text[at[5] :]  # wall times as the cost of the protocol gives them: under a minute in s
    assert (
        "| 1 epoch | runs | cpu | 30.0 s |" in cost
        and "| 9 epochs | tune | cpu | 9.0 min |" in cost
    )
    tuning = text[at[4] : at[5]]
    assert "The mean effect of tuning: -0.93 at 1 epoch, -0.40 at 3 epochs, -0.27 at 9" in tuning
    assert "| mean tuned - default (points) | lowest tuned - default (points) |" in tuning
    assert (  # the protocol's cost (its plan, its sittings) is the top rung's: titled so
        "## Cost of the protocol at the top rung\n\nEvery rung's cost is under *Cost per budget* "
        "above; the top rung's `compare` protocol key0009: 3 combinations" in text
    )
    assert report(tmp_path) == text  # byte-identical when run again


@pytest.mark.usefixtures("undrawn")
def test_a_one_rung_protocol_states_its_cost_as_the_protocols(tmp_path: Path) -> None:
    text = report(write_ladder(tmp_path, rungs=[9]))
    assert "## Cost of the protocol\n\n`compare` protocol key0009: 3 combinations" in text


@pytest.mark.usefixtures("undrawn")
def test_a_ladder_with_one_rung_readable_points_to_no_cost_per_budget(tmp_path: Path) -> None:
    """The top rung's cost pointed to *Cost per budget* whenever comparison.json listed rungs,
    though a ladder of one readable rung has no such section."""
    results = write_ladder(tmp_path, rungs=[3, 9])
    found = json.loads((results / comparison.COMPARISON).read_text())
    del found["rungs"]["3"]["plan"]["budget"]  # no budget: no rung
    (results / comparison.COMPARISON).write_text(json.dumps(found))
    text = report(results)
    assert "## Cost per budget" not in text and "*Cost per budget*" not in text
    assert "## Cost of the protocol\n\n`compare` protocol key0009: 3 combinations" in text


@pytest.mark.parametrize("seconds, said", [(0.04, "<0.1 s"), (0.05, "0.1 s"), (59.9, "59.9 s"),
                                           (60, "1.0 min"), (13_800, "230.0 min")])  # fmt: skip
def test_a_stages_wall_time_is_never_none(seconds: float, said: str) -> None:
    """A tiny stage's "0.0 s" read as no time at all."""
    from benchmark.report.render import stage_time

    assert stage_time(seconds) == said


def test_a_sentence_names_a_ladders_default_group_so() -> None:
    """The lines under *The answer across budgets* name groups as tuned or default (a bare
    "gap_cnn x concat" beside "gap_cnn x concat (tuned)" left the reader to guess)."""
    from types import SimpleNamespace

    from benchmark.report.ladder_plots import named

    group = SimpleNamespace(arch="gap_cnn", fusion="concat", tuned=False, same_as_default=False)
    assert named(group) == "gap_cnn x concat (default)"
    assert named(SimpleNamespace(**{**vars(group), "tuned": True})) == "gap_cnn x concat (tuned)"


def test_equal_time_says_how_far_a_groups_own_runs_differed_in_seconds(
    ladder: tuple[Path, str],
) -> None:
    """Identical runs took up to twice as long as each other on a shared VM: the section says
    by how much its groups' runs differed, so a front of close seconds is not read as exact."""
    import statistics

    _, text = ladder
    # seconds 10 x epochs (x2 for small_cnn) + seed over seeds 0-2: std 1 about that mean + 1
    spreads = [
        1 / (10 * epochs * (2 if arch == "small_cnn" else 1) + 1)
        for arch, _, _ in ERRORS
        for epochs in RUNGS
    ]
    said = f"a median {statistics.median(spreads):.0%} of their mean, up to {max(spreads):.0%},"
    section = text[text.index("## Equal time") :].split("\n## ")[0]
    assert f"A group's own runs differed in seconds too: their standard deviation was {said}" in (
        section
    )


def hand_tau(x: list[float], y: list[float]) -> float:
    """Kendall's tau without ties: (concordant - discordant) pairs over all pairs."""
    pairs = list(itertools.combinations(range(len(x)), 2))
    sign = [(x[i] - x[j]) * (y[i] - y[j]) for i, j in pairs]
    return (sum(s > 0 for s in sign) - sum(s < 0 for s in sign)) / len(pairs)


def test_kendall_tau_against_a_hand_count(ladder: tuple[Path, str]) -> None:
    x, y = [1.0, 2.0, 3.0, 4.0, 5.0], [2.0, 1.0, 4.0, 3.0, 5.0]
    assert kendall(x, y)[0] == pytest.approx(hand_tau(x, y)) == pytest.approx(0.6)
    assert kendall(x, x[::-1])[0] == pytest.approx(-1.0)
    _, text = ladder
    keys = sorted(ERRORS)
    for low in (1, 3):
        tau = hand_tau([ERRORS[k][low] for k in keys], [ERRORS[k][9] for k in keys])
        p = kendall([ERRORS[k][low] for k in keys], [ERRORS[k][9] for k in keys])[1]
        line = f"| {low} epoch{'s' if low > 1 else ''} | 6 | {tau:.3f} | {p:.3f} |"
        assert line in text
        assert f"ranking against the 9-epoch one: {tau:.2f}" in text


def test_kendall_of_a_single_group_is_untested_without_a_warning() -> None:
    """A rung of one group ranks nothing: NaN, said quietly rather than by scipy's warning on
    the report's terminal."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        tau, p = kendall([1.0], [2.0])
    assert math.isnan(tau) and math.isnan(p)


@pytest.mark.usefixtures("undrawn")
def test_a_partial_ladder_says_so_near_the_answer(tmp_path: Path) -> None:
    """A ladder under way keeps the answer of its highest complete rung, and says so."""
    text = report(write_ladder(tmp_path, skip=2))
    answer = text[text.index("## The answer\n") : text.index("## The answer across budgets")]
    assert answer.startswith(
        "## The answer\n\nThe ladder's top rung (9 epochs) is not complete yet (16 of its 18 "
        "final runs complete), so this is the answer at 3 epochs, its highest complete rung. At "
        "the main comparison's budget (3 epochs on the full training split"
    )
    assert "**gap_cnn x late_sum (tuned)** has the lowest test sum error: 1.00%" in answer
    lead = answer_lead(text)  # what report and compare print: the note, then the winner
    assert lead.startswith("The ladder's top rung (9 epochs) is not complete yet (16 of its 18 ")
    assert "gap_cnn x late_sum (tuned) has the lowest test sum error: 1.00%" in lead
    assert lead.endswith(" of training.") and "Welch" not in lead  # that sentence, no more
    assert "**" not in lead and "\n" not in lead
    assert "- Main comparison: 3 epochs on the full training split" in text
    assert "*The answer* above is the 3-epoch rung's, until the top rung (9 epochs) is" in text
    warning = text.index("**This is a partial protocol.**")
    assert text.index("## The answer across budgets") < warning < text.index("`compare` ran the")
    assert text.index("`compare` ran the") < text.index("- At 1 epoch")  # the ':' leads in
    assert "- 9 epochs: 16 of 18 final runs complete; missing: small_cnn x concat tuned " in text
    assert "seed 1; small_cnn x concat tuned seed 2" in text
    assert "- 1 epoch:" not in text


@pytest.mark.usefixtures("undrawn")
def test_runs_chosen_by_a_glob_are_a_ladder_of_their_combinations(ladder: tuple[Path, str]) -> None:
    """``report --runs 'results/runs/*concat*'`` (docs/protocol.md) called the committed ladder
    partial, told the user to run ``compare`` again, and named the other fusions' runs missing.
    The runs chosen are a ladder of their own combinations; one of theirs left out is named,
    with no call to run ``compare``."""
    results, _ = ladder
    out = results.parent / "chosen"
    glob = str(results / "runs" / "*-concat-*")
    inputs = load_inputs(glob, str(results / "bench" / "*.csv"), results, out, chosen=True)
    write_report(inputs, out)
    text = (out / "report.md").read_text()
    assert "partial protocol" not in text and "late_sum" not in text.split("## Main")[0]
    assert "rank 3 of 4;" in text and "(p 1.000, 4 groups)" in text  # 2 combinations, 2 each
    fewer = [
        str(d) for d in sorted(Path(results / "runs").glob("*-concat-*")) if "t-e9-s2" not in d.name
    ]
    inputs = load_inputs(fewer, str(results / "bench" / "*.csv"), results, out, chosen=True)
    write_report(inputs, out)
    text = (out / "report.md").read_text()
    assert "**These runs are a partial protocol.**" in text and "run `compare`" not in text
    assert "- 9 epochs: 10 of 12 final runs complete; missing: " in text
    assert "gap_cnn x concat tuned seed 2; small_cnn x concat tuned seed 2" in text


@pytest.mark.usefixtures("undrawn")
def test_a_partial_single_rung_protocol_says_so(tmp_path: Path) -> None:
    text = report(write_ladder(tmp_path, rungs=[3], skip=1))
    assert "## Partial protocol\n\n**This is a partial protocol.**" in text
    assert "17 of 18 final runs complete; missing: small_cnn x concat tuned seed 2" in text


@pytest.mark.usefixtures("undrawn")
def test_one_rung_gives_the_report_of_no_ladder(tmp_path: Path) -> None:
    """A ladder of one rung is the one-rung protocol: the same report, no ladder section."""
    plain = report(write_ladder(tmp_path / "plain", rungs=[3]))
    # the same runs and outputs (its plots, which the second report keeps if it would draw them
    # alike), comparison.json a ladder of that one rung
    single = Path(shutil.copytree(tmp_path / "plain", tmp_path / "single"))
    found = json.loads((single / comparison.COMPARISON).read_text())
    found["rungs"] = {"3": {"plan": found["plan"], "stages": found["stages"]}}
    (single / comparison.COMPARISON).write_text(json.dumps(found))
    assert report(single) == plain
    assert not any(section in plain for section in SECTIONS)
    assert "partial" not in plain
    assert not list((single / "plots").glob("ladder_*.png"))


def test_a_ladder_report_removes_its_plots_once_there_is_no_ladder(
    ladder: tuple[Path, str], tmp_path: Path
) -> None:
    tmp_path = Path(shutil.copytree(ladder[0], tmp_path / "results"))  # the ladder, reported
    assert len(list((tmp_path / "plots").glob("ladder_*.png"))) == 3
    found = json.loads((tmp_path / comparison.COMPARISON).read_text())
    del found["rungs"]
    (tmp_path / comparison.COMPARISON).write_text(json.dumps(found))
    report(tmp_path)
    assert not list((tmp_path / "plots").glob("ladder_*.png"))


@pytest.mark.usefixtures("undrawn")
def test_ladder_plots_drawn_from_the_same_rungs_are_read_back(
    ladder: tuple[Path, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Drawing is most of a report's time: the ladder's plots are drawn again only when what
    they show changed (here: one run's error at 9 epochs)."""
    results = Path(shutil.copytree(ladder[0], tmp_path / "results"))
    drawn = {p.name: p.read_bytes() for p in (results / "plots").glob("ladder_*.png")}
    draws = []
    plot_ranks = ladder_plots.plot_ranks
    monkeypatch.setattr(ladder_plots, "plot_ranks", lambda *a: draws.append(1) or plot_ranks(*a))
    assert report(results) == ladder[1] and draws == []
    assert {p.name: p.read_bytes() for p in (results / "plots").glob("ladder_*.png")} == drawn
    path = results / "runs" / "gap_cnn-concat-t-e9-s0" / "metrics.json"
    metrics = json.loads(path.read_text())
    metrics["test"]["sum_acc"] -= 0.001
    path.write_text(json.dumps(metrics))
    report(results)
    assert (
        draws == [1]
        and (results / "plots" / "ladder_ranks.png").read_bytes() != drawn["ladder_ranks.png"]
    )


def make_study(
    storage: optuna.storages.BaseStorage, name: str, epochs: int, reached: list[int]
) -> optuna.Study:
    """A study of ``epochs`` whose trials reported up to the epochs in ``reached`` (a trial
    short of ``epochs`` was pruned), plus one rejected by the parameter cap. ``storage``: one
    object for all of a test's studies (opening the file again costs 40-90 ms each time)."""
    found = optuna.create_study(study_name=name, storage=storage, direction="maximize")
    found.set_user_attr("budget", {"epochs": epochs})
    lr = optuna.distributions.FloatDistribution(1e-4, 1e-1, log=True)
    for i, last in enumerate(reached):
        found.add_trial(
            optuna.trial.create_trial(
                state=(
                    optuna.trial.TrialState.COMPLETE
                    if last == epochs
                    else optuna.trial.TrialState.PRUNED
                ),
                value=0.9 + 0.01 * i if last == epochs else None,
                params={"lr": 1e-3 * (i + 1)},
                distributions={"lr": lr},
                intermediate_values={e: 0.8 + 0.01 * e for e in range(1, last + 1)},
            )
        )
    found.add_trial(
        optuna.trial.create_trial(
            state=optuna.trial.TrialState.COMPLETE,
            value=0.0,
            params={"lr": 0.05},
            distributions={"lr": lr},
            user_attrs={"over_cap": True},
        )
    )
    return found


def test_the_studies_section_measures_the_saving_of_pruning(tmp_path: Path) -> None:
    storage = optuna.storages.RDBStorage(f"sqlite:///{tmp_path / STORAGE}")
    make_study(storage, "gap_cnn__concat__e9__p10000", 9, [9, 1, 3, 9])
    make_study(storage, "gap_cnn__concat__e1__p10000", 1, [1, 1])
    studies = load_studies(tmp_path)
    assert studies.notes == []
    spent = {s.name: (s.trained, s.unpruned) for s in studies.digests}
    assert spent == {"gap_cnn__concat__e1__p10000": (2, 2), "gap_cnn__concat__e9__p10000": (22, 36)}
    text = studies_section(studies.digests)
    assert "| epochs trained / trials x E |" in text
    assert "| 22 / 36 (61%) |" in text
    one_epoch = studies_section([s for s in studies.digests if "__e1__" in s.name])
    assert "epochs trained" not in one_epoch  # nothing to prune at one epoch: as ever
    assert "Pruning, as the studies recorded it" not in text  # these recorded no rule


def test_the_studies_section_counts_the_trials_a_best_could_come_from(tmp_path: Path) -> None:
    """A pruned study's best is drawn only from the trials that trained to the end (at 9 epochs
    the committed studies had 1-5 of 20): the table says how many, and a failed trial (a killed
    worker's), which counts towards nothing, is still named."""
    storage = optuna.storages.RDBStorage(f"sqlite:///{tmp_path / STORAGE}")
    study = make_study(storage, "gap_cnn__concat__e9__p10000", 9, [9, 1, 3, 9, 2])
    study.add_trial(optuna.trial.create_trial(state=optuna.trial.TrialState.FAIL))
    (digest,) = load_studies(tmp_path).digests
    assert (digest.finished, digest.complete, digest.failed) == (5, 2, 1)  # over the cap: not
    text = studies_section([digest])
    assert "| trained to the end |" in text and "*Trained to the end*" in text
    row = "| gap_cnn__concat__e9__p10000 | 5 (and 1 failed) | 1 | 93.00 | 3 | 2 | 24 / 45 (53%) |"
    assert row in text  # 5 finished: 2 to the end, 3 pruned; the best of the 2 (trial 3)


def test_the_studies_section_names_the_rule_each_budget_was_pruned_by(tmp_path: Path) -> None:
    """What each study recorded when it started, so a reader sees which budgets were capped."""
    rules = {3: "halving, defaults ranked", 9: "halving, defaults ranked, at most 40% of unpruned"}
    storage = optuna.storages.RDBStorage(f"sqlite:///{tmp_path / STORAGE}")
    for arch, epochs in [("gap_cnn", 3), ("small_cnn", 3), ("gap_cnn", 9)]:
        study = make_study(storage, f"{arch}__concat__e{epochs}__p10000", epochs, [epochs, 1])
        study.set_user_attr("pruner", rules[epochs])
    text = studies_section(load_studies(tmp_path).digests)
    assert (
        " Pruning, as the studies recorded it: `halving, defaults ranked` at 3 epochs; "
        "`halving, defaults ranked, at most 40% of unpruned` at 9 epochs. *halving*: "
        "successive halving, at 1, 3, 9, ... epochs a third of the trials that reached the "
        "epoch go on, the others stop; *defaults ranked*: the defaults trial, never stopped, "
        "counts in that ranking." in text
    )
    median = make_study(storage, "tiny_resnet__concat__e3__p10000", 3, [3, 1])
    median.set_user_attr("pruner", "median")  # tune's: no words of the ladder's to explain
    said = studies_section(load_studies(tmp_path).digests)
    assert "`median` at 3 epochs" in said and said.count("*halving*") == 1
    (tmp_path / "tune").mkdir()
    storage = optuna.storages.RDBStorage(f"sqlite:///{tmp_path / 'tune' / STORAGE}")
    alone = make_study(storage, "gap_cnn__concat__e3__p10000", 3, [3, 1])
    alone.set_user_attr("pruner", "halving")  # tune --pruner halving: nothing ranked
    said = studies_section(load_studies(tmp_path / "tune").digests)
    assert "the others stop." in said and "defaults ranked" not in said


def test_equal_time_says_when_the_rungs_trained_in_different_arithmetic() -> None:
    """Seconds in bf16 and in fp32 are not the same cost: the section names each rung's."""
    points = pd.DataFrame({"rung": [1, 1, 3, 9], "precision": ["fp32", "fp32", "bf16", "bf16"]})
    assert arithmetic_note(points) == (
        " The rungs trained in different arithmetic (1 epoch: fp32; 3 epochs: bf16; 9 epochs: "
        "bf16), each as its protocol chose: part of a difference in seconds between them is the "
        "arithmetic, not the budget."
    )
    assert arithmetic_note(points.assign(precision="bf16")) == ""


def test_equal_time_names_every_arithmetic_of_a_rung_that_trained_in_several() -> None:
    """A rung whose groups trained in bf16 and in fp32 says both, not the first of them."""
    points = pd.DataFrame({"rung": [1, 1, 3], "precision": ["fp32", "bf16", "bf16"]})
    assert arithmetic_note(points).startswith(
        " The rungs trained in different arithmetic (1 epoch: bf16/fp32; 3 epochs: bf16),"
    )


def test_the_answer_reuses_the_summary_of_the_rung_it_is_given_at(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Summarising is most of a report's time after drawing: the top rung's groups are the
    answer's, summarised once; a partial ladder answers at a lower rung's, also summarised."""
    import benchmark.report as report_module
    from benchmark.report import ladder

    calls = []
    summarize = ladder.summarize

    def counting(*args: object) -> pd.DataFrame:
        calls.append(1)
        return summarize(*args)

    monkeypatch.setattr(ladder, "summarize", counting)
    monkeypatch.setattr(report_module, "summarize", counting)
    for results, answered_at in [(write_ladder(tmp_path / "full"), 9), (tmp_path / "part", 3)]:
        if answered_at == 3:
            write_ladder(results, skip=2)
        inputs = load_inputs(str(results / "runs" / "*"), str(results / "x.csv"), results)
        calls.clear()
        rungs = ladder.build_rungs(inputs)
        ref, summary = report_module.answering(inputs, rungs)
        assert len(calls) == len(RUNGS) and ref.base["epochs"] == answered_at
        assert summary is next(r.summary for r in rungs if r.epochs == answered_at)


@pytest.mark.parametrize("groups", [2, 18])
def test_the_bump_charts_key_never_covers_the_rungs_names(groups: int) -> None:
    """Anchored to the axes, the key sat on the tick labels of a short chart (few groups)."""
    combos = list(itertools.product(["gap_cnn", "small_cnn", "tiny_resnet"], ["concat"], [0, 1]))
    rows = [dict(arch=a, fusion=f, tuned=bool(t)) for a, f, t in combos * 3][:groups]
    rungs = [(e, pd.DataFrame(rows).assign(rank=range(1, groups + 1))) for e in (1, 3)]
    fig = ladder_plots.plot_ranks(rungs)
    renderer = fig.canvas.get_renderer()
    fig.draw(renderer)  # lays it out
    (ax,) = fig.axes
    key = (fig.legends or [ax.get_legend()])[0].get_window_extent(renderer)
    labels = [t for t in ax.get_xticklabels() if t.get_text()]
    assert len(labels) == 2  # the two rungs' names
    for label in labels:
        assert not key.overlaps(label.get_window_extent(renderer)), label.get_text()


@pytest.mark.parametrize("tie", ["twin", "three"])
def test_the_bump_charts_names_lie_inside_its_frame(tie: str) -> None:
    """A long joint name ("tiny_resnet x embed_add (default and tuned = default)") ran over
    the frame's right edge, the frame's line through its words: the axis holds it. A three-way
    tie's name (95 characters each side) is wrapped to fit, and the rungs stay in view."""
    if tie == "twin":
        rows = [dict(arch="tiny_resnet", fusion="embed_add", tuned=t, rank=1, same_as_default=t)
                for t in (False, True)]  # fmt: skip
    else:
        rows = [dict(arch=a, fusion="embed_add", tuned=True, rank=1, same_as_default=False)
                for a in ("tiny_resnet", "small_cnn", "gap_cnn")]  # fmt: skip
    rows += [dict(arch="gap_cnn", fusion=f, tuned=True, rank=r, same_as_default=False)
             for f, r in (("concat", 2), ("late_sum", 3))]  # fmt: skip
    fig = ladder_plots.plot_ranks([(e, pd.DataFrame(rows)) for e in (1, 3, 9)])
    renderer = fig.canvas.get_renderer()
    fig.draw(renderer)
    (ax,) = fig.axes
    frame = ax.get_window_extent(renderer)
    names = [t for t in ax.texts if " x " in t.get_text()]
    long = "(default and tuned = default)" if tie == "twin" else " / "
    assert any(long in " ".join(t.get_text().split()) for t in names)
    for name in names:
        box = name.get_window_extent(renderer)
        assert frame.x0 <= box.x0 and box.x1 <= frame.x1, name.get_text()
    low, high = ax.get_xlim()
    assert -3 < low < 0 and 2 < high < 5  # the rungs (0-2) still take most of the width


def test_equal_time_axes_of_a_narrow_spread_have_distinct_ticks() -> None:
    """Errors of 89-90% at 0.9-1.1 s (a tiny ladder): both log axes span a 1-2-5 tick, the
    error axis ends at 100%, and no tick label is repeated."""
    rows = [(1, "gap_cnn", 0.9, 90.0), (2, "small_cnn", 1.1, 89.0)]
    columns = ["rung", "arch", "train_seconds_mean", "test_sum_err_mean"]
    points = pd.DataFrame(rows, columns=columns).assign(
        fusion="concat", tuned=False, test_sum_err_ci=0.2, front=True, train_seconds_std=0.05
    )
    fig = ladder_plots.plot_time(points, "cpu: test")
    fig.canvas.draw()
    (ax,) = fig.axes
    assert ax.get_ylim()[1] <= 100
    for axis, (low, high), xy in ((ax.xaxis, ax.get_xlim(), 0), (ax.yaxis, ax.get_ylim(), 1)):
        labels = axis.get_ticklabels()
        shown = [t.get_text() for t in labels if low <= t.get_position()[xy] <= high]
        assert shown and len(set(shown)) == len(shown), shown


def test_equal_time_draws_each_groups_spread_in_seconds_as_a_level_bar() -> None:
    """The seconds were drawn as exact, though one group's runs took 105-263 s on the shared VM:
    each point has a level bar of +- the standard deviation of its runs' seconds, none for one
    seed, its lower end kept above zero on the log axis, and the axis holds every bar."""
    rows = [(1, "gap_cnn", 10.0, 2.0, 15.0), (3, "small_cnn", 30.0, 1.0, math.nan)]
    rows.append((9, "gap_cnn", 90.0, 0.5, 30.0))
    columns = ["rung", "arch", "train_seconds_mean", "test_sum_err_mean", "train_seconds_std"]
    points = pd.DataFrame(rows, columns=columns).assign(
        fusion="concat", tuned=True, test_sum_err_ci=0.1, front=True
    )
    fig = ladder_plots.plot_time(points, "cpu: test")
    (ax,) = fig.axes
    assert level_bars(ax) == [(1.0, 25.0), (60.0, 120.0)]
    low, high = ax.get_xlim()
    assert low < 1.0 and 120.0 < high


@pytest.mark.parametrize(
    ("away", "said"),
    [(1, "1 group timed on other devices is"), (2, "2 groups timed on other devices are")],
)
def test_equal_time_counts_the_groups_timed_elsewhere_in_words(away: int, said: str) -> None:
    from benchmark.report.equal_time import time_section

    points = pd.DataFrame(
        [(1, "gap_cnn", 10.0, 1.0)],
        columns=["rung", "arch", "train_seconds_mean", "test_sum_err_mean"],
    ).assign(fusion="concat", tuned=False, test_sum_err_ci=0.1, front=True, precision="fp32",
             images=55_000, n=1, train_seconds_std=float("nan"))  # fmt: skip
    assert f" {said} left out." in time_section(points, "cpu: test", away)
    assert "other devices" not in time_section(points, "cpu: test", 0)


def test_equal_time_names_the_device_that_timed_its_groups() -> None:
    """Seconds are a cost on one machine: the section says which."""
    from benchmark.report.equal_time import time_section

    points = pd.DataFrame(
        [(1, "gap_cnn", 10.0, 1.0)],
        columns=["rung", "arch", "train_seconds_mean", "test_sum_err_mean"],
    ).assign(fusion="concat", tuned=False, test_sum_err_ci=0.1, front=True, precision="fp32",
             images=55_000, n=1, train_seconds_std=float("nan"))  # fmt: skip
    assert "for every group at every rung, all timed on cuda: NVIDIA H100." in time_section(
        points, "cuda: NVIDIA H100", 0
    )


def kept_the_default(results: Path, epochs: int) -> None:
    """Make the tuned small_cnn x concat of rung ``epochs`` what a study that kept the default
    gives: the default's configuration, so its very runs' test errors."""
    for seed in SEEDS:
        path = results / "runs" / f"small_cnn-concat-t-e{epochs}-s{seed}" / "metrics.json"
        run = path.parent.name.replace("-t-", "-d-")
        test = json.loads((path.parents[1] / run / "metrics.json").read_text())["test"]
        found = json.loads(path.read_text()) | {"config_hash": f"d{epochs:07d}", "test": test}
        path.write_text(json.dumps(found))


@pytest.mark.usefixtures("undrawn")
def test_a_winner_whose_top_study_kept_the_default_is_not_tested_against_it(
    tmp_path: Path,
) -> None:
    """The 1-epoch winner, tuned, whose 9-epoch study kept the default, the best there: it read
    "not distinguishable from the best there, ... (default) (Welch's p 1.000)"."""
    results = write_ladder(tmp_path, rungs=[1, 9])
    for seed in SEEDS:
        path = results / "runs" / f"small_cnn-concat-d-e9-s{seed}" / "metrics.json"
        found = json.loads(path.read_text())
        found["test"]["sum_acc"] = 0.997 - seed / 10_000
        path.write_text(json.dumps(found))
    kept_the_default(results, 9)
    line = next(x for x in report(results).splitlines() if x.startswith("- At 1 epoch"))
    assert line.endswith(
        "there its study kept the default, so it is the best's configuration, small_cnn x "
        "concat (default): still the winner."
    ), line
    assert "Welch" not in line


@pytest.mark.usefixtures("undrawn")
def test_a_group_that_repeats_its_default_at_both_rungs_counts_once_in_tau(
    tmp_path: Path,
) -> None:
    """Its very runs twice would add a tie to both rankings and a group to the test's count."""
    results = write_ladder(tmp_path, rungs=[1, 9])
    for epochs in (1, 9):
        kept_the_default(results, epochs)
    text = report(results)
    keys = sorted(k for k in ERRORS if k != ("small_cnn", "concat", True))
    x, y = [ERRORS[k][1] for k in keys], [ERRORS[k][9] for k in keys]
    tau, p = hand_tau(x, y), kendall(x, y)[1]
    assert f"| 1 epoch | 5 | {tau:.3f} | {p:.3f} |" in text
    assert f"ranking against the 9-epoch one: {tau:.2f} (p {p:.3f}, 5 groups)" in text


@pytest.mark.usefixtures("undrawn")
def test_a_tuned_model_of_another_size_than_the_top_rungs_gives_its_parameters(
    tmp_path: Path,
) -> None:
    """Each rung's study finds its own best: a tuned row read as one model trained for longer
    and longer, though its 1-epoch study's model was another (162,562 parameters, 72,666)."""
    results = write_ladder(tmp_path, rungs=[1, 9])
    for seed in SEEDS:
        path = results / "runs" / f"small_cnn-concat-t-e1-s{seed}" / "metrics.json"
        path.write_text(json.dumps(json.loads(path.read_text()) | {"params": 2500}))
        path = results / "runs" / f"small_cnn-concat-d-e1-s{seed}" / "metrics.json"
        path.write_text(json.dumps(json.loads(path.read_text()) | {"params": 2500}))
    ranks = report(results).split("## Ranks across budgets")[1].split("\n## ")[0]
    rows = [line for line in ranks.splitlines() if line.startswith("| small_cnn x concat |")]
    default, tuned = sorted(rows, key=lambda row: "| yes |" in row)
    assert tuned.split(" | ")[2].endswith(", 2,500 params)")  # the 1-epoch cell
    assert "params" not in tuned.split(" | ")[3] and "params" not in default  # top; default


@pytest.mark.usefixtures("undrawn")
def test_a_tuned_group_that_kept_the_default_is_named_so_in_the_ranks(tmp_path: Path) -> None:
    """A study that kept the default gives a tuned group with its default group's runs, so its
    errors: it shares the default's rank (not the next one, as if it were a second, worse
    configuration), and the rank table and the bump chart's names say it is the default."""
    results = write_ladder(tmp_path, rungs=[1, 9])
    kept_the_default(results, 9)
    text = report(results)
    assert "| 1 epoch | 6 |" in text  # a twin at one rung only: a ranking of its own there
    ranks = text[text.index("## Ranks across budgets") :].split("\n## ")[0]
    rows = [line for line in ranks.splitlines() if line.startswith("| small_cnn x concat |")]
    default, tuned = sorted(rows, key=lambda row: "| yes |" in row)
    shared = default.split(" | ")[-1].strip(" |")  # the default group's 9-epoch cell
    assert tuned.endswith(f" | {shared[:-1]}, = default) |")  # the same error, the same rank
    same = pd.Series({"arch": "small_cnn", "fusion": "concat", "tuned": True,
                      "same_as_default": True})  # fmt: skip
    assert ladder_plots.short(same) == "small_cnn x concat (tuned = default)"
    assert ladder_plots.short(same.drop("same_as_default")) == "small_cnn x concat (tuned)"
    ends = pd.DataFrame([same.drop("same_as_default").to_dict() | {"tuned": False}, same])
    assert ladder_plots.joint_name(ends) == "small_cnn x concat (default and tuned = default)"
    other = ends.iloc[:1].assign(arch="gap_cnn")
    assert ladder_plots.joint_name(pd.concat([ends.iloc[:1], other])) == (
        "small_cnn x concat / gap_cnn x concat"
    )


def test_equal_time_tells_apart_front_rows_a_second_apart() -> None:
    """The committed front had two rows "8" (7.9 and 8.3 s) and two "63": tenths, as the main
    table's train s."""
    from benchmark.report.equal_time import time_section

    points = pd.DataFrame(
        [(1, "small_cnn", 7.9, 1.2), (1, "gap_cnn", 8.3, 1.1), (3, "gap_cnn", 1234.5, 0.4)],
        columns=["rung", "arch", "train_seconds_mean", "test_sum_err_mean"],
    ).assign(fusion="concat", tuned=False, test_sum_err_ci=0.1, front=True, precision="fp32",
             images=55_000, n=1, train_seconds_std=float("nan"))  # fmt: skip
    rows = [
        line
        for line in time_section(points, "cpu: test", 0).splitlines()
        if line.startswith("| ") and "±" in line
    ]
    assert [row.split(" | ")[0] for row in rows] == ["| 7.9", "| 8.3", "| 1,234.5"]


def test_equal_time_says_which_rungs_trained_too_few_images_to_time_a_rate() -> None:
    """A smoke ladder's front began at 0.8 s for a run of 6 s, its start-up and warm-up, and
    said "with this much training time, train this combination" of it."""
    from benchmark.report.equal_time import time_section

    points = pd.DataFrame(
        [(1, 0.8, 3_000), (2, 2.4, 6_000), (9, 300.0, 495_000)],
        columns=["rung", "train_seconds_mean", "images"],
    ).assign(arch="gap_cnn", fusion="concat", tuned=False, test_sum_err_mean=1.0,
             test_sum_err_ci=0.1, front=True, precision="fp32", n=1,
             train_seconds_std=float("nan"))  # fmt: skip
    assert (
        " Runs of 1 epoch and 2 epochs trained fewer than 20,000 images each: their seconds are "
        "mostly start-up and warm-up, not a rate"
    ) in time_section(points, "cpu: test", 0)
    assert "warm-up" not in time_section(points.iloc[2:], "cpu: test", 0)


def test_equal_time_times_a_rung_of_exactly_the_minimum_images_as_a_rate() -> None:
    """``MIN_TRAINED`` images are enough to time a rate, as the estimates take them: only the
    rungs that trained fewer are named as start-up and warm-up."""
    from benchmark.config import MIN_TRAINED
    from benchmark.report.equal_time import warm_up_note

    points = pd.DataFrame({"rung": [1, 2], "images": [MIN_TRAINED - 1, MIN_TRAINED]})
    assert warm_up_note(points).startswith(" Runs of 1 epoch trained fewer than 20,000 images")
    assert warm_up_note(points.iloc[1:]) == ""


def test_equal_time_gives_the_spread_in_seconds_of_groups_of_two_seeds_too() -> None:
    """Two seeds give a standard deviation: their groups count in the median and the largest
    spread (a group of one seed has none)."""
    from benchmark.report.equal_time import spread_note

    points = pd.DataFrame(
        {"n": [2, 3, 1], "train_seconds_mean": [100.0, 100.0, 50.0],
         "train_seconds_std": [10.0, 30.0, float("nan")]}
    )  # fmt: skip
    assert "their standard deviation was a median 20% of their mean, up to 30%," in (
        spread_note(points)
    )
    assert spread_note(points.iloc[2:]) == ""


def test_equal_times_key_tells_budget_fusion_and_kind_apart() -> None:
    """The budgets took the colours that mean encoders in every other plot (orange, green,
    blue), and the key drew "tuned" with gap_cnn's filled circle: the budgets are now shades
    of purple, darker for longer, keyed by patches, the fusions by their markers, and the kind
    by a glyph no fusion has."""
    from matplotlib.colors import to_hex, to_rgb
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    from benchmark.report.marks import COLOURS, KIND_MARKER

    rows = [(1, "concat", 10.0, 2.0), (3, "film", 30.0, 1.0), (9, "concat", 90.0, 0.5)]
    columns = ["rung", "fusion", "train_seconds_mean", "test_sum_err_mean"]
    points = pd.DataFrame(rows, columns=columns).assign(
        arch="gap_cnn", tuned=[True, False, True], test_sum_err_ci=0.1, front=True,
        train_seconds_std=[1.0, 3.0, 9.0],
    )  # fmt: skip
    fig = ladder_plots.plot_time(points, "cpu: test")
    (ax,) = fig.axes
    handles = {h.get_label(): h for h in ax.legend_.legend_handles if h.get_label()}
    key = ax.artists[0] if ax.artists else None
    handles |= {h.get_label(): h for h in getattr(key, "legend_handles", [])}
    budgets = [handles[f"{e} epoch" + ("s" if e > 1 else "")] for e in (1, 3, 9)]
    assert all(isinstance(h, Patch) for h in budgets)
    shades = [sum(to_rgb(h.get_facecolor())) for h in budgets]
    assert shades == sorted(shades, reverse=True)  # darker for a longer budget
    assert not {to_hex(h.get_facecolor()) for h in budgets} & {to_hex(c) for c in COLOURS}
    assert [handles[f].get_marker() for f in ("concat", "film")] == ["o", "s"]
    kinds = [handles["tuned: filled"], handles["default: hollow"]]
    assert all(isinstance(h, Line2D) and h.get_marker() == KIND_MARKER for h in kinds)
    assert "fusion (marker)" in handles


def test_a_machines_seconds_beside_anothers_minutes_are_said_to_be_little_work() -> None:
    """The committed cost table listed 3.6 s and 2.8 s of tuning on the Xeon beside 56 min on
    another machine, without a word on what those seconds were."""
    from types import SimpleNamespace

    from benchmark.report.ladder import cost_section

    note = "A machine's seconds beside another's minutes at one stage are sittings that trained"
    stages = {"tune": {"vm (cpu: a)": 3378.0, "vm (cpu: b)": 3.6}, "runs": {"vm (cpu: b)": 2.0}}
    assert note in cost_section([SimpleNamespace(epochs=1, stages=stages)], None)
    stages["tune"]["vm (cpu: b)"] = 600.0  # work on both: nothing to say
    assert note not in cost_section([SimpleNamespace(epochs=1, stages=stages)], None)


def test_every_budgets_colour_stands_out_from_the_white_page() -> None:
    """The 1-epoch lavender (contrast 2.3:1 with white) made its hollow markers nearly vanish;
    each budget's colour now meets WCAG's 3:1 for graphics."""
    from matplotlib.colors import to_rgb

    def luminance(colour: str) -> float:
        linear = [
            c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in to_rgb(colour)
        ]
        return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]

    colours = list(ladder_plots.rung_colours([1, 3, 9]).values())
    for colour in colours:
        assert 1.05 / (luminance(colour) + 0.05) >= 3.0, colour
    # and each apart from the next: light to dark purple alone left 3 and 9 epochs alike (0.25
    # apart in RGB between the lightest two)
    for one, other in itertools.pairwise(colours):
        assert math.dist(to_rgb(one), to_rgb(other)) >= 0.4, (one, other)


def test_the_learning_curves_share_one_key_under_the_panels() -> None:
    """A key in each panel repeated the same six lines at 7 points, about 6 px where a browser
    scaled the figure to the page; one key under the panels names each line once."""
    rows = [dict(arch=a, fusion=f, tuned=t, test_sum_err_mean=1.0, test_sum_err_ci=0.1)
            for a in ("gap_cnn", "small_cnn") for f in ("concat", "late_sum")
            for t in (False, True)]  # fmt: skip
    fig = ladder_plots.plot_curves([(e, pd.DataFrame(rows)) for e in (1, 3)])
    assert all(ax.get_legend() is None for ax in fig.axes)
    (key,) = fig.legends
    assert [t.get_text() for t in key.get_texts()] == [
        "concat (default)", "concat (tuned)", "late_sum (default)", "late_sum (tuned)"
    ]  # fmt: skip
    assert key.get_texts()[0].get_fontsize() >= 9


@pytest.mark.parametrize("encoders", [1, 2, 3])
def test_the_learning_curves_title_and_key_fit_the_figure(encoders: int) -> None:
    """With one encoder (``compare --arch gap_cnn``) the figure was 4.6 in wide: its title and
    its key of six lines were cut at both sides."""
    rows = [dict(arch=a, fusion=f, tuned=t, test_sum_err_mean=1.0, test_sum_err_ci=0.1)
            for a in ("gap_cnn", "small_cnn", "tiny_resnet")[:encoders]
            for f in ("concat", "embed_add", "late_sum") for t in (False, True)]  # fmt: skip
    fig = ladder_plots.plot_curves([(e, pd.DataFrame(rows)) for e in (1, 3)])
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    whole = fig.bbox
    for part in (*fig.legends, fig._suptitle):
        box = part.get_window_extent(renderer)
        assert whole.x0 <= box.x0 and box.x1 <= whole.x1, part


def rung_of(epochs: int, groups: list[tuple], epoch_images: int = 10_000):
    """A rung from hand-made groups: (arch, tuned, n, error %, p against the best, timed on)."""
    from types import SimpleNamespace

    from benchmark.report.ladder import Rung

    rows = [
        {"section": "main", "arch": arch, "fusion": "concat", "tuned": tuned, "n": n}
        | {"test_sum_err_mean": err, "test_sum_err_ci": 0.05 if n > 1 else float("nan")}
        | {"p_vs_best": p, "train_seconds_mean": 10.0 * epochs, "timing_device": device}
        | {"same_as_default": False}
        for arch, tuned, n, err, p, device in groups
    ]
    ref = SimpleNamespace(epoch_images=lambda: epoch_images)
    return Rung(epochs, {}, {}, pd.DataFrame(rows), ref)


def test_groups_of_one_error_share_a_rank_and_the_next_skips_theirs() -> None:
    rung = rung_of(9, [*[("a", True, 2, 1.0, 1.0, "x"), ("b", True, 2, 1.0, 0.9, "x")],
                       ("c", True, 2, 2.0, 0.01, "x")])  # fmt: skip
    assert list(rung.groups["rank"]) == [1, 1, 3]


def test_the_best_at_the_top_rung_is_the_best_of_two_seeds_or_more() -> None:
    """A one-seed group with a lower mean is not tested against: the best named beside a
    lower rung's winner is the lowest of those with two seeds."""
    from benchmark.report.ladder import winners_text

    low = rung_of(1, [("c", True, 2, 1.0, 1.0, "x")])
    top = rung_of(
        9, [("a", True, 1, 0.3, float("nan"), "x"), ("b", True, 2, 0.5, 1.0, "x")]
        + [("c", True, 2, 0.6, 0.01, "x")]
    )  # fmt: skip
    (line, *_) = winners_text([low, top])
    assert "worse than the best there, b x concat (tuned) at 0.50%" in line


def test_a_lower_rungs_winner_is_chosen_by_the_answers_rule_too() -> None:
    """One seed at a lower mean made a lower rung's winner, against the answer's own rule
    (``aggregate.best_key``): the winner is the lowest of those with two seeds."""
    from benchmark.report.ladder import winners_text
    from benchmark.wording import ONE_SEED_ABOVE

    groups = [("a", False, 1, 1.0, float("nan"), "x"), ("b", False, 2, 2.0, 1.0, "x")]
    groups += [("c", False, 2, 3.0, 0.01, "x")]
    (line, *_) = winners_text([rung_of(1, groups), rung_of(3, groups)])
    assert line.startswith("- At 1 epoch **b x concat (default)** is best: 2.00% ")
    assert line.endswith(f"rank 2 of 3: still the winner{ONE_SEED_ABOVE}")


def test_the_ladders_tuning_table_counts_one_seed_pairs_as_untested() -> None:
    """The answer called them "could not be tested"; the table counted them "no difference
    detected"."""
    from benchmark.report.ladder import tuning_section

    rows, runs = [], []
    for tuned, err, config in ((False, 3.0, "a"), (True, 2.0, "b")):
        rows.append({"section": "main", "tuned": tuned, "arch": "gap_cnn", "fusion": "concat",
                     "precision": "fp32", "yours": False, "config_hash": config, "n": 1,
                     "test_sum_err_mean": err, "test_sum_err_ci": float("nan"),
                     "test_sum_acc_mean": 1 - err / 100, "test_sum_acc_std": float("nan"),
                     "params": 1000, "same_as_default": False})  # fmt: skip
        runs.append({"arch": "gap_cnn", "fusion": "concat", "tuned": tuned, "precision": "fp32",
                     "config_hash": config, "yours": False, "test.sum_acc": 1 - err / 100,
                     "run": f"r{config}", "seed": 0})  # fmt: skip
    rung = rung_of(1, [])
    rung.summary = pd.DataFrame(rows)
    table = tuning_section([rung], pd.DataFrame(runs))
    assert "| 1 epoch | 1 | 0 | 0 | 0 (1 untested) | 0 | -1.00 | -1.00 |" in table


def test_equal_time_counts_each_rungs_images_and_keeps_the_device_of_most_groups() -> None:
    from benchmark.report.ladder import time_points

    one = rung_of(1, [("a", True, 2, 1.0, 1.0, "cpu: x"), ("b", True, 2, 1.1, 0.5, "cpu: x")])
    three = rung_of(3, [("a", True, 2, 0.8, 1.0, "cpu: x"), ("b", True, 2, 0.9, 0.5, "cpu: y")])
    points, device, away = time_points([one, three])
    assert (device, away) == ("cpu: x", 1)
    assert list(points["images"]) == [10_000, 10_000, 30_000]


@pytest.mark.parametrize(("rungs", "said"), [([1, 3], "1 and 3"), ([1, 3, 9], "1, 3 and 9")])
def test_the_budgets_are_listed_in_order_up_to_the_top_one(rungs: list[int], said: str) -> None:
    """The sentence under *The answer across budgets* names every rung once."""
    from benchmark.report.ladder import budgets

    assert budgets([rung_of(epochs, []) for epochs in rungs]) == said


def test_two_groups_at_both_rungs_get_kendalls_tau() -> None:
    """Two groups are the fewest a ranking of them can agree or disagree over: a ladder of two
    combinations is told whether its rungs agree."""
    from benchmark.report.ladder import winners_text

    low = rung_of(1, [("a", True, 2, 2.0, 1.0, "x"), ("b", True, 2, 3.0, 0.01, "x")])
    top = rung_of(3, [("a", True, 2, 1.0, 1.0, "x"), ("b", True, 2, 1.5, 0.01, "x")])
    assert any(
        line.startswith("- Kendall's tau of the 1-epoch ranking") and "2 groups" in line
        for line in winners_text([low, top])
    )


def test_a_rung_keeps_the_group_of_most_seeds_of_a_combination() -> None:
    """A study whose best changed between runs leaves two groups of one combination: the rung
    ranks the one of most seeds, not a leftover one-seed run."""
    rung = rung_of(9, [("a", True, 1, 0.5, float("nan"), "x"), ("a", True, 3, 1.0, 1.0, "x")])
    assert list(rung.groups["n"]) == [3]


def test_a_tuned_group_that_kept_the_default_counts_in_tau_where_its_default_did_not_run() -> None:
    """A tuned twin is dropped from Kendall's tau only where its default is counted in its
    place; with no default group beside it, dropping it would lose the combination."""
    from benchmark.report.ladder import rank_agreement

    groups = [("a", False, 2, 1.0, 1.0, "x"), ("a", True, 2, 1.0, 1.0, "x")]
    groups += [("b", True, 2, 2.0, 0.01, "x"), ("c", False, 2, 3.0, 0.01, "x")]
    low, top = rung_of(1, groups), rung_of(3, groups)
    for rung in (low, top):
        rung.summary["same_as_default"] = rung.summary["tuned"] & rung.summary["arch"].isin(
            ["a", "b"]
        )
    assert rank_agreement(low, top)[2] == 3  # a (its default), b (tuned) and c


def tuning_rung(deltas: dict[str, float]) -> tuple[Rung, pd.DataFrame]:
    """A rung holding, per arch, a default group at 3% and a tuned one ``delta`` points away
    (one seed each), and its runs."""
    rows, runs = [], []
    for arch, delta in deltas.items():
        for tuned, err in ((False, 3.0), (True, 3.0 + delta)):
            config = f"{arch}{tuned}"
            rows.append({"section": "main", "tuned": tuned, "arch": arch, "fusion": "concat",
                         "precision": "fp32", "yours": False, "config_hash": config, "n": 1,
                         "test_sum_err_mean": err, "test_sum_err_ci": float("nan"),
                         "test_sum_acc_mean": 1 - err / 100, "test_sum_acc_std": float("nan"),
                         "params": 1000, "same_as_default": False})  # fmt: skip
            runs.append({"arch": arch, "fusion": "concat", "tuned": tuned, "precision": "fp32",
                         "config_hash": config, "yours": False, "test.sum_acc": 1 - err / 100,
                         "run": f"r{config}", "seed": 0})  # fmt: skip
    rung = rung_of(1, [])
    rung.summary = pd.DataFrame(rows)
    return rung, pd.DataFrame(runs)


def test_the_ladders_tuning_table_gives_the_lowest_tuning_effect() -> None:
    """Tuning lowered one combination's error by a point and raised another's by half of one:
    the lowest is the point it gained, beside the mean."""
    from benchmark.report.ladder import tuning_section

    rung, runs = tuning_rung({"gap_cnn": -1.0, "small_cnn": 0.5})
    assert "| -0.25 | -1.00 |" in tuning_section([rung], runs)


def partial_rung(seeds: int, trials: int) -> Rung:
    """A rung of one combination whose plan has ``seeds`` seeds and a study of ``trials``
    trials, with no final run complete."""
    plan = {"pairs": [["gap_cnn", "concat"]], "seeds": list(range(seeds))}
    plan |= {"trials": trials, "studies": ["s"]}
    return Rung(1, plan, {}, pd.DataFrame({"section": []}), SimpleNamespace())


def partial_inputs(finished: int) -> SimpleNamespace:
    """Inputs as ``partial_text`` reads them: the plan's study ``s``, ``finished`` trials done."""
    digest = SimpleNamespace(name="s", finished=finished)
    return SimpleNamespace(studies=SimpleNamespace(digests=[digest]), chosen=False)


@pytest.mark.parametrize(("seeds", "tail"), [(2, "tuned seed 1"), (5, "and 2 more")])
def test_the_partial_warning_counts_the_missing_runs_it_does_not_name(
    seeds: int, tail: str
) -> None:
    """Eight missing runs are named and the rest counted: 2 seeds miss 4 runs, all named; 5
    miss 10, 2 past the eight named."""
    from benchmark.report.ladder import partial_text

    text = partial_text([partial_rung(seeds, 3)], partial_inputs(3))
    (line,) = [line for line in text.splitlines() if "final runs complete" in line]
    assert line.endswith(tail), line


def test_the_partial_warning_names_a_study_one_trial_short() -> None:
    """A study of 5 trials that finished 4 is not done: its best may still change."""
    from benchmark.report.ladder import partial_text

    rung = partial_rung(1, 5)
    assert "study s has 4 of 5 finished trials" in partial_text([rung], partial_inputs(4))
    assert "study s" not in partial_text([rung], partial_inputs(5))


def test_the_partial_warning_names_exactly_eight_missing_runs_and_counts_no_more() -> None:
    """Four seeds miss eight runs: all eight named, none counted as "and 0 more"."""
    from benchmark.report.ladder import partial_text

    text = partial_text([partial_rung(4, 3)], partial_inputs(3))
    (line,) = [line for line in text.splitlines() if "final runs complete" in line]
    kinds = ("default", "tuned")
    names = "; ".join(f"gap_cnn x concat {kind} seed {seed}" for kind in kinds for seed in range(4))
    assert line.endswith(f"missing: {names}"), line


def test_the_partial_warning_names_eight_runs_before_it_counts_the_rest() -> None:
    """Ten missing: eight named and two counted, so every missing run is named or counted."""
    from benchmark.report.ladder import partial_text

    text = partial_text([partial_rung(5, 3)], partial_inputs(3))
    (line,) = [line for line in text.splitlines() if "final runs complete" in line]
    named, counted = line.split("missing: ")[1].split(" and ")
    assert len(named.split("; ")) == 8 and counted == "2 more"


def test_the_partial_warning_names_a_study_of_the_plan_that_has_not_started() -> None:
    """A study of the plan not in the storage at all has finished none of its trials."""
    from benchmark.report.ladder import partial_text

    rung = partial_rung(1, 3)
    rung.plan["studies"] = ["s", "t"]
    text = partial_text([rung], partial_inputs(3))
    assert "study t has 0 of 3 finished trials" in text and "study s has" not in text


def test_runs_chosen_by_a_glob_keep_only_their_combinations_studies() -> None:
    """The plan's studies run parallel to its pairs: the studies of the combinations left out
    are not the chosen runs' to finish."""
    from benchmark.report.ladder import among

    plan = {"pairs": [["a", "concat"], ["b", "concat"]], "studies": ["sa", "sb"], "seeds": [0]}
    runs = pd.DataFrame({"arch": ["b"], "fusion": ["concat"]})
    assert among(plan, runs) == {"pairs": [["b", "concat"]], "studies": ["sb"], "seeds": [0]}


def test_a_rungs_groups_leave_out_yours() -> None:
    """Beside a reference (``report --against``) your groups are in its main comparison: they
    have no rung, so no rank there."""
    rung = rung_of(9, [("a", True, 2, 1.0, 1.0, "x"), ("b", True, 2, 0.5, 0.01, "x")])
    rung.summary["yours"] = [False, True]
    assert list(rung.groups["arch"]) == ["a"] and list(rung.groups["rank"]) == [1]


def test_groups_of_one_error_are_ranked_in_the_order_of_their_names() -> None:
    rung = rung_of(9, [("b", True, 2, 1.0, 1.0, "x"), ("a", True, 2, 1.0, 1.0, "x")])
    assert list(rung.groups["arch"]) == ["a", "b"]


def test_a_lower_rung_with_no_complete_group_says_so() -> None:
    from benchmark.report.ladder import winners_text

    low = rung_of(1, [("a", True, 2, 1.0, 1.0, "x")])
    low.summary["section"] = "other"
    top = rung_of(9, [("a", True, 2, 1.0, 1.0, "x")])
    assert winners_text([low, top])[0] == "- At 1 epoch no group is complete yet."


def test_a_lower_rungs_one_seed_winner_is_said_to_have_no_interval() -> None:
    from benchmark.report.ladder import winners_text

    low = rung_of(1, [("a", True, 1, 1.0, float("nan"), "x")])
    top = rung_of(9, [("a", True, 2, 0.5, 1.0, "x")])
    (line, *_) = winners_text([low, top])
    assert line.startswith("- At 1 epoch **a x concat (tuned)** is best: 1.00% (one seed, no "
                           "interval). At 9 epochs it has 0.50% (95% CI")  # fmt: skip


def test_a_lower_rungs_winner_without_runs_at_the_top_rung_is_said_to_have_none() -> None:
    from benchmark.report.ladder import winners_text

    low = rung_of(1, [("c", True, 2, 1.0, 1.0, "x")])
    top = rung_of(9, [("a", True, 2, 0.5, 1.0, "x"), ("b", True, 2, 0.6, 0.01, "x")])
    (line, *_) = winners_text([low, top])
    assert line.endswith("is best: 1.00% (95% CI 0.95-1.05). It has no complete runs at 9 epochs.")


def test_a_winner_still_first_at_the_top_rung_is_still_the_winner_and_nothing_more() -> None:
    from benchmark.report.ladder import winners_text

    groups = [("a", True, 2, 1.0, 1.0, "x"), ("b", True, 2, 2.0, 0.01, "x")]
    (line, *_) = winners_text([rung_of(1, groups), rung_of(9, groups)])
    assert line.endswith(" rank 1 of 2: still the winner."), line


def test_a_winner_whose_top_study_kept_the_default_beside_another_best_is_tested_against_it():
    """Its study keeping the default makes it the best's configuration only where the best is
    its own combination's; beside another combination's best it is tested as any group."""
    from benchmark.report.ladder import winners_text

    low = rung_of(1, [("a", True, 2, 1.0, 1.0, "x"), ("b", True, 2, 2.0, 0.01, "x")])
    top = rung_of(9, [("b", True, 2, 0.5, 1.0, "x"), ("a", True, 2, 0.9, 0.01, "x")])
    top.summary["same_as_default"] = top.summary["arch"] == "a"
    (line, *_) = winners_text([low, top])
    assert "; worse than the best there, b x concat (tuned) at 0.50%" in line, line
    assert "kept the default" not in line


def test_a_winner_of_one_seed_at_the_top_rung_is_not_tested_against_its_best() -> None:
    """The winner ranked among all of the top rung's groups (three there, one below)."""
    from benchmark.report.ladder import winners_text

    low = rung_of(1, [("a", True, 2, 1.0, 1.0, "x")])
    top = rung_of(9, [("a", True, 1, 0.9, float("nan"), "x"), ("b", True, 2, 0.5, 1.0, "x"),
                      ("c", True, 2, 0.8, 0.01, "x")])  # fmt: skip
    (line, *_) = winners_text([low, top])
    assert line.endswith(
        "rank 3 of 3; too few seeds to test it against the best, b x concat (tuned)."
    ), line


def test_a_lower_rung_whose_groups_all_tie_gets_no_kendalls_tau() -> None:
    """A ranking with no order to compare gives tau no value: no line of "nan"."""
    from benchmark.report.ladder import winners_text

    low = rung_of(1, [("a", True, 2, 2.0, 1.0, "x"), ("b", True, 2, 2.0, 1.0, "x")])
    top = rung_of(3, [("a", True, 2, 1.0, 1.0, "x"), ("b", True, 2, 1.5, 0.01, "x")])
    lines = winners_text([low, top])
    assert len(lines) == 1 and "Kendall" not in lines[0]


def test_the_ranks_list_groups_the_top_rung_lacks_by_the_highest_rung_that_has_them() -> None:
    from benchmark.report.ladder import ranks_section

    rungs = [
        rung_of(1, [("a", True, 2, 1.0, 1.0, "x"), ("c", True, 2, 2.0, 0.01, "x")]),
        rung_of(3, [("a", True, 2, 1.0, 1.0, "x"), ("b", True, 2, 2.0, 0.01, "x")]),
        rung_of(9, [("a", True, 2, 1.0, 1.0, "x")]),
    ]
    for rung in rungs:
        rung.summary["params"] = 1000
    text = ranks_section(rungs, {})
    rows = [line.split(" | ")[0] for line in text.splitlines() if " x concat | yes |" in line]
    assert rows == ["| a x concat", "| b x concat", "| c x concat"]


def test_equal_time_takes_the_device_first_by_name_of_two_that_timed_as_many_groups() -> None:
    from benchmark.report.ladder import time_points

    rung = rung_of(1, [("a", True, 2, 1.0, 1.0, "cpu: y"), ("b", True, 2, 1.1, 0.5, "cpu: x")])
    assert time_points([rung])[1:] == ("cpu: x", 1)


def test_the_ladders_tuning_table_leaves_out_your_combinations() -> None:
    """Beside a reference, your tuned vs default pairs are no rung's."""
    from benchmark.report.ladder import tuning_section

    rung, runs = tuning_rung({"gap_cnn": -1.0, "small_cnn": 0.5})
    rung.summary["yours"] = rung.summary["arch"] == "small_cnn"
    runs["yours"] = runs["arch"] == "small_cnn"
    assert "| 1 epoch | 1 | 0 | 0 | 0 (1 untested) | 0 | -1.00 | -1.00 |" in tuning_section(
        [rung], runs
    )


def test_the_ladders_tuning_table_counts_the_studies_that_kept_the_default() -> None:
    from benchmark.report.ladder import tuning_section

    rung, runs = tuning_rung({"gap_cnn": 0.0})
    rung.summary["same_as_default"] = rung.summary["tuned"]
    assert "| 1 epoch | 1 | 0 | 0 | 0 | 1 | +0.00 | +0.00 |" in tuning_section([rung], runs)


def test_a_machines_seconds_beside_anothers_minute_are_said_to_be_little_work() -> None:
    """A minute is where the cost table turns to minutes ("1.0 min" beside "3.6 s")."""
    from benchmark.report.ladder import cost_section

    stages = {"tune": {"vm (cpu: a)": 60.0, "vm (cpu: b)": 3.6}}
    assert "A machine's seconds beside another's minutes" in cost_section(
        [SimpleNamespace(epochs=1, stages=stages)], None
    )


def test_the_cost_table_lists_stages_and_machines_in_one_order_whatever_the_files() -> None:
    from benchmark.report.ladder import cost_section

    stages = {"tune": {"vm b": 2.0, "vm a": 3.0}, "runs": {"vm b": 1.0}}
    text = cost_section([SimpleNamespace(epochs=1, stages=stages)], None)
    rows = [line for line in text.splitlines() if line.startswith("| 1 epoch |")]
    assert rows == ["| 1 epoch | runs | vm b | 1.0 s |", "| 1 epoch | tune | vm a | 3.0 s |",
                    "| 1 epoch | tune | vm b | 2.0 s |"]  # fmt: skip


def test_a_marker_means_one_fusion_in_every_ladder_plot_and_no_curve_wears_an_encoders_colour():
    """The time plot marked the encoder (a circle there was gap_cnn, in the others concat) and
    the curves coloured their fusions blue, orange and green, the encoders' colours elsewhere:
    a reader learned each plot's key again. Now one shape is one fusion in every plot."""
    from matplotlib.colors import to_hex

    from benchmark.report.marks import COLOURS, Styles

    combos = [(a, f) for a in ("gap_cnn", "small_cnn", "tiny_resnet") for f in ("concat", "film")]
    rows = [dict(arch=a, fusion=f, tuned=t, test_sum_err_mean=1.0 + i / 10 + t / 100,
                 test_sum_err_ci=0.05) for i, (a, f) in enumerate(combos)
            for t in (False, True)]  # fmt: skip
    shape = Styles.of(pd.DataFrame(rows)).markers(["concat", "film"])
    assert shape == {"concat": "o", "film": "s"}
    fig = ladder_plots.plot_curves([(e, pd.DataFrame(rows)) for e in (1, 3)])
    drawn = [(c.get_label(), c.lines[0]) for ax in fig.axes for c in ax.containers]
    assert len(drawn) == 12
    encoder_colours = {to_hex(c) for c in COLOURS}
    for label, line in drawn:
        assert line.get_marker() == shape[label.split(" ")[0]], label
        assert to_hex(line.get_color()) not in encoder_colours, label
    points = pd.DataFrame(rows).assign(
        rung=[1, 9] * 6, train_seconds_mean=[10.0 * (i + 1) for i in range(12)],
        train_seconds_std=float("nan"), front=False
    )  # fmt: skip
    (ax,) = ladder_plots.plot_time(points, "cpu: test").axes
    at = {(r.train_seconds_mean, r.test_sum_err_mean): r.fusion for r in points.itertuples()}
    marked = [(c.lines[0].get_xdata()[0], c.lines[0].get_ydata()[0], c.lines[0].get_marker())
              for c in ax.containers]  # fmt: skip
    assert len(marked) == 12
    assert all(marker == shape[at[(x, y)]] for x, y, marker in marked), marked


def test_every_plot_of_a_report_is_handed_the_one_key(
    ladder: tuple[Path, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each plot chose its markers from the fusions it showed, in sorted order: a fusion that one
    plot lacked shifted the others' shapes there. The report decides them once, from the groups
    its plots mark and every rung, and hands that to each plot. A held-out group's fusion (its
    plot names it) would have moved concat off the circle in every plot."""
    from benchmark.report import plots
    from benchmark.report.marks import Styles

    looks = {}

    def recorder(name: str, draw):
        def record(*args):
            looks[name] = args[-1]
            return draw(*args)

        return record

    for module, name in ((plots, "pareto_figure"), (plots, "val_curves_figure"),
                         (ladder_plots, "plot_ranks"), (ladder_plots, "plot_curves"),
                         (ladder_plots, "plot_time")):  # fmt: skip
        monkeypatch.setattr(module, name, recorder(name, getattr(module, name)))
    leave_undrawn(monkeypatch)
    results = Path(shutil.copytree(ladder[0], tmp_path / "results"))
    heldout = make_run(results / "runs", "heldout", fusion="bilinear", config_hash="h0000000")
    metrics = json.loads((heldout / "metrics.json").read_text())
    metrics["config"]["holdout_pairs"] = 20
    (heldout / "metrics.json").write_text(json.dumps(metrics))
    report(results, tmp_path / "out")  # a new folder: nothing drawn there to read back
    assert set(looks) == {"pareto_figure", "val_curves_figure", "plot_ranks", "plot_curves",
                          "plot_time"}  # fmt: skip
    assert all(type(look) is Styles for look in looks.values()), looks
    assert len({id(look) for look in looks.values()}) == 1
    (look,) = {id(v): v for v in looks.values()}.values()
    assert look.fusions == ("concat", "late_sum")


def test_a_fusion_one_plot_lacks_leaves_the_others_their_shapes_and_colours() -> None:
    from benchmark.report.marks import FUSION_COLOURS, MARKERS, Styles

    shown = pd.DataFrame({"arch": ["gap_cnn", "gap_cnn"], "fusion": ["film", "concat"]})
    ladder = pd.DataFrame({"arch": ["small_cnn"], "fusion": ["bilinear"]})
    look = Styles.of(shown, ladder)
    assert look.encoders == ("gap_cnn", "small_cnn")
    assert look.fusions == ("bilinear", "concat", "film")
    assert look.markers(["film", "concat"]) == {"concat": MARKERS[1], "film": MARKERS[2]}
    assert look.fusion_colours(["film"]) == {"film": FUSION_COLOURS[2]}
    assert Styles.of(shown).markers(["film"]) == {"film": MARKERS[1]}  # its own: another shape


def in_memory_study(budget: object = None) -> optuna.Study:
    study = optuna.create_study(direction="maximize")  # in memory: a digest needs no file
    if budget is not None:
        study.set_user_attr("budget", budget)
    return study


def test_a_trial_pruned_over_the_cap_is_counted_over_the_cap_and_not_finished() -> None:
    """``tune`` prunes a trial whose model is over ``--max-params`` (``over_cap``: the cap):
    the table's "over the cap (rejected)" counts it."""
    from benchmark.report.studies import digest

    study = in_memory_study({"epochs": 1})
    pruned = optuna.trial.TrialState.PRUNED
    study.add_trial(optuna.trial.create_trial(state=pruned, user_attrs={"over_cap": 1000}))
    study.add_trial(optuna.trial.create_trial(value=0.9))
    found = digest(study)
    assert (found.over_cap, found.finished, found.best_trial) == (1, 1, 1)


def test_the_defaults_trial_is_the_one_that_completed_not_a_failed_or_duplicate_one() -> None:
    """A worker killed in the defaults trial leaves it failed and it is queued again, and a
    second worker's copy is pruned as a duplicate: the defaults are the trial that completed."""
    from benchmark.report.studies import digest, studies_section

    study = in_memory_study({"epochs": 1})
    state = optuna.trial.TrialState
    defaults = {"defaults": True}
    study.add_trial(optuna.trial.create_trial(state=state.FAIL, user_attrs=defaults))
    duplicate = {**defaults, "duplicate": True}
    study.add_trial(optuna.trial.create_trial(state=state.PRUNED, user_attrs=duplicate))
    study.add_trial(optuna.trial.create_trial(value=0.95, user_attrs=defaults))
    found = digest(study)
    assert (found.defaults_trial, found.best_trial) == (2, 2)
    assert "| 2 (the defaults) |" in studies_section([found])


@pytest.mark.parametrize("epochs", ["9", 2.5])
def test_a_budget_of_epochs_that_is_no_whole_number_is_read_as_unknown(epochs: object) -> None:
    """A hand-edited budget cannot stop the section: its epochs are not known."""
    from benchmark.report.studies import digest, studies_section

    study = in_memory_study({"epochs": epochs})
    study.add_trial(optuna.trial.create_trial(value=0.9))
    found = digest(study)
    assert found.epochs is None
    assert "| 1 | 0 | 90.00 | 0 |" in studies_section([found])


@pytest.mark.parametrize("epochs", ["nine", [9], {"n": 9}])
def test_a_budget_of_epochs_of_another_type_costs_no_study(epochs: object) -> None:
    """A study whose budget holds no number of epochs made ``int()`` raise in the digest, and
    the report left out every study, calling optuna.db unreadable."""
    from benchmark.report.studies import digest

    study = optuna.create_study(direction="maximize")
    study.set_user_attr("budget", {"epochs": epochs})
    study.add_trial(optuna.trial.create_trial(value=0.9))
    found = digest(study)
    assert (found.epochs, found.unpruned, found.best_value) == (None, 0, 0.9)


def pruned_digest(name: str, epochs: int | None, pruner: str) -> StudyDigest:
    """The digest of a study of ``epochs`` that recorded the pruning rule ``pruner``."""
    return StudyDigest(name, epochs, 2, 0, 0.9, 0, 4, 6, pruner, ())


def test_the_pruning_rules_are_listed_by_budget_each_with_its_budgets_in_order() -> None:
    said = studies_section(
        [
            pruned_digest("a", 9, "zeta"),
            pruned_digest("b", 3, "alpha"),
            pruned_digest("c", 9, "alpha"),
            pruned_digest("d", 1, "zeta"),
        ]
    )
    assert " Pruning, as the studies recorded it: `zeta` at 1, 9 epochs; `alpha` at 3, 9 " in said


def test_a_pruning_rule_of_a_study_of_unknown_epochs_names_no_budget() -> None:
    """A hand-edited budget leaves a study's epochs unknown: no rule "at None epochs"."""
    said = studies_section([pruned_digest("a", 3, "median"), pruned_digest("b", None, "halving")])
    assert "Pruning, as the studies recorded it: `median` at 3 epochs." in said
    assert "None" not in said and "*halving*" not in said


def test_the_ladders_words_are_explained_whichever_study_recorded_them_first() -> None:
    """tune's plain halving at 3 epochs, compare's ranked one at 9: both words explained."""
    said = studies_section([pruned_digest("a", 3, "halving"),
                            pruned_digest("b", 9, "halving, defaults ranked")])  # fmt: skip
    assert "*halving*: successive halving" in said
    assert "; *defaults ranked*: the defaults trial, never stopped, counts" in said


def test_the_best_trial_of_tied_values_is_the_first_as_optunas() -> None:
    """Optuna's best trial (what ``tune`` exports) is the first of those of the best value."""
    from benchmark.report.studies import digest

    study = in_memory_study({"epochs": 1})
    for _ in range(2):
        study.add_trial(optuna.trial.create_trial(value=0.9))
    assert digest(study).best_trial == study.best_trial.number == 0


def bump_rungs() -> list[tuple[int, pd.DataFrame]]:
    """Two rungs of three groups: the tuned gap_cnn x concat overtakes its default at 3 epochs."""
    rows = [("gap_cnn", False, 1, 2), ("gap_cnn", True, 2, 1), ("small_cnn", False, 3, 3)]
    frames = [
        pd.DataFrame([dict(arch=a, fusion="concat", tuned=t, rank=r[i]) for a, t, *r in rows])
        for i in range(2)
    ]
    return list(zip((1, 3), frames, strict=True))


def test_the_bump_chart_runs_each_group_over_the_rungs_rank_1_on_top_named_at_both_ends() -> None:
    """Each group is one line over the rungs in their order, tuned solid and filled, default
    dashed and hollow (the ladder's key); rank 1 is at the top; every group is named at both
    ends, a group alone at its rank by its own name."""
    fig = ladder_plots.plot_ranks(bump_rungs())
    (ax,) = fig.axes
    lines = {tuple(line.get_ydata()): line for line in ax.get_lines()}
    assert set(lines) == {(2, 1), (1, 2), (3, 3)}
    for ranks, tuned in (((1, 2), False), ((2, 1), True), ((3, 3), False)):
        assert list(lines[ranks].get_xdata()) == [0, 1]
        assert lines[ranks].get_linestyle() == ("-" if tuned else "--"), ranks
        assert (lines[ranks].get_markerfacecolor() == "white") is not tuned, ranks
    assert [t.get_text() for t in ax.get_xticklabels()] == ["1 epoch", "3 epochs"]
    low, high = ax.get_ylim()
    assert low > 3 > 1 > high  # inverted: rank 1 on top
    ends: dict[str, dict[float, str]] = {"left": {}, "right": {}}
    for text in ax.texts:
        x, rank = text.get_position()
        ends["left" if x < 0 else "right"][rank] = text.get_text()
    assert ends == {
        "left": {1: "gap_cnn x concat", 2: "gap_cnn x concat (tuned)", 3: "small_cnn x concat"},
        "right": {1: "gap_cnn x concat (tuned)", 2: "gap_cnn x concat", 3: "small_cnn x concat"},
    }


def test_the_learning_curves_draw_tuned_solid_and_default_dashed_on_log_epochs() -> None:
    """Each line goes through its rungs' epochs on a log axis ticked at those epochs, its style
    the kind its key entry names."""
    rows = [dict(arch="gap_cnn", fusion="concat", tuned=t, test_sum_err_mean=1.0 + t,
                 test_sum_err_ci=0.1) for t in (False, True)]  # fmt: skip
    fig = ladder_plots.plot_curves([(e, pd.DataFrame(rows)) for e in (1, 3, 9)])
    (ax,) = fig.axes
    assert ax.get_xscale() == "log" and ax.get_yscale() == "log"
    assert list(ax.get_xticks()) == [1, 3, 9]
    styles = {c.get_label(): c.lines[0].get_linestyle() for c in ax.containers}
    assert styles == {"concat (default)": "--", "concat (tuned)": "-"}
    assert all(list(c.lines[0].get_xdata()) == [1, 3, 9] for c in ax.containers)


def test_equal_times_front_is_its_front_points_in_time_order_each_numbered_in_its_key() -> None:
    """The dotted step line joins only the points on the front, fastest first, and the front's
    key names each of them by the number beside its marker; a point off the front gets neither."""
    rows = [(1, "gap_cnn", 10.0, 2.0, True), (3, "gap_cnn", 30.0, 0.8, True),
            (3, "small_cnn", 60.0, 1.5, False), (9, "gap_cnn", 90.0, 0.5, True)]  # fmt: skip
    columns = ["rung", "arch", "train_seconds_mean", "test_sum_err_mean", "front"]
    points = pd.DataFrame(rows, columns=columns).assign(
        fusion="concat", tuned=[True, False, True, True], test_sum_err_ci=0.1,
        train_seconds_std=1.0,
    )  # fmt: skip
    fig = ladder_plots.plot_time(points, "cpu: test")
    (ax,) = fig.axes
    (step,) = [line for line in ax.get_lines() if line.get_drawstyle() == "steps-post"]
    assert list(step.get_xdata()) == [10.0, 30.0, 90.0]
    assert list(step.get_ydata()) == [2.0, 0.8, 0.5]
    numbers = {t.get_text(): t.xy for t in ax.texts}
    assert numbers == {"1": (10.0, 2.0), "2": (30.0, 0.8), "3": (90.0, 0.5)}
    key = ax.get_legend()
    assert key.get_title().get_text() == "Pareto front"
    assert [t.get_text() for t in key.get_texts()] == [
        "1  gap_cnn x concat (tuned), 1 epoch",
        "2  gap_cnn x concat, 3 epochs",
        "3  gap_cnn x concat (tuned), 9 epochs",
    ]
    assert "cpu: test" in ax.get_xlabel()


def test_the_ladder_draws_its_three_plots_from_two_rungs_and_leaves_out_what_has_no_data(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Two rungs with groups are a ladder: its ranks, curves and equal-time plot; no
    equal-time points leave that one out; a rung without groups is no rung, so one rung left
    draws nothing."""
    drawn: list[set[str]] = []
    monkeypatch.setattr(ladder_plots, "stamped", lambda plots, stamp: drawn.append(set(plots)))
    monkeypatch.setattr(ladder_plots, "plot_ranks", lambda *a: "ranks")
    rungs = bump_rungs()
    rungs = [(e, g.assign(test_sum_err_mean=1.0, test_sum_err_ci=0.1)) for e, g in rungs]
    points = rungs[0][1].assign(rung=1, train_seconds_mean=10.0, train_seconds_std=1.0,
                                front=True)  # fmt: skip
    ladder_plots.ladder_plots(rungs, points, "cpu: test")
    ladder_plots.ladder_plots(rungs, points.iloc[:0], "cpu: test")
    assert drawn == [{"ladder_ranks", "ladder_curves", "ladder_time"},
                     {"ladder_ranks", "ladder_curves"}]  # fmt: skip
    empty = [rungs[0], (9, rungs[1][1].iloc[:0])]
    assert ladder_plots.ladder_plots(empty, points, "cpu: test") == {}
    assert len(drawn) == 2
