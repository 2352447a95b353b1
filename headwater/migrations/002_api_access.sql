-- The API's own tables, in a schema of their own (Debezium's publication lists only the shop's
-- tables, so nothing here is captured): its keys, and the shared counters of its rate limits
-- and live streams, which every API process (uvicorn --workers N, several hosts) reads and
-- writes, so that a limit holds for all of them together.

CREATE SCHEMA headwater_api;

-- A key is `hwk_<id>_<secret>`; only a hash of the secret is kept (see api/keys.py).
CREATE TABLE headwater_api.api_keys (
    id             text PRIMARY KEY,
    name           text NOT NULL,
    scopes         text[] NOT NULL,
    secret_sha256  bytea NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    revoked_at     timestamptz
);

-- One row per limited client (`key:<id>`, `user:<subject>`, `ip:<address>`): its theoretical
-- arrival time (GCRA, see api/limits.py), in seconds since the epoch of PostgreSQL's clock.
-- UNLOGGED: written on every request, so kept out of the WAL (no load on the replication
-- slot, no replica copy); after a crash the counters start afresh, which only forgives.
CREATE UNLOGGED TABLE headwater_api.rate_limits (
    bucket   text PRIMARY KEY,
    tat      double precision NOT NULL,
    allowed  boolean NOT NULL
);

-- Open live streams (Server-Sent Events), each a lease its API process renews while it is
-- open; a process that dies leaves leases that expire.
CREATE UNLOGGED TABLE headwater_api.live_streams (
    stream_id   text PRIMARY KEY,
    client      text NOT NULL,
    expires_at  timestamptz NOT NULL
);
CREATE INDEX live_streams_client_idx ON headwater_api.live_streams (client);
