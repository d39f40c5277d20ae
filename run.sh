#!/usr/bin/env bash
# One command each: `./run.sh demo` sets up and runs the main job; `./run.sh test` sets up and runs the tests.
set -euo pipefail
cd "$(dirname "$0")"

setup() {
  [ -x .venv/bin/python ] || python3 -m venv .venv
  local stamp=.venv/.newsclust-installed
  if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
    echo "installing newsclust and its dependencies into .venv (once: several minutes, pip lists each package)"
    .venv/bin/python -m pip install -q --upgrade pip
    # torch is pinned in pyproject.toml to the CPU build; an unpinned torch would pull a multi-GB CUDA build
    .venv/bin/python -m pip install --progress-bar off -e ".[test]" | sed -nu "/^\(Collecting\|Successfully\)/p"  # pipefail: pip's failure stays
    touch "$stamp"
  fi
}

browser() {
  # Debian's chromium for the report's browser test; skipped (the test skips too) where it cannot be installed
  command -v chromium >/dev/null 2>&1 && return 0
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) || echo "chromium could not be installed: browser tests will skip"
  fi
}

postgres() {
  # Debian's PostgreSQL for the database suite (the fixture starts a throw-away cluster); skipped where it cannot be installed
  ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 && return 0
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null) || echo "postgresql could not be installed: its tests will skip"
  fi
}

export HF_HUB_OFFLINE=1
cmd="${1:-}"
shift || true
case "$cmd" in
  demo) setup; exec .venv/bin/newsclust demo "$@" ;;
  test) setup; browser; postgres; exec .venv/bin/python -m pytest -q -p no:cacheprovider "$@" ;;
  setup) setup ;;
  *) echo "usage: ./run.sh demo|test|setup [args]" >&2; exit 2 ;;
esac
