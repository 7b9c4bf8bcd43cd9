"""``report`` survives any single bad input (issue 23, item 6): a damaged ``optuna.db`` (header
intact, pages damaged), a run directory with a value of the wrong type, a foreign file among
the runs. The item is listed as unreadable with the reason; the rest of the report is written."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import optuna
import pytest
from conftest import exit_status, make_run

from benchmark.places import OPTUNA_DB as STORAGE
from benchmark.report import load_inputs, studies, write_report
from benchmark.report.studies import DIGEST

GOOD = [("gap_cnn", "concat", 0.95), ("gap_cnn", "late_sum", 0.96)]


def results_with_runs(results: Path) -> Path:
    """Two groups of two seeds each, all readable."""
    for arch, fusion, acc in GOOD:
        for seed in (0, 1):
            make_run(results / "runs", f"{fusion}-s{seed}", arch=arch, fusion=fusion, seed=seed,
                     sum_acc=acc + 0.001 * seed, config_hash=f"h-{fusion}")  # fmt: skip
    return results


@pytest.fixture(scope="module")
def drawn(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``results_with_runs`` reported once, for the plots it draws of them."""
    results = results_with_runs(tmp_path_factory.mktemp("drawn"))
    report(results)
    return results


@pytest.fixture
def results(drawn: Path, tmp_path: Path) -> Path:
    """``results_with_runs`` with the plots drawn of them (no report files): a bad input is left
    out of the plots' inputs, so a report with one reads them back instead of drawing them again
    (``render_plots``); everything else it writes anew."""
    for name in ("runs", "plots"):
        shutil.copytree(drawn / name, tmp_path / name)
    return tmp_path


def write_studies(results: Path, names: list[str]) -> Path:
    """An optuna.db holding a few trials per study, as ``tune`` leaves it."""
    storage = f"sqlite:///{results / STORAGE}"
    lr = optuna.distributions.FloatDistribution(1e-4, 1e-1, log=True)
    for name in names:
        study = optuna.create_study(study_name=name, storage=storage, direction="maximize")
        study.set_user_attr("budget", {"epochs": 1})
        for i in range(3):
            study.add_trial(
                optuna.trial.create_trial(
                    value=0.9 + 0.01 * i,
                    params={"lr": 1e-3 * (i + 1)},
                    distributions={"lr": lr},
                    intermediate_values={1: 0.9},
                )
            )
    return results / STORAGE


def damage_table(db: Path, table: str) -> None:
    """Overwrite the root page of ``table`` with garbage; the header (page 1) stays intact."""
    with sqlite3.connect(db) as conn:
        page_size = conn.execute("PRAGMA page_size").fetchone()[0]
        (root,) = conn.execute("SELECT rootpage FROM sqlite_master WHERE name = ?", (table,))
        root = root[0]
    conn.close()
    blob = bytearray(db.read_bytes())
    at = (root - 1) * page_size
    blob[at : at + page_size] = b"\xab" * page_size
    db.write_bytes(bytes(blob))


def report(results: Path, storage: str | None = None) -> tuple[str, object]:
    runs, bench = str(results / "runs" / "*"), str(results / "bench" / "*.csv")
    inputs = load_inputs(runs, bench, results, storage=storage)
    summary, _ = write_report(inputs, results)
    return (results / "report.md").read_text(), summary


def assert_rest_written(text: str, summary) -> None:
    """Both good groups are in the report's tables."""
    assert sorted(summary["fusion"]) == ["concat", "late_sum"]
    assert list(summary["n"]) == [2, 2]
    assert "## Main comparison" in text


def test_damaged_pages_of_optuna_db_cost_the_studies_only(results: Path) -> None:
    db = write_studies(results, ["gap_cnn__concat__e1__p1", "gap_cnn__late_sum__e1__p1"])
    damage_table(db, "trial_params")
    assert db.read_bytes().startswith(b"SQLite format 3\x00")
    text, summary = report(results)
    assert_rest_written(text, summary)
    for name in ("gap_cnn__concat__e1__p1", "gap_cnn__late_sum__e1__p1"):
        assert f"{db}: study {name} unreadable, left out: database disk image is malformed" in text
    assert "## Tuning studies" not in text


def test_a_storage_damaged_throughout_costs_its_section_only(results: Path) -> None:
    db = write_studies(results, ["gap_cnn__concat__e1__p1"])
    with sqlite3.connect(db) as conn:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
    conn.close()
    for table in tables:
        damage_table(db, table)
    text, summary = report(results)
    assert_rest_written(text, summary)
    note = next(line for line in text.splitlines() if "studies left out" in line)
    assert f"{db}: damaged, cannot be read (" in note and note.count(str(db)) == 1


@pytest.mark.usefixtures("undrawn")
@pytest.mark.parametrize(
    "damage",
    [
        '{"plan": ',
        "[]",
        '{"stages": {}}',
        '{"plan": {"max_params": "x"}}',  # was a traceback in the report's cost section
        '{"plan": {"budget": {"epochs": "9"}}}',
        '{"plan": {"seeds": [0, "1"]}}',
        '{"plan": {}, "rungs": [1]}',
        '{"plan": {}, "rungs": {"1": 5}}',
        '{"plan": {}, "rungs": {"1": {"plan": {"trials": "20"}}}}',
        '{"plan": {}, "stages": {"tune": {"vm": "an hour"}}}',
        '{"plan": {}, "stages": {"runs": {"vm": -5}}}',  # was shown as "-5.0 s"
        '{"plan": {}, "rungs": {"1": {"plan": {}, "stages": {"tune": {"vm": -5}}}}}',
    ],
)
def test_a_damaged_comparison_json_costs_its_sections_and_is_never_written_over(
    damage: str, results: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    """It holds hours of stage times: compare said nothing and wrote a new one over it; now
    compare stops in one line before any work, and the report notes it and goes on."""
    path = results / "comparison.json"
    path.write_text(damage)
    text, summary = report(results)
    assert_rest_written(text, summary)
    assert f"{path}: " in text and "the protocol's cost and ladder sections left out" in text
    assert "there is no comparison.json" not in text  # there is one: it cannot be read
    monkeypatch.setattr("benchmark.data.load_mnist", lambda *a, **k: pytest.fail("data loaded"))
    argv = ["compare", "--arch", "gap_cnn", "--fusion", "concat", "--results-dir", str(results)]
    assert exit_status(argv) == 1
    err = capsys.readouterr().err
    assert f"{path}: " in err and "repair it or move it away" in err
    assert path.read_text() == damage and not (results / "optuna.db").exists()


def test_a_second_report_reads_the_studies_digest_not_the_storage(
    results: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Studies rarely change: a report over the same optuna.db reads what the last one digested
    (the same section, the same files), and a storage that changed since is read again."""
    names = ["gap_cnn__concat__e1__p1", "gap_cnn__late_sum__e1__p1"]
    db = write_studies(results, names)
    reads = []
    read_storage = studies.read_storage
    monkeypatch.setattr(studies, "read_storage", lambda *a: reads.append(a) or read_storage(*a))
    first, _ = report(results)
    drawn = {p.name: p.read_bytes() for p in (results / "studies").iterdir()}
    again, _ = report(results)
    assert len(reads) == 1 and (results / DIGEST).is_file()
    assert again == first and "| gap_cnn__concat__e1__p1 | 3 | 0 | 92.00 | 2 |" in again
    assert {p.name: p.read_bytes() for p in (results / "studies").iterdir()} == drawn
    study = optuna.load_study(study_name=names[0], storage=f"sqlite:///{db}")
    study.add_trial(optuna.trial.create_trial(value=0.99, params={}, distributions={}))
    changed, _ = report(results)
    assert len(reads) == 2 and "| gap_cnn__concat__e1__p1 | 4 | 0 | 99.00 | 3 |" in changed


def test_a_storage_file_is_read_again_when_changed_and_a_server_down_gives_its_last_digest(
    results: Path, monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """``--storage`` was read whole by every report; and a server down or out of reach wrote a
    report without the studies the one before it had shown (a note said so)."""
    from benchmark import storages

    db = write_studies(tmp_path_factory.mktemp("elsewhere"), ["gap_cnn__concat__e1__p1"])
    spec = f"sqlite:///{db}"
    reads = []
    read_storage = studies.read_storage
    monkeypatch.setattr(studies, "read_storage", lambda *a: reads.append(a[0]) or read_storage(*a))
    first, _ = report(results, spec)
    assert "| gap_cnn__concat__e1__p1 | 3 | 0 | 92.00 | 2 |" in first
    assert report(results, spec)[0] == first and reads == [spec]
    study = optuna.load_study(study_name="gap_cnn__concat__e1__p1", storage=spec)
    study.add_trial(optuna.trial.create_trial(value=0.99, params={}, distributions={}))
    assert "| gap_cnn__concat__e1__p1 | 4 | 0 | 99.00 | 3 |" in report(results, spec)[0]
    assert reads == [spec, spec]
    server = "postgresql+psycopg2://u:secret@127.0.0.1:1/db"  # port 1: no server answers
    opened = storages.open_to_read
    up = [True]  # while up, the server's studies are those of the file above
    monkeypatch.setattr(storages, "open_to_read", lambda s: opened(spec if up[0] else s))
    shown = report(results, server)[0]
    assert report(results, server)[0] == shown and reads[2:] == [server, server]
    up[0] = False
    down = report(results, server)[0]
    assert "| gap_cnn__concat__e1__p1 | 4 | 0 | 99.00 | 3 |" in down and "secret" not in down
    said = "u:***@127.0.0.1:1/db unreadable ("
    assert said in down
    assert f"its studies as the last report that read it found them ({DIGEST})" in down
    (results / DIGEST).unlink()
    gone = report(results, server)[0]
    assert "## Tuning studies" not in gone
    note = next(line for line in gone.splitlines() if "studies left out" in line)
    assert note.count("127.0.0.1:1/db") == 1  # named once: by the error that says why
    assert "--storage postgresql+psycopg2://u:***@127.0.0.1:1/db: cannot open it: " in note


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("best_value", "x"),
        ("epochs", "x"),
        ("trained", "x"),
        ("defaults_trial", [1]),
        ("files", [1]),
        ("complete", "x"),
        ("failed", None),
    ],
)
def test_a_digest_edited_to_other_types_is_read_again_from_the_storage(
    field: str, value: object, results: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Its stamp still matched, so a digest whose values were edited to another type was reused
    and the report ended in a traceback; now it counts as damaged and the storage is read."""
    write_studies(results, ["gap_cnn__concat__e1__p1"])
    first, _ = report(results)
    found = json.loads((results / DIGEST).read_text())
    found["studies"][0][field] = value
    (results / DIGEST).write_text(json.dumps(found))
    reads = []
    read_storage = studies.read_storage
    monkeypatch.setattr(studies, "read_storage", lambda *a: reads.append(a) or read_storage(*a))
    again, _ = report(results)
    assert len(reads) == 1 and again == first


RECORDS = "config (tuned_from must be what --tuned records ({study: name, trial: int, value: "
RECORDS += "number})"


@pytest.mark.parametrize(
    ("key", "value", "reason"),
    [
        ("config.epochs", "x", "config (epochs must be of type int, got 'x')"),
        ("config.lr", [1], "config (lr must be of type float, got [1])"),
        ("config.tuned_from", "study", "config (tuned_from must be of type dict, got 'study')"),
        ("config.tuned_from", {"trial": [1]}, "config (tuned_from must be what --tuned records"),
        ("config.tuned_from", {"study": {}, "trial": 1, "value": 0.5}, f"{RECORDS}; its study is"),
        (
            "config.tuned_from",
            {"study": "s", "trial": 1, "value": 0.5, "budget": "x"},
            f"{RECORDS}; its budget is 'x')",
        ),
        ("train_seconds", "fast", "train_seconds"),
        ("params", 1e308, "params"),  # a traceback from the Pareto plot's axis
        ("test.sum_acc_by_class", [None] * 19, "test.sum_acc_by_class"),  # from the heatmap's
        ("test.sum_acc_by_class", 3, "test.sum_acc_by_class"),
        ("epochs", {"n": 1}, "epochs"),
        ("val.sum_acc", "high", "val.sum_acc"),
    ],
)
def test_a_run_with_a_value_of_the_wrong_type_is_listed_with_the_reason(
    results: Path, key: str, value: object, reason: str
) -> None:
    bad = make_run(results / "runs", "odd-run", fusion="embed_add", sum_acc=0.99)
    path = bad / "metrics.json"
    metrics = json.loads(path.read_text())
    *parents, last = key.split(".")
    node = metrics
    for part in parents:
        node = node[part]
    node[last] = value
    path.write_text(json.dumps(metrics))
    text, summary = report(results)
    assert_rest_written(text, summary)
    line = next(line for line in text.splitlines() if line.startswith("| odd-run |"))
    assert f"unreadable metrics.json: {reason}" in line
    assert "embed_add" not in set(summary["fusion"])


def test_a_foreign_file_among_the_runs_is_listed(results: Path) -> None:
    (results / "runs" / "notes.txt").write_text("my notes\n")
    text, summary = report(results)
    assert_rest_written(text, summary)
    reason = "not a run directory (a file or a broken link among the runs), left out"
    assert f"| notes.txt | not a run | {reason} |" in text
    assert "; 0 incomplete; 1 other entry (not runs)" in text  # a stray file is no run


def test_finished_runs_that_cannot_be_read_are_not_called_unfinished(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Every run finished, each metrics.json damaged: the answer said "No run has finished"
    and the header counted them "incomplete"."""
    for seed in (0, 1):
        run = make_run(tmp_path / "runs", f"r-s{seed}", seed=seed)
        (run / "metrics.json").write_text("{bad")
    assert exit_status(["report", "--results-dir", str(tmp_path)]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "listed in the report: 0 incomplete; 2 finished but damaged" in out
    said = (
        "No finished run can be read: 2 runs finished, but their metrics.json are damaged (see "
        "Incomplete runs), so there is nothing to compare yet."
    )
    assert f"answer: {said}" in out
    text = (tmp_path / "report.md").read_text()
    assert "- Runs: 0 complete runs in 0 groups; 0 incomplete; 2 finished but damaged\n" in text
    assert said.replace("see Incomplete runs", "see *Incomplete runs*") in text


def test_the_report_command_names_what_it_left_out_and_succeeds(
    results: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = write_studies(results, ["gap_cnn__concat__e1__p1"])
    damage_table(db, "trial_params")
    (results / "runs" / "notes.txt").write_text("my notes\n")
    assert exit_status(["report", "--results-dir", str(results)]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "Traceback" not in out
    assert "study gap_cnn__concat__e1__p1 unreadable, left out" in out
    assert "listed in the report: 0 incomplete; 1 other entry (not runs)" in out  # notes.txt
    assert (results / "report.md").is_file()


def test_a_storage_stamp_changes_with_its_write_ahead_log(tmp_path: Path) -> None:
    """In WAL mode a study's new trials may sit in ``optuna.db-wal`` while the main file is
    unchanged: a stamp of the main file alone let a report reuse a stale digest."""
    db = tmp_path / STORAGE
    db.write_bytes(b"SQLite format 3\x00 pages")
    alone = studies.storage_stamp(db)
    wal = tmp_path / f"{STORAGE}-wal"
    wal.write_bytes(b"frames of a new trial")
    logged = studies.storage_stamp(db)
    wal.write_bytes(b"frames of two new trials")
    assert len({alone, logged, studies.storage_stamp(db)}) == 3


def test_a_storage_that_is_not_there_is_never_given_an_earlier_reports_studies(
    tmp_path: Path,
) -> None:
    """A digest left unstamped (a study was unreadable then) matched the missing stamp of a
    ``--storage`` file that is not there: the report showed studies of a storage that is gone
    instead of saying it is not there."""
    out = tmp_path / "out"
    (out / DIGEST).parent.mkdir(parents=True)
    (out / DIGEST).write_text(json.dumps({"stamp": None, "studies": []}))
    gone = tmp_path / "gone.log"
    with pytest.raises(FileNotFoundError, match="no such file"):
        studies.load_studies(tmp_path, out, f"journal:{gone}")
    assert not gone.exists()


def test_a_digest_whose_files_were_removed_is_not_reused(tmp_path: Path) -> None:
    """Its stamp matches, but a study's CSV it lists is gone (cleaned away by hand): reused,
    the report would link files it no longer writes."""
    digest = {"name": "s", "epochs": 1, "finished": 3, "over_cap": 0, "best_value": 0.9,
              "best_trial": 2, "trained": 3, "unpruned": 3, "pruner": None, "complete": 3,
              "files": ["studies/s.csv"], "defaults_trial": None, "failed": 0}  # fmt: skip
    (tmp_path / DIGEST).parent.mkdir(parents=True)
    (tmp_path / DIGEST).write_text(json.dumps({"stamp": "f00d", "studies": [digest]}))
    assert studies.reuse(tmp_path, "f00d") is None
    (tmp_path / "studies" / "s.csv").write_text("number,value\n")
    assert studies.reuse(tmp_path, "f00d").files == {"studies/s.csv": b"number,value\n"}


def load_one_run(run_dir: Path):
    """``load_runs`` of one run directory: (runs, incomplete)."""
    from benchmark.report.load import load_runs

    runs, _, incomplete = load_runs([run_dir])
    return runs, incomplete


@pytest.mark.parametrize("accuracy", [1.5, -0.1])
def test_a_per_sum_accuracy_outside_0_to_1_lists_the_finished_run_as_damaged(
    tmp_path: Path, accuracy: float
) -> None:
    """A per-sum accuracy is a fraction of that sum's pairs: 1.5 is a damaged file, not a
    result for the heatmap."""
    from benchmark.report.load import incomplete_count

    run = make_run(tmp_path / "runs", "odd-run", by_class=[0.9] * 18 + [accuracy])
    runs, incomplete = load_one_run(run)
    assert runs.empty
    assert incomplete.to_dict("records") == [
        {
            "run": "odd-run",
            "status": "complete",
            "reason": "unreadable metrics.json: test.sum_acc_by_class",
        }
    ]
    assert incomplete_count(incomplete) == "0 incomplete; 1 finished but damaged"


def test_a_run_left_marked_running_says_how_to_resume_it_an_interrupted_one_its_own_words(
    tmp_path: Path,
) -> None:
    """A run killed outright (SIGKILL, power) is left marked running: its line says how to
    resume it, should no process train it any more. An interrupted run says what its status
    says, and both count as incomplete, not as finished but damaged."""
    from benchmark.report.load import incomplete_count, load_runs

    killed, stopped = tmp_path / "runs" / "a-killed", tmp_path / "runs" / "b-stopped"
    statuses = {killed: ("running", ""), stopped: ("interrupted", "stopped by an interrupt")}
    for run_dir, (status, message) in statuses.items():
        run_dir.mkdir(parents=True)
        (run_dir / "status.json").write_text(json.dumps({"status": status, "message": message}))
    _, _, incomplete = load_runs([killed, stopped])
    reasons = dict(zip(incomplete["run"], incomplete["reason"], strict=True))
    assert reasons == {
        "a-killed": "no metrics.json; if no process trains it any more (killed), resume with "
        f"`python -m benchmark run --resume {killed}`",
        "b-stopped": "no metrics.json; stopped by an interrupt",
    }
    assert incomplete_count(incomplete) == "2 incomplete"


def test_incomplete_and_finished_but_damaged_runs_are_counted_apart(tmp_path: Path) -> None:
    from benchmark.report.load import incomplete_count, load_runs

    killed = tmp_path / "runs" / "a-killed"
    killed.mkdir(parents=True)
    (killed / "status.json").write_text(json.dumps({"status": "running", "message": ""}))
    damaged = make_run(tmp_path / "runs", "b-damaged")
    (damaged / "metrics.json").write_text("{bad")
    (tmp_path / "runs" / "notes.txt").write_text("my notes\n")
    _, _, incomplete = load_runs(sorted((tmp_path / "runs").iterdir()))
    said = "1 incomplete; 1 finished but damaged; 1 other entry (not runs)"
    assert incomplete_count(incomplete) == said


def test_a_macs_per_image_that_is_not_a_number_lists_the_run_as_damaged(tmp_path: Path) -> None:
    run = make_run(tmp_path / "runs", "odd-run")
    metrics = json.loads((run / "metrics.json").read_text())
    (run / "metrics.json").write_text(json.dumps({**metrics, "macs_per_image": "7.3M"}))
    runs, incomplete = load_one_run(run)
    assert runs.empty
    assert list(incomplete["reason"]) == ["unreadable metrics.json: macs_per_image"]


def test_a_config_field_a_later_version_added_does_not_make_a_run_damaged(tmp_path: Path) -> None:
    """A run written by a newer version, its config.json holding a field this one does not know,
    is read: only the fields this version knows are checked."""
    run = make_run(tmp_path / "runs", "newer-run")
    metrics = json.loads((run / "metrics.json").read_text())
    metrics["config"]["a_later_option"] = True
    (run / "metrics.json").write_text(json.dumps(metrics))
    runs, incomplete = load_one_run(run)
    assert incomplete.empty and list(runs["run"]) == ["newer-run"]


STUDY = "gap_cnn__concat__e1__p1"


def journal_studies(results: Path, names: list[str]) -> str:
    """A journal storage holding one trial per study (a journal is written in milliseconds,
    an SQLite storage's tables in about a second): its ``--storage``."""
    path = results / "studies.log"
    storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(path)))
    for name in names:
        study = optuna.create_study(study_name=name, storage=storage, direction="maximize")
        study.add_trial(optuna.trial.create_trial(value=0.9))
    return f"journal:{path}"


def reported_twice(results: Path, storage: str) -> tuple[studies.Studies, studies.Studies]:
    """The studies as two reports in a row read them, the first leaving its digest."""
    first = studies.load_studies(results, results, storage)
    (results / DIGEST).parent.mkdir(parents=True, exist_ok=True)
    (results / DIGEST).write_text(first.digest_json())
    return first, studies.load_studies(results, results, storage)


def test_a_damaged_study_is_named_again_by_the_next_report(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The storage unchanged since: the next report must meet the damage again, not take the
    first report's digest, which holds no note of the study it left out."""
    storage = journal_studies(tmp_path, [STUDY])

    def damaged(name, storage):
        raise sqlite3.DatabaseError("database disk image is malformed")

    monkeypatch.setattr(studies, "in_memory", damaged)
    first, again = reported_twice(tmp_path, storage)
    said = f"study {STUDY} unreadable, left out: database disk image is malformed"
    assert any(said in note for note in first.notes) and first.stamp is None
    assert any(said in note for note in again.notes)


def test_a_study_whose_files_could_not_be_written_is_drawn_again_by_the_next_report(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    storage = journal_studies(tmp_path, [STUDY])

    def cannot_draw(study, out):
        raise RuntimeError("no font")

    monkeypatch.setattr(studies, "study_files", cannot_draw)
    first = studies.load_studies(tmp_path, tmp_path, storage)
    assert first.notes == [f"study {STUDY}: its trials CSV and plots not written: no font"]
    (tmp_path / DIGEST).parent.mkdir(parents=True)
    (tmp_path / DIGEST).write_text(first.digest_json())
    drawn = {f"studies/{STUDY}.csv": b"number,value\n"}
    monkeypatch.setattr(studies, "study_files", lambda study, out: drawn)
    again = studies.load_studies(tmp_path, tmp_path, storage)
    assert again.files == drawn and again.digests[0].files == tuple(drawn)


def test_compares_run_queue_is_no_study_of_the_report(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from benchmark.comparison import QUEUE_PREFIX

    storage = journal_studies(tmp_path, [f"{QUEUE_PREFIX}plan", STUDY])
    monkeypatch.setattr(studies, "study_files", lambda study, out: {})  # no plots: fast
    found = studies.load_studies(tmp_path, None, storage)
    assert [d.name for d in found.digests] == [STUDY] and found.notes == []


def test_the_studies_of_a_storage_are_listed_by_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Not in the order they were made (a storage lists them so): the same studies give the
    same table whichever was tuned first."""
    storage = journal_studies(tmp_path, ["small_cnn__concat__e1", STUDY])
    monkeypatch.setattr(studies, "study_files", lambda study, out: {})  # no plots: fast
    found = studies.load_studies(tmp_path, None, storage)
    assert [d.name for d in found.digests] == sorted(["small_cnn__concat__e1", STUDY])


def test_a_storages_error_is_given_in_its_first_line() -> None:
    """A note is one line: a multi-line error (a traceback of the server's) gives its first."""
    assert studies.why(RuntimeError("database is locked\n  at line 3")) == "database is locked"
    assert studies.why(RuntimeError("")) == "RuntimeError"
