#!/usr/bin/env bash
# Runs the whole test suite against the real local stack (started here if it is not running),
# then the search path and a batch load again against a secured stack (Kafka SASL/SCRAM,
# Elasticsearch security and TLS) on ports of its own, then the secret scan over both.
# In CI (CI=true) integration tests never skip: a missing service fails them.
set -euo pipefail
cd "$(dirname "$0")/.."
hw=.venv/bin/headwater

prepare() {
  $hw stack up
  $hw db migrate
  $hw connectors apply
  $hw pipelines apply
}

pytest_run() {
  set +e
  .venv/bin/pytest "$@"
  local code=$?
  set -e
  if [ "$code" -eq 5 ]; then
    echo "error: pytest collected no tests" >&2
    code=1
  fi
  return "$code"
}

prepare
main=0
pytest_run "$@" || main=$?

secure=0
if [ "$#" -eq 0 ] || [ "${HW_TEST_SECURE:-}" = "true" ]; then
  echo; echo "==> the secured stack: search path, a batch load, refusals"
  (
    export HW_STACK_SECURE=true
    export HW_PG_PORT=15432 HW_KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:19092
    export HW_STACK_KAFKA_CONTROLLER_PORT=19093 HW_CONNECT_URL=http://127.0.0.1:18083
    export HW_ES_URL=https://127.0.0.1:19200 HW_STREAMS_WEB_PORT=16066
    $hw stack install >/dev/null
    prepare
    status=0
    pytest_run -p no:cacheprovider \
      tests/integration/test_search.py::test_snapshot_then_stream_converges \
      tests/integration/test_search.py::test_insert_update_delete \
      tests/integration/test_batch.py::test_shop_changes_reach_the_warehouse \
      tests/secure || status=$?
    $hw secrets scan || status=1
    $hw stack down >/dev/null
    exit "$status"
  ) || secure=$?
fi

scan=0
$hw secrets scan || scan=$?

if [ "$main" -ne 0 ]; then exit "$main"; fi
if [ "$secure" -ne 0 ]; then exit "$secure"; fi
exit "$scan"
