"use strict";
// The graphile-worker side of `tributary-bench peer`. The benchmark writes this file
// into a temporary folder next to its own `npm install graphile-worker@<pinned>` and
// runs it once per measurement:
//
//   node runner.js <database url> <jobs> <concurrency> <defaults|batching>
//
// It installs graphile-worker's schema, enqueues <jobs> no-op jobs in bulk
// (graphile_worker.add_jobs, 5,000 specs per call; not timed), then times one
// `run()` with the given concurrency from its start until the last job is gone from
// graphile_worker._private_jobs (completions are fire-and-forget in the worker, and
// batched in "batching" mode, so the last `job:success` event alone is too early).
// It prints one JSON line: {"jobs", "seconds", "enqueue_seconds", "startup_seconds"}.
// Run with NO_LOG_SUCCESS=1 (as graphile-worker's own perfTest does): otherwise the
// default logger writes one "Completed task" line per job.

const { run, runMigrations, Logger } = require("graphile-worker");
const { Client } = require("pg");
const { EventEmitter } = require("events");

const [url, jobsArg, concurrencyArg, mode] = process.argv.slice(2);
const jobs = Number(jobsArg);
const concurrency = Number(concurrencyArg);
if (!url || !(jobs > 0) || !(concurrency > 0) || !["defaults", "batching"].includes(mode)) {
  console.error("usage: node runner.js <database url> <jobs> <concurrency> <defaults|batching>");
  process.exit(2);
}

// Warnings and errors to stderr; nothing per job.
const logger = new Logger(() => (level, message) => {
  if (level === "error" || level === "warning") {
    process.stderr.write(`graphile-worker ${level}: ${message}\n`);
  }
});
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// graphile-worker's documented batching options (docs/performance#batching); the
// "defaults" mode leaves both at their defaults (-1: off).
const preset =
  mode === "batching"
    ? { worker: { localQueue: { size: 500 }, completeJobBatchDelay: 0 } }
    : {};

async function main() {
  await runMigrations({ connectionString: url, logger });
  const client = new Client({ connectionString: url });
  await client.connect();

  const enqueueStarted = performance.now();
  for (let done = 0; done < jobs; done += 5000) {
    const n = Math.min(5000, jobs - done);
    await client.query(
      `select count(*) from graphile_worker.add_jobs(array(
         select ('noop', '{}'::json, null, null, null, null, null, null)::graphile_worker.job_spec
         from generate_series(1, $1::int)))`,
      [n],
    );
  }
  const enqueueSeconds = (performance.now() - enqueueStarted) / 1000;

  const events = new EventEmitter();
  let succeeded = 0;
  let settle;
  const allRun = new Promise((resolve, reject) => {
    settle = { resolve, reject };
  });
  events.on("job:success", () => {
    succeeded += 1;
    if (succeeded === jobs) settle.resolve();
  });
  events.on("job:error", ({ error }) => settle.reject(error));

  const started = performance.now();
  const runner = await run({
    connectionString: url,
    concurrency,
    // The docs' advice: 10 or concurrentJobs + 2, whichever is larger.
    maxPoolSize: Math.max(10, concurrency + 2),
    pollInterval: 5,
    noHandleSignals: true,
    logger,
    events,
    taskList: { noop: async () => {} },
    preset,
  });
  const startupSeconds = (performance.now() - started) / 1000;
  await allRun;
  for (;;) {
    const { rows } = await client.query(
      "select exists (select 1 from graphile_worker._private_jobs) as pending",
    );
    if (!rows[0].pending) break;
    await sleep(1);
  }
  const seconds = (performance.now() - started) / 1000;

  await runner.stop();
  await client.end();
  console.log(
    JSON.stringify({
      jobs: succeeded,
      seconds,
      enqueue_seconds: enqueueSeconds,
      startup_seconds: startupSeconds,
    }),
  );
}

main().catch((e) => {
  console.error(e && e.stack ? e.stack : String(e));
  process.exit(1);
});
