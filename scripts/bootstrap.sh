#!/usr/bin/env bash
# Everything a fresh machine needs, idempotent: a virtualenv with the pinned Python
# packages, then the JVM jars from Maven Central. Called by `make`; safe to re-run.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
STAMP="$VENV/.installed"
# the editable install is a path entry for src/ (new modules need no reinstall); a change to
# the dependencies or the pins does
want=$(cat pyproject.toml constraints.txt | sha256sum | cut -d' ' -f1)

pick_python() {
  for py in ${PYTHON:-} python3.11 python3.12 python3; do
    if command -v "$py" >/dev/null 2>&1 && "$py" -c 'import sys; sys.exit(not ((3,11) <= sys.version_info[:2] <= (3,12)))'; then
      echo "$py"; return
    fi
  done
  echo "sensorwatch needs Python 3.11 or 3.12 (apache-flink 2.2 wheels); none found" >&2; exit 1
}

for tool in java mvn; do
  command -v $tool >/dev/null || { echo "sensorwatch needs '$tool' (Java 17+ and Maven): apt-get install openjdk-17-jdk-headless maven" >&2; exit 1; }
done

# Debian packages of the real parts the tests run beside the broker: installed when this is
# root on a Debian-like machine, else named with the exact command
debian_packages() {
  local missing=()
  while [ $# -gt 0 ]; do
    command -v "$1" >/dev/null 2>&1 || missing+=("$2")
    shift 2
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "installing Debian packages: ${missing[*]}"
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  else
    echo "sensorwatch needs: apt-get install ${missing[*]}" >&2; exit 1
  fi
}
debian_packages prometheus-alertmanager prometheus-alertmanager prometheus prometheus \
  chromium chromium chromedriver chromium-driver

if [ ! -f "$STAMP" ] || [ "$(cat "$STAMP")" != "$want" ]; then
  py=$(pick_python)
  [ -x "$VENV/bin/python" ] || "$py" -m venv "$VENV"
  "$VENV/bin/python" -m pip install -q --upgrade pip wheel setuptools
  echo "installing Python packages into $VENV (first run: about 3 GB, a few minutes)"
  "$VENV/bin/python" -m pip install -q -c constraints.txt -e ".[all]"
  echo "$want" > "$STAMP"
fi
"$VENV/bin/sensorwatch" jars --quiet
