#!/usr/bin/env bash
# Runs the whole test suite against the real local stack (started here if it is not running).
# In CI (CI=true) integration tests never skip: a missing service fails them.
set -euo pipefail
cd "$(dirname "$0")/.."
hw=.venv/bin/headwater

$hw stack up
$hw db migrate
$hw connectors apply
$hw pipelines apply

set +e
.venv/bin/pytest "$@"
code=$?
set -e
if [ "$code" -eq 5 ]; then
  echo "error: pytest collected no tests" >&2
  exit 1
fi
exit "$code"
