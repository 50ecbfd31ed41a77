#!/bin/bash
# Install a real MLflow tracking server (with its basic-auth app) for ds01-mlflow's tests:
# PyPI's mlflow[auth], pinned, into its own venv /opt/ds01-test-mlflow (DS01_MLFLOW_VENV chooses
# another place), outside the repository and outside tox's envs — as an admin installs it
# (docs/mlflow.md). The tests (tests/plugins/mlflow/mlflow_env.py) start it through ds01's own
# `ds01-mlflow-server`; nothing here starts a server. Idempotent: an install of the same
# version is kept.
set -euo pipefail
venv="${DS01_MLFLOW_VENV:-/opt/ds01-test-mlflow}"
version="3.17.2"

say() { echo "setup-mlflow: $*"; }

if [ -x "$venv/bin/mlflow" ] && "$venv/bin/python" - "$version" <<'PY' 2>/dev/null; then
import sys
from importlib.metadata import version
assert version("mlflow") == sys.argv[1]
version("flask-wtf")  # the basic-auth app's
PY
  say "mlflow $version is installed in $venv"
  exit 0
fi
rm -rf "$venv"
python3 -m venv "$venv"
"$venv/bin/pip" install --quiet --disable-pip-version-check "mlflow[auth]==$version"
say "mlflow $("$venv/bin/mlflow" --version 2>/dev/null | tail -1) installed in $venv"
