//! `tributary jobs [retry]`: the queue, and re-running dead or failed jobs.

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use tributary_store::{JobFilter, JobState, StoreError};

use crate::app::{GlobalArgs, not_found_or};
use crate::output::{Table, millis, print_json, short};

/// `tributary jobs`
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct JobsArgs {
    /// Re-run a job instead of listing.
    #[command(subcommand)]
    pub command: Option<JobsCommand>,
    /// Only jobs in this state: available, running, completed, failed or dead.
    #[arg(long, value_parser = parse_state)]
    pub state: Option<JobState>,
    /// Only this linked account's jobs.
    #[arg(long)]
    pub user_integration: Option<i64>,
    /// At most this many jobs, newest first.
    #[arg(long, default_value_t = 100)]
    pub limit: i64,
}

/// `tributary jobs ...`
#[derive(Debug, Subcommand)]
pub enum JobsCommand {
    /// Makes a dead or failed job available again, with its attempts reset.
    Retry {
        /// The job's id (see `tributary jobs --state dead`).
        id: i64,
    },
}

fn parse_state(text: &str) -> Result<JobState, String> {
    JobState::parse(text).ok_or_else(|| {
        format!(
            "unknown job state `{text}`; known states: available, running, completed, failed, dead"
        )
    })
}

/// Lists jobs or retries one.
pub async fn run(global: &GlobalArgs, args: JobsArgs) -> Result<()> {
    let store = crate::app::open_without_credentials(global).await?;
    if let Some(JobsCommand::Retry { id }) = args.command {
        let job = store
            .get_job(id)
            .await
            .map_err(|e| not_found_or(e, || format!("failed to load job {id}")))?;
        if !matches!(job.state, JobState::Dead | JobState::Failed) {
            bail!(
                "job {id} is {}; only dead or failed jobs can be retried",
                job.state.as_str()
            );
        }
        match store
            .retry_job(id, chrono::Utc::now().timestamp_millis())
            .await
        {
            Ok(()) => {}
            Err(StoreError::Conflict(message)) => bail!("cannot retry job {id}: {message}"),
            Err(e) => return Err(not_found_or(e, || format!("failed to retry job {id}"))),
        }
        if global.json {
            let job = store
                .get_job(id)
                .await
                .context("failed to reload the job")?;
            return print_json(&job);
        }
        println!("job {id} ({}) is available again", job.task_type);
        return Ok(());
    }
    if args.limit < 1 {
        bail!("--limit must be at least 1");
    }
    if let Some(id) = args.user_integration {
        super::links::ensure_exists(store.as_ref(), id).await?;
    }
    let jobs = store
        .list_jobs(&JobFilter {
            state: args.state,
            user_integration_id: args.user_integration,
            limit: Some(args.limit),
        })
        .await
        .context("failed to list jobs")?;
    if global.json {
        return print_json(&jobs);
    }
    let mut table = Table::new([
        "id", "account", "task", "item", "priority", "state", "attempts", "run at", "error",
    ]);
    for j in &jobs {
        let error = match (&j.error_class, &j.last_error) {
            (Some(class), Some(message)) => short(&format!("{class}: {message}"), 80),
            (None, Some(message)) => short(message, 80),
            _ => String::new(),
        };
        table.row([
            j.id.to_string(),
            j.user_integration_id.to_string(),
            j.task_type.clone(),
            j.item_id
                .as_deref()
                .map(|i| short(i, 24))
                .unwrap_or_default(),
            j.priority.to_string(),
            j.state.as_str().to_owned(),
            format!("{}/{}", j.attempts, j.max_attempts),
            millis(j.run_at),
            error,
        ]);
    }
    table.print_or("no jobs");
    Ok(())
}
