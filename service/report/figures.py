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


def sizes_figure(rows: list[tuple[int, int, int]], names: dict[int, str], top: int = 12) -> go.Figure:
    """rows: (run_id, cluster_id, size) — sizes of the biggest current clusters across runs."""
    fig = go.Figure()
    if rows:
        latest = max(r[0] for r in rows)
        current = sorted({r[1] for r in rows if r[0] == latest}, key=lambda c: -max(r[2] for r in rows if r[1] == c and r[0] == latest))[:top]
        for cid in current:
            pts = sorted((r[0], r[2]) for r in rows if r[1] == cid)
            fig.add_trace(go.Scatter(x=[p[0] for p in pts], y=[p[1] for p in pts], mode="lines+markers", stackgroup="one",
                                     name=f"{cid}: {esc(names.get(cid, ''), 40)}", line=dict(color=cluster_colour(cid))))
    fig.update_layout(height=380, margin=dict(l=40, r=10, t=30, b=40), title="Cluster sizes by rebuild run",
                      xaxis_title="run", yaxis_title="documents")
    return fig
