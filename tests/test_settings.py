"""Settings are declared once: defaults < HOME/newsclust.toml < NEWSCLUST_* env < explicit overrides."""

from __future__ import annotations

from dataclasses import fields

import pytest

from service.config import Settings, describe_settings, load_settings


def test_every_setting_has_help_and_is_listed():
    listed = {name for name, _, help in describe_settings() if help}
    assert listed == {f.name for f in fields(Settings)}


def test_sources_in_order(tmp_path):
    (tmp_path / "newsclust.toml").write_text('knn_k = 20\nrecipe = "graph"\nstabilize = false\n')
    s = load_settings(home=tmp_path, env={"NEWSCLUST_KNN_K": "25", "NEWSCLUST_WINDOW_DAYS": "2.5"}, min_samples=7)
    assert (s.knn_k, s.recipe, s.stabilize, s.window_days, s.min_samples) == (25, "graph", False, 2.5, 7)
    assert s.resolved_milvus_uri == str(tmp_path / "milvus.db")


def test_home_from_env(tmp_path):
    assert load_settings(env={"NEWSCLUST_HOME": str(tmp_path)}).home == tmp_path


def test_unknown_failpoint_is_refused():
    from service.failpoints import Failpoints

    with pytest.raises(ValueError, match="unknown failpoint"):
        Failpoints("nowhere")
