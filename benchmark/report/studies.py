"""Report section "Tuning studies": every Optuna study in the results directory's storage
(``optuna.db``, or the ``--storage`` they were tuned in), its trials as CSV and Optuna's own
matplotlib plots of its optimisation history and parameter importances (PED-ANOVA, which needs
no scikit-learn). The run queue of ``compare`` is a work list, not a study of anything, and is
left out.

Studies rarely change between two reports, and reading them costs Optuna, SQLAlchemy and the
whole storage (about a second of a report's three). So what the section needs of each study is
a ``StudyDigest``, and the report leaves the digests in ``studies/digest.json`` beside the
trials CSVs and plots, stamped with a hash of ``optuna.db`` (or of the ``--storage`` file) and
of this code: a report that finds the same stamp reads those files and does not open the
storage. A server's digest is read only when the server cannot be. The plots are
``study_plots``', each stamped with what it was drawn from (not with this module, whose words
can change without redrawing them)."""

from __future__ import annotations

import dataclasses
import inspect
import json
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from benchmark import trials
from benchmark.comparison import QUEUE_PREFIX
from benchmark.files import mistyped, parse_json
from benchmark.places import OPTUNA_DB
from benchmark.report.output import markdown_table, short_hash, sources
from benchmark.report.study_plots import (
    MIN_IMPORTANCE_TRIALS,
    STUDIES_DIR,
    kept_plots,
    plot_kinds,
    plot_stamp,
    study_plots,
)
from benchmark.trials import counts_towards_budget, epochs_spent

if TYPE_CHECKING:
    import optuna

DIGEST = f"{STUDIES_DIR}/digest.json"
PRUNING_NOTE = (
    " *Trained to the end*: its finished trials that were not pruned, the only ones its best "
    "is chosen from (the defaults trial is never pruned: where few trials reach the end, it "
    "has few rivals). *Epochs trained / trials x E*: the epochs its counted "
    "trials trained (each to its last reported epoch) against what they would have trained "
    "unpruned at the study's E epochs: the saving of pruning, measured."
)


@dataclass(frozen=True)
class StudyDigest:
    """What the report says of one study: its budget, the trials that count towards
    ``--trials``, its best trial and the epochs its trials trained."""

    name: str
    epochs: int | None  # the epochs of the study's budget
    finished: int  # trials that count towards the budget (``trials.counts_towards_budget``)
    over_cap: int  # trials rejected by the parameter cap
    best_value: float | None
    best_trial: int | None
    trained: int  # epochs its counted trials trained
    unpruned: int  # ... and would have trained unpruned
    pruner: str | None  # the pruning rule the study recorded when it started (``compare``)
    files: tuple[str, ...]  # its CSV and plots, relative to the report's directory
    defaults_trial: int | None = None  # the complete trial of the defaults (``tune`` queues it)
    complete: int = 0  # counted trials that trained to the end: the only ones a best is drawn from
    failed: int = 0  # trials that raised (a killed worker's, say): not counted, not hidden


@dataclass
class Studies:
    """The studies of one storage as the report uses them: a digest per study, the files the
    section writes ({relative path: bytes}), a note per study left out, and the stamp of the
    storage they were read from (None: not to be reused, e.g. a study was unreadable)."""

    digests: list[StudyDigest] = field(default_factory=list)
    files: dict[str, bytes] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    stamp: str | None = None

    def unwritten_plots(self) -> list[str]:
        """The plots of these studies that this report does not write (relative paths): an
        importance plot of a study now with too few complete trials for one, say. An earlier
        report's copy left beside the others would show a study that is no more."""
        kinds = ("history", "importance")  # every kind ``plot_kinds`` may give
        plots = [(d, f"{STUDIES_DIR}/{d.name}-{k}.png") for d in self.digests for k in kinds]
        return [path for d, path in plots if d.files and path not in d.files]

    def digest_json(self) -> str:
        """``studies/digest.json``: the stamp and the digests, what ``reuse`` reads back."""
        entries = [dataclasses.asdict(d) for d in self.digests]
        return json.dumps({"stamp": self.stamp, "studies": entries}, indent=2) + "\n"


def load_studies(results_dir: Path, out: Path | None = None, storage: str | None = None) -> Studies:
    """The studies of ``<results_dir>/optuna.db``, or of ``storage`` (the ``--storage`` they were
    tuned in, where it is another): read back from the digest an earlier report left in ``out``
    when that storage and this code are unchanged since, else from the storage. Each study is
    read whole here, so a damaged page of the file costs the study it holds and is met under
    this guard, not later while the section is drawn. No ``optuna.db``: none.

    A local file (SQLite or journal) is known unchanged by a hash of its bytes. A server is read
    every time, as nothing cheap tells it unchanged; where it cannot be read (down, unreachable),
    the digest the last report that read it left is taken instead, and a note says so: a report
    written then had lost the studies an earlier one held."""
    path = Path(results_dir) / OPTUNA_DB
    own = f"sqlite:///{path}"
    if storage is None or storage == own:
        if not path.is_file():
            return Studies()
        return reused_or_read(own, storage_stamp(path), out)
    from benchmark.storages import check_form

    local = check_form(storage)
    if local is not None:  # not there: read_storage says so
        return reused_or_read(storage, storage_stamp(local) if local.is_file() else None, out)
    stamp = server_stamp(storage)
    try:
        return read_storage(storage, stamp, out)
    except Exception as exc:  # noqa: BLE001 - a server down, a network gone: whatever it raises
        earlier = out is not None and reuse(out, stamp)
        if not earlier:
            raise
        earlier.notes.append(
            f"{storage_name(storage)} unreadable ({why(exc)}): its studies as the last report "
            f"that read it found them ({DIGEST})"
        )
        return earlier


def reused_or_read(spec: str, stamp: str | None, out: Path | None) -> Studies:
    """The studies of a local storage file: its digest in ``out`` if ``stamp`` still matches."""
    return (out is not None and stamp is not None and reuse(out, stamp)) or read_storage(
        spec, stamp, out
    )


def digest_code() -> list[bytes | str]:
    """What a digest depends on besides the storage: the code that digests it and the versions
    of the libraries that write its CSVs and plots."""
    code = sources(__file__, trials.__file__, inspect.getfile(plot_stamp), inspect.getfile(sources))
    return [*code, *(metadata.version(p) for p in ("optuna", "matplotlib", "pandas"))]


def storage_stamp(path: Path) -> str:
    """A hash of a storage file (and its write-ahead log, if any) and ``digest_code``."""
    log = path.with_name(path.name + "-wal")
    stored = [part.read_bytes() if part.is_file() else b"" for part in (path, log)]
    return short_hash([*stored, *digest_code()])


def server_stamp(spec: str) -> str:
    """A hash of a server's name (password masked) and ``digest_code``: which server a digest
    came from, not that the server is unchanged since."""
    return short_hash([storage_name(spec), *digest_code()])


def reuse(out: Path, stamp: str) -> Studies | None:
    """The studies as the report that wrote ``out`` digested them, if it read the storage as it
    is now (same stamp) and every file it wrote is still there; else None."""
    try:
        found, digests = digest_file(out)
        if found != stamp:
            return None
        written = {name: (out / name).read_bytes() for d in digests for name in d.files}
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return Studies(digests, written, [], stamp)


def digest_file(out: Path) -> tuple[object, list[StudyDigest]]:
    """(stamp, digests) of the ``digest.json`` a report left in ``out``; raises OSError,
    ValueError, KeyError or TypeError on a missing or damaged one."""
    found = parse_json((out / DIGEST).read_text())
    for d in found["studies"]:  # a hand-edited value of another type: damaged, read again
        paths = all(isinstance(name, str) for name in d["files"])
        if not paths or mistyped(d, DIGEST_TYPES):
            raise TypeError(f"{out / DIGEST}: a study digest of another shape")
    digests = [StudyDigest(**{**d, "files": tuple(d["files"])}) for d in found["studies"]]
    return found["stamp"], digests


NONE = type(None)
# What each ``StudyDigest`` field holds in digest.json ("files" is a list of paths).
DIGEST_TYPES = {
    "name": (str,),
    "epochs": (int, NONE),
    "finished": (int,),
    "over_cap": (int,),
    "best_value": (int, float, NONE),
    "best_trial": (int, NONE),
    "trained": (int,),
    "unpruned": (int,),
    "pruner": (str, NONE),
    "defaults_trial": (int, NONE),
    "complete": (int,),
    "failed": (int,),
}


def recorded_studies(out: Path) -> Studies:
    """The study digests a report left in ``out``, whatever its stamp (none if it left none or
    the file is damaged): what ``report --against`` takes of the reference's studies, which it
    neither shows nor reads from their storage."""
    try:
        return Studies(digest_file(out)[1])
    except (OSError, ValueError, KeyError, TypeError):
        return Studies()


def read_storage(spec: str, stamp: str | None, out: Path | None) -> Studies:
    """Every study of the storage ``spec`` names, digested, with its CSV and plots (those
    already in ``out`` with the same stamp kept, see ``kept_plots``)."""
    import optuna

    from benchmark.storages import open_to_read

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = open_to_read(spec)
    label = storage_name(spec)
    names = sorted(s.study_name for s in storage.get_all_studies())
    found = Studies(stamp=stamp)
    for name in names:
        if name.startswith(QUEUE_PREFIX):
            continue
        try:
            study = in_memory(name, storage)
        except Exception as exc:  # noqa: BLE001 - whatever a damaged page raises
            found.notes.append(f"{label}: study {name} unreadable, left out: {why(exc)}")
            found.stamp = None  # a later report must meet the damage again
            continue
        try:  # read: a failure now is in writing its files, not in the storage
            written = study_files(study, out)
        except Exception as exc:  # noqa: BLE001 - a plot Optuna cannot draw costs its files only
            found.notes.append(f"study {name}: its trials CSV and plots not written: {why(exc)}")
            found.stamp = None  # drawn again by a later report
            written = {}
        found.files.update(written)
        found.digests.append(digest(study, tuple(written)))
    return found


def storage_name(spec: str) -> str:
    """A storage as a note names it: an SQLite file by its path, anything else by its label
    (password masked)."""
    from benchmark.storages import storage_label

    return storage_label(spec).removeprefix("sqlite:///")


def in_memory(name: str, storage: optuna.storages.BaseStorage) -> optuna.Study:
    """Study ``name`` of ``storage`` copied whole (attributes and trials) into memory."""
    import optuna

    memory = optuna.storages.InMemoryStorage()
    optuna.copy_study(from_study_name=name, from_storage=storage, to_storage=memory)
    return optuna.load_study(study_name=name, storage=memory)


def digest(study: optuna.Study, written: tuple[str, ...] = ()) -> StudyDigest:
    """What the report says of ``study`` (``written``: the files of it the report writes)."""
    from optuna.trial import TrialState

    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    best = max(complete, key=lambda t: t.value) if complete else None
    every = study.get_trials(deepcopy=False)
    epochs = (study.user_attrs.get("budget") or {}).get("epochs")
    trained, unpruned = epochs_spent(study)
    return StudyDigest(
        name=study.study_name,
        epochs=epochs if isinstance(epochs, int) else None,
        finished=sum(map(counts_towards_budget, every)),
        over_cap=sum(bool(t.user_attrs.get("over_cap")) for t in every),
        best_value=None if best is None else best.value,
        best_trial=None if best is None else best.number,
        trained=trained,
        unpruned=unpruned,
        pruner=study.user_attrs.get("pruner"),
        files=written,
        defaults_trial=next((t.number for t in complete if t.user_attrs.get("defaults")), None),
        complete=sum(counts_towards_budget(t) for t in complete),
        failed=sum(t.state == TrialState.FAIL for t in every),
    )


def study_files(study: optuna.Study, out: Path | None) -> dict[str, bytes]:
    """{relative path: bytes} of the study's trials CSV and plots."""
    name = study.study_name
    csv = trials_csv(study)
    written = {f"{STUDIES_DIR}/{name}.csv": csv.encode()}
    stamp = plot_stamp(csv)
    plots = kept_plots(out, name, plot_kinds(study), stamp) or study_plots(study, stamp)
    for kind, png in plots.items():
        written[f"{STUDIES_DIR}/{name}-{kind}.png"] = png
    return written


def why(exc: BaseException) -> str:
    """The reason worth showing: the storage's own error (SQLite's "database disk image is
    malformed") rather than the wrapper Optuna puts around it; one line."""
    cause = exc.__cause__ or exc
    text = str(getattr(cause, "orig", None) or cause).strip() or type(cause).__name__
    return text.splitlines()[0]


def multi_epoch(studies: list[StudyDigest]) -> bool:
    """Whether any study's budget is over one epoch: only then can pruning save epochs, and
    only then does the section show what it saved."""
    return any(s.epochs is not None and s.epochs > 1 for s in studies)


def trials_csv(study: optuna.Study) -> str:
    frame = study.trials_dataframe(attrs=("number", "value", "state", "params", "user_attrs"))
    return frame.to_csv(index=False, lineterminator="\n", float_format="%.10g")


def spent_cell(trained: int, unpruned: int) -> str:
    share = f" ({100 * trained / unpruned:.0f}%)" if unpruned else ""
    return f"{trained} / {unpruned}{share}"


def studies_section(
    studies: list[StudyDigest], storage_label: str = OPTUNA_DB, yours: bool = False
) -> str:
    """Markdown for the studies: a summary table with links to each one's files;
    ``storage_label`` is how the text names the storage file; ``yours``: beside a reference
    (``report --against``), whose studies are its own report's."""
    if not studies:
        return ""
    rows = []
    pruning = multi_epoch(studies)
    for study in studies:
        links = [f"[{link_name(study.name, f)}]({f})" for f in study.files]
        row = {
            "study": study.name,
            # finished and not rejected by the cap: what counts towards ``tune --trials``
            "finished trials": str(study.finished)
            + (f" (and {study.failed} failed)" if study.failed else ""),
            "over the cap (rejected)": str(study.over_cap),
            # in percent, as tune and run print it (Optuna stores the fraction)
            "best val joint acc %": "-"
            if study.best_value is None
            else f"{100 * study.best_value:.2f}",
            "best trial": "-"
            if study.best_trial is None
            else str(study.best_trial)
            + (" (the defaults)" if study.best_trial == study.defaults_trial else ""),
        }
        if pruning:
            row["trained to the end"] = str(study.complete)
            row["epochs trained / trials x E"] = spent_cell(study.trained, study.unpruned)
        rows.append({**row, "files": ", ".join(links)})
    whose = "Yours, beside the reference (whose are in its own report): every" if yours else "Every"
    return "\n\n".join(
        [
            "## Tuning studies",
            f"{whose} tuning study in `{storage_label}` (open it live with `optuna-dashboard "
            f"sqlite:///{storage_label}`, which shows the fractions; it installs with "
            '`pip install -e ".[dashboard]"`). *Best val joint acc*: the study\'s objective, '
            "validation joint accuracy (both heads right) at its budget. *Best trial*: its "
            "number among all the study's trials, those rejected over the cap included. "
            "Per study: its trials as CSV, Optuna's optimisation-history plot (complete "
            "trials: a pruned one has no final value) and, where at least "
            f"{MIN_IMPORTANCE_TRIALS} trials completed, its parameter importances (Optuna's "
            "PED-ANOVA: how far each parameter's values in the best trials differ from its "
            "values over all of them)."
            + (PRUNING_NOTE + rules_sentence(studies) if pruning else ""),
            markdown_table(pd.DataFrame(rows)),
        ]
    )


def rules_sentence(studies: list[StudyDigest]) -> str:
    """The pruning rules the studies recorded, each with the budgets it ran at, and what the
    ladder's words mean ("" if none recorded one: studies from before rules were recorded)."""
    epochs_of: dict[str, set[int]] = {}
    for study in studies:
        if study.pruner and study.epochs is not None:
            epochs_of.setdefault(study.pruner, set()).add(study.epochs)
    rules = [
        f"`{rule}` at {', '.join(map(str, sorted(epochs)))} epochs"
        for rule, epochs in sorted(epochs_of.items(), key=lambda item: min(item[1]))
    ]
    said = f" Pruning, as the studies recorded it: {'; '.join(rules)}." if rules else ""
    if any(rule.startswith("halving") for rule in epochs_of):
        said += (
            " *halving*: successive halving, at 1, 3, 9, ... epochs a third of the trials that "
            "reached the epoch go on, the others stop"
        )
        if any("defaults ranked" in rule for rule in epochs_of):  # compare's, not tune's
            said += "; *defaults ranked*: the defaults trial, never stopped, counts in that ranking"
        said += "."
    return said


def link_name(study: str, relative: str) -> str:
    """How the table names one of a study's files: ``trials`` for its CSV, else the plot's
    kind (``studies/<study>-history.png``: ``history``)."""
    stem = Path(relative).stem
    return "trials" if stem == study else stem.removeprefix(f"{study}-")
