#!/bin/sh
# docker compose only: the official postgres image creates POSTGRES_DB; this adds the analytics one.
set -eu
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
  -c "CREATE DATABASE \"${HW_PG_ANALYTICS_DB:-analytics}\""
