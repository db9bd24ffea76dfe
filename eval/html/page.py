"""Building blocks of the self-contained report pages: tables (HTML and Markdown), matplotlib
figures embedded as base64 PNG data URIs, and the page shell with its inline stylesheet.

Nothing on a page refers to another file or the network, so a report can be mailed, attached
to a CI run or opened from a cluster's shared disk as it is.
"""

from __future__ import annotations

import base64
import html
import io
import math
from dataclasses import dataclass
from collections.abc import Sequence
from typing import Any

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 72rem; color: #222; }
h1 { font-size: 1.5rem; } h2 { font-size: 1.2rem; margin-top: 2rem; border-bottom: 1px solid #ddd; }
.table-wrap { overflow-x: auto; max-width: 100%; }
table { border-collapse: collapse; margin: 0.5rem 0; font-size: 0.9rem; }
th, td { border: 1px solid #ccc; padding: 0.25rem 0.5rem; text-align: right; vertical-align: top; }
th { background: #f3f3f3; position: sticky; top: 0; } td.text, th.text { text-align: left; }
td.text { max-width: 28rem; overflow-wrap: break-word; } td.link { white-space: nowrap; text-align: left; }
a { color: #1f5fa8; }
img.plot { max-width: 100%; border: 1px solid #eee; margin: 0.5rem 0; }
.caption { line-height: 2; margin: 0.5rem 0 1rem; padding: 0.5rem; background: #fafafa; }
.tok { padding: 0.1rem 0; border-radius: 2px; }
.obj-ok { border-bottom: 3px solid #2e7d32; }
.obj-hall { border-bottom: 3px solid #c62828; font-weight: bold; color: #b71c1c; }
.legend span { margin-right: 1rem; } .muted { color: #777; } .bad { color: #c62828; font-weight: bold; }
"""


@dataclass(frozen=True)
class Link:
    """A table cell that links to another page (a run's report from a leaderboard or grid)."""

    text: str
    href: str


def fmt(value: Any) -> str:
    """A cell's text: floats to 4 decimals, None and NaN as an en dash, lists comma-joined."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if isinstance(value, float):
        return f"{value:.4f}"
    if isinstance(value, (list, tuple)):
        return ", ".join(fmt(v) for v in value)
    if isinstance(value, Link):
        return value.text
    return str(value)


def html_table(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> str:
    """An HTML table of `columns` from row dicts, in a horizontally scrolling box; text columns
    are left-aligned and Link cells are links."""
    def cell(value: Any) -> str:
        kind = "link" if isinstance(value, Link) else "text" if isinstance(value, (str, list)) else "num"
        text = html.escape(fmt(value))
        if isinstance(value, Link):
            text = f'<a href="{html.escape(value.href)}">{text}</a>'
        return f'<td class="{kind}">{text}</td>'

    head = "".join(f'<th class="text">{html.escape(c)}</th>' for c in columns)
    body = "".join("<tr>" + "".join(cell(row.get(c)) for c in columns) + "</tr>" for row in rows)
    return f'<div class="table-wrap"><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>'


def markdown_table(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> list[str]:
    """The same table as Markdown lines (Link cells as Markdown links)."""
    def cell(value: Any) -> str:
        return f"[{value.text}]({value.href})" if isinstance(value, Link) else fmt(value)

    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(cell(row.get(c)) for c in columns) + " |" for row in rows]
    return lines


def new_figure(width: float = 6.0, height: float = 3.5, ncols: int = 1):
    """A matplotlib figure on the Agg backend (reports are rendered on headless machines)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt.subplots(1, ncols, figsize=(width * ncols, height), squeeze=False)


def figure_data_uri(figure) -> str:
    """Renders and closes a figure; returns it as a `data:image/png;base64,...` URI."""
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    figure.tight_layout()
    figure.savefig(buffer, format="png", dpi=100)
    plt.close(figure)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def img(uri: str, alt: str) -> str:
    return f'<img class="plot" alt="{html.escape(alt)}" src="{uri}">'


def render_page(title: str, sections: Sequence[tuple[str, str]]) -> str:
    """The page: a title and (heading, inner HTML) sections."""
    body = "".join(f"<h2>{html.escape(heading)}</h2>\n{inner}\n" for heading, inner in sections)
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head>"
        f"<body><h1>{html.escape(title)}</h1>\n{body}</body></html>\n"
    )
