-- The analytics warehouse: a star schema over the shop, and the bookkeeping of the batch loads.
-- Applied by every job before it loads; every statement is idempotent.

-- One row per run, failed ones included, for `headwater batch status`.
CREATE TABLE IF NOT EXISTS batch_runs (
    run_id       bigserial PRIMARY KEY,
    job          text NOT NULL,
    kind         text NOT NULL CHECK (kind IN ('incremental', 'backfill', 'rebuild')),
    started_at   timestamptz NOT NULL,
    finished_at  timestamptz NOT NULL,
    status       text NOT NULL CHECK (status IN ('succeeded', 'failed')),
    window_from  date,
    window_to    date,
    rows_loaded  jsonb NOT NULL DEFAULT '{}',
    offsets      jsonb NOT NULL DEFAULT '{}',
    quality      text NOT NULL CHECK (quality IN ('passed', 'failed', 'not run')),
    report       text,
    error        text
);
CREATE INDEX IF NOT EXISTS batch_runs_job_idx ON batch_runs (job, run_id DESC);

-- Where the next incremental run of a job starts reading, written in the load's transaction.
CREATE TABLE IF NOT EXISTS batch_offsets (
    job          text NOT NULL,
    topic        text NOT NULL,
    partition    integer NOT NULL,
    next_offset  bigint NOT NULL,
    run_id       bigint NOT NULL,
    PRIMARY KEY (job, topic, partition)
);

-- The latest state of each order, so that items arriving in a later run find their order.
CREATE TABLE IF NOT EXISTS state_orders (
    id           bigint PRIMARY KEY,
    customer_id  bigint NOT NULL,
    status       text NOT NULL,
    total        numeric(12, 2),
    created_at   timestamptz NOT NULL,
    updated_at   timestamptz
);

CREATE TABLE IF NOT EXISTS dim_customer (
    customer_key bigint PRIMARY KEY,
    customer_id  bigint NOT NULL,
    email        text,
    full_name    text,
    country      text,
    valid_from   timestamptz NOT NULL,
    valid_to     timestamptz,
    is_current   boolean NOT NULL,
    UNIQUE (customer_id, valid_from)
);
CREATE UNIQUE INDEX IF NOT EXISTS dim_customer_current_idx
    ON dim_customer (customer_id) WHERE is_current;

CREATE TABLE IF NOT EXISTS dim_product (
    product_id   bigint PRIMARY KEY,
    sku          text,
    name         text,
    category     text,
    brand        text,
    price        numeric(10, 2)
);

CREATE TABLE IF NOT EXISTS dim_date (
    date_key     integer PRIMARY KEY,
    date         date NOT NULL UNIQUE,
    year         integer NOT NULL,
    quarter      integer NOT NULL,
    month        integer NOT NULL,
    day          integer NOT NULL,
    day_of_week  integer NOT NULL,
    is_weekend   boolean NOT NULL
);

CREATE TABLE IF NOT EXISTS fact_order_line (
    order_item_id bigint PRIMARY KEY,
    order_id      bigint NOT NULL,
    product_id    bigint NOT NULL,
    customer_id   bigint NOT NULL,
    customer_key  bigint,
    date_key      integer NOT NULL,
    ordered_at    timestamptz NOT NULL,
    order_status  text NOT NULL,
    quantity      integer NOT NULL,
    unit_price    numeric(10, 2) NOT NULL,
    line_amount   numeric(12, 2) NOT NULL
);
CREATE INDEX IF NOT EXISTS fact_order_line_order_idx ON fact_order_line (order_id);
CREATE INDEX IF NOT EXISTS fact_order_line_date_idx ON fact_order_line (date_key);

CREATE TABLE IF NOT EXISTS agg_daily_sales (
    date_key     integer PRIMARY KEY,
    orders       bigint NOT NULL,
    order_lines  bigint NOT NULL,
    units        bigint NOT NULL,
    revenue      numeric(14, 2) NOT NULL
);
