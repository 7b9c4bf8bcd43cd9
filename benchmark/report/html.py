"""report.html: the same report as report.md in one self-contained file for a browser: the
answer first, every plot embedded as base64 (nothing fetched, nothing beside it needed), and
tables that sort when a header is clicked (a few lines of inline JavaScript).

It converts the markdown the report generates, which uses a small, known subset: headings,
paragraphs, ``-`` lists, pipe tables, ``**bold**``, ``*emphasis*``, ``code`` spans, links and
images; anything else passes through as escaped text."""

from __future__ import annotations

import base64
import html
import re

STYLE = """
body{font:15px/1.5 system-ui,sans-serif;max-width:1200px;margin:2em auto;padding:0 1em;color:#222}
h1{font-size:1.6em}h2{font-size:1.25em;margin-top:2em;border-bottom:1px solid #ddd}
table{border-collapse:collapse;font-size:13px;margin:1em 0;display:block;overflow-x:auto}
th,td{border:1px solid #ccc;padding:3px 6px;text-align:right;white-space:nowrap}
th{background:#f3f3f3;cursor:pointer;user-select:none}th:after{content:" \\2195";color:#999}
td:nth-child(-n+2),th:nth-child(-n+2){text-align:left}
img{max-width:100%;height:auto;display:block;margin:1em 0}
.answer{background:#f4f8ff;border-left:4px solid #3b73c8;padding:.2em 1em}
"""

# Click a header: sort that table's rows by the column (click again to reverse). A cell that
# starts with a number sorts as one ("0.65 ± 0.04", "1,234", "<0.001"), durations in seconds
# ("44.4 min" after "10.6 s"); cells of text ("gap_cnn__concat__e9") sort as text, after the
# numbers, and "-" last. The column is the header's own index in its table.
SCRIPT = """
function sortKey(t){var m=t.trim().replace(/,/g,'')
.match(/^[<>\u2248~]?\\s*(-?\\d+(?:\\.\\d+)?(?:e-?\\d+)?)\\s*(ms|s|min|h)?\\b/);
if(!m)return null;var u={ms:0.001,s:1,min:60,h:3600}[m[2]];return parseFloat(m[1])*(u||1)}
function rank(t){return t.trim()==='-'?2:(sortKey(t)===null?1:0)}
document.querySelectorAll('table.sortable th').forEach(function(th){
th.addEventListener('click',function(){var col=th.cellIndex,body=th.closest('table').tBodies[0];
var rows=Array.from(body.rows),up=th.dataset.dir!=='asc';th.dataset.dir=up?'asc':'desc';
rows.sort(function(a,b){var x=a.cells[col].textContent,y=b.cells[col].textContent,
rx=rank(x),ry=rank(y),r;if(rx!==ry)return rx-ry;
r=rx===0?sortKey(x)-sortKey(y):x.localeCompare(y);return up?r:-r});
rows.forEach(function(r){body.appendChild(r)})})});
"""

IMAGE = re.compile(r"!\[([^\]]*)\]\(([^)\s]+)\)")
LINK = re.compile(r"\[([^\]]+)\]\(([^)\s]+)\)")


def inline(text: str) -> str:
    """Escaped text with the inline markdown the report uses turned into HTML."""
    out = html.escape(text, quote=False)
    out = re.sub(r"`([^`]+)`", r"<code>\1</code>", out)
    out = re.sub(r"\*\*([^*]+)\*\*", r"<strong>\1</strong>", out)
    out = re.sub(r"(?<![\w*])\*([^*\s][^*]*)\*(?![\w*])", r"<em>\1</em>", out)
    # the target is escaped already (above, quotes aside): escaped again, `&` read `&amp;amp;`
    return LINK.sub(lambda m: f'<a href="{m[2].replace(chr(34), "&quot;")}">{m[1]}</a>', out)


def cells(line: str) -> list[str]:
    parts = re.split(r"(?<!\\)\|", line.strip().strip("|"))
    return [p.strip().replace("\\|", "|") for p in parts]


def table(lines: list[str]) -> str:
    head = "".join(f"<th>{inline(c)}</th>" for c in cells(lines[0]))
    body = "".join(
        "<tr>" + "".join(f"<td>{inline(c)}</td>" for c in cells(line)) + "</tr>"
        for line in lines[2:]
    )
    return f'<table class="sortable"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def image(match: re.Match[str], images: dict[str, bytes]) -> str:
    """An image from ``images`` (relative path -> PNG bytes) as a data URI; one not given is
    named, not linked, so the page never fetches anything."""
    alt, target = match[1], match[2]
    if target not in images:
        return f"<p>[{html.escape(alt)}: {html.escape(target)} not embedded]</p>"
    data = base64.b64encode(images[target]).decode("ascii")
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


def block(text: str, images: dict[str, bytes]) -> str:
    lines = text.splitlines()
    if lines[0].startswith("#"):
        level = len(lines[0]) - len(lines[0].lstrip("#"))
        return f"<h{level}>{inline(lines[0][level:].strip())}</h{level}>"
    if len(lines) > 1 and lines[0].startswith("|") and set(lines[1]) <= set("|-: "):
        return table(lines)
    if all(line.startswith("- ") for line in lines):
        return "<ul>" + "".join(f"<li>{inline(line[2:])}</li>" for line in lines) + "</ul>"
    if len(lines) == 1 and IMAGE.fullmatch(lines[0]):
        return image(IMAGE.fullmatch(lines[0]), images)
    return "<p>" + inline(" ".join(lines)) + "</p>"


def sections(markdown: str) -> list[tuple[str, list[str]]]:
    """(heading, blocks) per ``## `` section; the part before the first one under ""."""
    found: list[tuple[str, list[str]]] = [("", [])]
    for chunk in re.split(r"\n\s*\n", markdown.strip()):
        if chunk.startswith("## "):
            found.append((chunk, []))
        else:
            found[-1][1].append(chunk)
    return found


def render_html(markdown: str, images: dict[str, bytes]) -> str:
    """The page for ``markdown`` (report.md's text), images (``plots/forest.png`` ...) embedded;
    the answer comes right after the title, before the header's details."""
    parts = sections(markdown)
    lead, rest = parts[0], parts[1:]
    title = next((b for b in lead[1] if b.startswith("# ")), "# digitsum-bench report")
    details = [b for b in lead[1] if b != title]
    answer = [p for p in rest if p[0].startswith("## The answer")]
    others = [p for p in rest if not p[0].startswith("## The answer")]
    body = [block(title, images)]
    for heading, blocks in answer:
        inner = "".join(block(b, images) for b in [heading, *blocks])
        body.append(f'<section class="answer">{inner}</section>')
    body += [block(b, images) for b in details]
    for heading, blocks in others:
        body.append("<section>" + "".join(block(b, images) for b in [heading, *blocks]))
        body.append("</section>")
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(title.lstrip('# '))}</title><style>{STYLE}</style></head>\n<body>\n"
        + "\n".join(body)
        + f"\n<script>{SCRIPT}</script>\n</body></html>\n"
    )
