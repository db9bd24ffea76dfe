#!/usr/bin/env bash
# Sets up halleval from nothing: system packages (when root), a .venv with the pinned CPU torch,
# and halleval with its test extra. Safe to re-run; the second run installs nothing new.
set -euo pipefail
cd "$(dirname "$0")/.."

# WordNet 3.0 for CHAIR's lemmatiser (NLTK reads it offline); Chromium renders the HTML report
# in the report test. Debian package names; skipped when not root or not on Debian.
APT_PACKAGES=(wordnet-base wordnet-sense-index chromium)
if command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
  missing=()
  for package in "${APT_PACKAGES[@]}"; do
    dpkg -s "$package" >/dev/null 2>&1 || missing+=("$package")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    echo "setup: installing ${missing[*]} (apt)"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
else
  echo "setup: not root or no apt-get; install these system packages yourself: ${APT_PACKAGES[*]}"
fi

PYTHON=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
# Pinned first: an unpinned torch would pull a multi-GB CUDA build. GPU users: see docs/cluster.md.
.venv/bin/python -m pip install -q torch==2.13.0
.venv/bin/python -m pip install -q -e ".[test]"
echo "setup: done (.venv/bin/halleval)"
