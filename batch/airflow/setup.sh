#!/usr/bin/env bash
# Creates .venv-airflow: Airflow in its own venv, since Airflow and faust-streaming disagree on
# croniter. Idempotent: a venv that already has the pinned version is left alone.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
VENV="${HW_AIRFLOW_VENV:-$ROOT/.venv-airflow}"
AIRFLOW_VERSION="${HW_AIRFLOW_VERSION:-3.3.2}"
PYTHON="${PYTHON:-python3.11}"

if [[ -x "$VENV/bin/python" ]] \
  && [[ "$("$VENV/bin/python" -c 'import airflow; print(airflow.__version__)' 2>/dev/null)" == "$AIRFLOW_VERSION" ]]; then
  echo "airflow $AIRFLOW_VERSION already in $VENV"
  exit 0
fi

"$PYTHON" -m venv "$VENV"
"$VENV/bin/python" -m pip install --quiet --upgrade pip
# The official constraints file is not reachable from here (only PyPI is); the exact pin plus
# pip's resolver installs cleanly on Python 3.11 (about a minute). The standard provider, which
# holds BashOperator, comes with it.
"$VENV/bin/python" -m pip install --quiet "apache-airflow==${AIRFLOW_VERSION}"
# The DAGs call into `batch.jobs` through a subprocess of the project venv, so the Airflow venv
# needs only the project root on its path, not the project's dependencies.
"$VENV/bin/python" -c 'import airflow; print("airflow", airflow.__version__, "ready in", __import__("sys").prefix)'
