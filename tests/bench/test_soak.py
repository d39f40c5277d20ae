"""Issue 12's soak test, short: `bench/soak.py` runs serve with files and faults at random moments, then audits."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_soak_short(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSCLUST_")}
    env["HF_HUB_OFFLINE"] = "1"
    # --snapshot: serve and the commands run from a copy of the tree, so an edit during the 3 minutes cannot mix versions
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / "soak.py"), "--minutes", "1.5", "--home", str(tmp_path),
                           "--snapshot"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=1200)
    print(proc.stdout)
    print(proc.stderr, file=sys.stderr)
    assert proc.returncode == 0, f"soak failed (exit {proc.returncode}); serve's log: {tmp_path / 'serve.log'}\n{proc.stdout[-6000:]}"
