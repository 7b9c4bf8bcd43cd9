"""The plots of one tuning study (``benchmark.report.studies``): Optuna's own matplotlib plots of
its optimisation history and, with enough complete trials, its parameter importances
(PED-ANOVA, which needs no scikit-learn). Each PNG carries a stamp of what it was drawn from:
the study's trials, this module and the versions of Optuna and matplotlib, so a plot already
drawn from the same trials is kept rather than drawn again, and a change to the report's words
about the studies redraws none of them."""

from __future__ import annotations

import inspect
import warnings
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING

from benchmark.report.output import png_bytes, png_stamp, short_hash, sources

if TYPE_CHECKING:
    import optuna

STUDIES_DIR = "studies"


def plot_stamp(csv: str) -> str:
    """A short hash of what a study's plots are drawn from: its trials (as ``trials_csv``), the
    code that draws them and the versions of the libraries it calls."""
    versions = [metadata.version("optuna"), metadata.version("matplotlib")]
    return short_hash([csv, *versions, *sources(__file__, inspect.getfile(png_bytes))])


# Optuna's key of the history plot, in the report's words
HISTORY_KEY = {"Objective Value": "a complete trial", "Best Value": "the best so far"}
MIN_IMPORTANCE_TRIALS = 8  # fewer complete trials say nothing about parameter importance


def plot_kinds(study: optuna.Study) -> list[str]:
    """``history`` and, with ``MIN_IMPORTANCE_TRIALS`` complete trials, ``importance``."""
    from optuna.trial import TrialState

    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    return ["history", "importance"] if len(complete) >= MIN_IMPORTANCE_TRIALS else ["history"]


def kept_plots(out: Path | None, name: str, kinds: list[str], stamp: str) -> dict[str, bytes]:
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
    import optuna
    from matplotlib.ticker import PercentFormatter
    from optuna.trial import TrialState
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
            if name == "history":  # as the report gives it: the objective, named, in %
                ax.xaxis.get_major_locator().set_params(integer=True)  # trials are whole
                ax.set_ylabel("validation joint accuracy (complete trials)")
                ax.yaxis.set_major_formatter(PercentFormatter(1.0))
                ax.set_ylim(top=min(ax.get_ylim()[1], 1.0))  # one trial: padded past 100%
                handles, labels = ax.get_legend_handles_labels()
                keys = [HISTORY_KEY.get(label, label) for label in labels]
                ax.legend(handles, keys, bbox_to_anchor=(1.05, 1.0), loc="upper left")
            else:  # one series, which Optuna's key called "Objective Value"
                if (key := ax.get_legend()) is not None:
                    key.remove()
                ax.set_title(f"{ax.get_title()}\n(PED-ANOVA over {len(complete)} complete trials)",
                             fontsize=10)  # fmt: skip
            ax.figure.set_size_inches(8, 4.5)
            ax.figure.tight_layout()
            plots[name] = png_bytes(ax.figure, stamp)
            plt.close(ax.figure)
    return plots
