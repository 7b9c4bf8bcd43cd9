"""The report's opening: a few sentences that state the answer of the main comparison, built
from one set of rules (``wording``) for the cases a small results directory meets: nothing to
compare, one seed (no interval, no test), untested groups, a tuned configuration that equals
the default, and the user's groups set beside a reference (``report --against``)."""

from __future__ import annotations

import re

import pandas as pd

from benchmark.config import SIZING
from benchmark.metrics import CHANCE, CHANCE_NOTE, LEARN_MORE
from benchmark.report.aggregate import group_labels, tuned_vs_default
from benchmark.report.output import p_cell, seconds_cell
from benchmark.report.reference import Reference
from benchmark.report.stats import verdicts
from benchmark.wording import (
    BEST,
    BETTER,
    NEAR,
    UNTESTED,
    WORSE,
    error_range,
    has,
    is_are,
    listing,
    plural,
)

HEADING = "## The answer"
MORE_SEEDS = "train at least 2 seeds per group (`--seeds 0,1,2`) to test them"
FEW_SEEDS = (  # t's 97.5% point: 12.7 for 1 degree of freedom, 4.3 for 2, 2.8 for 4
    "With 2 seeds a group's 95% interval is wide (12.7 standard errors either side), so "
    'Welch\'s test tells apart only large differences, and "cannot tell apart" says little '
    "here; 5 seeds (`--seeds 0,1,2,3,4`) narrow the intervals."
)


def seconds(value: float) -> str:
    """Seconds of training in a sentence: whole ones, but a tenth under ten (two tiny runs of 0.4
    and 0.9 s both read "0 s")."""
    return seconds_cell(value) if value < 10 else format(value, ",.0f")


def p_text(p: float) -> str:
    cell = p_cell(p)
    return f"p {cell[0]} {cell[1:]}" if cell.startswith("<") else f"p = {cell}"


def names(rows: pd.DataFrame) -> str:
    return listing(list(rows["label"]))


def scope(ref: Reference, summary: pd.DataFrame) -> str:
    """What the main comparison holds: budget, model arguments held by every run (a timm ViT's
    img_size), precision and the protocol's cap."""
    main = summary[summary["section"] == "main"]
    parts = [ref.budget_text()]
    if held := ref.base.get("model_args"):  # sizes: only the models that take them have them
        shown = [f"{k}={v}" for k, v in sorted(held.items()) if k not in SIZING]
        if sizes := [f"{k}={v}" for k, v in sorted(held.items()) if k in SIZING]:
            shown.append(", ".join(sizes) + " where a model takes them")
        parts.append(", ".join(shown))
    precisions = sorted(set(main["precision"]))
    if precisions:
        parts.append("/".join(precisions))
    if ref.cap_text():
        parts.append(ref.cap_text())
    return ", ".join(parts)


def interval_text(row: pd.Series) -> str:
    if pd.isna(row["test_sum_err_ci"]):
        return "one seed, so no interval"
    mean, half = row["test_sum_err_mean"], row["test_sum_err_ci"]
    return f"{error_range(mean, half)}, {plural(int(row['n']), 'seed')}"


def best_sentence(best: pd.Series, main: pd.DataFrame, where: str) -> str:
    tested = best["n"] >= 2 and (main["n"] < 2).any()
    among = " among the groups with at least 2 seeds" if tested else ""
    who, claim = f"**{best['label']}**", "has the lowest test sum error"
    if main["yours"].any():
        who = f"the reference's best, {who},"
        if (main["test_sum_err_mean"] < best["test_sum_err_mean"]).any():
            claim = "has the lowest test sum error of the reference's groups"
    cost = f" with {best['params']:,.0f} parameters"
    if pd.notna(best["train_seconds_mean"]):
        cost += f" and {seconds(best['train_seconds_mean'])} s of training"
    return (
        f"At the main comparison's budget ({where}), {who} {claim}{among}: "
        f"{best['test_sum_err_mean']:.2f}% ({interval_text(best)}; accuracy "
        f"{100 * best['test_sum_acc_mean']:.2f}%),{cost}."
    )


# --against: where the user's groups went; said in the terminal's lead too, after the best's
YOURS, AWAY = "Yours against the reference's best", "of yours"


def chance_sentences(summary: pd.DataFrame) -> list[str]:
    """Groups whose test digit accuracy is near chance learned nothing, as ``run``, ``predict``
    and ``export`` call them: a smoke run's 90% error was stated as the answer, without the
    warning ``run`` gave."""
    guessing = summary[summary["test_digit_acc_mean"] < CHANCE_NOTE]
    if guessing.empty:
        return []
    if len(summary) == 1:
        who, meaning = "Its digit accuracy is", "it learned nothing at this budget"
    elif len(guessing) == len(summary):
        who = "Every group's digit accuracy is"
        meaning = "they learned nothing at this budget, so this ranking means nothing"
    else:
        who = f"The digit accuracy of {names(guessing)} is"
        one = len(guessing) == 1
        meaning = (
            f"{'it' if one else 'they'} learned nothing at this budget, so "
            f"{'its' if one else 'their'} rank means nothing"
        )
    return [f"{who} {CHANCE}: {meaning}; {LEARN_MORE}."]


def untested_sentences(best: pd.Series, untested: pd.DataFrame) -> list[str]:
    if untested.empty:
        return []
    if best["n"] < 2:
        return [f"Every group has one seed, so none can be tested against another; {MORE_SEEDS}."]
    text = [
        f"{plural(len(untested), 'group')} {has(len(untested))} one seed and "
        f"{is_are(len(untested))} untested ({names(untested)}): one seed gives "
        f"no interval and no test; {MORE_SEEDS}."
    ]
    lower = untested[untested["test_sum_err_mean"] < best["test_sum_err_mean"]]
    if not lower.empty:
        text.append(
            f"A lower mean error from one seed ({names(lower)}) does not make a group the best."
        )
    return text


def repeats(groups: pd.DataFrame, those: bool = False) -> str:
    """`` (2 of them tuned rows that repeat their default)``: a study that kept the default adds
    a row that trains the default again, counted but not a configuration of its own. ``those``:
    after "3 of the 17 groups", where "of them" read as of the 3 (`` (of those 17, 2 are ...)``)."""
    twins = int(groups["same_as_default"].astype(bool).sum()) if len(groups) else 0
    if not twins:
        return ""
    if those:
        what = "is a tuned row that repeats its default" if twins == 1 else "are tuned rows that"
        what += "" if twins == 1 else " repeat their default"
        return f" (of those {len(groups)}, {twins} {what})"
    if twins == 1:
        return " (one of them a tuned row that repeats its default)"
    return f" ({twins} of them tuned rows that repeat their default)"


def tested_sentences(main: pd.DataFrame, best: pd.Series) -> list[str]:
    """Welch's verdicts against the best, the smallest of the groups tied with it and, where a
    group with as few parameters and a lower mean is called worse, why (its spread)."""
    rest = main[main["label"] != best["label"]]
    tested = rest[rest["standing"].isin([NEAR, WORSE, BETTER])]
    near, worse = tested[tested["standing"] == NEAR], tested[tested["standing"] == WORSE]
    better = tested[tested["standing"] == BETTER]
    text = []
    if rest.empty:
        return ["It is the only group in the main comparison: there is nothing to compare it with."]
    if tested.empty:
        return text
    note = "(each against the best, no correction for multiple comparisons)"
    if near.empty and better.empty:
        text.append(
            f"The other group tested, {names(worse)}, is worse by Welch's t-test at 5% {note}."
            if len(worse) == 1
            else f"The {len(worse)} other groups tested{repeats(worse)} are all worse by "
            f"Welch's t-test at 5% {note}."
        )
    elif not near.empty:
        remaining = (
            f"; the remaining {len(worse)} tested {'is' if len(worse) == 1 else 'are'} worse"
        )
        text.append(
            f"Welch's t-test at 5% cannot tell it apart from {len(near)} of the "
            f"{plural(len(tested), 'other group')} tested{repeats(tested, those=True)}: "
            f"{names(near)}"
            f"{remaining if len(worse) else ''} {note}."
        )
    elif len(worse):  # beside a group of yours found better: the worse ones' verdict still said
        text.append(f"{names(worse)} {is_are(len(worse))} worse by Welch's t-test at 5% {note}.")
    if not better.empty:
        text.append(f"Welch's t-test at 5% finds a lower error than it for {names(better)}.")
    if tested["n"].min() < 3 or best["n"] < 3:
        text.append(FEW_SEEDS)
    if near.empty:
        return text
    # a group untold apart only by its wide interval is no alternative: the smallest is sought
    # among those whose mean lies inside the best's interval (two seeds bolded a model at 8.9%
    # error beside a best at 2.7%)
    top = best["test_sum_err_mean"] + best["test_sum_err_ci"]  # the best's interval's upper end
    close = near[near["test_sum_err_mean"] <= top] if pd.notna(top) else near
    these = "these"
    if len(wide := near.drop(close.index)):
        one = len(wide) == 1
        means = listing([f"{m:.2f}%" for m in wide["test_sum_err_mean"]])
        cis = listing([f"± {c:.2f}" for c in wide["test_sum_err_ci"]])
        text.append(
            f"{names(wide)} {is_are(len(wide))} not offered as "
            f"{'an alternative' if one else 'alternatives'}: {'its' if one else 'their'} mean "
            f"error{'' if one else 's'} ({means}) {'lies' if one else 'lie'} above the best's "
            f"95% CI (up to {top:.2f}%); the test cannot separate "
            f"{'them' if one else 'each from it'} at {'its' if one else 'their'} spread (95% "
            f"CI {cis})."
        )
        these = "those still offered"
    # sums at chance are no alternative, whatever its digits: inside a 2-seed interval of 50
    # points, a group of 9.7% sums (24% digits) was offered in bold as the smaller one
    close = close[close["test_sum_acc_mean"] >= CHANCE_NOTE]
    if close.empty:
        return text + spread_notes(worse, near)
    tied = pd.concat([best.to_frame().T, close])
    cheapest = tied.sort_values(["params", "test_sum_err_mean"], kind="stable").iloc[0]
    if cheapest["label"] == best["label"]:
        text.append(f"It is also the smallest of {these} in parameters.")
    else:
        time = (
            f", {seconds(cheapest['train_seconds_mean'])} s of training against "
            f"{seconds(best['train_seconds_mean'])} s"
            if pd.notna(cheapest["train_seconds_mean"]) and pd.notna(best["train_seconds_mean"])
            else ""
        )
        text.append(
            f"The smallest of {these} is **{cheapest['label']}**: {cheapest['params']:,.0f} "
            f"parameters against {best['params']:,.0f} "
            f"({cheapest['params'] / best['params']:.2f}x){time}, at "
            f"{cheapest['test_sum_err_mean']:.2f}% error."
        )
    text += spread_notes(worse, near)
    return text


def spread_notes(worse: pd.DataFrame, near: pd.DataFrame) -> list[str]:
    """A group called worse although one untold apart from the best has a higher mean: the
    test weighs spread as well as mean, and says so here rather than leave a riddle (the main
    table's order, by mean, reads backwards there)."""
    notes = []
    for _, r in worse.iterrows():
        beaten = near[near["test_sum_err_mean"] > r["test_sum_err_mean"]]
        if beaten.empty:
            continue
        other = beaten.sort_values("test_sum_err_ci", ascending=False, kind="stable").iloc[0]
        size = ""
        if r["params"] <= other["params"]:
            size = (
                "as many parameters and "
                if r["params"] == other["params"]
                else f"fewer parameters ({r['params']:,.0f} against {other['params']:,.0f}) and "
            )
        notes.append(
            f"{r['label']} has {size}a lower mean error "
            f"({r['test_sum_err_mean']:.2f}% against {other['test_sum_err_mean']:.2f}%) than "
            f"{other['label']}, yet is called worse: its seeds agree more closely (95% CI ± "
            f"{r['test_sum_err_ci']:.2f}), so Welch's test separates it from the best "
            f"({p_text(r['p_vs_best'])}), while the interval of {other['label']} is wider, "
            f"± {other['test_sum_err_ci']:.2f}, and leaves that one indistinguishable "
            f"({p_text(other['p_vs_best'])}). Indistinguishable is not better."
        )
    return notes


def tuning_sentences(summary: pd.DataFrame, runs: pd.DataFrame | None) -> list[str]:
    pairs = tuned_vs_default(summary, runs)
    if pairs.empty:
        return []
    same = pairs["same_as_default_tuned"].astype(bool)
    text = []
    if same.any():
        named = listing(
            [f"{a} x {f}" for a, f in zip(pairs["arch"][same], pairs["fusion"][same], strict=True)]
        )
        text.append(
            f"In {plural(int(same.sum()), 'combination')} ({named}) the study's best "
            "configuration is the default itself: its tuned row trains that configuration again."
        )
    pairs = pairs[~same]
    if pairs.empty:
        return text
    counted = verdicts(pairs["p"], pairs["err_delta"]).value_counts()
    untested = counted.get("untested", 0)
    tail = f"; {untested} could not be tested (one seed)" if untested else ""
    found = " whose study found another configuration" if same.any() else ""  # why not all
    text.append(
        f"Tuning (same budget, same parameter cap) lowered the error significantly in "
        f"{counted.get('lower', 0)} of {plural(len(pairs), 'combination')}{found} and raised it "
        f"significantly in {counted.get('higher', 0)} (Welch's t-test at 5%); in "
        f"{counted.get('none', 0)} no difference was detected{tail}."
    )
    return text


def yours_sentences(summary: pd.DataFrame) -> list[str]:
    """``--against``: where the user's groups stand against the reference's best."""
    yours = summary[summary["yours"].astype(bool)]
    if yours.empty:
        return []
    main = yours[yours["section"] == "main"]
    words = {BEST: "best", NEAR: "indistinguishable from it", WORSE: "worse",
             BETTER: "better", UNTESTED: "untested (one seed)"}  # fmt: skip
    text = [
        f"{r['label']}: {r['test_sum_err_mean']:.2f}% error, {words[r['standing']]}"
        + ("" if pd.isna(r["p_vs_best"]) else f" ({p_text(r['p_vs_best'])})")
        for _, r in main.iterrows()
    ]
    out = [f"{YOURS}: {'; '.join(text)}."] if text else []
    away = list(yours.loc[yours["section"] != "main", "label"])  # "x (what differs)"
    if away:
        shown = "; ".join(away[:3]) + (f"; and {len(away) - 3} more" if len(away) > 3 else "")
        out.append(
            f"{plural(len(away), 'group')} {AWAY} {is_are(len(away))} not in the main "
            f"comparison, as {'it' if len(away) == 1 else 'each'} differs from the reference's "
            f"protocol (see below): {shown}."
        )
    return out


def no_main_sentences(summary: pd.DataFrame, where: str, damaged: int = 0) -> list[str]:
    """The answer when no group is in the main comparison: say why, and name the lowest error
    of the groups there are (a sweep of hand-set values has no default run, yet asks which
    value is best). ``damaged``: finished runs whose metrics.json cannot be read."""
    if summary.empty and damaged:
        return [
            f"No finished run can be read: {plural(damaged, 'run')} finished, but "
            f"{'its' if damaged == 1 else 'their'} metrics.json {is_are(damaged)} damaged "
            "(see *Incomplete runs*), so there is nothing to compare yet."
        ]
    if summary.empty:
        return ["No run has finished, so there is nothing to compare yet."]
    text = [
        f"No group is a default or tuned configuration at the main comparison's budget ({where}), "
        "so there is no main comparison to state."
    ]
    other = summary[summary["section"] == "other"].sort_values("test_sum_err_mean")
    if not other.empty:
        best = other.iloc[0]
        seeds = "one seed" if best["n"] == 1 else f"mean of {int(best['n'])} seeds"
        figure = f"{best['test_sum_err_mean']:.2f}% error ({seeds})"
        where_others = "under *Other budgets, ablations and hand-set configurations*"
        label = f"**{best['label']}**"  # bold, as the main answer's best: what it names
        text.append(
            f"The one group {where_others}, {label}, has {figure}."
            if len(other) == 1
            else f"Of the {len(other)} groups {where_others}, {label} has the lowest: "
            f"{figure}; they compare with each other only where their differences match."
        )
    text += chance_sentences(other)
    return text + (yours_sentences(summary) if summary["yours"].any() else [])


def said(summary: pd.DataFrame) -> pd.DataFrame:
    """The groups with the labels a sentence gives them: where tuned groups take part in the
    main comparison, a default one there is called "(default)" (the tables have a *tuned*
    column; a sentence naming "gap_cnn x late_sum (tuned)" and then "gap_cnn x late_sum" left
    the reader to guess)."""
    main = summary["section"] == "main"
    if not summary.loc[main, "tuned"].astype(bool).any():
        return summary
    return summary.assign(label=group_labels(summary, default=" (default)"))


def opening_section(
    summary: pd.DataFrame, ref: Reference, runs: pd.DataFrame | None = None, damaged: int = 0
) -> str:
    """A few generated sentences that state the answer, from the main comparison alone
    (``damaged``: finished runs that cannot be read, said where no run can be)."""
    summary = said(summary)
    main = summary[summary["section"] == "main"]
    where = scope(ref, summary)
    heading = f"{HEADING}\n\n" + (f"{ref.note} " if ref.note else "")
    if main.empty:
        return heading + " ".join(no_main_sentences(summary, where, damaged))
    best = main[main["standing"] == BEST].iloc[0]
    rest = main[main["label"] != best["label"]]
    # paragraphs: the best; who may stand beside it and why; the rest; the user's groups (as
    # one block, the committed answer ran to 330 words)
    lead = [best_sentence(best, main, where), *chance_sentences(main)]
    beside = tested_sentences(main, best) + untested_sentences(
        best, rest[rest["standing"] == UNTESTED]
    )
    rest_said = []
    errors = main["test_sum_err_mean"]
    if len(main) > 2 and errors.notna().any():
        # a tuned row repeating its default has its errors: the default is the one named
        worst = main[errors == errors.max()].sort_values("same_as_default", kind="stable").iloc[0]
        rest_said.append(
            f"The highest error in the comparison is {worst['test_sum_err_mean']:.2f}%, by "
            f"{worst['label']}."
        )
    rest_said += tuning_sentences(summary, runs)
    paragraphs = (lead, beside, rest_said, yours_sentences(summary))
    return heading + "\n\n".join(" ".join(p) for p in paragraphs if p)


def answer_lead(markdown: str) -> str:
    """The answer as a terminal gives it after ``report``: the opening section of a written
    report.md up to its first sentence that names a group (in bold), a note before it included,
    and the sentences on groups that learned nothing and on the user's groups (``--against``),
    as plain text; else its first sentence."""
    start = markdown.index(f"{HEADING}\n")
    section = markdown[start + len(HEADING) :].split("\n## ", 1)[0].strip()
    sentences = re.split(r"(?<=[.!?])\s+(?=[A-Z0-9*])", " ".join(section.split("\n\n")))
    named = next((i for i, sentence in enumerate(sentences) if "**" in sentence), 0)
    told = (CHANCE, YOURS, AWAY)  # after the best: what must not stay in report.md alone
    lead = sentences[: named + 1] + [s for s in sentences[named + 1 :] if any(t in s for t in told)]
    text = " ".join(lead).replace("(see below)", "(see report.md)")  # no "below" in a terminal
    return text.replace("*", "").replace("`", "")  # bold, italics, code: plain text
