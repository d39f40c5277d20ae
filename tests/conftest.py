"""Real components on small data: the bundled MiniLM, Milvus Lite files, SQLite files, Alembic migrations."""

from __future__ import annotations

import csv
import os
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.fixture(scope="session")
def embedder():
    from service.adapters.embedders import MiniLMEmbedder

    return MiniLMEmbedder()


@pytest.fixture
def make_app(tmp_path, embedder):
    from service.bootstrap import build_app
    from service.config import load_settings

    apps = []

    def make(home: Path | None = None, **overrides):
        settings = load_settings(home=home or tmp_path / "home", env={}, stable_wait_s=0.3, **overrides)
        app = build_app(settings, embedder=embedder)
        apps.append(app)
        return app

    yield make
    for app in apps:
        app.close()


def write_csv(path: Path, rows: list[dict], header: list[str] | None = None) -> Path:
    header = header or list(rows[0].keys())
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=header)
        w.writeheader()
        w.writerows(rows)
    return path


@pytest.fixture(scope="session")
def demo_days(tmp_path_factory):
    """The generated demo stream: (day files, truth by guid)."""
    from service.demo import generate

    out = tmp_path_factory.mktemp("demo")
    files = generate(out, days=6, seed=3)
    truth = {}
    for f in sorted((out / "truth").glob("*.csv")):
        with f.open() as fh:
            for r in csv.DictReader(fh):
                truth[r["guid"]] = r["story"]
    return files, truth


def unit_vectors(rng: np.random.Generator, centres: int, per: int, dim: int = 32, spread: float = 0.05) -> tuple[np.ndarray, np.ndarray]:
    c = rng.normal(size=(centres, dim))
    c /= np.linalg.norm(c, axis=1, keepdims=True)
    x = np.repeat(c, per, axis=0) + rng.normal(scale=spread, size=(centres * per, dim))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x.astype(np.float32), np.repeat(np.arange(centres), per)


def ingest_copies(app, files) -> list:
    """Drop a copy of each file into the app's inbox and ingest it, as the watcher would; the results in order."""
    import shutil

    from service import usecases

    return [usecases.ingest_file(app, Path(shutil.copy(f, app.settings.inbox / Path(f).name))) for f in files]
