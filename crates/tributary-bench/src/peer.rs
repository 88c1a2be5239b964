//! `peer`: the same no-op job workload through Tributary's queue and through
//! [graphile-worker](https://worker.graphile.org), side by side on the same PostgreSQL
//! server in one run, at the same concurrency.
//!
//! Method:
//!
//! - graphile-worker is installed from the npm registry into a temporary folder
//!   (`std::env::temp_dir()`, removed at the end; nothing is written in the repository):
//!   a `package.json`, `npm install graphile-worker@<--graphile-worker>` (pinned,
//!   [`GRAPHILE_WORKER_VERSION`] by default) and a small runner (`peer_runner.js`,
//!   embedded in this binary). Without `node`/`npm`, or when the install fails (no
//!   registry), its rows say `n/a (reason)` and Tributary's rows are still measured.
//! - Each measurement gets a fresh scratch database on the server.
//!   Tributary: [`crate::queue::run_noop`], exactly what `queue` measures: N no-op jobs
//!   over 16 accounts, one engine with `workers` = `per_account_concurrency` =
//!   concurrency and claim/commit batches of `--batch`, timed from `Engine::run` until
//!   it is idle with every job completed.
//!   graphile-worker: the runner installs its schema (`runMigrations`), enqueues N jobs
//!   of a no-op task in bulk (`graphile_worker.add_jobs`, not timed), then times one
//!   `run()` with `concurrency` = the same concurrency, `maxPoolSize` = max(10,
//!   concurrency + 2) (its docs' advice), `pollInterval` 5 ms (Tributary's idle poll),
//!   `noHandleSignals`, from its start until the last job is gone from
//!   `graphile_worker._private_jobs` (a completed job is deleted). Two modes: its
//!   defaults (no local queue, unbatched completions) and its documented batching
//!   (`localQueue: { size: 500 }`, `completeJobBatchDelay: 0`). The runner runs with
//!   `NO_LOG_SUCCESS=1` and a logger that keeps only warnings and errors, so neither
//!   side logs per job.
//! - Per concurrency the three measurements run back to back, in alternating order
//!   (Tributary first at the first concurrency, last at the next, ...) so that drift on
//!   a shared machine hits both systems alike. The last column is Tributary's jobs/s
//!   divided by that row's: above 1 means Tributary is ahead.
//!
//! Nothing is asserted: this prints a table.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use tributary_sdk::serde_json::{self, Value};

use crate::queue::run_noop;
use crate::util::ScratchDb;

/// The graphile-worker version installed by default: the newest release whose
/// `engines` accept this machine's Node.js 20 (0.18.0 asks for Node >= 22.18).
pub const GRAPHILE_WORKER_VERSION: &str = "0.17.3";

/// The runner the benchmark writes next to graphile-worker's install.
const RUNNER_JS: &str = include_str!("peer_runner.js");

/// How long `npm install` may take before its rows say `n/a`.
const NPM_TIMEOUT: Duration = Duration::from_secs(300);

/// One system's measurement: a time, or why there is none.
enum Outcome {
    Measured { jobs: usize, seconds: f64 },
    NotAvailable(String),
}

impl Outcome {
    fn rate(&self) -> Option<f64> {
        match self {
            Outcome::Measured { jobs, seconds } => Some(*jobs as f64 / seconds.max(1e-9)),
            Outcome::NotAvailable(_) => None,
        }
    }
}

/// The three rows measured at one concurrency.
#[derive(Clone, Copy, PartialEq, Eq)]
enum System {
    Tributary,
    GraphileDefaults,
    GraphileBatching,
}

impl System {
    fn name(self) -> &'static str {
        match self {
            System::Tributary => "Tributary",
            System::GraphileDefaults | System::GraphileBatching => "graphile-worker",
        }
    }

    fn mode(self, batch: usize) -> String {
        match self {
            System::Tributary => format!("claim/commit batch {batch}"),
            System::GraphileDefaults => "defaults".into(),
            System::GraphileBatching => "localQueue.size 500, completeJobBatchDelay 0".into(),
        }
    }

    fn runner_mode(self) -> &'static str {
        match self {
            System::GraphileBatching => "batching",
            _ => "defaults",
        }
    }
}

/// Runs the `peer` scenario on the PostgreSQL server `server`.
pub async fn peer(
    jobs: usize,
    concurrency: &[usize],
    batch: usize,
    server: &str,
    graphile_version: &str,
) -> Result<()> {
    println!(
        "peer benchmark: {jobs} no-op jobs per run through Tributary's queue and through \
         graphile-worker on the same PostgreSQL server"
    );
    let graphile = Graphile::install(graphile_version).await;
    match &graphile {
        Ok(g) => println!(
            "graphile-worker {} (npm, Node.js {}) in {}; the folder is removed at the end",
            g.version,
            g.node_version,
            g.dir.path.display()
        ),
        Err(reason) => println!("graphile-worker: n/a ({reason})"),
    }
    println!();
    println!("| system | mode | concurrency | jobs | seconds | jobs/s | Tributary / this |");
    println!("|---|---|---:|---:|---:|---:|---:|");

    let mut runner_failures = Vec::new();
    for (i, &c) in concurrency.iter().enumerate() {
        let mut order = vec![
            System::Tributary,
            System::GraphileDefaults,
            System::GraphileBatching,
        ];
        if i % 2 == 1 {
            order.reverse();
        }
        let mut outcomes = Vec::new();
        for system in order {
            let outcome = match system {
                System::Tributary => tributary(server, jobs, c, batch).await?,
                _ => match &graphile {
                    Err(reason) => Outcome::NotAvailable(reason.clone()),
                    Ok(g) => match g.measure(server, jobs, c, system.runner_mode()).await {
                        Ok(outcome) => outcome,
                        Err(e) => {
                            let reason = format!("{e:#}");
                            runner_failures.push(reason.clone());
                            Outcome::NotAvailable(reason)
                        }
                    },
                },
            };
            outcomes.push((system, outcome));
        }
        outcomes.sort_by_key(|(system, _)| *system as u8);
        let ours = outcomes
            .iter()
            .find(|(s, _)| *s == System::Tributary)
            .and_then(|(_, o)| o.rate());
        for (system, outcome) in &outcomes {
            print_row(*system, batch, c, jobs, outcome, ours);
        }
    }
    drop(graphile);
    if !runner_failures.is_empty() {
        bail!(
            "graphile-worker was installed but its runner failed: {}",
            runner_failures.join("; ")
        );
    }
    Ok(())
}

fn print_row(
    system: System,
    batch: usize,
    c: usize,
    jobs: usize,
    outcome: &Outcome,
    ours: Option<f64>,
) {
    let (name, mode) = (system.name(), system.mode(batch));
    match outcome {
        Outcome::Measured { jobs, seconds } => {
            let rate = outcome.rate().unwrap_or_default();
            let ratio = ours.map_or_else(|| "n/a".to_owned(), |r| format!("{:.2}", r / rate));
            println!("| {name} | {mode} | {c} | {jobs} | {seconds:.2} | {rate:.0} | {ratio} |");
        }
        Outcome::NotAvailable(reason) => {
            let reason = reason.replace('|', "/").replace('\n', " ");
            println!("| {name} | {mode} | {c} | {jobs} | n/a | n/a ({reason}) | n/a |");
        }
    }
}

/// Tributary's side: `queue`'s no-op drain on a fresh scratch database.
async fn tributary(server: &str, jobs: usize, c: usize, batch: usize) -> Result<Outcome> {
    let db = ScratchDb::create(server, &format!("peer_tributary_{c}")).await?;
    let rate = run_noop(&db.url, jobs, c, batch).await;
    db.drop_now().await?;
    let rate = rate?;
    Ok(Outcome::Measured {
        jobs,
        seconds: jobs as f64 / rate,
    })
}

/// A folder removed when dropped.
struct TempFolder {
    path: PathBuf,
}

impl Drop for TempFolder {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// graphile-worker installed in a temporary folder, with the runner beside it.
struct Graphile {
    dir: TempFolder,
    version: String,
    node_version: String,
}

impl Graphile {
    /// Installs `graphile-worker@version`; the error is the reason for an `n/a` row.
    async fn install(version: &str) -> std::result::Result<Graphile, String> {
        let node_version = command_output("node", &["--version"], None, Duration::from_secs(30))
            .await
            .map_err(|e| format!("node not usable: {e:#}"))?;
        let dir = TempFolder {
            path: std::env::temp_dir().join(format!("tributary-bench-peer-{}", std::process::id())),
        };
        let _ = std::fs::remove_dir_all(&dir.path);
        write_files(&dir.path)
            .map_err(|e| format!("cannot write {}: {e:#}", dir.path.display()))?;
        let spec = format!("graphile-worker@{version}");
        command_output(
            "npm",
            &[
                "install",
                "--no-audit",
                "--no-fund",
                "--no-update-notifier",
                "--loglevel=error",
                "--fetch-retries=1",
                "--fetch-timeout=60000",
                &spec,
            ],
            Some(&dir.path),
            NPM_TIMEOUT,
        )
        .await
        .map_err(|e| format!("npm install {spec} failed: {e:#}"))?;
        let installed = std::fs::read_to_string(
            dir.path
                .join("node_modules")
                .join("graphile-worker")
                .join("package.json"),
        )
        .ok()
        .and_then(|text| serde_json::from_str::<Value>(&text).ok())
        .and_then(|v| v["version"].as_str().map(str::to_owned))
        .ok_or_else(|| format!("npm install {spec} left no graphile-worker package"))?;
        Ok(Graphile {
            dir,
            version: installed,
            node_version: node_version.trim().to_owned(),
        })
    }

    /// One graphile-worker measurement on a fresh scratch database.
    async fn measure(&self, server: &str, jobs: usize, c: usize, mode: &str) -> Result<Outcome> {
        let db = ScratchDb::create(server, &format!("peer_graphile_{mode}_{c}")).await?;
        // Generous: graphile-worker's defaults did ~200 jobs/s at concurrency 1 here.
        let timeout = Duration::from_secs(120) + Duration::from_millis(20) * jobs as u32;
        let out = command_output(
            "node",
            &[
                "runner.js",
                &db.url,
                &jobs.to_string(),
                &c.to_string(),
                mode,
            ],
            Some(&self.dir.path),
            timeout,
        )
        .await;
        db.drop_now().await?;
        let out = out.context("graphile-worker runner")?;
        let line = out
            .lines()
            .rev()
            .find(|l| l.trim_start().starts_with('{'))
            .with_context(|| format!("no JSON line in the runner's output: {out}"))?;
        let v: Value = serde_json::from_str(line).context("runner output")?;
        let done = v["jobs"].as_u64().context("runner output: jobs")?;
        let seconds = v["seconds"].as_f64().context("runner output: seconds")?;
        if done != jobs as u64 {
            bail!("runner drained {done} jobs, expected {jobs}");
        }
        Ok(Outcome::Measured { jobs, seconds })
    }
}

fn write_files(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir)?;
    std::fs::write(
        dir.join("package.json"),
        "{\n  \"name\": \"tributary-bench-peer\",\n  \"private\": true,\n  \
         \"description\": \"Temporary: written and removed by tributary-bench peer\"\n}\n",
    )?;
    std::fs::write(dir.join("runner.js"), RUNNER_JS)?;
    Ok(())
}

/// Runs `program args` (in `dir`), returns its stdout; an error carries the gist of its
/// stderr. Killed after `timeout`.
async fn command_output(
    program: &str,
    args: &[&str],
    dir: Option<&Path>,
    timeout: Duration,
) -> Result<String> {
    let mut cmd = tokio::process::Command::new(program);
    cmd.args(args)
        .env("NO_LOG_SUCCESS", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    if let Some(dir) = dir {
        cmd.current_dir(dir);
    }
    let out = tokio::time::timeout(timeout, cmd.output())
        .await
        .with_context(|| format!("{program} timed out after {} s", timeout.as_secs()))?
        .with_context(|| format!("cannot run {program}"))?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        bail!("{program} exited with {}: {}", out.status, gist(&stderr));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The first two telling lines of a failed command's stderr (npm's `code` line, then
/// its message; or an exception's message and where it was thrown), at most 240
/// characters.
fn gist(stderr: &str) -> String {
    const NOISE: [&str; 6] = [
        "complete log",
        "syscall",
        "errno",
        "proxy",
        "In most cases",
        "network",
    ];
    let lines: Vec<&str> = stderr
        .lines()
        .map(|l| l.trim_start_matches("npm error").trim())
        .filter(|l| !l.is_empty() && !NOISE.iter().any(|n| l.contains(n)))
        .take(2)
        .collect();
    let text = lines.join(" / ");
    match text.char_indices().nth(240) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None if text.is_empty() => "no error output".into(),
        None => text,
    }
}
