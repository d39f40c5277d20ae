"""How a one-shot command finds and asks the running `serve` (workers/api.py): stdlib only, so a query beside serve
pays neither torch nor the engine's imports (the process starts, reads one file, makes one request).

serve writes HOME/state/api.json while its API listens; the home in the path is resolved, so `--home h` and
`--home /abs/h` find the same file.
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

API_FILE = "api.json"


def api_file(home: Path) -> Path:
    return Path(home).resolve() / "state" / API_FILE


class ApiUnavailable(Exception):
    """serve's API could not be asked (it stopped meanwhile): the caller reads directly instead."""


class ApiClient:
    def __init__(self, url: str, token: str = "", timeout: float = 30.0):
        self.url, self.token, self.timeout = url.rstrip("/"), token, timeout

    def get(self, path: str, **params) -> tuple[int, dict]:
        """(HTTP status, JSON body); 4xx answers are returned, not raised."""
        query = urllib.parse.urlencode({k: v for k, v in params.items() if v is not None})
        req = urllib.request.Request(f"{self.url}{path}" + (f"?{query}" if query else ""))
        if self.token:
            req.add_header("Authorization", f"Bearer {self.token}")
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                return resp.status, json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            try:
                return exc.code, json.loads(exc.read())
            except ValueError:
                return exc.code, {"error": f"HTTP {exc.code}"}
        except (urllib.error.URLError, OSError, ValueError) as exc:
            raise ApiUnavailable(str(exc)) from exc


def find_api(home: Path, token: str = "") -> ApiClient | None:
    """The API of the serve process of this home, if one announced it and is alive."""
    try:
        info = json.loads(api_file(home).read_text())
        os.kill(int(info["pid"]), 0)
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return ApiClient(info["url"], token)
