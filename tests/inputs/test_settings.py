"""Settings are declared once: defaults < HOME/newsclust.toml < NEWSCLUST_* env < explicit overrides."""

from __future__ import annotations

from dataclasses import fields

import pytest

from service.config import Settings, describe_settings, load_settings


def test_every_setting_has_help_and_is_listed():
    listed = {name for name, _, help in describe_settings() if help}
    assert listed == {f.name for f in fields(Settings)}


def test_sources_in_order(tmp_path):
    (tmp_path / "newsclust.toml").write_text('knn_k = 20\nstory_min_size = 4\nstabilize = false\nrecipe = "graph"\n')
    s = load_settings(home=tmp_path, env={"NEWSCLUST_KNN_K": "25", "NEWSCLUST_WINDOW_DAYS": "2.5"}, min_samples=7)
    assert (s.knn_k, s.story_min_size, s.stabilize, s.window_days, s.min_samples) == (25, 4, False, 2.5, 7)  # retired 'recipe' ignored
    assert s.resolved_milvus_uri == str(tmp_path / "milvus.db")


def test_home_from_env(tmp_path):
    assert load_settings(env={"NEWSCLUST_HOME": str(tmp_path)}).home == tmp_path


def test_unknown_failpoint_is_refused():
    from service.failpoints import Failpoints

    with pytest.raises(ValueError, match="unknown failpoint"):
        Failpoints("nowhere")


def test_typos_and_bad_values_are_refused_naming_the_setting_and_its_source(tmp_path):
    from service.config import SettingsError

    with pytest.raises(SettingsError, match="NEWSCLUST_STABILIZE.*flase"):
        load_settings(home=tmp_path, env={"NEWSCLUST_STABILIZE": "flase"})
    with pytest.raises(SettingsError, match="embedder.*one of minilm, bge-m3"):
        load_settings(home=tmp_path, env={"NEWSCLUST_EMBEDDER": "word2vec"})
    with pytest.raises(SettingsError, match="window_by"):
        load_settings(home=tmp_path, env={"NEWSCLUST_WINDOW_BY": "publish"})
    (tmp_path / "newsclust.toml").write_text("knn = 20\n")
    with pytest.raises(SettingsError, match=r"newsclust.toml: unknown setting 'knn' \(did you mean 'knn_k'\?\)"):
        load_settings(home=tmp_path, env={})


def test_the_cli_refuses_a_bad_setting_in_one_line(tmp_path):
    import subprocess

    from ..conftest import CLI, env_for

    out = subprocess.run([*CLI, "--home", str(tmp_path), "status"], env=env_for(NEWSCLUST_STABILIZE="flase"),
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and "NEWSCLUST_STABILIZE" in out.stderr and "Traceback" not in out.stderr, out.stderr
    assert len(out.stderr.strip().splitlines()) == 1
