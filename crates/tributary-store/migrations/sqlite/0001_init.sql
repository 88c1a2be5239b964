-- Tributary schema for SQLite.
--
-- Timestamps of users, accounts and content are TEXT in one fixed-width UTC format
-- (`YYYY-MM-DDTHH:MM:SS.mmmZ`, written by the store), so text order is time order.
-- JSON is TEXT. Times in `jobs` are INTEGER epoch milliseconds.

CREATE TABLE users (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    external_ref TEXT    NOT NULL UNIQUE,
    created_at   TEXT    NOT NULL
);

CREATE TABLE user_integrations (
    id                 INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id            INTEGER NOT NULL REFERENCES users (id),
    integration_domain TEXT    NOT NULL,
    credentials        BLOB    NOT NULL,
    settings           TEXT    NOT NULL DEFAULT '{}',
    status             TEXT    NOT NULL DEFAULT 'active'
        CHECK (status IN ('active', 'paused', 'needs_reauth', 'error', 'unlinked')),
    sync_state         TEXT    NOT NULL DEFAULT '{}',
    last_synced_at     TEXT,
    last_error         TEXT,
    created_at         TEXT    NOT NULL,
    updated_at         TEXT    NOT NULL,
    -- When the next scheduled `start` / history job is due (epoch ms; 0 = now). An
    -- account that is due is a pending job of its own: the scheduler's tick and every
    -- claim turn due accounts into jobs (see `job_schedules`).
    next_start_at      INTEGER NOT NULL DEFAULT 0,
    next_history_at    INTEGER NOT NULL DEFAULT 0
);
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
    id                  INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id             INTEGER NOT NULL REFERENCES users (id),
    user_integration_id INTEGER NOT NULL REFERENCES user_integrations (id),
    integration_domain  TEXT    NOT NULL,
    external_id         TEXT    NOT NULL,
    external_timestamp  TEXT,
    content             TEXT    NOT NULL,
    content_size        INTEGER NOT NULL,
    created_at          TEXT    NOT NULL,
    updated_at          TEXT    NOT NULL,
    deleted_at          TEXT,
    is_deleted          INTEGER NOT NULL DEFAULT 0 CHECK (is_deleted IN (0, 1)),
    UNIQUE (user_integration_id, external_id)
);
CREATE INDEX user_integration_content_deleted_idx
    ON user_integration_content (is_deleted, user_integration_id);
CREATE INDEX user_integration_content_updated_idx
    ON user_integration_content (updated_at);

CREATE TABLE jobs (
    id                  INTEGER PRIMARY KEY AUTOINCREMENT,
    user_integration_id INTEGER NOT NULL REFERENCES user_integrations (id),
    task_type           TEXT    NOT NULL,
    payload             TEXT    NOT NULL,
    item_id             TEXT,
    dedupe_key          TEXT,
    priority            INTEGER NOT NULL,
    state               TEXT    NOT NULL
        CHECK (state IN ('available', 'running', 'completed', 'failed', 'dead')),
    attempts            INTEGER NOT NULL DEFAULT 0,
    max_attempts        INTEGER NOT NULL,
    run_at              INTEGER NOT NULL,
    -- Fair-queueing tag (see the `fairness` notes in the store's source).
    fair_seq            INTEGER NOT NULL,
    -- Set when the same work was asked for again while this job ran: on completion
    -- the job runs once more instead of ending (see `Store::enqueue`).
    rerun               INTEGER NOT NULL DEFAULT 0,
    locked_by           TEXT,
    lease_expires_at    INTEGER,
    error_class         TEXT,
    last_error          TEXT,
    created_at          INTEGER NOT NULL,
    finished_at         INTEGER
);
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
    user_integration_id INTEGER NOT NULL REFERENCES user_integrations (id),
    priority            INTEGER NOT NULL,
    next_seq            INTEGER NOT NULL,
    PRIMARY KEY (user_integration_id, priority)
);
-- ... and the queue's virtual time per priority: the largest tag claimed so far.
CREATE TABLE job_fair_frontier (
    priority INTEGER PRIMARY KEY,
    seq      INTEGER NOT NULL
);

-- The schedule of each registered integration, as the last scheduler tick saw it; the
-- claims read it to turn due accounts into `start` and history jobs.
CREATE TABLE job_schedules (
    integration_domain TEXT    PRIMARY KEY,
    start_every_ms     INTEGER NOT NULL,
    history_task       TEXT,
    history_every_ms   INTEGER,
    max_attempts       INTEGER NOT NULL
);
