"""What the page shows, computed from plain report data: news time, the stream's span, per-story numbers, colours.

Pure functions over numpy arrays (no SQL, no HTML), so tests can check each number.

News time (`stream time`) is a headline's published time; a row without one falls back to its ingest time,
and the page says how many did. The stream's span is robust to a few wrongly dated rows: the central 96% of
times, widened by its own width (at least a day) on each side; rows outside are outliers, listed on the page
and left off the axes, so one decade-old row cannot stretch a ten-day stream's timeline.
"""

from __future__ import annotations

import colorsys
import math
from dataclasses import dataclass

import numpy as np

HOUR = np.timedelta64(3600, "s")
DAY = np.timedelta64(86400, "s")
MAX_SPARK_BINS = 40


@dataclass
class StreamTime:
    time: np.ndarray  # datetime64[s] per document: published, else ingested
    fallback: np.ndarray  # bool: no published time, ingest time stands in
    outlier: np.ndarray  # bool: outside the stream's span
    start: np.datetime64 | None  # first and last news time of the rows inside the span
    end: np.datetime64 | None
    bin: np.timedelta64  # hour or day (or week for streams over half a year)

    @property
    def n_fallback(self) -> int:
        return int(self.fallback.sum())

    def bins(self, max_bins: int | None = None) -> tuple[np.ndarray, np.timedelta64]:
        """Bin edges' starts covering [start, end], coarsened to at most max_bins."""
        if self.start is None:
            return np.array([], "datetime64[s]"), self.bin
        step = self.bin
        first = _floor(self.start, step)
        n = int((self.end - first) // step) + 1
        if max_bins and n > max_bins:
            step = step * math.ceil(n / max_bins)
            first = _floor(self.start, step)
            n = int((self.end - first) // step) + 1
        return first + step * np.arange(n), step


def stream_time(published: np.ndarray, ingested: np.ndarray, future: np.ndarray | None = None) -> StreamTime:
    """future: a row dated beyond the ingest tolerance (2999) is shown at that time as an outlier, never at its ingest time."""
    claimed = np.zeros(len(published), bool) if future is None else ~np.isnat(future)
    fallback = np.isnat(published) & ~claimed
    time = np.where(claimed, future if future is not None else published, np.where(fallback, ingested, published)).astype("datetime64[s]")
    outlier = np.zeros(len(time), bool)
    valid = ~np.isnat(time) & ~claimed
    if not valid.any():
        return StreamTime(time, fallback, outlier, None, None, HOUR)
    secs = np.sort(time[valid].astype(np.int64))
    n = len(secs)
    k = int(math.ceil(0.02 * n)) if n >= 10 else 0
    core_lo, core_hi = secs[k], secs[n - 1 - k]
    margin = max(core_hi - core_lo, 86400)
    t = time.astype(np.int64)
    outlier = claimed | (valid & ((t < core_lo - margin) | (t > core_hi + margin)))
    inside = time[valid & ~outlier]
    start, end = inside.min(), inside.max()
    span = end - start
    step = HOUR if span <= 3 * DAY else DAY if span <= 183 * DAY else 7 * DAY
    return StreamTime(time, fallback, outlier, start, end, step)


def _floor(t: np.datetime64, step: np.timedelta64) -> np.datetime64:
    s = int(step / np.timedelta64(1, "s"))
    return np.datetime64(int(t.astype(np.int64)) // s * s, "s")


@dataclass
class StoryStats:
    ids: np.ndarray  # story ids in the order of the rows below
    size: np.ndarray  # headlines placed now (rebuild + arrivals)
    recent: np.ndarray  # headlines in the last 24 h of stream time
    first: np.ndarray  # datetime64[s], NaT when every headline is an outlier
    last: np.ndarray
    spark: np.ndarray  # (stories, bins) headlines per bin
    spark_step: np.timedelta64

    def index(self) -> dict[int, int]:
        return {int(s): i for i, s in enumerate(self.ids)}


def story_stats(story: np.ndarray, st: StreamTime, window: np.timedelta64 = DAY) -> StoryStats:
    """Per story (noise included as -1): size, headlines in the last 24 h of stream time, first/last news time, sparkline."""
    ids, inv = np.unique(story, return_inverse=True)
    ns = len(ids)
    ok = ~st.outlier & ~np.isnat(st.time)
    size = np.bincount(inv, minlength=ns)
    recent = np.zeros(ns, np.int64)
    first = np.full(ns, np.datetime64("NaT"), "datetime64[s]")
    last = first.copy()
    edges, step = st.bins(MAX_SPARK_BINS)
    spark = np.zeros((ns, max(len(edges), 1)), np.int64)
    if st.start is not None and ok.any():
        t = st.time[ok].astype(np.int64)
        g = inv[ok]
        recent = np.bincount(g[t > int((st.end - window).astype(np.int64))], minlength=ns)
        lo = np.full(ns, np.iinfo(np.int64).max)
        hi = np.full(ns, np.iinfo(np.int64).min)
        np.minimum.at(lo, g, t)
        np.maximum.at(hi, g, t)
        has = np.bincount(g, minlength=ns) > 0
        first[has] = lo[has].astype("datetime64[s]")
        last[has] = hi[has].astype("datetime64[s]")
        b = np.clip((t - int(edges[0].astype(np.int64))) // int(step / np.timedelta64(1, "s")), 0, len(edges) - 1)
        spark = np.bincount(g * len(edges) + b, minlength=ns * len(edges)).reshape(ns, len(edges))
    return StoryStats(ids, size, recent, first, last, spark, step)


def topic_colours(topic_order: list[int]) -> dict[int, float]:
    """A hue per topic (golden-angle steps, so neighbours in the order differ most)."""
    return {t: (i * 137.508) % 360 for i, t in enumerate(topic_order)}


def shade(hue: float, rank: int, saturated: bool = True) -> str:
    """The rank-th story of a topic: the topic's hue, lightness and saturation stepped so stories differ within it."""
    light = [0.42, 0.58, 0.34, 0.66, 0.50, 0.28, 0.72][rank % 7]
    sat = ([0.75, 0.55, 0.9][rank // 7 % 3]) if saturated else 0.12
    r, g, b = colorsys.hls_to_rgb(hue / 360, light, sat)
    return f"#{round(r * 255):02x}{round(g * 255):02x}{round(b * 255):02x}"


NOISE_COLOUR = "#b9b9b9"


def point_size(n: int) -> tuple[float, float]:
    """(marker size in px, opacity) by how many points share the map: big and solid at 50, fine and light at 50,000."""
    n = max(n, 1)
    size = float(np.clip(40 / n ** 0.25, 2.5, 12))
    opacity = float(np.clip(1.15 - 0.13 * math.log10(n), 0.45, 0.95))
    return size, opacity


def label_layout(candidates: list[tuple[str, float, float]], xy_min: np.ndarray, xy_max: np.ndarray,
                 width_px: float = 1300, height_px: float = 680, char_px: float = 6.6, line_px: float = 18, label_chars: int = 40) -> list[bool]:
    """Greedy: keep a label (in priority order) when its estimated box overlaps no kept one. The page's script
    repeats this with the real boxes from the DOM, so the estimate only has to be close."""
    span = np.maximum(xy_max - xy_min, 1e-9)
    kept: list[tuple[float, float, float, float]] = []
    keep = []
    for text, x, y in candidates:
        px = (x - xy_min[0]) / span[0] * width_px
        py = (y - xy_min[1]) / span[1] * height_px
        w = char_px * min(len(text), label_chars) + 10
        box = (px - w / 2, py - line_px / 2, px + w / 2, py + line_px / 2)
        ok = all(box[2] <= k[0] or box[0] >= k[2] or box[3] <= k[1] or box[1] >= k[3] for k in kept)
        keep.append(ok)
        if ok:
            kept.append(box)
    return keep
