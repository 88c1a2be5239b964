-- Tributary schema for PostgreSQL.
--
-- Timestamps of users, accounts and content are TIMESTAMPTZ; JSON is JSONB;
-- credentials are BYTEA. Times in `jobs` are BIGINT epoch milliseconds.

CREATE TABLE users (
    id           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    external_ref TEXT        NOT NULL UNIQUE,
    created_at   TIMESTAMPTZ NOT NULL
);

CREATE TABLE user_integrations (
    id                 BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id            BIGINT      NOT NULL REFERENCES users (id),
    integration_domain TEXT        NOT NULL,
    credentials        BYTEA       NOT NULL,
    settings           JSONB       NOT NULL DEFAULT '{}',
    status             TEXT        NOT NULL DEFAULT 'active'
        CHECK (status IN ('active', 'paused', 'needs_reauth', 'error', 'unlinked')),
    sync_state         JSONB       NOT NULL DEFAULT '{}',
    last_synced_at     TIMESTAMPTZ,
    last_error         TEXT,
    created_at         TIMESTAMPTZ NOT NULL,
    updated_at         TIMESTAMPTZ NOT NULL,
    -- When the next scheduled `start` / history job is due (epoch ms; 0 = now). An
    -- account that is due is a pending job of its own: the scheduler's tick and every
    -- claim turn due accounts into jobs (see `job_schedules`).
    next_start_at      BIGINT NOT NULL DEFAULT 0,
    next_history_at    BIGINT NOT NULL DEFAULT 0
-- Room on each page, so the updates every commit makes (last sync, sync state: not
-- indexed) stay on the page without touching the indexes (heap-only tuples).
) WITH (fillfactor = 70);
CREATE INDEX user_integrations_user_idx ON user_integrations (user_id);
CREATE INDEX user_integrations_domain_idx ON user_integrations (integration_domain, status);
-- Claim: the few accounts whose jobs must not run (paused, needing re-auth, ...).
CREATE INDEX user_integrations_inactive_idx ON user_integrations (id) WHERE status <> 'active';
-- Due accounts, most overdue first, per domain.
CREATE INDEX user_integrations_start_due_idx
    ON user_integrations (integration_domain, next_start_at) WHERE status = 'active';
CREATE INDEX user_integrations_history_due_idx
    ON user_integrations (integration_domain, next_history_at) WHERE status = 'active';

CREATE TABLE user_integration_content (
    id                  BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id             BIGINT      NOT NULL REFERENCES users (id),
    user_integration_id BIGINT      NOT NULL REFERENCES user_integrations (id),
    integration_domain  TEXT        NOT NULL,
    external_id         TEXT        NOT NULL,
    external_timestamp  TIMESTAMPTZ,
    content             JSONB       NOT NULL,
    content_size        BIGINT      NOT NULL,
    created_at          TIMESTAMPTZ NOT NULL,
    updated_at          TIMESTAMPTZ NOT NULL,
    deleted_at          TIMESTAMPTZ,
    is_deleted          BOOLEAN     NOT NULL DEFAULT FALSE,
    UNIQUE (user_integration_id, external_id)
);
-- Documents are compressed with lz4 where the server has it: inserting 10,000 JSON
-- documents of 9 KB took 3.4 s with pglz, the default, and 1.2 s with lz4 (and lz4's
-- table was a quarter smaller). A server built without lz4 (or older than 14) keeps
-- its default.
DO $$
BEGIN
    EXECUTE 'ALTER TABLE user_integration_content ALTER COLUMN content SET COMPRESSION lz4';
EXCEPTION WHEN OTHERS THEN
    RAISE NOTICE 'lz4 compression unavailable, content keeps the default: %', SQLERRM;
END
$$;
CREATE INDEX user_integration_content_deleted_idx
    ON user_integration_content (is_deleted, user_integration_id);
CREATE INDEX user_integration_content_updated_idx
    ON user_integration_content (updated_at);

CREATE TABLE jobs (
    id                  BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_integration_id BIGINT   NOT NULL REFERENCES user_integrations (id),
    task_type           TEXT     NOT NULL,
    payload             JSONB    NOT NULL,
    item_id             TEXT,
    dedupe_key          TEXT,
    priority            SMALLINT NOT NULL,
    state               TEXT     NOT NULL
        CHECK (state IN ('available', 'running', 'completed', 'failed', 'dead')),
    attempts            INTEGER  NOT NULL DEFAULT 0,
    max_attempts        INTEGER  NOT NULL,
    run_at              BIGINT   NOT NULL,
    -- Fair-queueing tag (see the `fairness` notes in the store's source).
    fair_seq            BIGINT   NOT NULL,
    -- Set when the same work was asked for again while this job ran: on completion
    -- the job runs once more instead of ending (see `Store::enqueue`).
    rerun               BOOLEAN  NOT NULL DEFAULT FALSE,
    locked_by           TEXT,
    lease_expires_at    BIGINT,
    error_class         TEXT,
    last_error          TEXT,
    created_at          BIGINT   NOT NULL,
    finished_at         BIGINT
);
-- No statistics on `state`: in a queue its distribution changes by the second, and a
-- sample taken while nothing ran (ANALYZE right after a backfill was queued) made the
-- planner take "running" for one row and compare every running job with every id of a
-- 512-job completion (0.5 s). Without them it assumes a fixed share, and completions,
-- lease renewals and releases look their jobs up by id.
ALTER TABLE jobs ALTER COLUMN state SET STATISTICS 0;
-- At most one pending job per account and dedupe key.
CREATE UNIQUE INDEX jobs_pending_dedupe_idx ON jobs (user_integration_id, dedupe_key)
    WHERE dedupe_key IS NOT NULL AND state IN ('available', 'running');
-- Claim: walk available jobs in (priority, fair_seq, id) order.
CREATE INDEX jobs_claim_idx ON jobs (priority, fair_seq, id) WHERE state = 'available';
-- Lease expiry. Only running jobs hold a lease. The predicate is on the lease, not on
-- `state = 'running'`: statistics taken while nothing ran made PostgreSQL reach for a
-- `state = 'running'` index whenever a statement named the state, then compare every
-- running job with every id of a batch (half a second for a 512-job completion).
CREATE INDEX jobs_running_lease_idx ON jobs (lease_expires_at)
    WHERE lease_expires_at IS NOT NULL;
-- content_exists: pending jobs naming an item.
CREATE INDEX jobs_pending_item_idx ON jobs (user_integration_id, item_id)
    WHERE item_id IS NOT NULL AND state IN ('available', 'running');
-- Listings and counts per account.
CREATE INDEX jobs_account_state_idx ON jobs (user_integration_id, state, priority);
-- (No index on state alone: queue-wide counts and listings are for operators and scan;
-- every job's insert, claim and completion would otherwise write one more entry.)
-- Pruning.
CREATE INDEX jobs_completed_idx ON jobs (finished_at) WHERE state = 'completed';

-- Fair queueing: each account's next tag per priority ...
CREATE TABLE job_fair_counters (
    user_integration_id BIGINT   NOT NULL REFERENCES user_integrations (id),
    priority            SMALLINT NOT NULL,
    next_seq            BIGINT   NOT NULL,
    PRIMARY KEY (user_integration_id, priority)
);
-- ... and the queue's virtual time per priority: the largest tag claimed so far.
CREATE TABLE job_fair_frontier (
    priority SMALLINT PRIMARY KEY,
    seq      BIGINT   NOT NULL
);

-- The schedule of each registered integration, as the last scheduler tick saw it; the
-- claims read it to turn due accounts into `start` and history jobs.
CREATE TABLE job_schedules (
    integration_domain TEXT    PRIMARY KEY,
    start_every_ms     BIGINT  NOT NULL,
    history_task       TEXT,
    history_every_ms   BIGINT,
    max_attempts       INTEGER NOT NULL
);
