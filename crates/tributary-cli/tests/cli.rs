//! Tests that drive the real `tributary` binary through its commands.
//!
//! Each test has its own temporary SQLite database and a freshly generated
//! `TRIBUTARY_SECRET_KEY`; Gmail is its fake (`tributary-gmail-fake`), started in the
//! test process (or by `tributary fake gmail` itself). Assertions are on exit codes, output and
//! database contents, never on durations.

use std::collections::BTreeSet;
use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use assert_cmd::Command;
use serde_json::{Value, json};
use tributary_gmail_fake::{FakeGmail, GmailConfig};
use tributary_sdk::Task;
use tributary_store::{Cipher, KeySource, NewJob, Store};

const BIN: &str = env!("CARGO_BIN_EXE_tributary");
/// Secrets of the fake's test credentials: no command may print them.
const SECRETS: [&str; 2] = ["fake-client-secret", "1//fake-refresh-token"];

/// A temporary directory with a database and a key, removed on drop.
struct Env {
    dir: PathBuf,
    url: String,
    key: String,
    runtime: tokio::runtime::Runtime,
}

impl Drop for Env {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Env {
    fn new() -> Env {
        let dir = std::env::temp_dir().join(format!(
            "tributary-cli-{}-{:08x}",
            std::process::id(),
            rand::random::<u32>()
        ));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let url = format!("sqlite://{}", dir.join("test.db").display());
        Env {
            dir,
            url,
            key: tributary_store::crypto::generate_base64_key(),
            runtime: tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("runtime"),
        }
    }

    /// The binary, with this environment's database and key, run in its directory.
    fn cmd(&self) -> Command {
        let mut cmd = Command::new(BIN);
        cmd.current_dir(&self.dir)
            .env("DATABASE_URL", &self.url)
            .env("TRIBUTARY_SECRET_KEY", &self.key)
            .env_remove("TRIBUTARY_KEY_FILE")
            .env_remove("TRIBUTARY_LOG")
            .env_remove("TRIBUTARY_LOG_FORMAT")
            .env_remove("TRIBUTARY_TEST_INTEGRATIONS")
            .env_remove("NO_COLOR");
        cmd
    }

    /// Runs a command that must succeed and prints no secret; returns its stdout.
    fn ok(&self, args: &[&str]) -> String {
        let out = self.cmd().args(args).output().expect("run tributary");
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(
            out.status.success(),
            "tributary {args:?} failed:\nstdout: {stdout}\nstderr: {stderr}"
        );
        no_secrets(&stdout);
        no_secrets(&stderr);
        stdout
    }

    /// Runs a command with `--json`; its stdout must parse.
    fn json(&self, args: &[&str]) -> Value {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        let stdout = self.ok(&all);
        serde_json::from_str(&stdout)
            .unwrap_or_else(|e| panic!("tributary {all:?} printed invalid JSON ({e}): {stdout}"))
    }

    /// Runs a command that must fail with exactly one line on stderr, `error: ...`
    /// containing `needle`.
    fn fails(&self, args: &[&str], needle: &str) -> String {
        self.fails_cmd(self.cmd().args(args), needle)
    }

    fn fails_cmd(&self, cmd: &mut Command, needle: &str) -> String {
        let out = cmd.output().expect("run tributary");
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(
            out.status.code(),
            Some(1),
            "expected failure; stderr: {stderr}"
        );
        let lines: Vec<&str> = stderr.lines().collect();
        assert_eq!(lines.len(), 1, "expected one line on stderr, got: {stderr}");
        assert!(
            lines[0].starts_with("error: ") && lines[0].contains(needle),
            "expected an error containing {needle:?}, got: {stderr}"
        );
        no_secrets(&stderr);
        no_secrets(&String::from_utf8_lossy(&out.stdout));
        stderr
    }

    /// Runs a command whose arguments clap rejects: exit status 2 and the reason.
    fn usage_error(&self, args: &[&str], needle: &str) {
        let out = self.cmd().args(args).output().expect("run tributary");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        assert!(stderr.contains(needle), "expected {needle:?} in: {stderr}");
    }

    fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.dir.join(name);
        std::fs::write(&path, text).expect("write file");
        path
    }

    /// A fake Gmail with `messages` generated messages, served on this runtime.
    fn fake(&self, messages: usize) -> FakeGmail {
        self.runtime
            .block_on(FakeGmail::start(GmailConfig {
                messages,
                ..GmailConfig::default()
            }))
            .expect("start the fake")
    }

    /// The store, opened as the binary opens it.
    fn store(&self) -> Arc<dyn Store> {
        let cipher = Cipher::load(&KeySource::Base64(self.key.clone())).expect("cipher");
        self.runtime.block_on(async {
            let store = tributary_store::connect(&self.url, cipher)
                .await
                .expect("connect");
            store.migrate().await.expect("migrate");
            store
        })
    }

    /// Enqueues a Gmail task for an account, due now.
    fn enqueue(&self, user_integration_id: i64, task: Task) {
        let now = chrono::Utc::now().timestamp_millis();
        let store = self.store();
        self.runtime
            .block_on(store.enqueue(
                &[NewJob {
                    user_integration_id,
                    task,
                    priority: 1,
                    dedupe_key: None,
                    max_attempts: 3,
                    run_at: now,
                }],
                now,
            ))
            .expect("enqueue");
    }

    /// A user, a credentials file for `fake` and a linked account; returns its id.
    fn link_fake(&self, fake: &FakeGmail) -> i64 {
        let user = self.ok(&["users", "add", &format!("user-{}", rand::random::<u32>())]);
        let credentials = self.write(
            "creds.json",
            &fake.standalone_info()["credentials"].to_string(),
        );
        let out = self.ok(&[
            "link",
            "gmail",
            "--user",
            user.trim(),
            "--credentials",
            credentials.to_str().expect("utf-8 path"),
            "--setting",
            &format!("baseUrl={}", fake.base_url()),
            "--setting",
            &format!("tokenUrl={}", fake.token_url()),
        ]);
        out.trim().parse().expect("link prints the id")
    }

    fn link_view(&self, id: i64) -> Value {
        let links = self.json(&["links"]);
        links
            .as_array()
            .expect("links is an array")
            .iter()
            .find(|l| l["id"] == id)
            .cloned()
            .expect("the account is listed")
    }
}

fn no_secrets(text: &str) {
    for secret in SECRETS {
        assert!(!text.contains(secret), "a secret was printed: {text}");
    }
}

/// The messages a Gmail client syncs: everything but spam and trash.
fn syncable(fake: &FakeGmail) -> BTreeSet<String> {
    fake.snapshot()
        .into_iter()
        .filter(|(_, t)| !t.label_ids.iter().any(|l| l == "SPAM" || l == "TRASH"))
        .map(|(id, _)| id)
        .collect()
}

fn external_ids(items: &Value) -> BTreeSet<String> {
    items
        .as_array()
        .expect("an array of items")
        .iter()
        .map(|i| i["external_id"].as_str().expect("external_id").to_owned())
        .collect()
}

#[test]
fn link_validates_credentials_before_storing() {
    let env = Env::new();
    let fake = env.fake(5);
    let id = env.link_fake(&fake);
    assert_eq!(env.link_view(id)["status"], "active");

    let settings = [
        "--setting".to_owned(),
        format!("baseUrl={}", fake.base_url()),
        "--setting".to_owned(),
        format!("tokenUrl={}", fake.token_url()),
    ];
    let link = |file: &Path| {
        let mut cmd = env.cmd();
        cmd.args(["link", "gmail", "--user", "1", "--credentials"])
            .arg(file)
            .args(&settings);
        cmd
    };
    // A refresh token the service refuses: nothing is stored.
    let mut bad = fake.standalone_info()["credentials"].clone();
    bad["refreshToken"] = json!("1//revoked-or-unknown");
    let bad = env.write("bad.json", &bad.to_string());
    let stderr = env.fails_cmd(&mut link(&bad), "credentials for `gmail` were not accepted");
    assert!(!stderr.contains("1//revoked-or-unknown"), "{stderr}");
    assert_eq!(env.json(&["links"]).as_array().map(Vec::len), Some(1));

    // A wrong client secret, read from stdin.
    let mut wrong = fake.standalone_info()["credentials"].clone();
    wrong["clientSecret"] = json!("not-the-secret");
    env.fails_cmd(
        link(Path::new("-")).write_stdin(wrong.to_string()),
        "were not accepted",
    );
    // Good credentials from stdin work.
    let good = fake.standalone_info()["credentials"].to_string();
    let out = link(Path::new("-"))
        .write_stdin(good)
        .output()
        .expect("run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(env.json(&["links"]).as_array().map(Vec::len), Some(2));
}

#[test]
fn credential_errors_name_the_problem() {
    let env = Env::new();
    env.ok(&["users", "add", "alice"]);
    fn link(file: &str) -> Vec<&str> {
        vec!["link", "gmail", "--user", "1", "--credentials", file]
    }
    env.fails(
        &link("missing.json"),
        "failed to read credentials file missing.json",
    );
    env.write("broken.json", "{\"clientId\": ");
    env.fails(
        &link("broken.json"),
        "credentials file broken.json is not valid JSON",
    );
    env.write("array.json", "[1, 2]");
    env.fails(&link("array.json"), "must hold a JSON object");
    env.write(
        "partial.json",
        r#"{"clientId": "id", "clientSecret": "fake-client-secret"}"#,
    );
    env.fails(
        &link("partial.json"),
        "lacks the required field `refreshToken`",
    );
    env.write(
        "typo.json",
        r#"{"clientId": "id", "clientSecret": "fake-client-secret", "refresh_token": "x"}"#,
    );
    env.fails(&link("typo.json"), "unknown field `refresh_token`");
    env.write(
        "number.json",
        r#"{"clientId": 7, "clientSecret": "fake-client-secret", "refreshToken": "x"}"#,
    );
    env.fails(&link("number.json"), "field `clientId` must be a string");
}

#[test]
fn every_error_is_one_line_with_a_non_zero_exit() {
    let env = Env::new();
    env.write("c.json", "{}");
    env.fails(
        &["link", "gitlab", "--user", "1", "--credentials", "c.json"],
        "unknown integration `gitlab`; known integrations: gmail, google-drive",
    );
    env.fails(&["links", "--user", "42"], "user 42 not found");
    env.fails(&["pause", "42"], "user integration 42 not found");
    env.fails(&["resume", "42"], "user integration 42 not found");
    env.fails(&["unlink", "42"], "user integration 42 not found");
    env.fails(
        &["sync", "42", "--until-idle"],
        "user integration 42 not found",
    );
    env.fails(&["content", "ls", "42"], "user integration 42 not found");
    env.fails(&["content", "show", "42"], "content item 42 not found");
    env.fails(&["jobs", "retry", "42"], "job 42 not found");
    env.fails(
        &["jobs", "--user-integration", "42"],
        "user integration 42 not found",
    );
    env.ok(&["users", "add", "alice"]);
    env.fails(
        &["users", "add", "alice"],
        "a user with reference `alice` already exists",
    );
    env.fails_cmd(
        env.cmd()
            .args(["link", "gmail", "--user", "42", "--credentials", "-"])
            .write_stdin("{}"),
        "stdin lacks the required field `clientId` for gmail",
    );
    env.fails(
        &["link", "gmail", "--user", "42", "--credentials", "-"],
        "stdin is not valid JSON",
    );
    let fake = env.fake(1);
    let creds = env.write(
        "good.json",
        &fake.standalone_info()["credentials"].to_string(),
    );
    env.fails_cmd(
        env.cmd()
            .args(["link", "gmail", "--user", "42", "--credentials"])
            .arg(&creds),
        "user 42 not found",
    );
    // An unreachable database, named without its password.
    let stderr = env.fails(
        &[
            "--database-url",
            "postgres://tributary:hunter2@127.0.0.1:1/tributary",
            "links",
        ],
        "failed to open database postgres://tributary:***@127.0.0.1:1/tributary",
    );
    assert!(!stderr.contains("hunter2"));
    env.fails(
        &["--database-url", "mysql://localhost/db", "links"],
        "unsupported database url",
    );
}

#[test]
fn sync_until_idle_stores_every_message_once() {
    let env = Env::new();
    let fake = env.fake(120);
    let id = env.link_fake(&fake);
    let expected = syncable(&fake);
    assert!(expected.len() > 100);

    let summary = env.json(&["sync", &id.to_string(), "--until-idle"]);
    assert_eq!(summary["added"], expected.len());
    assert_eq!(summary["updated"], 0);
    assert_eq!(summary["deleted"], 0);
    assert_eq!(summary["errors"], 0);
    assert_eq!(summary["items"], expected.len());
    let items = env.json(&["content", "ls", &id.to_string(), "--limit", "1000"]);
    assert_eq!(external_ids(&items), expected);

    let view = env.link_view(id);
    assert_eq!(view["items"], expected.len());
    assert_eq!(view["pending_jobs"], json!({}));
    assert!(view["last_synced_at"].is_string());
    assert!(view.get("credentials").is_none());

    // Nothing new: nothing added; one new message: one added.
    let again = env.json(&["sync", &id.to_string(), "--until-idle"]);
    assert_eq!(again["added"], 0);
    assert_eq!(again["items"], expected.len());
    fake.generate(1);
    let fresh = syncable(&fake).len() - expected.len();
    let third = env.json(&["sync", &id.to_string(), "--until-idle"]);
    assert_eq!(third["added"], fresh);

    // Without --until-idle the sync is only enqueued, for `tributary run`.
    let queued = env.json(&["sync", &id.to_string()]);
    assert_eq!(queued["start_enqueued"], true);
    assert_eq!(
        env.link_view(id)["pending_jobs"],
        json!({"1": 2}),
        "start and history check"
    );
    let text = env.ok(&["sync", &id.to_string()]);
    assert!(text.contains("already pending"), "{text}");
}

#[test]
fn pause_and_resume() {
    let env = Env::new();
    let fake = env.fake(30);
    let id = env.link_fake(&fake);
    let id_text = id.to_string();
    let out = env.ok(&["pause", &id_text]);
    assert!(out.contains("paused"), "{out}");
    assert_eq!(env.link_view(id)["status"], "paused");
    env.fails(
        &["sync", &id_text, "--until-idle"],
        "is paused; `tributary resume",
    );
    assert!(env.ok(&["pause", &id_text]).contains("already paused"));
    env.fails(&["sync", &id_text], "is paused");
    assert_eq!(env.link_view(id)["items"], 0);

    let resumed = env.json(&["resume", &id_text]);
    assert_eq!(resumed["status"], "active");
    let summary = env.json(&["sync", &id_text, "--until-idle"]);
    assert_eq!(summary["added"], syncable(&fake).len());
}

#[test]
fn unlink_keeps_content_and_stops_syncing() {
    let env = Env::new();
    let fake = env.fake(40);
    let id = env.link_fake(&fake);
    let id_text = id.to_string();
    env.ok(&["sync", &id_text, "--until-idle"]);
    let before = env.json(&["content", "ls", &id_text, "--limit", "1000"]);

    let out = env.ok(&["unlink", &id_text]);
    assert!(out.contains("content is kept"), "{out}");
    let view = env.link_view(id);
    assert_eq!(view["status"], "unlinked");
    assert_eq!(view["items"], syncable(&fake).len());
    let after = env.json(&["content", "ls", &id_text, "--limit", "1000"]);
    assert_eq!(before, after);
    env.fails(&["sync", &id_text, "--until-idle"], "is unlinked");
    env.fails(&["resume", &id_text], "is unlinked; link the account again");
    assert!(env.ok(&["unlink", &id_text]).contains("already unlinked"));
}

#[test]
fn content_ls_excludes_deleted_items_unless_asked() {
    let env = Env::new();
    let fake = env.fake(30);
    let id = env.link_fake(&fake);
    let id_text = id.to_string();
    env.ok(&["sync", &id_text, "--until-idle"]);
    let all = syncable(&fake);
    let mut ids = all.iter();
    let (trashed, deleted) = (
        ids.next().expect("a message").clone(),
        ids.next().expect("a message").clone(),
    );
    fake.trash(&trashed).expect("trash");
    fake.delete(&deleted).expect("delete");
    // `sync --until-idle` alone brings both deletions: it runs the history check too.
    let summary = env.json(&["sync", &id_text, "--until-idle"]);
    assert_eq!(summary["deleted"], 2);

    let listed = env.json(&["content", "ls", &id_text, "--limit", "1000"]);
    let visible = external_ids(&listed);
    assert_eq!(visible.len(), all.len() - 2);
    assert!(!visible.contains(&trashed) && !visible.contains(&deleted));
    let with_deleted = env.json(&[
        "content",
        "ls",
        &id_text,
        "--include-deleted",
        "--limit",
        "1000",
    ]);
    assert_eq!(external_ids(&with_deleted), all);
    let gone: Vec<&Value> = with_deleted
        .as_array()
        .expect("array")
        .iter()
        .filter(|i| i["is_deleted"] == true)
        .collect();
    assert_eq!(gone.len(), 2);
    assert_eq!(env.link_view(id)["deleted_items"], 2);

    // --limit, --since and content show.
    let two = env.json(&["content", "ls", &id_text, "--limit", "2"]);
    assert_eq!(two.as_array().map(Vec::len), Some(2));
    let future = env.json(&["content", "ls", &id_text, "--since", "2999-01-01"]);
    assert_eq!(future, json!([]));
    let first_id = two[0]["id"].as_i64().expect("id");
    let shown = env.json(&["content", "show", &first_id.to_string()]);
    assert_eq!(shown["external_id"], two[0]["external_id"]);
    assert!(shown["content"]["subject"].is_string());
    let text = env.ok(&["content", "show", &first_id.to_string()]);
    assert!(text.contains("external id:"), "{text}");
    env.usage_error(
        &["content", "ls", &id_text, "--since", "yesterday"],
        "neither an RFC 3339 time",
    );
}

#[test]
fn failed_jobs_are_listed_and_retried() {
    let env = Env::new();
    let fake = env.fake(3);
    let id = env.link_fake(&fake);
    let id_text = id.to_string();
    env.enqueue(id, Task::new("noSuchTask", json!({})));
    // (The engine logs each failed job as a warning; keep stderr to the error here.)
    env.fails_cmd(
        env.cmd()
            .env("TRIBUTARY_LOG", "error")
            .args(["sync", &id_text, "--until-idle"]),
        "1 jobs of user integration",
    );
    let failed = env.json(&["jobs", "--state", "failed", "--user-integration", &id_text]);
    let failed = failed.as_array().expect("array");
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0]["task_type"], "noSuchTask");
    assert!(
        failed[0]["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("unknown task type `noSuchTask`"))
    );
    assert_eq!(env.link_view(id)["dead_or_failed_jobs"], 1);
    let job = failed[0]["id"].to_string();
    let retried = env.json(&["jobs", "retry", &job]);
    assert_eq!(retried["state"], "available");
    env.fails(
        &["jobs", "retry", &job],
        "only dead or failed jobs can be retried",
    );
    env.usage_error(&["jobs", "--state", "stuck"], "unknown job state `stuck`");
    let listing = env.ok(&["jobs"]);
    assert!(listing.contains("noSuchTask"), "{listing}");
}

#[test]
fn listings_print_json_that_parses() {
    let env = Env::new();
    let fake = env.fake(10);
    let id = env.link_fake(&fake);
    env.ok(&["sync", &id.to_string(), "--until-idle"]);
    let integrations = env.json(&["integrations"]);
    let gmail = integrations
        .as_array()
        .expect("array")
        .iter()
        .find(|i| i["domain"] == "gmail")
        .expect("gmail is listed");
    assert_eq!(gmail["task_types"][0], "start");
    let secret: Vec<&str> = gmail["credentials"]
        .as_array()
        .expect("fields")
        .iter()
        .filter(|f| f["secret"] == true)
        .filter_map(|f| f["name"].as_str())
        .collect();
    assert_eq!(secret, ["clientSecret", "refreshToken", "accessToken"]);
    let users = env.json(&["users", "ls"]);
    assert_eq!(users.as_array().map(Vec::len), Some(1));
    let links = env.json(&["links", "--user", "1"]);
    assert_eq!(links[0]["domain"], "gmail");
    let jobs = env.json(&["jobs", "--limit", "5"]);
    assert_eq!(jobs.as_array().map(Vec::len), Some(5));
    let completed = env.json(&["jobs", "--state", "completed", "--limit", "1000"]);
    assert!(completed.as_array().is_some_and(|j| j.len() > 10));
    // The text forms print tables with a header.
    assert!(env.ok(&["links"]).starts_with("id "));
    assert!(env.ok(&["integrations"]).contains("gmail"));
    assert!(env.ok(&["users", "ls"]).contains("user-"));
    assert!(env.ok(&["migrate"]).contains("migrations applied"));
}

#[test]
fn auth_gmail_writes_credentials_that_link() {
    let env = Env::new();
    let fake = env.fake(3);
    let info = fake.standalone_info();
    let out_file = env.dir.join("gmail-credentials.json");
    let mut child = auth_process(&env, &fake, &out_file);
    let (url, rest) = consent_url(&mut child);
    assert!(url.contains("code_challenge_method=S256"), "{url}");
    assert!(url.contains("state="), "{url}");
    // Play the browser: the fake consents at once and redirects to the listener.
    let http = tributary_sdk::http::HttpClient::new().expect("http client");
    let page = env
        .runtime
        .block_on(http.send(http.get(&url)))
        .expect("the redirect is served");
    assert!(page.status.is_success(), "{}", page.text());
    assert!(page.text().contains("authorized"), "{}", page.text());
    let output = child.wait_with_output().expect("auth exits");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = rest.join().expect("stderr");
    assert!(output.status.success(), "{stdout} {stderr}");
    assert!(stdout.contains("wrote Gmail credentials"), "{stdout}");
    no_secrets(&stdout);
    no_secrets(&stderr);

    let written: Value =
        serde_json::from_str(&std::fs::read_to_string(&out_file).expect("file")).expect("json");
    let keys: BTreeSet<&str> = written
        .as_object()
        .expect("object")
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        BTreeSet::from(["clientId", "clientSecret", "refreshToken", "accessToken"])
    );
    assert_eq!(written["clientId"], info["credentials"]["clientId"]);
    let refresh = written["refreshToken"].as_str().expect("refresh token");
    assert!(!stdout.contains(refresh) && !stderr.contains(refresh));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&out_file)
            .expect("meta")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    // The new grant links (the fake checks it at its token endpoint).
    env.ok(&["users", "add", "owner"]);
    env.ok(&[
        "link",
        "gmail",
        "--user",
        "1",
        "--credentials",
        out_file.to_str().expect("utf-8"),
        "--setting",
        &format!("baseUrl={}", fake.base_url()),
        "--setting",
        &format!("tokenUrl={}", fake.token_url()),
    ]);
}

#[test]
fn auth_gmail_reports_a_declined_consent() {
    let env = Env::new();
    let fake = env.fake(1);
    fake.set_deny_consent(true);
    let out_file = env.dir.join("never.json");
    let mut child = auth_process(&env, &fake, &out_file);
    let (url, rest) = consent_url(&mut child);
    let http = tributary_sdk::http::HttpClient::new().expect("http client");
    let _ = env.runtime.block_on(http.send(http.get(&url)));
    let output = child.wait_with_output().expect("auth exits");
    assert!(!output.status.success());
    let stderr = rest.join().expect("stderr");
    assert!(
        stderr.contains("error: authorization was not granted: access_denied"),
        "{stderr}"
    );
    assert!(!out_file.exists());
}

#[test]
fn auth_needs_an_oauth_integration() {
    let env = Env::new();
    let args = ["--client-id", "id", "--client-secret", "s"];
    let mut unknown = vec!["auth", "nowhere"];
    unknown.extend(args);
    env.fails(
        &unknown,
        "unknown integration `nowhere`; known integrations: gmail, google-drive",
    );
    // An integration without an OAuth section in its manifest (the test doubles').
    env.fails_cmd(
        env.cmd()
            .env("TRIBUTARY_TEST_INTEGRATIONS", "1")
            .args(["auth", "synthetic"])
            .args(args),
        "does not use OAuth; give its credentials (token) to `tributary link synthetic`",
    );
}

fn auth_process(env: &Env, fake: &FakeGmail, out_file: &Path) -> Child {
    let info = fake.standalone_info();
    std::process::Command::new(BIN)
        .current_dir(&env.dir)
        .env("TRIBUTARY_SECRET_KEY", &env.key)
        .args(["auth", "gmail", "--client-id"])
        .arg(info["credentials"]["clientId"].as_str().expect("client id"))
        .arg("--client-secret")
        .arg(
            info["credentials"]["clientSecret"]
                .as_str()
                .expect("secret"),
        )
        .arg("--auth-url")
        .arg(fake.authorize_url())
        .arg("--token-url")
        .arg(fake.token_url())
        .arg("--out")
        .arg(out_file)
        .arg("--timeout-seconds")
        .arg("120")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn auth")
}

/// Reads the consent URL that `auth gmail` prints on stderr; the rest of stderr is
/// collected by the returned thread.
fn consent_url(child: &mut Child) -> (String, std::thread::JoinHandle<String>) {
    let stderr = child.stderr.take().expect("stderr");
    let mut lines = BufReader::new(stderr).lines();
    loop {
        let line = lines
            .next()
            .expect("auth printed no consent URL")
            .expect("read stderr");
        if line.starts_with("http://") {
            // Keep draining stderr so the child never blocks on a full pipe.
            let rest = std::thread::spawn(move || {
                lines.map_while(Result::ok).collect::<Vec<_>>().join("\n")
            });
            return (line.trim().to_owned(), rest);
        }
    }
}

#[test]
fn fake_gmail_standalone_can_be_linked_and_synced() {
    let env = Env::new();
    let (mut child, info) = spawn_fake(std::process::Command::new(BIN).args([
        "fake",
        "gmail",
        "--listen",
        "127.0.0.1:0",
        "--emails",
        "25",
    ]));
    let creds = env.write("fake.json", &info["credentials"].to_string());
    env.ok(&["users", "add", "u"]);
    let linked = env.json(&[
        "link",
        "gmail",
        "--user",
        "1",
        "--credentials",
        creds.to_str().expect("utf-8"),
        "--setting",
        &format!(
            "baseUrl={}",
            info["settings"]["baseUrl"].as_str().expect("url")
        ),
        "--setting",
        &format!(
            "tokenUrl={}",
            info["settings"]["tokenUrl"].as_str().expect("url")
        ),
    ]);
    let id = linked["id"].as_i64().expect("id");
    let summary = env.json(&["sync", &id.to_string(), "--until-idle"]);
    let added = summary["added"].as_u64().expect("added");
    assert!((20..=25).contains(&added), "{summary}");
    terminate(&mut child);
    assert!(child.wait().expect("the fake exits").success());
}

#[test]
fn fake_gmail_prints_how_to_link_an_account() {
    let mut child = std::process::Command::new(BIN)
        .args(["fake", "gmail", "--emails", "25", "--deliver-every", "3600"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn the fake");
    let stdout = BufReader::new(child.stdout.take().expect("stdout"));
    let mut text = String::new();
    for line in stdout.lines() {
        let line = line.expect("a line");
        text.push_str(&line);
        text.push('\n');
        if line == "Ctrl-C to stop" {
            break;
        }
    }
    terminate(&mut child);
    assert!(child.wait().expect("the fake exits").success());
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines.first().copied(),
        Some("fake Gmail serving 25 messages for tester@example.com"),
        "{text}"
    );
    for prefix in [
        "  base URL:      http://127.0.0.1:",
        "  token URL:     http://",
        "  authorize URL: http://",
    ] {
        assert!(
            lines.iter().any(|l| l.starts_with(prefix)),
            "no {prefix:?} in {text}"
        );
    }
    assert!(
        text.contains("test credentials (the fake accepts nothing else):"),
        "{text}"
    );
    let link = lines
        .iter()
        .find(|l| l.starts_with("  tributary link gmail --user <user id> --credentials CREDENTIALS.json --setting baseUrl=http://"))
        .unwrap_or_else(|| panic!("no link command in {text}"));
    assert!(link.contains(" --setting tokenUrl=http://"), "{link}");
    assert!(
        text.contains("delivering a new message every 3600 s"),
        "{text}"
    );
}

#[test]
fn fakes_are_found_through_the_registry() {
    let env = Env::new();
    env.fails(
        &["fake", "imap"],
        "unknown integration `imap`; integrations with a fake: gmail, google-drive, onedrive, outlook, slack",
    );
    env.fails_cmd(
        env.cmd()
            .env("TRIBUTARY_TEST_INTEGRATIONS", "1")
            .args(["fake", "noop"]),
        "the `noop` integration has no fake; integrations with a fake: gmail, google-drive, onedrive, outlook, slack, synthetic",
    );

    // Any integration with a fake: the synthetic one (a test double), linked and synced.
    let (mut child, info) = spawn_fake(
        std::process::Command::new(BIN)
            .env("TRIBUTARY_TEST_INTEGRATIONS", "1")
            .args(["fake", "synthetic", "--items", "7"]),
    );
    let creds = env.write("synthetic.json", &info["credentials"].to_string());
    let with_doubles = |args: &[&str]| {
        let out = env
            .cmd()
            .env("TRIBUTARY_TEST_INTEGRATIONS", "1")
            .arg("--json")
            .args(args)
            .output()
            .expect("run tributary");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice::<Value>(&out.stdout).expect("JSON")
    };
    with_doubles(&["users", "add", "u"]);
    let base_url = info["settings"]["baseUrl"].as_str().expect("url");
    let linked = with_doubles(&[
        "link",
        "synthetic",
        "--user",
        "1",
        "--credentials",
        creds.to_str().expect("utf-8"),
        "--setting",
        &format!("baseUrl={base_url}"),
    ]);
    let id = linked["id"].as_i64().expect("id").to_string();
    let summary = with_doubles(&["sync", &id, "--until-idle"]);
    assert_eq!(summary["added"], 7, "{summary}");
    terminate(&mut child);
    assert!(child.wait().expect("the fake exits").success());
}

/// A new user's path with Google Drive, as docs/integrations/google-drive.md gives it:
/// `tributary fake google-drive`, link with what it prints, sync until idle: every file
/// and folder added; a second sync adds and deletes nothing.
#[test]
fn google_drive_fake_links_and_syncs() {
    fake_links_and_syncs("google-drive", 60);
}

#[test]
fn outlook_fake_links_and_syncs() {
    fake_links_and_syncs("outlook", 80);
}

#[test]
fn onedrive_fake_links_and_syncs() {
    fake_links_and_syncs("onedrive", 80);
}

/// `tributary fake <domain> --items N`, then link against it with the credentials and
/// settings it printed: a sync stores what the fake says a sync stores (the N items,
/// and a drive's folders), and a second one finds nothing new.
fn fake_links_and_syncs(domain: &str, items: u32) {
    let env = Env::new();
    let (mut child, info) = spawn_fake(std::process::Command::new(BIN).args([
        "fake",
        domain,
        "--items",
        &items.to_string(),
    ]));
    let creds = env.write("fake.json", &info["credentials"].to_string());
    env.ok(&["users", "add", "u"]);
    let mut link = vec![
        "link".to_owned(),
        domain.to_owned(),
        "--user".to_owned(),
        "1".to_owned(),
        "--credentials".to_owned(),
        creds.to_str().expect("utf-8").to_owned(),
    ];
    for (key, value) in info["settings"].as_object().expect("settings") {
        link.push("--setting".to_owned());
        link.push(format!(
            "{key}={}",
            value.as_str().expect("a string setting")
        ));
    }
    let args: Vec<&str> = link.iter().map(String::as_str).collect();
    let linked = env.json(&args);
    let id = linked["id"].as_i64().expect("id").to_string();
    let expected = info["items"].as_u64().expect("items");
    assert!(expected >= u64::from(items), "{info}");
    let summary = env.json(&["sync", &id, "--until-idle"]);
    assert_eq!(summary["added"], expected, "{summary}");
    let again = env.json(&["sync", &id, "--until-idle"]);
    assert_eq!(
        (again["added"].as_i64(), again["deleted"].as_i64()),
        (Some(0), Some(0)),
        "{again}"
    );
    terminate(&mut child);
    assert!(child.wait().expect("the fake exits").success());
}

/// Spawns `tributary fake ...` (given without `--json`, which this adds) and reads the
/// JSON line it prints first: the credentials and settings to link with.
fn spawn_fake(command: &mut std::process::Command) -> (Child, Value) {
    let mut child = command
        .arg("--json")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn the fake");
    let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
    let mut line = String::new();
    stdout.read_line(&mut line).expect("read the info line");
    let info: Value = serde_json::from_str(&line).expect("the info line is JSON");
    (child, info)
}

fn terminate(child: &mut Child) {
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
}

#[test]
fn run_logs_progress_and_stops_on_sigterm() {
    let env = Env::new();
    let fake = env.fake(60);
    let id = env.link_fake(&fake);
    env.ok(&["sync", &id.to_string()]);
    let log = env.dir.join("run.log");
    let mut child = std::process::Command::new(BIN)
        .current_dir(&env.dir)
        .env("DATABASE_URL", &env.url)
        .env("TRIBUTARY_SECRET_KEY", &env.key)
        .args(["run", "--workers", "4", "--progress-seconds", "1"])
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).expect("log file"))
        .spawn()
        .expect("spawn run");
    // Wait (bounded, not timed) for the sync to be stored and a progress line logged.
    let deadline = Instant::now() + Duration::from_secs(120);
    let expected = syncable(&fake).len();
    loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        let items = env.link_view(id)["items"].as_u64().unwrap_or(0) as usize;
        if items == expected && text.contains(&format!("{expected} items added")) {
            break;
        }
        assert!(Instant::now() < deadline, "run made no progress: {text}");
        std::thread::sleep(Duration::from_millis(200));
    }
    terminate(&mut child);
    assert!(child.wait().expect("run exits").success());
    let text = std::fs::read_to_string(&log).expect("log");
    assert!(text.contains("progress: "), "{text}");
    assert!(text.contains("tributary stopped"), "{text}");
    no_secrets(&text);
}

#[test]
fn run_prunes_completed_jobs_past_keep_completed() {
    let env = Env::new();
    env.usage_error(&["run", "--keep-completed", "3y"], "unknown unit `y`");
    env.usage_error(&["run", "--keep-completed", "24"], "no unit");
    let fake = env.fake(20);
    let id = env.link_fake(&fake);
    env.ok(&["sync", &id.to_string(), "--until-idle"]);
    let completed = || {
        env.json(&["jobs", "--state", "completed", "--limit", "1000"])
            .as_array()
            .map_or(0, Vec::len)
    };
    assert!(completed() > 0);
    // Without the scheduler nothing new completes: the pruner's first round, at start,
    // takes every completed job (`0` keeps nothing older than now).
    let log = env.dir.join("run.log");
    let mut child = std::process::Command::new(BIN)
        .current_dir(&env.dir)
        .env("DATABASE_URL", &env.url)
        .env("TRIBUTARY_SECRET_KEY", &env.key)
        .args([
            "run",
            "--no-scheduler",
            "--progress-seconds",
            "0",
            "--keep-completed",
            "0",
        ])
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).expect("log file"))
        .spawn()
        .expect("spawn run");
    // Bounded wait, not timed.
    let deadline = Instant::now() + Duration::from_secs(120);
    while completed() > 0 {
        assert!(Instant::now() < deadline, "run pruned nothing");
        std::thread::sleep(Duration::from_millis(200));
    }
    terminate(&mut child);
    assert!(child.wait().expect("run exits").success());
    let text = std::fs::read_to_string(&log).expect("log");
    assert!(text.contains("completed jobs kept 0"), "{text}");
    // What was synced is still all there.
    assert_eq!(
        env.link_view(id)["items"].as_u64(),
        Some(syncable(&fake).len() as u64)
    );
}

#[test]
fn demo_stores_the_mailbox_and_fresh_mail_during_the_backfill() {
    let env = Env::new();
    let db = env.dir.join("demo.db");
    let url = format!("sqlite://{}", db.display());
    // The demo's own settings, tightened so that a 500-message backfill lasts long
    // enough for new mail to arrive during it (each API call answers in 150 ms).
    let summary = env.json(&[
        "demo",
        "--database-url",
        &url,
        "--emails",
        "500",
        "--latency-ms",
        "150",
        "--start-every",
        "0.5",
        "--deliver-every",
        "0.5",
    ]);
    let delivered = summary["delivered"].as_u64().expect("delivered");
    assert!(
        delivered >= 1,
        "no mail was delivered during the backfill: {summary}"
    );
    assert_eq!(summary["mailbox_messages"], 500);
    assert_eq!(summary["stored"].as_u64(), Some(500 + delivered));
    assert_eq!(
        summary["distinct_external_ids"].as_u64(),
        Some(500 + delivered)
    );
    assert_eq!(summary["duplicates"], 0);
    assert_eq!(summary["missing"], 0);
    assert_eq!(summary["unexpected"], 0);
    assert_eq!(summary["errors"], 0);
    assert_eq!(summary["all_fresh_stored_before_backfill_finished"], true);
    let linked_at = summary["linked_at_ms"].as_i64().expect("linked at");
    let backfill_end = summary["backfill_finished_ms"]
        .as_i64()
        .expect("backfill end");
    assert!(backfill_end > linked_at);
    for fresh in summary["fresh"].as_array().expect("fresh") {
        let delivered_at = fresh["delivered_at_ms"].as_i64().expect("delivered");
        let stored_at = fresh["stored_at_ms"].as_i64().expect("stored");
        assert!(
            delivered_at >= linked_at && stored_at >= delivered_at,
            "{fresh}"
        );
        assert!(
            stored_at <= backfill_end,
            "{fresh} after the backfill ended"
        );
        assert_eq!(fresh["delay_ms"].as_i64(), Some(stored_at - delivered_at));
    }

    // The database it names holds exactly that, and the browse commands work on it.
    assert_eq!(summary["database_url"].as_str(), Some(url.as_str()));
    let id = summary["user_integration_id"].to_string();
    let items = env.json(&[
        "--database-url",
        &url,
        "content",
        "ls",
        &id,
        "--limit",
        "10000",
    ]);
    assert_eq!(
        items.as_array().map(Vec::len),
        Some(500 + delivered as usize)
    );
    assert!(db.exists());

    // A second run starts from a fresh database.
    let text = env.ok(&[
        "demo",
        "--database-url",
        &url,
        "--emails",
        "20",
        "--latency-ms",
        "0",
    ]);
    assert!(text.contains("duplicates:        0"), "{text}");
    assert!(text.contains("content ls"), "{text}");
    let items = env.json(&[
        "--database-url",
        &url,
        "content",
        "ls",
        &id,
        "--limit",
        "10000",
    ]);
    assert_eq!(items.as_array().map(Vec::len), Some(20));
}

#[test]
fn test_doubles_are_neither_listed_nor_linkable() {
    let env = Env::new();
    let listed = env.json(&["integrations"]);
    let domains: Vec<&str> = listed
        .as_array()
        .expect("an array of integrations")
        .iter()
        .map(|i| i["domain"].as_str().expect("domain"))
        .collect();
    assert_eq!(
        domains,
        ["gmail", "google-drive", "onedrive", "outlook", "slack"]
    );
    let table = env.ok(&["integrations"]);
    assert!(
        !table.contains("synthetic") && !table.contains("noop"),
        "{table}"
    );
    env.ok(&["users", "add", "alice"]);
    env.write("token.json", r#"{"token": "t"}"#);
    let stderr = env.fails(
        &[
            "link",
            "synthetic",
            "--user",
            "1",
            "--credentials",
            "token.json",
        ],
        "unknown integration `synthetic`; known integrations: gmail, google-drive",
    );
    assert!(!stderr.contains("noop"), "{stderr}");

    // The tests' switch (tests/processes.rs runs `synthetic` accounts through the
    // binary with it).
    let out = env
        .cmd()
        .env("TRIBUTARY_TEST_INTEGRATIONS", "1")
        .args(["--json", "integrations"])
        .output()
        .expect("run tributary");
    assert!(out.status.success());
    let listed: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let domains: Vec<&str> = listed
        .as_array()
        .expect("an array of integrations")
        .iter()
        .map(|i| i["domain"].as_str().expect("domain"))
        .collect();
    assert_eq!(
        domains,
        [
            "gmail",
            "google-drive",
            "noop",
            "onedrive",
            "outlook",
            "slack",
            "synthetic"
        ]
    );
}

/// Runs `sync <id> --until-idle` with `TRIBUTARY_LOG=debug` and `extra` options;
/// returns stderr (the command must succeed and print no secret).
fn debug_sync_stderr(env: &Env, id: i64, extra: &[&str]) -> String {
    let out = env
        .cmd()
        .env("TRIBUTARY_LOG", "debug")
        .args(extra)
        .args(["sync", &id.to_string(), "--until-idle"])
        .output()
        .expect("run tributary");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "sync failed: {stderr}");
    no_secrets(&stderr);
    assert!(!stderr.contains("ya29.fake-"), "an access token was logged");
    stderr
}

#[test]
fn logs_carry_no_colour_codes_off_a_terminal() {
    let env = Env::new();
    let fake = env.fake(5);
    let id = env.link_fake(&fake);
    // Captured stderr is a pipe, not a terminal.
    let stderr = debug_sync_stderr(&env, id, &[]);
    assert!(stderr.contains("DEBUG"), "nothing was logged: {stderr}");
    assert!(stderr.contains("job finished"), "{stderr}");
    assert!(!stderr.contains("\x1b["), "ANSI codes in: {stderr:?}");
}

#[test]
fn json_logs_are_one_object_per_line_with_the_job_fields() {
    let env = Env::new();
    let fake = env.fake(5);
    let id = env.link_fake(&fake);
    let stderr = debug_sync_stderr(&env, id, &["--log-format", "json"]);
    let lines: Vec<Value> = stderr
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}")))
        .collect();
    assert!(!lines.is_empty(), "nothing was logged");
    for line in &lines {
        assert!(line["timestamp"].is_string(), "{line}");
        assert!(line["level"].is_string(), "{line}");
        assert!(line["target"].is_string(), "{line}");
    }
    let finished: Vec<&Value> = lines
        .iter()
        .filter(|l| l["message"] == "job finished")
        .collect();
    assert!(!finished.is_empty(), "no `job finished` event: {stderr}");
    for line in finished {
        assert_eq!(line["level"], "DEBUG");
        let span = &line["span"];
        assert_eq!(span["name"], "job", "{line}");
        assert!(span["job_id"].is_i64(), "{line}");
        assert_eq!(span["domain"], "gmail", "{line}");
        assert_eq!(span["user_integration_id"], id, "{line}");
        assert!(span["task_type"].is_string(), "{line}");
        assert!(line["outputs"].is_u64(), "{line}");
    }

    // The error that ends a command is a JSON line too.
    let out = env
        .cmd()
        .env("TRIBUTARY_LOG_FORMAT", "json")
        .args(["sync", "42", "--until-idle"])
        .output()
        .expect("run tributary");
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "{stderr}");
    let error: Value = serde_json::from_str(lines[0]).expect("a JSON error line");
    assert_eq!(error["level"], "ERROR");
    assert_eq!(error["message"], "error: user integration 42 not found");
}

#[test]
fn a_full_stderr_does_not_stall_a_command() {
    let full = Path::new("/dev/full");
    assert!(full.exists(), "this test needs /dev/full (Linux)");
    let env = Env::new();
    let stderr = std::fs::OpenOptions::new()
        .write(true)
        .open(full)
        .expect("open /dev/full");
    let mut child = std::process::Command::new(BIN)
        .current_dir(&env.dir)
        .env("DATABASE_URL", &env.url)
        .env("TRIBUTARY_SECRET_KEY", &env.key)
        .env("TRIBUTARY_LOG", "debug")
        .arg("migrate")
        .stdout(Stdio::null())
        .stderr(stderr)
        .spawn()
        .expect("spawn tributary");
    // Not a timing assertion: a generous bound on a hang, which used to be forever.
    let deadline = Instant::now() + Duration::from_secs(120);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("`tributary migrate` hung with stderr unwritable");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "{status}");
}

#[test]
fn links_lists_an_account_whose_credentials_do_not_decrypt() {
    let env = Env::new();
    let fake = env.fake(2);
    let readable = env.link_fake(&fake);
    // A second account sealed with another key (as after a key change).
    let other = Cipher::load(&KeySource::Base64(
        tributary_store::crypto::generate_base64_key(),
    ))
    .expect("cipher");
    let sealed_elsewhere = env.runtime.block_on(async {
        let store = tributary_store::connect(&env.url, other)
            .await
            .expect("connect");
        store
            .create_user_integration(tributary_store::NewUserIntegration {
                user_id: 1,
                integration_domain: "gmail".into(),
                credentials: fake.standalone_info()["credentials"]
                    .as_object()
                    .cloned()
                    .map(tributary_sdk::Credentials::new)
                    .expect("credentials"),
                settings: serde_json::Map::new(),
            })
            .await
            .expect("link")
            .id
    });
    let links = env.json(&["links"]);
    let marked: Vec<(i64, bool)> = links
        .as_array()
        .expect("an array")
        .iter()
        .map(|l| {
            (
                l["id"].as_i64().expect("id"),
                l["credentials_unreadable"].as_bool().expect("marker"),
            )
        })
        .collect();
    assert_eq!(marked, [(readable, false), (sealed_elsewhere, true)]);
    let table = env.ok(&["links"]);
    let row = table
        .lines()
        .find(|l| l.starts_with(&format!("{sealed_elsewhere} ")))
        .expect("the account is listed");
    assert!(
        row.contains("credentials do not decrypt with this key"),
        "{table}"
    );
    // It cannot be resumed until the key is back or it is linked again; it can be
    // paused and unlinked.
    env.ok(&["pause", &sealed_elsewhere.to_string()]);
    // (TRIBUTARY_LOG=error: the start-up key check warns about the account too.)
    env.fails_cmd(
        env.cmd()
            .env("TRIBUTARY_LOG", "error")
            .args(["resume", &sealed_elsewhere.to_string()]),
        &format!(
            "the credentials of user integration {sealed_elsewhere} do not decrypt with this key"
        ),
    );
    assert!(
        env.ok(&["unlink", &sealed_elsewhere.to_string()])
            .contains("unlinked")
    );
}

#[test]
fn a_missing_key_file_with_stored_credentials_is_an_error_not_a_new_key() {
    let env = Env::new();
    let fake = env.fake(5);
    let key_file = env.dir.join("keys").join("secret.key");
    // The binary with a key file instead of TRIBUTARY_SECRET_KEY.
    let cmd = |key: Option<&str>| {
        let mut cmd = env.cmd();
        cmd.env_remove("TRIBUTARY_SECRET_KEY")
            .env("TRIBUTARY_KEY_FILE", &key_file);
        if let Some(key) = key {
            cmd.env("TRIBUTARY_SECRET_KEY", key);
        }
        cmd
    };
    let ok = |args: &[&str]| -> String {
        let out = cmd(None).args(args).output().expect("run tributary");
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "tributary {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        stdout
    };
    let credentials = env.write(
        "creds.json",
        &fake.standalone_info()["credentials"].to_string(),
    );
    let link_args = |user: &str| -> Vec<String> {
        [
            "link",
            "gmail",
            "--user",
            user,
            "--credentials",
            credentials.to_str().expect("utf-8 path"),
            "--setting",
            &format!("baseUrl={}", fake.base_url()),
            "--setting",
            &format!("tokenUrl={}", fake.token_url()),
        ]
        .map(str::to_owned)
        .to_vec()
    };

    // Commands that never use credentials create no key.
    let user = ok(&["users", "add", "alice"]);
    assert!(!key_file.exists(), "users add created a key file");
    // Linking the first account creates it.
    let args = link_args(user.trim());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let id: i64 = ok(&args).trim().parse().expect("link prints the id");
    assert!(key_file.exists());
    let id_text = id.to_string();
    ok(&["sync", &id_text, "--until-idle"]);

    // The key file is lost: an error naming it and the ways out, and no new key.
    std::fs::remove_file(&key_file).expect("delete the key file");
    let path = key_file.display().to_string();
    for args in [
        vec!["sync", &id_text, "--until-idle"],
        vec!["links"],
        vec!["run"],
    ] {
        let stderr = env.fails_cmd(
            cmd(None).args(&args),
            &format!("the key file {path} does not exist, but the database holds the encrypted credentials of 1 linked account (user integration {id})"),
        );
        assert!(stderr.contains("TRIBUTARY_SECRET_KEY"), "{stderr}");
        assert!(stderr.contains("put the old key file back"), "{stderr}");
        assert!(stderr.contains("unlink"), "{stderr}");
        assert!(
            !key_file.exists(),
            "tributary {args:?} created a new key file"
        );
    }
    // Commands that never read credentials still work, and create no key either.
    let items = ok(&["--json", "content", "ls", &id_text]);
    assert!(!items.trim().is_empty() && items.contains(&format!("\"user_integration_id\": {id}")));
    ok(&["jobs", "--user-integration", &id_text]);
    assert!(!key_file.exists());

    // A wrong key is one clear error at start-up, naming where it came from.
    let wrong = tributary_store::crypto::generate_base64_key();
    let stderr = env.fails_cmd(
        cmd(Some(&wrong)).args(["sync", &id_text, "--until-idle"]),
        "the credentials key from TRIBUTARY_SECRET_KEY does not decrypt the stored credentials of 1 linked account",
    );
    assert!(!stderr.contains(&wrong), "the key was printed");

    // The way out when the key is lost: unlink (no key needed), then link again,
    // which creates a new key file; both accounts are listed.
    let out = ok(&["unlink", &id_text]);
    assert!(out.contains("unlinked"), "{out}");
    assert!(!key_file.exists());
    let relinked: i64 = ok(&args).trim().parse().expect("link prints the id");
    assert!(key_file.exists());
    let links: Value = serde_json::from_str(&ok(&["--json", "links"])).expect("links prints JSON");
    let statuses: Vec<(i64, &str)> = links
        .as_array()
        .expect("an array")
        .iter()
        .map(|l| {
            (
                l["id"].as_i64().expect("id"),
                l["status"].as_str().expect("status"),
            )
        })
        .collect();
    assert_eq!(statuses, [(id, "unlinked"), (relinked, "active")]);
    ok(&["sync", &relinked.to_string(), "--until-idle"]);
}
