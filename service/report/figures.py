"""Report data -> plotly figures. No files here: page.py writes the HTML.

Every piece of outside text is HTML-escaped before it reaches a figure: plotly renders a
subset of HTML in hover text and labels, and headlines are untrusted.
"""

from __future__ import annotations

import html

import numpy as np
import plotly.graph_objects as go

PALETTE = [
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22", "#393b79",
    "#637939", "#8c6d31", "#843c39", "#7b4173", "#3182bd", "#e6550d", "#31a354", "#756bb1", "#636363", "#9c9ede",
]


def esc(text: str | None, limit: int = 160) -> str:
    text = text or ""
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    return html.escape(text, quote=True)


def cluster_colour(cluster_id: int) -> str:
    return PALETTE[cluster_id % len(PALETTE)]


def map_figure(xy: np.ndarray, cluster_ids: np.ndarray, hover: list[str], names: dict[int, str], probabilities: np.ndarray) -> go.Figure:
    """One trace per cluster (legend toggles it), noise faint and grey, names at cluster centres."""
    fig = go.Figure()
    noise = cluster_ids < 0
    if noise.any():
        fig.add_trace(go.Scattergl(
            x=xy[noise, 0], y=xy[noise, 1], mode="markers", name="noise", text=[hover[i] for i in np.flatnonzero(noise)],
            hovertemplate="%{text}<extra>noise</extra>", marker=dict(size=4, color="#b0b0b0", opacity=0.35),
        ))
    annotations = []
    for cid in sorted(set(cluster_ids[~noise].tolist()), key=lambda c: -int((cluster_ids == c).sum())):
        m = cluster_ids == cid
        idx = np.flatnonzero(m)
        label = esc(names.get(cid, f"cluster {cid}"), 60)
        fig.add_trace(go.Scattergl(
            x=xy[m, 0], y=xy[m, 1], mode="markers", name=f"{cid}: {label}", text=[hover[i] for i in idx],
            hovertemplate="%{text}<extra>" + f"#{cid}" + "</extra>",
            marker=dict(size=6, color=cluster_colour(cid), opacity=np.clip(0.35 + 0.65 * probabilities[m], 0.35, 1.0)),
        ))
        cx, cy = np.median(xy[m], axis=0)
        annotations.append(dict(x=float(cx), y=float(cy), text=f"<b>{label}</b>", showarrow=False, font=dict(size=11),
                                bgcolor="rgba(255,255,255,0.7)"))
    fig.update_layout(
        annotations=annotations[:40], height=720, margin=dict(l=10, r=10, t=30, b=10), legend=dict(itemsizing="constant"),
        xaxis=dict(visible=False), yaxis=dict(visible=False), plot_bgcolor="white", title="Map of headlines (UMAP of embeddings)",
    )
    return fig


def timeline_figure(days: list[str], series: dict[int, list[int]], names: dict[int, str]) -> go.Figure:
    """Documents per day (by published time, else ingest time) of the top clusters, stacked."""
    fig = go.Figure()
    for cid, counts in series.items():
        fig.add_trace(go.Scatter(x=days, y=counts, mode="lines", stackgroup="one", name=f"#{cid} {esc(names.get(cid, ''), 40)}",
                                 line=dict(color=cluster_colour(cid), width=0.5),
                                 hovertemplate="%{x}: %{y} headlines<extra>" + f"#{cid}" + "</extra>"))
    fig.update_layout(height=380, margin=dict(l=40, r=10, t=30, b=40), title="Top clusters over time (headlines per day)",
                      yaxis_title="headlines", legend=dict(font=dict(size=10)))
    return fig


def lineage_figure(flows: list[tuple[int, int, int]], prev_run: int, run: int, names_prev: dict[int, str], names_now: dict[int, str]) -> go.Figure:
    """Sankey of documents moving between the previous run's clusters and this run's: splits fan out, merges fan in."""
    left = sorted({a for a, _, _ in flows})
    right = sorted({b for _, b, _ in flows})
    labels = [f"#{a} {esc(names_prev.get(a, 'noise' if a < 0 else ''), 30)}" for a in left] + \
             [f"#{b} {esc(names_now.get(b, 'noise' if b < 0 else ''), 30)}" for b in right]
    li = {a: i for i, a in enumerate(left)}
    ri = {b: len(left) + i for i, b in enumerate(right)}
    colours = [cluster_colour(a) if a >= 0 else "#bbbbbb" for a in left] + [cluster_colour(b) if b >= 0 else "#bbbbbb" for b in right]
    fig = go.Figure(go.Sankey(
        node=dict(label=labels, color=colours, pad=8, thickness=12),
        link=dict(source=[li[a] for a, _, _ in flows], target=[ri[b] for _, b, _ in flows], value=[v for _, _, v in flows]),
    ))
    fig.update_layout(height=max(360, 16 * max(len(left), len(right))), margin=dict(l=10, r=10, t=30, b=10),
                      title=f"Lineage: run {prev_run} → run {run} (splits and merges)", font=dict(size=10))
    return fig
