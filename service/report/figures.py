"""Report data -> plotly figures. No files here: page.py writes the HTML.

Every piece of outside text is HTML-escaped before it reaches a figure: plotly renders a
subset of HTML in hover text and labels, and headlines are untrusted.
"""

from __future__ import annotations

import html

import numpy as np
import plotly.graph_objects as go
import plotly.io as pio

from .model import NOISE_COLOUR

TEMPLATE = "plotly_white"
LABEL_CHARS = 40


def esc(text: str | None, limit: int = 160) -> str:
    text = text or ""
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    # numeric entities for quotes: plotly's SVG text decodes those, not &quot; / &#x27;
    return html.escape(text, quote=True).replace("&quot;", "&#34;").replace("&#x27;", "&#39;")


def _iso(t) -> str:
    return str(np.datetime64(t, "s")).replace("T", " ")


def map_figure(xy: np.ndarray, colours: list[str], groups: list[tuple[str, np.ndarray]], hover: list[str] | None,
               labels: list[tuple[str, float, float]], size: float, opacity: float) -> go.Figure:
    """One trace per topic (legend toggles a topic; noise last, grey and faint), each point coloured by its story's
    shade of the topic's hue. `groups`: (legend name, row indices). `hover`: per-row text, or None when the page fills
    it in from its own headline table (so a headline is written once per page). `labels`: story titles placed at
    their story's centre, already chosen not to overlap."""
    colours = np.asarray(colours)
    traces = []
    for name, rows in groups:
        noise = name == "noise"
        traces.append(dict(
            type="scattergl", x=xy[rows, 0], y=xy[rows, 1], mode="markers", name=esc(name, 50),
            text=None if hover is None else [hover[i] for i in rows], hovertemplate="%{text}<extra></extra>",
            marker=dict(size=size * (0.8 if noise else 1.0), opacity=opacity * (0.5 if noise else 1.0), line=dict(width=0),
                        **({"color": NOISE_COLOUR} if noise else _discrete_colours(colours[rows]))),
        ))
    # built from plain dicts without plotly's per-property validation (what we pass is fixed here and checked by the
    # tests): at 100k documents, ~290 topic traces took 1-3 s to validate, most of the quick page's figure time
    fig = go.Figure(data=traces, _validate=False)
    annotations = [dict(x=float(x), y=float(y), text=f"<b>{esc(text, LABEL_CHARS)}</b>", showarrow=False, font=dict(size=11, color="#111"),
                        bgcolor="rgba(255,255,255,0.78)", borderpad=2, yshift=14) for text, x, y in labels]
    fig.update_layout(
        # the template itself, not its name: unvalidated, a name would reach plotly.js as a bare string
        template=pio.templates[TEMPLATE], annotations=annotations, height=700, margin=dict(l=10, r=10, t=10, b=10),
        legend=dict(itemsizing="constant", title=dict(text="topics"), font=dict(size=11)),
        xaxis=dict(visible=False), yaxis=dict(visible=False), hovermode="closest", dragmode="pan",
    )
    return fig


def _discrete_colours(colours: np.ndarray) -> dict:
    """Per-point colours as small integers into a stepped colour scale: a number per point instead of a string
    (a tenth of the bytes, and plotly validates numbers fast)."""
    shades, idx = np.unique(colours, return_inverse=True)
    if len(shades) == 1:
        return {"color": str(shades[0])}
    k = len(shades) - 1
    scale = [[i / k, str(c)] for i, c in enumerate(shades)]
    return {"color": idx.astype(np.uint8 if k < 256 else np.uint16), "colorscale": scale, "cmin": 0, "cmax": k, "showscale": False}


def timeline_figure(edges: np.ndarray, step: np.timedelta64, total: np.ndarray, series: list[tuple[str, str, np.ndarray]],
                    start: np.datetime64, end: np.datetime64, unit: str) -> go.Figure:
    """Headlines per bin of news time: all headlines as a grey area, the busiest stories as lines. The x axis is
    fixed to [start, end], the stream's own span (outliers are listed on the page, not drawn)."""
    mids = np.clip(edges + step // 2, start, end)
    x = [_iso(t) for t in mids]
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=x, y=total.tolist(), mode="lines", name="all headlines", fill="tozeroy",
                             line=dict(color="#c9c9c9", width=1), fillcolor="rgba(200,200,200,0.35)",
                             hovertemplate="%{x}: %{y} headlines<extra>all</extra>"))
    for name, colour, counts in series:
        fig.add_trace(go.Scatter(x=x, y=counts.tolist(), mode="lines", name=esc(name, 48), line=dict(color=colour, width=2),
                                 hovertemplate="%{x}: %{y}<extra>" + esc(name, 40) + "</extra>"))
    fig.update_layout(template=TEMPLATE, height=340, margin=dict(l=50, r=10, t=10, b=40), yaxis_title=f"headlines per {unit}",
                      xaxis=dict(type="date", range=[_iso(start), _iso(end)]), legend=dict(font=dict(size=10)))
    return fig


def lineage_figure(flows: list[tuple[int, int, int]], left_labels: dict[int, str], right_labels: dict[int, str],
                   colours: dict[int, str]) -> go.Figure:
    """Sankey of the documents that changed hands: only the flows of stories that split, merged, were born, died or
    moved between topics (the page picks them). -1 is noise."""
    left = sorted({a for a, _, _ in flows})
    right = sorted({b for _, b, _ in flows})
    li = {a: i for i, a in enumerate(left)}
    ri = {b: len(left) + i for i, b in enumerate(right)}
    node_colours = [colours.get(a, NOISE_COLOUR) for a in left] + [colours.get(b, NOISE_COLOUR) for b in right]

    def faint(c: str) -> str:
        c = c.lstrip("#")
        return f"rgba({int(c[0:2], 16)},{int(c[2:4], 16)},{int(c[4:6], 16)},0.35)"

    fig = go.Figure(go.Sankey(
        arrangement="snap",
        node=dict(label=[esc(left_labels.get(a, ""), 60) for a in left] + [esc(right_labels.get(b, ""), 60) for b in right],
                  color=node_colours, pad=10, thickness=12),
        link=dict(source=[li[a] for a, _, _ in flows], target=[ri[b] for _, b, _ in flows], value=[v for _, _, v in flows],
                  color=[faint(colours.get(a, NOISE_COLOUR)) for a, _, _ in flows]),
    ))
    fig.update_layout(template=TEMPLATE, height=max(140, 26 * max(len(left), len(right)) + 40), margin=dict(l=10, r=10, t=10, b=10),
                      font=dict(size=11))
    return fig
