"""Report section "Tuning studies": every Optuna study in the results directory's storage
(``optuna.db``), its trials as CSV and Optuna's own matplotlib plots of its optimisation history
and parameter importances (PED-ANOVA, which needs no scikit-learn). The run queue of
``compare`` is a work list, not a study of anything, and is left out.

Drawing is most of the report's time, and studies rarely change: each PNG carries a stamp of
what it was drawn from (the trials, this code, Optuna's and matplotlib's versions), and a plot
already in the output directory with the same stamp is kept rather than drawn again."""

from __future__ import annotations

import hashlib
import inspect
import warnings
from pathlib import Path

import optuna
import pandas as pd
from optuna.trial import TrialState

from benchmark.comparison import QUEUE_PREFIX
from benchmark.report.output import markdown_table, png_bytes, png_stamp
from benchmark.trials import counts_towards_budget, epochs_spent

STORAGE = "optuna.db"
STUDIES_DIR = "studies"
PRUNING_NOTE = (
    " *Epochs trained / trials x E*: the epochs its counted trials trained (each to its last "
    "reported epoch) against what they would have trained unpruned at the study's E epochs: "
    "the saving of pruning, measured."
)


def load_studies(results_dir: Path) -> tuple[list[optuna.Study], list[str]]:
    """(the studies of ``<results_dir>/optuna.db`` by name, a note per study left out): each
    study is copied into memory here, so a damaged page of the file costs the study it holds
    and is met under this guard, not later while the section is drawn. No such file: none."""
    path = Path(results_dir) / STORAGE
    if not path.is_file():
        return [], []
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = optuna.storages.RDBStorage(f"sqlite:///{path}", skip_table_creation=True)
    names = sorted(s.study_name for s in storage.get_all_studies())
    studies, notes = [], []
    for name in names:
        if name.startswith(QUEUE_PREFIX):
            continue
        try:
            studies.append(in_memory(name, storage))
        except Exception as exc:  # noqa: BLE001 - whatever a damaged page raises
            notes.append(f"{path}: study {name} unreadable, left out: {why(exc)}")
    return studies, notes


def in_memory(name: str, storage: optuna.storages.BaseStorage) -> optuna.Study:
    """Study ``name`` of ``storage`` copied whole (attributes and trials) into memory."""
    memory = optuna.storages.InMemoryStorage()
    optuna.copy_study(from_study_name=name, from_storage=storage, to_storage=memory)
    return optuna.load_study(study_name=name, storage=memory)


def why(exc: BaseException) -> str:
    """The reason worth showing: the storage's own error (SQLite's "database disk image is
    malformed") rather than the wrapper Optuna puts around it; one line."""
    cause = exc.__cause__ or exc
    text = str(getattr(cause, "orig", None) or cause).strip() or type(cause).__name__
    return text.splitlines()[0]


def multi_epoch(studies: list[optuna.Study]) -> bool:
    """Whether any study's budget is over one epoch: only then can pruning save epochs, and
    only then does the section show what it saved."""
    epochs = [(s.user_attrs.get("budget") or {}).get("epochs") for s in studies]
    return any(isinstance(e, int) and e > 1 for e in epochs)


def trials_csv(study: optuna.Study) -> str:
    frame = study.trials_dataframe(attrs=("number", "value", "state", "params", "user_attrs"))
    return frame.to_csv(index=False, lineterminator="\n", float_format="%.10g")


def plot_stamp(csv: str) -> str:
    """A short hash of what a study's plots are drawn from: its trials (as ``trials_csv``), the
    code that draws them and the versions of the libraries it calls."""
    import matplotlib

    digest = hashlib.sha256(csv.encode())
    for part in (optuna.__version__, matplotlib.__version__):
        digest.update(part.encode())
    for module in (__file__, inspect.getfile(png_bytes)):
        digest.update(Path(module).read_bytes())
    return digest.hexdigest()[:16]


MIN_IMPORTANCE_TRIALS = 8  # fewer complete trials say nothing about parameter importance


def plot_kinds(study: optuna.Study) -> list[str]:
    """``history`` and, with ``MIN_IMPORTANCE_TRIALS`` complete trials, ``importance``."""
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    return ["history", "importance"] if len(complete) >= MIN_IMPORTANCE_TRIALS else ["history"]


def drawn_before(out: Path | None, name: str, kinds: list[str], stamp: str) -> dict[str, bytes]:
    """The study's plots as an earlier report wrote them to ``out``, if every one is there and
    carries ``stamp``; else nothing."""
    if out is None:
        return {}
    found = {}
    for kind in kinds:
        path = out / STUDIES_DIR / f"{name}-{kind}.png"
        blob = path.read_bytes() if path.is_file() else b""
        if png_stamp(blob) != stamp:
            return {}
        found[kind] = blob
    return found


def study_plots(study: optuna.Study, stamp: str | None = None) -> dict[str, bytes]:
    """``plot_kinds`` of the study as PNG bytes (``stamp`` kept in each)."""
    import matplotlib.pyplot as plt
    from optuna.visualization.matplotlib import (
        plot_optimization_history,
        plot_param_importances,
    )

    plots = {}
    # Optuna's plots switch pyplot to its ggplot style for good; keep that inside this block
    with warnings.catch_warnings(), plt.rc_context():
        warnings.simplefilter("ignore")  # Optuna marks its matplotlib plots experimental
        complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        makers = {"history": plot_optimization_history}
        if "importance" in plot_kinds(study):
            evaluator = optuna.importance.PedAnovaImportanceEvaluator()
            # named in a fixed order: left to Optuna they come from a set, and the figures
            # (sums in another order) would change with the hash seed of each process
            names = sorted({k for t in complete for k in t.distributions})
            makers["importance"] = lambda s: plot_param_importances(
                s, evaluator=evaluator, params=names
            )
        for name, make in makers.items():
            ax = make(study)
            title = ax.get_title(loc="left") or ax.get_title()  # Optuna titles some at left
            ax.set_title("", loc="left")
            ax.set_title(f"{study.study_name}: {title}", fontsize=10)  # which study
            if name == "history":
                ax.xaxis.get_major_locator().set_params(integer=True)  # trials are whole
            ax.figure.set_size_inches(8, 4.5)
            ax.figure.tight_layout()
            plots[name] = png_bytes(ax.figure, stamp)
            plt.close(ax.figure)
    return plots


def spent_cell(trained: int, unpruned: int) -> str:
    share = f" ({100 * trained / unpruned:.0f}%)" if unpruned else ""
    return f"{trained} / {unpruned}{share}"


def studies_section(
    studies: list[optuna.Study], storage_label: str = STORAGE, out: Path | None = None
) -> tuple[str, dict[str, bytes]]:
    """(markdown, {relative path: bytes}) for the studies: a summary table with links;
    ``storage_label`` is how the text names the storage file, ``out`` where an earlier report
    may have drawn the plots already."""
    if not studies:
        return "", {}
    outputs: dict[str, bytes] = {}
    rows = []
    pruning = multi_epoch(studies)
    for study in studies:
        name = study.study_name
        csv = trials_csv(study)
        outputs[f"{STUDIES_DIR}/{name}.csv"] = csv.encode()
        links = [f"[trials]({STUDIES_DIR}/{name}.csv)"]
        stamp = plot_stamp(csv)
        plots = drawn_before(out, name, plot_kinds(study), stamp) or study_plots(study, stamp)
        for kind, png in plots.items():
            outputs[f"{STUDIES_DIR}/{name}-{kind}.png"] = png
            links.append(f"[{kind}]({STUDIES_DIR}/{name}-{kind}.png)")
        complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        best = max(complete, key=lambda t: t.value) if complete else None
        trials = study.get_trials(deepcopy=False)
        over_cap = sum(bool(t.user_attrs.get("over_cap")) for t in trials)
        # finished and not rejected by the cap: the trials that count towards ``tune --trials``
        row = {
            "study": name,
            "finished trials": str(sum(map(counts_towards_budget, trials))),
            "over the cap (rejected)": str(over_cap),
            "best value": "-" if best is None else f"{best.value:.5f}",
            "best trial": "-" if best is None else str(best.number),
        }
        if pruning:
            row["epochs trained / trials x E"] = spent_cell(*epochs_spent(study))
        rows.append({**row, "files": ", ".join(links)})
    text = "\n\n".join(
        [
            "## Tuning studies",
            f"Every study in `{storage_label}` (open it live with `optuna-dashboard "
            f"sqlite:///{storage_label}`). Value: the study's objective (validation accuracy "
            "at its budget). Per study: its trials as CSV, Optuna's optimisation-history plot "
            "and its parameter importances (PED-ANOVA)." + (PRUNING_NOTE if pruning else ""),
            markdown_table(pd.DataFrame(rows)),
        ]
    )
    return text, outputs
