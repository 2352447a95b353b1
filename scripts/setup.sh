#!/usr/bin/env bash
# Installs everything Headwater needs on a fresh Debian machine, idempotently:
# Python environment, .env with generated passwords, the local stack's services and jars,
# the Airflow environment, and Chromium for the browser tests. A second run downloads nothing.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }
started=$(date +%s)

PYTHON=${PYTHON:-python3.11}
command -v "$PYTHON" >/dev/null 2>&1 || PYTHON=python3
"$PYTHON" -c 'import sys; assert sys.version_info[:2] == (3, 11), sys.version' \
  || { echo "error: Python 3.11 is required (set PYTHON=...)" >&2; exit 1; }

apt_install() {
  # Debian packages the project needs; only when missing, and only as root.
  local missing=()
  for pkg in "$@"; do dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg"); done
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ "$(id -u)" -ne 0 ]; then
    echo "error: missing Debian packages: ${missing[*]} (install them as root)" >&2; exit 1
  fi
  step "apt-get install ${missing[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
}
apt_install postgresql-15 chromium

step "Python environment (.venv)"
stamp=.venv/.installed-$(cat pyproject.toml requirements.lock | sha256sum | cut -c1-16)
if [ ! -f "$stamp" ]; then
  [ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
  .venv/bin/pip install -q --upgrade pip
  .venv/bin/pip install -q -c requirements.lock -e '.[dev]'
  rm -f .venv/.installed-*; touch "$stamp"
else
  echo "up to date"
fi

# Generated passwords: the database's, and Kafka's and Elasticsearch's for the secured mode
# (HW_STACK_SECURE=true). Only .env holds them; the umask stays inside the subshell.
for name in HW_PG_PASSWORD HW_KAFKA_PASSWORD HW_ES_PASSWORD; do
  if ! grep -qs "^${name}=" .env; then
    step "writing a generated ${name} to .env"
    (umask 077 && printf '%s=%s\n' "$name" "$(.venv/bin/python -c 'import secrets; print(secrets.token_urlsafe(18))')" >> .env)
  fi
done
chmod 600 .env

step "local stack: PostgreSQL, Kafka, Kafka Connect + Debezium, Elasticsearch"
.venv/bin/headwater stack install

step "Spark jars (Kafka source, PostgreSQL JDBC)"
.venv/bin/headwater batch install

step "Airflow environment (.venv-airflow)"
bash batch/airflow/setup.sh

echo; echo "set-up done in $(( $(date +%s) - started ))s"
