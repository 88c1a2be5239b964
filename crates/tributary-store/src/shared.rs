//! The store's flows, written once for both backends.
//!
//! [`store_flows!`] expands, inside `sqlite.rs` and inside `postgres.rs`, into the
//! whole `Store` implementation (every role trait) of that backend's store, the row
//! decoding and the statements both dialects accept. Each backend keeps only what
//! really differs: its connection handling and its fast paths (SQLite's single-writer
//! transactions, multi-row `VALUES` and WAL upkeep; PostgreSQL's `UNNEST` batches,
//! `SKIP LOCKED` claims, transient-error retries and statistics upkeep).
//!
//! Statements are written with `$n` placeholders, which both drivers bind by number
//! (SQLite reads `$1` as parameter 1), and in SQL both dialects run: `CAST(... AS
//! BIGINT)`, `TRUE`/`FALSE`, `COUNT(*) FILTER (...)`, `UPDATE ... FROM`.
//!
//! The NUL rule lives here too: every text a caller hands in (an external reference, a
//! domain, settings, a worker name, an error, a schedule) goes through
//! [`crate::common::clean_text`] / [`crate::common::clean_json`] on its way in, in this
//! one layer, so both backends store the same thing (PostgreSQL cannot store NUL in
//! `text` or `jsonb`). Outputs, children and sync-state patches are cleaned by the
//! shared preparation in `common.rs` that both backends' fast paths use.
//!
//! What the invoking module provides (the backend's dialect), by name:
//! - `Db` (the sqlx database), `BACKEND`, `migrator()`;
//! - `Stamp` and `stamp(DateTime<Utc>) -> Stamp`: how a timestamp is bound;
//! - `json_param(&Value)` and `json_col(&Row, column, what)`: how JSON is bound and read;
//! - `ids_param(&[i64])`: a list of ids bound as one parameter, for the statements
//!   `SQL_UI_BY_IDS`;
//! - `SQL_STORED_ITEMS_BETWEEN`: an account's stored items in an id range compared byte by
//!   byte (the collation clause differs);
//! - `SQL_STATUS_FOR_UPDATE`, `SQL_JOB_STATE_FOR_UPDATE` (a row read that locks it
//!   until the transaction ends), `SQL_REQUEUE_EXPIRED` (its random spread),
//!   `SQL_FAIR_COUNTERS` (`MAX` / `GREATEST`);
//! - on the store: fields `pool`, `cipher`, `due`, and the methods `write_tx`,
//!   `known_ids`, `enqueue_jobs`, `claim_jobs`, `renew_held`, `commit_completions`,
//!   `release_held`, `tick`, `prune`.

/// The columns of a job row, in the order the statements select them.
macro_rules! job_columns {
    () => {
        "id, user_integration_id, task_type, payload, item_id, dedupe_key, priority, state, \
         attempts, max_attempts, run_at, locked_by, lease_expires_at, error_class, last_error, \
         created_at, finished_at, fair_seq"
    };
}

/// The columns of a linked account's row.
macro_rules! ui_columns {
    () => {
        "id, user_id, integration_domain, credentials, settings, status, sync_state, \
         last_synced_at, last_error, created_at, updated_at"
    };
}

/// The columns of a content row.
macro_rules! content_columns {
    () => {
        "id, user_id, user_integration_id, integration_domain, external_id, \
         external_timestamp, content, content_size, created_at, updated_at, deleted_at, \
         is_deleted, version"
    };
}

pub(crate) use {content_columns, job_columns, ui_columns};

/// The released migrations of one backend (`$dir`: `sqlite` or `postgres`), embedded in
/// the binary. A released file never changes (`tests/migrations.rs` holds their
/// checksums); a schema change is a new numbered file, added here.
macro_rules! migrations {
    ($dir:literal) => {
        sqlx::migrate::Migrator::with_migrations(
            [
                (
                    1,
                    "init",
                    include_str!(concat!("../migrations/", $dir, "/0001_init.sql")),
                ),
                (
                    2,
                    "given up fetches are known",
                    include_str!(concat!(
                        "../migrations/",
                        $dir,
                        "/0002_given_up_fetches_are_known.sql"
                    )),
                ),
                (
                    3,
                    "rate budgets",
                    include_str!(concat!("../migrations/", $dir, "/0003_rate_budgets.sql")),
                ),
                (
                    4,
                    "content versions",
                    include_str!(concat!(
                        "../migrations/",
                        $dir,
                        "/0004_content_versions.sql"
                    )),
                ),
            ]
            .into_iter()
            .map(|(version, name, sql)| {
                sqlx::migrate::Migration::new(
                    version,
                    name.into(),
                    sqlx::migrate::MigrationType::Simple,
                    sqlx::SqlSafeStr::into_sql_str(sql),
                    false,
                )
            })
            .collect(),
        )
    };
}

pub(crate) use migrations;

/// Expands into `$store`'s implementation of every role trait and its row decoding
/// (see the module documentation for what the invoking module provides).
macro_rules! store_flows {
    ($store:ident) => {
        const SQL_INSERT_UI: &str = concat!(
            "INSERT INTO user_integrations (user_id, integration_domain, credentials, settings, \
             status, sync_state, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, 'active', '{}', $5, $5) RETURNING ",
            $crate::shared::ui_columns!()
        );
        const SQL_UI_BY_ID: &str = concat!(
            "SELECT ",
            $crate::shared::ui_columns!(),
            " FROM user_integrations WHERE id = $1"
        );
        const SQL_UI_LIST: &str = concat!(
            "SELECT ",
            $crate::shared::ui_columns!(),
            " FROM user_integrations WHERE CAST($1 AS BIGINT) IS NULL OR user_id = $1 \
             ORDER BY id"
        );
        const SQL_CONTENT_BY_ID: &str = concat!(
            "SELECT ",
            $crate::shared::content_columns!(),
            " FROM user_integration_content WHERE id = $1"
        );
        const SQL_JOB_BY_ID: &str = concat!(
            "SELECT ",
            $crate::shared::job_columns!(),
            " FROM jobs WHERE id = $1"
        );
        /// How many accounts are due, of both kinds (`$1` now).
        const SQL_COUNT_DUE: &str = "SELECT \
             (SELECT COUNT(*) FROM job_schedules s JOIN user_integrations ui \
                  ON ui.integration_domain = s.integration_domain \
              WHERE ui.status = 'active' AND ui.next_start_at <= $1) \
             + (SELECT COUNT(*) FROM job_schedules s JOIN user_integrations ui \
                  ON ui.integration_domain = s.integration_domain \
              WHERE s.history_task IS NOT NULL AND s.history_every_ms IS NOT NULL \
                AND ui.status = 'active' AND ui.next_history_at <= $1)";

        /// The account overview (`$1` a user or NULL, `$2` an account or NULL): one row
        /// per account and priority with pending jobs (one row with a NULL priority
        /// for an account without any). The accounts are read once (a CTE used twice
        /// is materialized on both backends); each count walks an index of its
        /// account.
        const SQL_ACCOUNT_OVERVIEW: &str = "WITH a AS MATERIALIZED ( \
             SELECT ui.id, ui.user_id, ui.integration_domain, ui.credentials, ui.settings, \
                    ui.status, ui.last_synced_at, ui.last_error, ui.created_at, \
                    (SELECT COUNT(*) FROM user_integration_content c \
                     WHERE c.user_integration_id = ui.id AND c.is_deleted = FALSE) AS items, \
                    (SELECT COUNT(*) FROM user_integration_content c \
                     WHERE c.user_integration_id = ui.id AND c.is_deleted = TRUE) \
                        AS deleted_items, \
                    (SELECT COUNT(*) FROM jobs j \
                     WHERE j.user_integration_id = ui.id AND j.state IN ('dead', 'failed')) \
                        AS given_up \
             FROM user_integrations ui \
             WHERE (CAST($1 AS BIGINT) IS NULL OR ui.user_id = $1) \
               AND (CAST($2 AS BIGINT) IS NULL OR ui.id = $2)) \
             SELECT a.*, p.priority, p.pending FROM a \
             LEFT JOIN (SELECT j.user_integration_id, j.priority, COUNT(*) AS pending \
                        FROM jobs j \
                        WHERE j.state IN ('available', 'running') \
                          AND j.user_integration_id IN (SELECT id FROM a) \
                        GROUP BY j.user_integration_id, j.priority) p \
               ON p.user_integration_id = a.id \
             ORDER BY a.id, p.priority";

        type DbRow = <Db as sqlx::Database>::Row;

        fn user_from_row(row: &DbRow) -> Result<User, StoreError> {
            use sqlx::Row as _;
            Ok(User {
                id: row.try_get("id")?,
                external_ref: row.try_get("external_ref")?,
                created_at: row.try_get("created_at")?,
            })
        }

        /// A linked account's stored status.
        fn status_of(id: i64, status: &str) -> Result<UserIntegrationStatus, StoreError> {
            UserIntegrationStatus::parse(status).ok_or_else(|| {
                StoreError::Corrupt(format!("user integration {id} has unknown status `{status}`"))
            })
        }

        fn content_from_row(row: &DbRow) -> Result<ContentItem, StoreError> {
            use sqlx::Row as _;
            Ok(ContentItem {
                id: row.try_get("id")?,
                user_id: row.try_get("user_id")?,
                user_integration_id: row.try_get("user_integration_id")?,
                integration_domain: row.try_get("integration_domain")?,
                external_id: row.try_get("external_id")?,
                external_timestamp: row.try_get("external_timestamp")?,
                content: json_col(row, "content", "content")?,
                content_size: row.try_get("content_size")?,
                created_at: row.try_get("created_at")?,
                updated_at: row.try_get("updated_at")?,
                deleted_at: row.try_get("deleted_at")?,
                is_deleted: row.try_get("is_deleted")?,
                version: row.try_get("version")?,
            })
        }

        fn job_from_row(row: &DbRow) -> Result<Job, StoreError> {
            use sqlx::Row as _;
            let id: i64 = row.try_get("id")?;
            let state: String = row.try_get("state")?;
            Ok(Job {
                id,
                user_integration_id: row.try_get("user_integration_id")?,
                task_type: row.try_get("task_type")?,
                payload: json_col(row, "payload", "job payload")?,
                item_id: row.try_get("item_id")?,
                dedupe_key: row.try_get("dedupe_key")?,
                priority: row.try_get("priority")?,
                state: JobState::parse(&state).ok_or_else(|| {
                    StoreError::Corrupt(format!("job {id} has unknown state `{state}`"))
                })?,
                attempts: row.try_get("attempts")?,
                max_attempts: row.try_get("max_attempts")?,
                run_at: row.try_get("run_at")?,
                locked_by: row.try_get("locked_by")?,
                lease_expires_at: row.try_get("lease_expires_at")?,
                error_class: row.try_get("error_class")?,
                last_error: row.try_get("last_error")?,
                created_at: row.try_get("created_at")?,
                finished_at: row.try_get("finished_at")?,
            })
        }

        /// How many accounts are due (see `SQL_COUNT_DUE`).
        async fn count_due<'c, E: sqlx::Executor<'c, Database = Db>>(
            executor: E,
            now: Millis,
        ) -> Result<u64, StoreError> {
            let due: i64 = sqlx::query_scalar(SQL_COUNT_DUE)
                .bind(now)
                .fetch_one(executor)
                .await?;
            Ok(u64::try_from(due).unwrap_or(0))
        }

        /// Takes the fairness counters of `groups` forward by their sizes, in the
        /// groups' order (a global lock order); returns each group's first tag.
        async fn fair_bases(
            conn: &mut <Db as sqlx::Database>::Connection,
            groups: &[(FairGroup, i64)],
        ) -> Result<HashMap<FairGroup, i64>, StoreError> {
            let mut bases = HashMap::with_capacity(groups.len());
            for (group, n) in groups {
                let next: i64 = sqlx::query_scalar(SQL_FAIR_COUNTERS)
                    .bind(group.user_integration_id)
                    .bind(group.priority)
                    .bind(n)
                    .fetch_one(&mut *conn)
                    .await
                    .map_err(|e| {
                        $crate::common::unknown_account(e, &[group.user_integration_id])
                    })?;
                bases.insert(*group, next - n);
            }
            Ok(bases)
        }

        /// The queue's virtual time of every priority that a discovery job of the batch
        /// is enqueued at.
        async fn frontiers_of(
            conn: &mut <Db as sqlx::Database>::Connection,
            prepared: &[$crate::common::PreparedJob],
        ) -> Result<HashMap<i16, i64>, StoreError> {
            let mut frontiers = HashMap::new();
            for job in prepared.iter().filter(|j| j.at_frontier) {
                if let std::collections::hash_map::Entry::Vacant(slot) =
                    frontiers.entry(job.priority)
                {
                    let seq: Option<i64> =
                        sqlx::query_scalar("SELECT seq FROM job_fair_frontier WHERE priority = $1")
                            .bind(job.priority)
                            .fetch_optional(&mut *conn)
                            .await?;
                    slot.insert(seq.unwrap_or(0));
                }
            }
            Ok(frontiers)
        }

        /// Step 3 of a commit, inside its transaction: the content, deletions and
        /// children of the applied completions, in order. The content of consecutive
        /// jobs is written together (`write_content_in`); a job touching an id already
        /// in the pending segment (the same item twice in one batch) has it written
        /// first, so the jobs' order holds.
        async fn apply_outputs_in(
            conn: &mut <Db as sqlx::Database>::Connection,
            completions: &[JobCompletion],
            applied: &[usize],
            now: Millis,
            reports: &mut [CompletionReport],
        ) -> Result<(), StoreError> {
            let now_stamp = stamp($crate::common::ms_to_dt(now)?);
            let prepared: Vec<(usize, $crate::common::PreparedOutputs<'_>)> = applied
                .iter()
                .map(|&i| (i, $crate::common::prepare_outputs(&completions[i].outputs)))
                .collect();
            let mut segment = $crate::common::ContentSegment::default();
            for (i, outputs) in &prepared {
                let c = &completions[*i];
                if segment.clashes(c.user_integration_id, outputs) {
                    write_content_in(&mut *conn, &segment.take(), &now_stamp, reports).await?;
                }
                segment.push(*i, c, outputs);
                if !outputs.deletes.is_empty() {
                    reports[*i].deleted += soft_delete_in(
                        &mut *conn,
                        c.user_integration_id,
                        &outputs.deletes,
                        &now_stamp,
                    )
                    .await?;
                }
                reports[*i].enqueued = enqueue_in(&mut *conn, &c.children, now).await?;
            }
            write_content_in(&mut *conn, &segment.take(), &now_stamp, reports).await
        }

        impl $store {
            fn user_integration_from_row(&self, row: &DbRow) -> Result<UserIntegration, StoreError> {
                use sqlx::Row as _;
                let id: i64 = row.try_get("id")?;
                let status: String = row.try_get("status")?;
                let credentials: Vec<u8> = row.try_get("credentials")?;
                Ok(UserIntegration {
                    id,
                    user_id: row.try_get("user_id")?,
                    integration_domain: row.try_get("integration_domain")?,
                    credentials: $crate::common::open_credentials(
                        &self.cipher,
                        id,
                        &status,
                        &credentials,
                    )?,
                    settings: $crate::common::object_from_value(
                        json_col(row, "settings", "settings")?,
                        "settings",
                    )?,
                    status: status_of(id, &status)?,
                    sync_state: $crate::common::object_from_value(
                        json_col(row, "sync_state", "sync_state")?,
                        "sync_state",
                    )?,
                    last_synced_at: row.try_get("last_synced_at")?,
                    last_error: row.try_get("last_error")?,
                    created_at: row.try_get("created_at")?,
                    updated_at: row.try_get("updated_at")?,
                })
            }
        }

        #[async_trait::async_trait]
        impl $crate::Store for $store {
            fn backend(&self) -> $crate::Backend {
                BACKEND
            }

            async fn migrate(&self) -> Result<(), StoreError> {
                // On PostgreSQL sqlx's migrator takes an advisory lock: concurrent
                // processes are safe.
                migrator().run(&self.pool).await?;
                Ok(())
            }
        }

        #[async_trait::async_trait]
        impl $crate::AccountStore for $store {
            async fn create_user(&self, external_ref: &str) -> Result<User, StoreError> {
                let row = sqlx::query(
                    "INSERT INTO users (external_ref, created_at) VALUES ($1, $2)
                     RETURNING id, external_ref, created_at",
                )
                .bind(clean_text(external_ref).as_ref())
                .bind(stamp($crate::common::now_dt()))
                .fetch_one(&self.pool)
                .await
                .map_err(|e| {
                    if $crate::common::is_unique_violation(&e) {
                        StoreError::Conflict(format!(
                            "a user with external_ref `{external_ref}` already exists"
                        ))
                    } else {
                        StoreError::Database(e)
                    }
                })?;
                user_from_row(&row)
            }

            async fn list_users(&self) -> Result<Vec<User>, StoreError> {
                let rows =
                    sqlx::query("SELECT id, external_ref, created_at FROM users ORDER BY id")
                        .fetch_all(&self.pool)
                        .await?;
                rows.iter().map(user_from_row).collect()
            }

            async fn get_user(&self, id: i64) -> Result<User, StoreError> {
                let row =
                    sqlx::query("SELECT id, external_ref, created_at FROM users WHERE id = $1")
                        .bind(id)
                        .fetch_optional(&self.pool)
                        .await?
                        .ok_or_else(|| $crate::common::not_found("user", id))?;
                user_from_row(&row)
            }

            async fn create_user_integration(
                &self,
                new: NewUserIntegration,
            ) -> Result<UserIntegration, StoreError> {
                let sealed = self.cipher.encrypt_credentials(&new.credentials)?;
                let settings = Value::Object($crate::common::clean_object(&new.settings));
                let row = sqlx::query(SQL_INSERT_UI)
                    .bind(new.user_id)
                    .bind(clean_text(&new.integration_domain).as_ref())
                    .bind(sealed)
                    .bind(json_param(&settings))
                    .bind(stamp($crate::common::now_dt()))
                    .fetch_one(&self.pool)
                    .await
                    .map_err(|e| {
                        if $crate::common::is_foreign_key_violation(&e) {
                            $crate::common::not_found("user", new.user_id)
                        } else {
                            StoreError::Database(e)
                        }
                    })?;
                // Due at once: the next claim looks for it.
                self.due.reopen();
                self.user_integration_from_row(&row)
            }

            async fn get_user_integration(&self, id: i64) -> Result<UserIntegration, StoreError> {
                let row = sqlx::query(SQL_UI_BY_ID)
                    .bind(id)
                    .fetch_optional(&self.pool)
                    .await?
                    .ok_or_else(|| $crate::common::not_found("user integration", id))?;
                self.user_integration_from_row(&row)
            }

            async fn get_user_integrations(
                &self,
                ids: &[i64],
            ) -> Result<Vec<UserIntegration>, StoreError> {
                if ids.is_empty() {
                    return Ok(Vec::new());
                }
                let rows = sqlx::query(SQL_UI_BY_IDS)
                    .bind(ids_param(ids))
                    .fetch_all(&self.pool)
                    .await?;
                rows.iter()
                    .map(|r| self.user_integration_from_row(r))
                    .collect()
            }

            async fn list_user_integrations(
                &self,
                user_id: Option<i64>,
            ) -> Result<Vec<UserIntegration>, StoreError> {
                let rows = sqlx::query(SQL_UI_LIST)
                    .bind(user_id)
                    .fetch_all(&self.pool)
                    .await?;
                rows.iter()
                    .map(|r| self.user_integration_from_row(r))
                    .collect()
            }

            async fn set_user_integration_status(
                &self,
                id: i64,
                status: UserIntegrationStatus,
                last_error: Option<&str>,
            ) -> Result<(), StoreError> {
                let mut tx = self.write_tx().await?;
                let old: Option<String> = sqlx::query_scalar(SQL_STATUS_FOR_UPDATE)
                    .bind(id)
                    .fetch_optional(&mut *tx)
                    .await?;
                let Some(old) = old else {
                    return Err($crate::common::not_found("user integration", id));
                };
                sqlx::query(
                    "UPDATE user_integrations SET status = $1, last_error = $2, updated_at = $3
                     WHERE id = $4",
                )
                .bind(status.as_str())
                .bind(last_error.map(|e| clean_text(e).into_owned()))
                .bind(stamp($crate::common::now_dt()))
                .bind(id)
                .execute(&mut *tx)
                .await?;
                if status == UserIntegrationStatus::Unlinked {
                    // Unlinked accounts never sync again: their waiting jobs go (content
                    // stays).
                    sqlx::query(
                        "DELETE FROM jobs WHERE user_integration_id = $1 AND state = 'available'",
                    )
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
                }
                if status == UserIntegrationStatus::Active && old != "active" {
                    // Resumed: move the waiting jobs up to the queue's virtual time
                    // (fairness).
                    sqlx::query(
                        "UPDATE jobs SET fair_seq = jobs.fair_seq + s.shift
                         FROM (SELECT j.priority, f.seq - MIN(j.fair_seq) AS shift
                               FROM jobs j JOIN job_fair_frontier f ON f.priority = j.priority
                               WHERE j.user_integration_id = $1 AND j.state = 'available'
                               GROUP BY j.priority, f.seq) AS s
                         WHERE jobs.user_integration_id = $1 AND jobs.state = 'available'
                           AND jobs.priority = s.priority AND s.shift > 0",
                    )
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
                    sqlx::query(
                        "UPDATE job_fair_counters SET next_seq = m.top + 1
                         FROM (SELECT priority, MAX(fair_seq) AS top FROM jobs
                               WHERE user_integration_id = $1 AND state = 'available'
                               GROUP BY priority) AS m
                         WHERE job_fair_counters.user_integration_id = $1
                           AND job_fair_counters.priority = m.priority
                           AND m.top + 1 > job_fair_counters.next_seq",
                    )
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
                }
                tx.commit().await?;
                if status == UserIntegrationStatus::Active {
                    // A resumed account may be due: the next claim looks for it.
                    self.due.reopen();
                }
                Ok(())
            }

            async fn update_credentials(
                &self,
                id: i64,
                credentials: &Credentials,
            ) -> Result<(), StoreError> {
                let sealed = self.cipher.encrypt_credentials(credentials)?;
                let done = sqlx::query(
                    "UPDATE user_integrations SET credentials = $1, updated_at = $2 WHERE id = $3",
                )
                .bind(sealed)
                .bind(stamp($crate::common::now_dt()))
                .bind(id)
                .execute(&self.pool)
                .await?;
                if done.rows_affected() == 0 {
                    return Err($crate::common::not_found("user integration", id));
                }
                Ok(())
            }

            async fn check_key(&self, sample: usize) -> Result<$crate::KeyCheck, StoreError> {
                let accounts: i64 = sqlx::query_scalar(
                    "SELECT count(*) FROM user_integrations WHERE status <> 'unlinked'",
                )
                .fetch_one(&self.pool)
                .await?;
                let rows: Vec<(i64, Vec<u8>)> = sqlx::query_as(
                    "SELECT id, credentials FROM user_integrations WHERE status <> 'unlinked' \
                     ORDER BY id DESC LIMIT $1",
                )
                .bind(i64::try_from(sample).unwrap_or(i64::MAX))
                .fetch_all(&self.pool)
                .await?;
                Ok($crate::KeyCheck::run(
                    &self.cipher,
                    u64::try_from(accounts).unwrap_or(0),
                    &rows,
                ))
            }
        }

        #[async_trait::async_trait]
        impl $crate::ContentStore for $store {
            async fn known_items(
                &self,
                user_integration_id: i64,
                items: &[tributary_sdk::ItemRef],
            ) -> Result<HashSet<String>, StoreError> {
                if items.is_empty() {
                    return Ok(HashSet::new());
                }
                let (lookup, asked) = $crate::common::lookup_items(items);
                let rows = self.known_ids(user_integration_id, &lookup).await?;
                Ok($crate::common::known_of(rows, &asked, true))
            }

            async fn stored_items(
                &self,
                user_integration_id: i64,
                items: &[tributary_sdk::ItemRef],
            ) -> Result<HashSet<String>, StoreError> {
                if items.is_empty() {
                    return Ok(HashSet::new());
                }
                let (lookup, asked) = $crate::common::lookup_items(items);
                let rows = self.known_ids(user_integration_id, &lookup).await?;
                Ok($crate::common::known_of(rows, &asked, false))
            }

            async fn stored_external_ids(
                &self,
                user_integration_id: i64,
            ) -> Result<Vec<String>, StoreError> {
                Ok(sqlx::query_scalar(
                    "SELECT external_id FROM user_integration_content
                     WHERE is_deleted = FALSE AND user_integration_id = $1 ORDER BY id",
                )
                .bind(user_integration_id)
                .fetch_all(&self.pool)
                .await?)
            }

            async fn stored_items_between(
                &self,
                user_integration_id: i64,
                from: &str,
                until: &str,
            ) -> Result<Vec<tributary_sdk::ItemRef>, StoreError> {
                let rows: Vec<(String, Option<String>)> =
                    sqlx::query_as(SQL_STORED_ITEMS_BETWEEN)
                        .bind(user_integration_id)
                        .bind(from)
                        .bind(until)
                        .fetch_all(&self.pool)
                        .await?;
                Ok(rows
                    .into_iter()
                    .map(|(id, version)| tributary_sdk::ItemRef { id, version })
                    .collect())
            }

            async fn list_content(
                &self,
                query: &ContentQuery,
            ) -> Result<Vec<ContentItem>, StoreError> {
                let mut qb = sqlx::QueryBuilder::<Db>::new(concat!(
                    "SELECT ",
                    $crate::shared::content_columns!(),
                    " FROM user_integration_content WHERE TRUE"
                ));
                if !query.include_deleted {
                    qb.push(" AND is_deleted = FALSE");
                }
                if let Some(uid) = query.user_integration_id {
                    qb.push(" AND user_integration_id = ").push_bind(uid);
                }
                if let Some(since) = query.since {
                    qb.push(" AND updated_at >= ").push_bind(stamp(since));
                }
                if let Some(after) = query.after_id {
                    qb.push(" AND id > ").push_bind(after);
                }
                qb.push(" ORDER BY id LIMIT ")
                    .push_bind(query.limit.unwrap_or(100).max(0));
                let rows = qb.build().fetch_all(&self.pool).await?;
                rows.iter().map(content_from_row).collect()
            }

            async fn get_content(&self, id: i64) -> Result<ContentItem, StoreError> {
                let row = sqlx::query(SQL_CONTENT_BY_ID)
                    .bind(id)
                    .fetch_optional(&self.pool)
                    .await?
                    .ok_or_else(|| $crate::common::not_found("content item", id))?;
                content_from_row(&row)
            }

            async fn content_counts(
                &self,
                user_integration_id: i64,
            ) -> Result<ContentCounts, StoreError> {
                let (items, deleted): (i64, i64) = sqlx::query_as(
                    "SELECT COUNT(*) FILTER (WHERE is_deleted = FALSE),
                            COUNT(*) FILTER (WHERE is_deleted = TRUE)
                     FROM user_integration_content WHERE user_integration_id = $1",
                )
                .bind(user_integration_id)
                .fetch_one(&self.pool)
                .await?;
                Ok(ContentCounts { items, deleted })
            }
        }

        #[async_trait::async_trait]
        impl $crate::JobQueue for $store {
            async fn enqueue(&self, jobs: &[NewJob], now: Millis) -> Result<u64, StoreError> {
                if jobs.is_empty() {
                    return Ok(0);
                }
                self.enqueue_jobs(jobs, now).await
            }

            async fn claim_scoped(
                &self,
                worker: &str,
                limit: usize,
                lease_ms: i64,
                now: Millis,
                user_integration_id: Option<i64>,
            ) -> Result<Vec<Job>, StoreError> {
                if limit == 0 {
                    return Ok(Vec::new());
                }
                let worker = clean_text(worker);
                self.claim_jobs(&worker, limit, lease_ms, now, user_integration_id)
                    .await
            }

            async fn renew_leases(
                &self,
                worker: &str,
                jobs: &[JobLease],
                lease_ms: i64,
                now: Millis,
            ) -> Result<Vec<i64>, StoreError> {
                if jobs.is_empty() {
                    return Ok(Vec::new());
                }
                self.renew_held(&clean_text(worker), jobs, now.saturating_add(lease_ms))
                    .await
            }

            async fn complete_jobs(
                &self,
                completions: &[JobCompletion],
                now: Millis,
            ) -> Result<Vec<CompletionReport>, StoreError> {
                if completions.is_empty() {
                    return Ok(Vec::new());
                }
                self.commit_completions(completions, now).await
            }

            async fn fail_job(&self, failure: &JobFailure, now: Millis) -> Result<bool, StoreError> {
                let lease = failure.lease;
                let class = clean_text(&failure.error_class);
                let message = clean_text(&failure.message);
                let mut tx = self.write_tx().await?;
                let fenced: Option<i64> = match failure.action {
                    FailureAction::Retry { run_at } => {
                        sqlx::query_scalar(
                            "UPDATE jobs SET state = 'available', run_at = $1, locked_by = NULL,
                                 lease_expires_at = NULL, error_class = $2, last_error = $3,
                                 rerun = FALSE
                             WHERE id = $4 AND state = 'running' AND attempts = $5
                             RETURNING user_integration_id",
                        )
                        .bind(run_at)
                        .bind(class.as_ref())
                        .bind(message.as_ref())
                        .bind(lease.job_id)
                        .bind(lease.attempt)
                        .fetch_optional(&mut *tx)
                        .await?
                    }
                    FailureAction::Dead | FailureAction::Failed => {
                        let state = if failure.action == FailureAction::Dead {
                            JobState::Dead
                        } else {
                            JobState::Failed
                        };
                        sqlx::query_scalar(
                            "UPDATE jobs SET state = $1, finished_at = $2, locked_by = NULL,
                                 lease_expires_at = NULL, error_class = $3, last_error = $4
                             WHERE id = $5 AND state = 'running' AND attempts = $6
                             RETURNING user_integration_id",
                        )
                        .bind(state.as_str())
                        .bind(now)
                        .bind(class.as_ref())
                        .bind(message.as_ref())
                        .bind(lease.job_id)
                        .bind(lease.attempt)
                        .fetch_optional(&mut *tx)
                        .await?
                    }
                    FailureAction::PauseAccount => {
                        let uid: Option<i64> = sqlx::query_scalar(
                            "UPDATE jobs SET state = 'available', attempts = attempts - 1,
                                 run_at = $1, locked_by = NULL, lease_expires_at = NULL,
                                 error_class = $2, last_error = $3
                             WHERE id = $4 AND state = 'running' AND attempts = $5
                             RETURNING user_integration_id",
                        )
                        .bind(now)
                        .bind(class.as_ref())
                        .bind(message.as_ref())
                        .bind(lease.job_id)
                        .bind(lease.attempt)
                        .fetch_optional(&mut *tx)
                        .await?;
                        if let Some(uid) = uid {
                            sqlx::query(
                                "UPDATE user_integrations
                                 SET status = 'needs_reauth', last_error = $1, updated_at = $2
                                 WHERE id = $3",
                            )
                            .bind(message.as_ref())
                            .bind(stamp($crate::common::ms_to_dt(now)?))
                            .bind(uid)
                            .execute(&mut *tx)
                            .await?;
                        }
                        uid
                    }
                };
                tx.commit().await?;
                Ok(fenced.is_some())
            }

            async fn release_jobs(
                &self,
                worker: &str,
                jobs: &[JobLease],
                _now: Millis,
            ) -> Result<u64, StoreError> {
                if jobs.is_empty() {
                    return Ok(0);
                }
                self.release_held(&clean_text(worker), jobs).await
            }

            async fn requeue_expired(&self, now: Millis) -> Result<u64, StoreError> {
                let done = sqlx::query(SQL_REQUEUE_EXPIRED)
                    .bind(now)
                    .bind($crate::PROCESS_DIED_CLASS)
                    .bind($crate::PROCESS_DIED_ERROR)
                    .bind($crate::EXPIRED_SPREAD_MS)
                    .execute(&self.pool)
                    .await?;
                Ok(done.rows_affected())
            }
        }

        /// A budget's level now: its tokens refilled at `$3` units per second for the
        /// milliseconds since `updated_at` (none when the clock is behind it), capped
        /// at the burst `$2`; `$4` is now.
        macro_rules! budget_level {
            () => {
                "(CASE WHEN tokens + (CASE WHEN $4 > updated_at THEN $4 - updated_at ELSE 0 END) \
                   * CAST($3 AS DOUBLE PRECISION) / 1000.0 > CAST($2 AS DOUBLE PRECISION) \
                 THEN CAST($2 AS DOUBLE PRECISION) \
                 ELSE tokens + (CASE WHEN $4 > updated_at THEN $4 - updated_at ELSE 0 END) \
                   * CAST($3 AS DOUBLE PRECISION) / 1000.0 END)"
            };
        }

        #[async_trait::async_trait]
        impl $crate::BudgetStore for $store {
            async fn take_budget_units(
                &self,
                key: &str,
                units: u64,
                burst: u64,
                per_second: f64,
                now: Millis,
            ) -> Result<Option<f64>, StoreError> {
                let key = $crate::common::clean_text(key);
                let (units, burst) = (units as f64, burst as f64);
                for _ in 0..2 {
                    // One statement refills and takes, or leaves the row alone.
                    let taken = sqlx::query(concat!(
                        "UPDATE rate_budgets SET tokens = ",
                        budget_level!(),
                        " - CAST($5 AS DOUBLE PRECISION), \
                         updated_at = CASE WHEN $4 > updated_at THEN $4 ELSE updated_at END \
                         WHERE budget_key = $1 AND ",
                        budget_level!(),
                        " >= CAST($5 AS DOUBLE PRECISION)"
                    ))
                    .bind(key.as_ref())
                    .bind(burst)
                    .bind(per_second)
                    .bind(now)
                    .bind(units)
                    .execute(&self.pool)
                    .await?;
                    if taken.rows_affected() > 0 {
                        return Ok(None);
                    }
                    let level: Option<f64> = sqlx::query_scalar(concat!(
                        "SELECT CAST(",
                        budget_level!(),
                        " AS DOUBLE PRECISION) FROM rate_budgets WHERE budget_key = $1"
                    ))
                    .bind(key.as_ref())
                    .bind(burst)
                    .bind(per_second)
                    .bind(now)
                    .fetch_optional(&self.pool)
                    .await?;
                    if let Some(level) = level {
                        return Ok(Some((units - level).max(f64::MIN_POSITIVE)));
                    }
                    // First use of the key: a full bucket (another process may have
                    // made it meanwhile).
                    sqlx::query(
                        "INSERT INTO rate_budgets (budget_key, tokens, updated_at) \
                         VALUES ($1, CAST($2 AS DOUBLE PRECISION), $3) ON CONFLICT (budget_key) DO NOTHING",
                    )
                    .bind(key.as_ref())
                    .bind(burst)
                    .bind(now)
                    .execute(&self.pool)
                    .await?;
                }
                Err(StoreError::Corrupt(format!(
                    "rate budget {key} could not be created"
                )))
            }
        }

        #[async_trait::async_trait]
        impl $crate::ScheduleStore for $store {
            async fn schedule_due(
                &self,
                schedules: &[DomainSchedule],
                now: Millis,
            ) -> Result<ScheduleReport, StoreError> {
                let schedules = $crate::common::distinct_schedules(schedules);
                self.tick(&schedules, now).await
            }
        }

        #[async_trait::async_trait]
        impl $crate::QueueAdmin for $store {
            async fn list_jobs(&self, filter: &JobFilter) -> Result<Vec<Job>, StoreError> {
                let mut qb = sqlx::QueryBuilder::<Db>::new(concat!(
                    "SELECT ",
                    $crate::shared::job_columns!(),
                    " FROM jobs WHERE TRUE"
                ));
                if let Some(state) = filter.state {
                    qb.push(" AND state = ").push_bind(state.as_str());
                }
                if let Some(uid) = filter.user_integration_id {
                    qb.push(" AND user_integration_id = ").push_bind(uid);
                }
                qb.push(" ORDER BY id DESC LIMIT ")
                    .push_bind(filter.limit.unwrap_or(100).max(0));
                let rows = qb.build().fetch_all(&self.pool).await?;
                rows.iter().map(job_from_row).collect()
            }

            async fn get_job(&self, id: i64) -> Result<Job, StoreError> {
                let row = sqlx::query(SQL_JOB_BY_ID)
                    .bind(id)
                    .fetch_optional(&self.pool)
                    .await?
                    .ok_or_else(|| $crate::common::not_found("job", id))?;
                job_from_row(&row)
            }

            async fn retry_job(&self, id: i64, now: Millis) -> Result<(), StoreError> {
                let mut tx = self.write_tx().await?;
                let state: Option<String> = sqlx::query_scalar(SQL_JOB_STATE_FOR_UPDATE)
                    .bind(id)
                    .fetch_optional(&mut *tx)
                    .await?;
                match state.as_deref() {
                    None => return Err($crate::common::not_found("job", id)),
                    Some("dead" | "failed") => {}
                    Some(other) => {
                        return Err(StoreError::Conflict(format!(
                            "job {id} is {other}: only dead or failed jobs can be retried"
                        )));
                    }
                }
                sqlx::query(
                    "UPDATE jobs SET state = 'available', attempts = 0, run_at = $1,
                         finished_at = NULL, locked_by = NULL, lease_expires_at = NULL
                     WHERE id = $2",
                )
                .bind(now)
                .bind(id)
                .execute(&mut *tx)
                .await
                .map_err(|e| $crate::common::retry_conflict(e, id))?;
                tx.commit().await?;
                Ok(())
            }

            async fn job_counts(
                &self,
                user_integration_id: Option<i64>,
            ) -> Result<Vec<JobCount>, StoreError> {
                let rows: Vec<(String, i16, i64)> = sqlx::query_as(
                    "SELECT state, priority, COUNT(*) FROM jobs
                     WHERE CAST($1 AS BIGINT) IS NULL OR user_integration_id = $1
                     GROUP BY state, priority ORDER BY state, priority",
                )
                .bind(user_integration_id)
                .fetch_all(&self.pool)
                .await?;
                rows.into_iter()
                    .map(|(state, priority, count)| {
                        Ok(JobCount {
                            state: JobState::parse(&state).ok_or_else(|| {
                                StoreError::Corrupt(format!("unknown job state `{state}`"))
                            })?,
                            priority,
                            count,
                        })
                    })
                    .collect()
            }

            async fn account_overview(
                &self,
                scope: $crate::AccountScope,
            ) -> Result<Vec<$crate::AccountOverview>, StoreError> {
                use $crate::{AccountOverview, AccountScope};
                use sqlx::Row as _;
                let (user, account) = match scope {
                    AccountScope::All => (None, None),
                    AccountScope::User(user) => (Some(user), None),
                    AccountScope::Account(id) => (None, Some(id)),
                };
                let rows = sqlx::query(SQL_ACCOUNT_OVERVIEW)
                    .bind(user)
                    .bind(account)
                    .fetch_all(&self.pool)
                    .await?;
                let mut accounts: Vec<AccountOverview> = Vec::new();
                for row in &rows {
                    let id: i64 = row.try_get("id")?;
                    if accounts.last().is_none_or(|a| a.id != id) {
                        let status: String = row.try_get("status")?;
                        let status = status_of(id, &status)?;
                        let sealed: Vec<u8> = row.try_get("credentials")?;
                        accounts.push(AccountOverview {
                            id,
                            user_id: row.try_get("user_id")?,
                            domain: row.try_get("integration_domain")?,
                            status,
                            settings: $crate::common::object_from_value(
                                json_col(row, "settings", "settings")?,
                                "settings",
                            )?,
                            last_synced_at: row.try_get("last_synced_at")?,
                            items: row.try_get("items")?,
                            deleted_items: row.try_get("deleted_items")?,
                            pending_jobs: std::collections::BTreeMap::new(),
                            dead_or_failed_jobs: row.try_get("given_up")?,
                            last_error: row.try_get("last_error")?,
                            created_at: row.try_get("created_at")?,
                            credentials_unreadable: status != UserIntegrationStatus::Unlinked
                                && self.cipher.decrypt_credentials(&sealed).is_err(),
                        });
                    }
                    let priority: Option<i16> = row.try_get("priority")?;
                    let pending: Option<i64> = row.try_get("pending")?;
                    if let (Some(priority), Some(pending), Some(account)) =
                        (priority, pending, accounts.last_mut())
                    {
                        account.pending_jobs.insert(priority, pending);
                    }
                }
                Ok(accounts)
            }

            async fn prune_completed(&self, before: Millis, limit: u64) -> Result<u64, StoreError> {
                if limit == 0 {
                    return Ok(0);
                }
                self.prune(before, i64::try_from(limit).unwrap_or(i64::MAX))
                    .await
            }
        }
    };
}

pub(crate) use store_flows;
