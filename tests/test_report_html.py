"""report.html: self-contained (every plot embedded, nothing fetched), the answer first, tables
that sort; and, where Chromium is installed, that a real browser renders it (slow tier)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import make_run

from benchmark import report
from benchmark.report.html import render_html


def write(root: Path) -> str:
    runs = root / "runs"
    for seed, (a, b) in enumerate(((0.95, 0.90), (0.96, 0.91), (0.97, 0.92))):
        make_run(runs, f"a{seed}", seed=seed, sum_acc=a)
        make_run(runs, f"b{seed}", fusion="late_sum", seed=seed, sum_acc=b,
                 config_hash="b0000000")  # fmt: skip
    inputs = report.load_inputs(str(runs / "*"), str(root / "none"))
    report.write_report(inputs, root / "out")
    return (root / "out" / "report.html").read_text()


@pytest.mark.usefixtures("undrawn")
def test_report_html_is_self_contained_and_sortable(tmp_path: Path) -> None:
    page = write(tmp_path)
    sources = re.findall(r'\b(?:src|href)="([^"]*)"', page)
    assert sources and all(s.startswith("data:image/png;base64,") for s in sources)
    assert not re.search(r"<(?:link|iframe|object)\b", page) and "@import" not in page
    assert page.count('<img alt="') == 4  # forest, pareto, val_curves, sum_class_heatmap
    tables = re.findall(r"<table[^>]*>", page)
    assert tables and all('class="sortable"' in t for t in tables)
    assert "querySelectorAll('table.sortable th')" in page
    # the answer comes before the header's details and the main table
    hardware = page.index("Hardware of the runs:")
    assert page.index("The answer") < hardware < page.index("<h2>Main comparison")


def test_markdown_subset_converts() -> None:
    page = render_html(
        "# t\n\n- a **b**\n\n## The answer\n\nx *y* `z` [l](studies/s.csv)\n\n"
        "| c | d |\n|---|---|\n| 1 \\| 2 | 3 |\n\n![p](plots/p.png)\n\n![q](plots/q.png)\n",
        {"plots/p.png": b"\x89PNG"},
    )
    assert "<li>a <strong>b</strong></li>" in page
    assert 'x <em>y</em> <code>z</code> <a href="studies/s.csv">l</a>' in page
    assert "<td>1 | 2</td><td>3</td>" in page
    assert 'src="data:image/png;base64,iVBORw=="' in page
    assert "plots/q.png not embedded" in page and 'src="plots/q.png"' not in page


def test_a_links_target_is_escaped_once() -> None:
    """Escaped twice, a study file ``a&b.csv`` was linked as ``a&amp;amp;b.csv``: a browser
    followed it to ``a&amp;b.csv``, a file that is not there."""
    page = render_html('# t\n\n[trials](studies/a&b.csv) [q](studies/q"s.csv)\n', {})
    assert '<a href="studies/a&amp;b.csv">trials</a>' in page
    assert '<a href="studies/q&quot;s.csv">q</a>' in page


def test_a_tables_separator_line_is_no_row_of_the_page() -> None:
    """``|---|---|`` under a table's header says where the header ends: drawn as a body row, it
    read as a row of dashes atop every table of the page."""
    page = render_html("# t\n\n| c | d |\n|---|---|\n| 1 | 2 |\n| 3 | 4 |\n", {})
    (body,) = re.findall(r"<tbody>(.*?)</tbody>", page)
    assert body == "<tr><td>1</td><td>2</td></tr><tr><td>3</td><td>4</td></tr>"


def test_headings_keep_their_level_and_the_title_is_shown_once() -> None:
    """The title is the page's one ``<h1>``, above the answer; sections are ``<h2>``, as in
    report.md."""
    page = render_html("# My report\n\nHardware: x.\n\n## The answer\n\nA.\n\n## Main\n\nB.\n", {})
    assert page.count("<h1>") == 1 and "<h1>My report</h1>" in page
    assert "<h2>The answer</h2>" in page and "<h2>Main</h2>" in page
    assert page.index("<h1>My report</h1>") < page.index("<h2>The answer</h2>")
    assert page.index("<h2>The answer</h2>") < page.index("<p>Hardware: x.</p>")


def test_a_ladders_answer_across_budgets_stays_beside_the_answer() -> None:
    """report.md puts *The answer across budgets* right after *The answer*: the page keeps the
    two together, in the answer's box, before the header's details."""
    page = render_html(
        "# t\n\nHardware: x.\n\n## The answer\n\nA.\n\n## The answer across budgets\n\n"
        "B.\n\n## Main comparison\n\nC.\n",
        {},
    )
    answers = re.findall(r'<section class="answer">(.*?)</section>', page)
    assert answers == ["<h2>The answer</h2><p>A.</p>",
                       "<h2>The answer across budgets</h2><p>B.</p>"]  # fmt: skip
    assert page.index("The answer across budgets") < page.index("Hardware: x.")


def test_text_that_reads_as_markup_is_escaped_on_the_page() -> None:
    """report.md writes p-values as ``<0.001`` and a name may hold ``&``: passed through raw, a
    browser reads ``<0.001 ...`` as a tag and drops it. The title, the cells and the line naming
    an image left out are escaped alike."""
    page = render_html(
        "# a <b> & c\n\np <0.001 & q\n\n| c | d |\n|---|---|\n| <0.001 | a&b |\n\n"
        "![x<y](plots/a&b.png)\n",
        {},
    )
    assert "<title>a &lt;b&gt; &amp; c</title>" in page and "<h1>a &lt;b&gt; &amp; c</h1>" in page
    assert "<p>p &lt;0.001 &amp; q</p>" in page
    assert "<td>&lt;0.001</td><td>a&amp;b</td>" in page
    assert "<p>[x&lt;y: plots/a&amp;b.png not embedded]</p>" in page


def test_asterisks_between_words_or_set_apart_by_spaces_are_no_emphasis() -> None:
    """``*y*`` is emphasis; the ``*`` of ``3 * 4`` or ``a*b*c`` is text: read as markup, the
    words between them were set in italics and the asterisks lost."""
    page = render_html("# t\n\n3 * 4 * 5 and a*b*c, *y*\n", {})
    assert "<p>3 * 4 * 5 and a*b*c, <em>y</em></p>" in page


def test_a_line_of_spaces_parts_blocks_as_an_empty_line_does() -> None:
    """A section's heading after a line holding only spaces is still a heading, not the end of
    the paragraph above it."""
    page = render_html("# t\n\nA.\n   \n## Main\n\nB.\n", {})
    assert "<p>A.</p>" in page and "<section><h2>Main</h2><p>B.</p>" in page


def test_a_block_is_a_list_or_a_table_only_where_all_its_lines_say_so() -> None:
    """Lines that all start ``- `` are a list; a dash on the first line alone, or a first line
    in pipes with no separator line under it, is a paragraph, every character kept."""
    page = render_html("# t\n\n- a\n- b\n\n- c\nd\n\n| x | is x\nor not\n", {})
    assert "<ul><li>a</li><li>b</li></ul>" in page
    assert "<p>- c d</p>" in page and "<p>| x | is x or not</p>" in page
    assert page.count("<table") == 0


@pytest.mark.slow
def test_report_html_renders_in_headless_chromium(tmp_path: Path) -> None:
    browser = next(filter(None, map(shutil.which, ("chromium", "chromium-browser"))), None)
    if browser is None:
        pytest.skip("chromium not installed (apt-get install chromium)")
    write(tmp_path)
    shot = tmp_path / "shot.png"
    page = (tmp_path / "out" / "report.html").resolve().as_uri()
    subprocess.run(
        [browser, "--headless", "--no-sandbox", "--disable-gpu", f"--screenshot={shot}",
         "--window-size=1280,2000", page],
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    blob = shot.read_bytes()
    assert blob.startswith(b"\x89PNG") and len(blob) > 20_000  # text, tables and plots drawn
    dom = subprocess.run(
        [browser, "--headless", "--no-sandbox", "--disable-gpu", "--dump-dom", page],
        check=True, capture_output=True, text=True, timeout=120,
    ).stdout  # fmt: skip
    assert "The answer" in dom and dom.count("<img") == 4


@pytest.mark.slow
def test_every_table_sorts_by_its_own_column_in_headless_chromium(tmp_path: Path) -> None:
    """The script numbered the headers across the page, so a click in any table but the first
    threw; durations sorted by their first number ("10.6 s" after "3.6 min"), names by a digit
    inside them."""
    browser = next(filter(None, map(shutil.which, ("chromium", "chromium-browser"))), None)
    if browser is None:
        pytest.skip("chromium not installed (apt-get install chromium)")
    rows = "| b__e9 | 44.4 min |\n| a__e1 | 10.6 s |\n| d | - |\n| c__e3 | 3.6 s |\n"
    second = "| study | wall time |\n|---|---|\n" + rows
    page = render_html(f"# t\n\n| x | y |\n|---|---|\n| 1 | 2 |\n\n{second}\n{second}", {})
    clicks = (
        "<script>var t=document.querySelectorAll('table');"
        "t[1].tHead.rows[0].cells[1].click();t[2].tHead.rows[0].cells[0].click();</script>"
    )
    path = tmp_path / "sort.html"
    path.write_text(page.replace("</body>", clicks + "</body>"))
    dom = subprocess.run(
        [browser, "--headless", "--no-sandbox", "--disable-gpu", "--dump-dom", path.as_uri()],
        check=True, capture_output=True, text=True, timeout=120,
    ).stdout  # fmt: skip
    tables = re.findall(r"<tbody>(.*?)</tbody>", dom)
    by_time, by_name = (re.findall(r"<td>([^<]*)</td>", t) for t in tables[1:])
    assert by_time[1::2] == ["3.6 s", "10.6 s", "44.4 min", "-"]
    assert by_name[0::2] == ["a__e1", "b__e9", "c__e3", "d"]
