#!/usr/bin/env bash
# The whole test suite, exactly as CI runs it: `bash scripts/test.sh [pytest args]`.
#
# 1. makes .venv and installs clustrix with its dev extra;
# 2. runs ruff check, ruff format --check and mypy --strict on clustrix/;
# 3. brings up the real test lab (sshd, Slurm, Grid Engine, PBS wrappers) when it
#    can: as root on Debian. With CI=true a lab that does not come up fails the run;
#    elsewhere the lab tests are skipped with a message that says how to run them;
# 4. makes sure a kubectl exists (Debian's kubernetes-client) for the Kubernetes tests;
# 5. runs pytest.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n== %s ==\n' "$*"; }

step "python environment"
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip >/dev/null 2>&1 || true
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'

step "lint and types"
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy --strict clustrix

step "test lab"
export CLUSTRIX_LAB_STATUS=absent
if [ -x tests/lab/up.sh ] || [ -f tests/lab/up.sh ]; then
  set +e
  bash tests/lab/up.sh --no-smoke
  lab_rc=$?
  set -e
  if [ "$lab_rc" -eq 0 ]; then
    export CLUSTRIX_LAB_STATUS=up
  elif [ "${CI:-}" = "true" ]; then
    echo "the test lab did not come up (exit $lab_rc); with CI=true this fails the run" >&2
    exit 1
  else
    echo "the test lab is not available (exit $lab_rc): lab tests will be skipped." >&2
    echo "run this script as root on Debian 12 to include them." >&2
  fi
fi

step "kubectl (checks the fake Kubernetes API server with an independent client)"
if ! command -v kubectl >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive \
      apt-get install -y -qq --no-install-recommends kubernetes-client >/dev/null ||
      echo "could not install Debian's kubernetes-client" >&2
  fi
fi
command -v kubectl || echo "no kubectl: its protocol check fails in CI, is skipped elsewhere" >&2

step "pytest"
set +e
.venv/bin/python -m pytest "$@"
rc=$?
set -e
if [ "$rc" -eq 5 ]; then
  echo "pytest collected no tests: that is a failure" >&2
  exit 1
fi
exit "$rc"
