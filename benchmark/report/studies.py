"""Report section "Tuning studies": every Optuna study in the results directory's storage
(``optuna.db``), its trials as CSV and Optuna's own matplotlib plots of its optimisation history
and parameter importances (PED-ANOVA, which needs no scikit-learn). The run queue of
``compare`` is a work list, not a study of anything, and is left out."""

from __future__ import annotations

import warnings
from pathlib import Path

import optuna
import pandas as pd
from optuna.trial import TrialState

from benchmark.compare import QUEUE_PREFIX
from benchmark.report.output import markdown_table, png_bytes
from benchmark.tuning import finished_count

STORAGE = "optuna.db"
STUDIES_DIR = "studies"


def load_studies(results_dir: Path) -> list[optuna.Study]:
    """The studies of ``<results_dir>/optuna.db`` (none if there is no such file), by name."""
    path = Path(results_dir) / STORAGE
    if not path.is_file():
        return []
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = optuna.storages.RDBStorage(f"sqlite:///{path}", skip_table_creation=True)
    names = sorted(s.study_name for s in storage.get_all_studies())
    return [
        optuna.load_study(study_name=name, storage=storage)
        for name in names
        if not name.startswith(QUEUE_PREFIX)
    ]


def trials_csv(study: optuna.Study) -> str:
    frame = study.trials_dataframe(attrs=("number", "value", "state", "params", "user_attrs"))
    return frame.to_csv(index=False, lineterminator="\n", float_format="%.10g")


def study_plots(study: optuna.Study) -> dict[str, bytes]:
    """``history`` and, with two or more complete trials, ``importance``: PNG bytes."""
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
        if len(complete) >= 2:
            evaluator = optuna.importance.PedAnovaImportanceEvaluator()
            # named in a fixed order: left to Optuna they come from a set, and the figures
            # (sums in another order) would change with the hash seed of each process
            names = sorted({k for t in complete for k in t.distributions})
            makers["importance"] = lambda s: plot_param_importances(
                s, evaluator=evaluator, params=names
            )
        for name, make in makers.items():
            ax = make(study)
            ax.figure.set_size_inches(8, 4.5)
            ax.figure.tight_layout()
            plots[name] = png_bytes(ax.figure)
            plt.close(ax.figure)
    return plots


def studies_section(
    studies: list[optuna.Study], storage_label: str = STORAGE
) -> tuple[str, dict[str, bytes]]:
    """(markdown, {relative path: bytes}) for the studies: a summary table with links;
    ``storage_label`` is how the text names the storage file."""
    if not studies:
        return "", {}
    outputs: dict[str, bytes] = {}
    rows = []
    for study in studies:
        name = study.study_name
        outputs[f"{STUDIES_DIR}/{name}.csv"] = trials_csv(study).encode()
        links = [f"[trials]({STUDIES_DIR}/{name}.csv)"]
        for kind, png in study_plots(study).items():
            outputs[f"{STUDIES_DIR}/{name}-{kind}.png"] = png
            links.append(f"[{kind}]({STUDIES_DIR}/{name}-{kind}.png)")
        complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        best = max(complete, key=lambda t: t.value) if complete else None
        over_cap = sum(bool(t.user_attrs.get("over_cap")) for t in study.get_trials(deepcopy=False))
        rows.append(
            {
                "study": name,
                "finished trials": str(finished_count(study)),
                "over the cap (rejected)": str(over_cap),
                "best value": "-" if best is None else f"{best.value:.5f}",
                "best trial": "-" if best is None else str(best.number),
                "files": ", ".join(links),
            }
        )
    text = "\n\n".join(
        [
            "## Tuning studies",
            f"Every study in `{storage_label}` (open it live with `optuna-dashboard "
            f"sqlite:///{storage_label}`). Value: the study's objective (validation accuracy "
            "at its budget). Per study: its trials as CSV, Optuna's optimisation-history plot "
            "and its parameter importances (PED-ANOVA).",
            markdown_table(pd.DataFrame(rows)),
        ]
    )
    return text, outputs
