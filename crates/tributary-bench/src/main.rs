//! Benchmarks of Tributary. Each scenario prints a table; nothing here asserts timing.
//!
//! - `queue` ([`queue`]): no-op jobs per second through the queue.
//! - `sync` ([`sync`]): Gmail messages per second from the fake into each backend,
//!   beside the fake's own ceiling.
//! - `early-stop` ([`sync`]): list calls and time of a `start` with nothing new.
//! - `memory` ([`memory`]): peak resident memory of a full sync (child processes).
//! - `scheduler` ([`scheduler`]): one scheduler tick over many due accounts.
//! - `freshness` ([`freshness`]): delivery-to-stored delay of new mail during a backfill.
//! - `disk` ([`disk`]): database, WAL, table and index sizes during and after a backfill.
//! - `peer` ([`peer`]): no-op jobs per second through Tributary's queue and through
//!   graphile-worker (installed from npm into a temporary folder) on the same PostgreSQL.
//! - `prune` ([`prune`]): the jobs table's rows and size over a simulated day of
//!   scheduled work, the pruner on (and off with `--no-prune`).
//!
//! - `quota` ([`quota`]): a Gmail sync against the fake enforcing Google's per-user
//!   quota: refusals, and the rate reached against the quota's.
//! - `drive-sync`, `drive-freshness` ([`drive`]), `slack-sync`, `slack-freshness`,
//!   `slack-limited` ([`slack`]), `outlook-sync`, `outlook-freshness` ([`outlook`]):
//!   the other integrations against their fakes, beside each fake's ceiling.
//!
//! Every scenario takes `--smoke` (tiny sizes, seconds: checks that it still runs).

mod disk;
mod drive;
mod freshness;
mod memory;
mod outlook;
mod peer;
mod prune;
mod queue;
mod quota;
mod scheduler;
mod slack;
mod sync;
mod util;

use anyhow::Result;
use clap::{Args, Parser, Subcommand};

use crate::util::Backend;

#[derive(Debug, Parser)]
#[command(
    name = "tributary-bench",
    about = "Benchmarks of Tributary (figures, not tests)"
)]
struct Cli {
    #[command(subcommand)]
    scenario: Scenario,
}

/// The options every scenario shares.
#[derive(Debug, Args)]
struct Common {
    /// PostgreSQL server (a scratch database is created and dropped on it).
    #[arg(
        long,
        env = "TRIBUTARY_BENCH_POSTGRES_URL",
        default_value = util::DEFAULT_POSTGRES_URL
    )]
    postgres_url: String,
    /// Skip PostgreSQL.
    #[arg(long)]
    no_postgres: bool,
    /// Skip SQLite (scenarios that measure both backends).
    #[arg(long)]
    no_sqlite: bool,
    /// A few seconds in all: tiny sizes, to check the benchmark still runs (CI).
    #[arg(long)]
    smoke: bool,
}

impl Common {
    fn backends(&self) -> Vec<Backend> {
        Backend::selected(self.no_sqlite, self.no_postgres)
    }
}

#[derive(Debug, Subcommand)]
enum Scenario {
    /// No-op jobs per second through the queue, on SQLite and PostgreSQL.
    Queue {
        /// Jobs per measurement.
        #[arg(long, default_value_t = 50_000)]
        jobs: usize,
        /// Concurrencies to measure.
        #[arg(long, value_delimiter = ',', default_values_t = [1, 4, 16])]
        concurrency: Vec<usize>,
        /// Jobs claimed per query and committed per transaction.
        #[arg(long, default_value_t = 512)]
        batch: usize,
        #[command(flatten)]
        common: Common,
    },
    /// Gmail messages per second from the fake into SQLite and PostgreSQL, beside the
    /// fake's own ceiling (the same requests without the engine).
    Sync {
        /// Mailbox sizes.
        #[arg(long, value_delimiter = ',', default_values_t = [10_000, 100_000])]
        messages: Vec<usize>,
        /// Worker counts.
        #[arg(long, value_delimiter = ',', default_values_t = [1, 4, 16])]
        workers: Vec<usize>,
        #[command(flatten)]
        common: Common,
    },
    /// `messages.list` calls and time of a `start` that finds nothing new: on a fully
    /// synced mailbox, and while a backfill's downloads are still queued (its listing
    /// complete).
    EarlyStop {
        /// Mailbox sizes.
        #[arg(long, value_delimiter = ',', default_values_t = [10_000, 100_000])]
        messages: Vec<usize>,
        /// Workers.
        #[arg(long, default_value_t = 4)]
        workers: usize,
        /// Starts measured during the backfill, spaced through its downloads.
        #[arg(long, default_value_t = 3)]
        starts: usize,
        #[command(flatten)]
        common: Common,
    },
    /// A Gmail sync against the fake enforcing Google's per-user quota: one engine of
    /// 16 workers per backend, and four on one PostgreSQL database.
    Quota {
        /// Mailbox size.
        #[arg(long, default_value_t = 10_000)]
        messages: usize,
        #[command(flatten)]
        common: Common,
    },
    /// Peak resident memory of a full sync, each size in a fresh child process.
    Memory {
        /// Mailbox sizes.
        #[arg(long, value_delimiter = ',', default_values_t = [10_000, 100_000])]
        messages: Vec<usize>,
        /// Workers.
        #[arg(long, default_value_t = 4)]
        workers: usize,
        #[command(flatten)]
        common: Common,
    },
    /// Disk used during and after a backfill: on SQLite the database and its WAL, on
    /// PostgreSQL the content and jobs tables with their indexes.
    Disk {
        /// Backfill sizes (messages in all, over the accounts).
        #[arg(long, value_delimiter = ',', default_values_t = [10_000, 100_000])]
        messages: Vec<usize>,
        /// Accounts the messages are spread over (each linked to a mailbox of
        /// messages / accounts).
        #[arg(long, value_delimiter = ',', default_values_t = [1, 200])]
        accounts: Vec<usize>,
        /// Workers.
        #[arg(long, default_value_t = 4)]
        workers: usize,
        #[command(flatten)]
        common: Common,
    },
    /// One scheduler tick over many due accounts.
    Scheduler {
        /// Linked accounts.
        #[arg(long, default_value_t = 100_000)]
        accounts: usize,
        #[command(flatten)]
        common: Common,
    },
    /// Delivery-to-stored delay of a message delivered every second during a backfill.
    Freshness {
        /// Backfill size.
        #[arg(long, default_value_t = 100_000)]
        messages: usize,
        /// `start` intervals to measure, seconds.
        #[arg(long, value_delimiter = ',', default_values_t = [60, 5])]
        start_every: Vec<u64>,
        /// Workers.
        #[arg(long, default_value_t = 4)]
        workers: usize,
        #[command(flatten)]
        common: Common,
    },
    /// Google Drive items per second from the fake into SQLite and PostgreSQL, beside
    /// the fake's own ceiling (the same requests without the engine).
    DriveSync {
        /// Drive sizes (files; folders are about 6 % more).
        #[arg(long, value_delimiter = ',', default_values_t = [5_000])]
        files: Vec<usize>,
        /// Folders (default: 6 % of the files, 300 for 5,000).
        #[arg(long)]
        folders: Option<usize>,
        /// Worker counts.
        #[arg(long, value_delimiter = ',', default_values_t = [1, 4, 16])]
        workers: Vec<usize>,
        #[command(flatten)]
        common: Common,
    },
    /// Slack messages per second from the fake into the store (limits off), beside the
    /// fake's ceiling, and the calls the sync needs at Tier 3.
    SlackSync {
        /// Top-level messages (replies are 15 % more).
        #[arg(long, default_value_t = 20_000)]
        messages: usize,
        /// Conversations.
        #[arg(long, default_value_t = 50)]
        channels: usize,
        /// Worker counts.
        #[arg(long, value_delimiter = ',', default_values_t = [1, 4, 16])]
        workers: Vec<usize>,
        #[command(flatten)]
        common: Common,
    },
    /// Post-to-stored delay of Slack messages in a few active conversations among
    /// many, at Tier 3, on a clock that runs faster than Slack's.
    SlackFreshness {
        /// Conversations.
        #[arg(long, default_value_t = 500)]
        channels: usize,
        /// Active conversations (a message every 3 s in one of them).
        #[arg(long, default_value_t = 10)]
        active: usize,
        /// How long messages are posted, in Slack minutes.
        #[arg(long, default_value_t = 40)]
        minutes: u64,
        /// How much faster than Slack's clock everything runs.
        #[arg(long, default_value_t = 10.0)]
        time_scale: f64,
        /// Workers.
        #[arg(long, default_value_t = 4)]
        workers: usize,
        #[command(flatten)]
        common: Common,
    },
    /// How long one large conversation takes under Slack's `limited-2025` profile,
    /// beside the bound the profile sets.
    SlackLimited {
        /// Top-level messages in the conversation.
        #[arg(long, default_value_t = 1_000)]
        messages: usize,
        /// Thread replies.
        #[arg(long, default_value_t = 10)]
        replies: usize,
        /// How much faster than Slack's clock everything runs.
        #[arg(long, default_value_t = 60.0)]
        time_scale: f64,
        #[command(flatten)]
        common: Common,
    },
    /// Outlook messages per second from the fake into SQLite and PostgreSQL (Graph's
    /// rate limit off), beside the fake's own ceiling (the same requests without the
    /// engine).
    OutlookSync {
        /// Mailbox sizes (messages).
        #[arg(long, value_delimiter = ',', default_values_t = [10_000])]
        messages: Vec<usize>,
        /// Worker counts.
        #[arg(long, value_delimiter = ',', default_values_t = [1, 4, 16])]
        workers: Vec<usize>,
        #[command(flatten)]
        common: Common,
    },
    /// Delivery-to-stored delay of Outlook mail delivered every second during a
    /// backfill.
    OutlookFreshness {
        /// Backfill size (messages).
        #[arg(long, default_value_t = 10_000)]
        messages: usize,
        /// `start` intervals to measure, seconds.
        #[arg(long, value_delimiter = ',', default_values_t = [60, 5])]
        start_every: Vec<u64>,
        /// Workers.
        #[arg(long, default_value_t = 4)]
        workers: usize,
        /// Milliseconds the fake takes per request (a remote API's round trip).
        #[arg(long, default_value_t = 20)]
        latency_ms: u64,
        #[command(flatten)]
        common: Common,
    },
    /// Edit-to-stored delay of a Drive file edited every 2 s during a backfill.
    DriveFreshness {
        /// Backfill size (files).
        #[arg(long, default_value_t = 5_000)]
        files: usize,
        /// Changes-check intervals to measure, seconds.
        #[arg(long, value_delimiter = ',', default_values_t = [60, 5])]
        history_every: Vec<u64>,
        /// Workers.
        #[arg(long, default_value_t = 4)]
        workers: usize,
        /// Milliseconds the fake takes per request (a remote API's round trip).
        #[arg(long, default_value_t = 20)]
        latency_ms: u64,
        #[command(flatten)]
        common: Common,
    },
    /// No-op jobs per second through Tributary's queue and through graphile-worker
    /// (defaults, and its batching) on the same PostgreSQL server, same concurrency.
    Peer {
        /// Jobs per measurement (the same for both systems).
        #[arg(long, default_value_t = 50_000)]
        jobs: usize,
        /// Concurrencies to measure (Tributary's workers, graphile-worker's concurrency).
        #[arg(long, value_delimiter = ',', default_values_t = [1, 4, 16])]
        concurrency: Vec<usize>,
        /// Tributary's jobs claimed per query and committed per transaction.
        #[arg(long, default_value_t = 512)]
        batch: usize,
        /// graphile-worker version installed from npm into a temporary folder.
        #[arg(long, default_value = peer::GRAPHILE_WORKER_VERSION)]
        graphile_worker: String,
        #[command(flatten)]
        common: Common,
    },
    /// The jobs table's rows and size over a simulated day of scheduled `start` and
    /// history jobs, the pruner on: a manual clock moves in steps, each a scheduler
    /// tick, the engine until idle, and a pruning round.
    Prune {
        /// Linked synthetic accounts.
        #[arg(long, default_value_t = 1_000)]
        accounts: usize,
        /// Items of the synthetic source the accounts share.
        #[arg(long, default_value_t = 5)]
        items: usize,
        /// Simulated hours.
        #[arg(long, default_value_t = 24)]
        hours: u64,
        /// Simulated minutes completed jobs are kept.
        #[arg(long, default_value_t = 120)]
        keep_minutes: u64,
        /// Seconds the manual clock moves per step.
        #[arg(long, default_value_t = 60)]
        step_seconds: u64,
        /// Simulated minutes between two rows of the table.
        #[arg(long, default_value_t = 60)]
        report_minutes: u64,
        /// Workers.
        #[arg(long, default_value_t = 4)]
        workers: usize,
        /// Jobs per pruning statement (the pruner's default unless given).
        #[arg(long, default_value_t = tributary_engine::PrunerConfig::default().batch)]
        prune_batch: u64,
        /// Run with the pruner off instead (the contrast).
        #[arg(long)]
        no_prune: bool,
        /// Run with the pruner on, then off.
        #[arg(long, conflicts_with = "no_prune")]
        both: bool,
        #[command(flatten)]
        common: Common,
    },
    /// Internal: one sync in this process, for `memory` (prints one JSON line).
    #[command(hide = true)]
    MemoryChild {
        #[arg(long, value_parser = ["sqlite", "postgres"])]
        backend: String,
        #[arg(long)]
        workers: usize,
        #[arg(long)]
        postgres_url: String,
        #[arg(long)]
        label: String,
    },
}

#[tokio::main]
async fn main() -> Result<()> {
    tributary_sdk::http::install_crypto_provider();
    match Cli::parse().scenario {
        Scenario::Queue {
            jobs,
            concurrency,
            batch,
            common,
        } => {
            let (jobs, concurrency) = if common.smoke {
                (2_000, vec![4])
            } else {
                (jobs, concurrency)
            };
            queue::queue(
                jobs,
                &concurrency,
                batch,
                (!common.no_postgres).then_some(common.postgres_url.as_str()),
                common.smoke,
            )
            .await
        }
        Scenario::Sync {
            messages,
            workers,
            common,
        } => {
            let (messages, workers) = if common.smoke {
                (vec![300], vec![4])
            } else {
                (messages, workers)
            };
            sync::sync(
                &messages,
                &workers,
                &common.backends(),
                &common.postgres_url,
            )
            .await
        }
        Scenario::Quota { messages, common } => {
            let messages = if common.smoke { 300 } else { messages };
            quota::run(messages, &common.backends(), &common.postgres_url).await
        }
        Scenario::EarlyStop {
            messages,
            workers,
            starts,
            common,
        } => {
            let messages = if common.smoke { vec![500] } else { messages };
            sync::early_stop(
                &messages,
                workers,
                starts.max(1),
                &common.backends(),
                &common.postgres_url,
            )
            .await
        }
        Scenario::Memory {
            messages,
            workers,
            common,
        } => {
            let messages = if common.smoke { vec![300] } else { messages };
            memory::memory(&messages, workers, &common.backends(), &common.postgres_url).await
        }
        Scenario::Disk {
            messages,
            accounts,
            workers,
            common,
        } => {
            let (messages, accounts) = if common.smoke {
                (vec![300], vec![1, 3])
            } else {
                (messages, accounts)
            };
            disk::disk(
                &messages,
                &accounts,
                workers,
                &common.backends(),
                &common.postgres_url,
            )
            .await
        }
        Scenario::Scheduler { accounts, common } => {
            let accounts = if common.smoke { 1_000 } else { accounts };
            scheduler::scheduler(accounts, &common.backends(), &common.postgres_url).await
        }
        Scenario::Freshness {
            messages,
            start_every,
            workers,
            common,
        } => {
            let (messages, start_every) = if common.smoke {
                (1_000, vec![1])
            } else {
                (messages, start_every)
            };
            freshness::freshness(
                messages,
                &start_every,
                workers,
                &common.backends(),
                &common.postgres_url,
            )
            .await
        }
        Scenario::DriveSync {
            files,
            folders,
            workers,
            common,
        } => {
            let (files, workers) = if common.smoke {
                (vec![200], vec![4])
            } else {
                (files, workers)
            };
            drive::drive_sync(
                &files,
                folders,
                &workers,
                &common.backends(),
                &common.postgres_url,
            )
            .await
        }
        Scenario::SlackSync {
            messages,
            channels,
            workers,
            common,
        } => {
            let (messages, channels, workers) = if common.smoke {
                (400, 4, vec![4])
            } else {
                (messages, channels, workers)
            };
            slack::slack_sync(
                messages,
                channels,
                &workers,
                &common.backends(),
                &common.postgres_url,
            )
            .await
        }
        Scenario::SlackFreshness {
            channels,
            active,
            minutes,
            time_scale,
            workers,
            common,
        } => {
            // The smoke run's clock is faster still, so that a first post in a quiet
            // conversation (an hour's idle poll) is stored within seconds.
            let (channels, active, minutes, time_scale) = if common.smoke {
                (20, 2, 3, 100.0)
            } else {
                (channels, active, minutes, time_scale)
            };
            slack::slack_freshness(
                channels,
                active,
                minutes,
                time_scale,
                workers,
                &common.backends(),
                &common.postgres_url,
            )
            .await
        }
        Scenario::SlackLimited {
            messages,
            replies,
            time_scale,
            common,
        } => {
            let (messages, replies) = if common.smoke {
                (60, 2)
            } else {
                (messages, replies)
            };
            slack::slack_limited(
                messages,
                replies,
                time_scale,
                &common.backends(),
                &common.postgres_url,
            )
            .await
        }
        Scenario::OutlookSync {
            messages,
            workers,
            common,
        } => {
            let (messages, workers) = if common.smoke {
                (vec![300], vec![4])
            } else {
                (messages, workers)
            };
            outlook::outlook_sync(
                &messages,
                &workers,
                &common.backends(),
                &common.postgres_url,
            )
            .await
        }
        Scenario::OutlookFreshness {
            messages,
            start_every,
            workers,
            latency_ms,
            common,
        } => {
            let (messages, start_every) = if common.smoke {
                (300, vec![1])
            } else {
                (messages, start_every)
            };
            outlook::outlook_freshness(
                messages,
                &start_every,
                workers,
                std::time::Duration::from_millis(latency_ms),
                &common.backends(),
                &common.postgres_url,
            )
            .await
        }
        Scenario::DriveFreshness {
            files,
            history_every,
            workers,
            latency_ms,
            common,
        } => {
            let (files, history_every) = if common.smoke {
                (300, vec![1])
            } else {
                (files, history_every)
            };
            drive::drive_freshness(
                files,
                &history_every,
                workers,
                std::time::Duration::from_millis(latency_ms),
                &common.backends(),
                &common.postgres_url,
            )
            .await
        }
        Scenario::Peer {
            jobs,
            concurrency,
            batch,
            graphile_worker,
            common,
        } => {
            if common.no_postgres {
                anyhow::bail!("peer runs on PostgreSQL only (drop --no-postgres)");
            }
            let (jobs, concurrency) = if common.smoke {
                (500, vec![4])
            } else {
                (jobs, concurrency)
            };
            peer::peer(
                jobs,
                &concurrency,
                batch,
                &common.postgres_url,
                &graphile_worker,
            )
            .await
        }
        Scenario::Prune {
            accounts,
            items,
            hours,
            keep_minutes,
            step_seconds,
            report_minutes,
            workers,
            prune_batch,
            no_prune,
            both,
            common,
        } => {
            let run = if common.smoke {
                prune::PruneRun {
                    accounts: 20,
                    items: 3,
                    hours: 3,
                    keep_minutes: 60,
                    step_seconds: 120,
                    report_minutes: 30,
                    workers,
                    batch: prune_batch,
                }
            } else {
                prune::PruneRun {
                    accounts,
                    items,
                    hours,
                    keep_minutes,
                    step_seconds,
                    report_minutes,
                    workers,
                    batch: prune_batch,
                }
            };
            let modes: &[bool] = match (both, no_prune) {
                (true, _) => &[true, false],
                (false, true) => &[false],
                (false, false) => &[true],
            };
            prune::prune(run, modes, &common.backends(), &common.postgres_url).await
        }
        Scenario::MemoryChild {
            backend,
            workers,
            postgres_url,
            label,
        } => {
            let backend = if backend == "postgres" {
                Backend::Postgres
            } else {
                Backend::Sqlite
            };
            memory::child(backend, workers, &postgres_url, &label).await
        }
    }
}
