//! `tributary integrations`: what each built-in integration is, syncs and needs.

use anyhow::Result;
use serde::Serialize;

use crate::app::GlobalArgs;
use crate::output::{Table, print_json};

/// One credential field, as listed.
#[derive(Debug, Serialize)]
struct FieldView<'a> {
    name: &'a str,
    secret: bool,
    required: bool,
    description: &'a str,
}

/// One integration, as listed.
#[derive(Debug, Serialize)]
struct IntegrationView<'a> {
    domain: &'a str,
    name: &'a str,
    version: &'a str,
    description: &'a str,
    task_types: &'a [String],
    credentials: Vec<FieldView<'a>>,
    start_every_seconds: u64,
    history_task: Option<&'a str>,
}

/// Lists the integrations from their manifests (no database needed).
pub fn run(global: &GlobalArgs) -> Result<()> {
    let registry = crate::app::registry()?;
    let views: Vec<IntegrationView<'_>> = registry
        .iter()
        .map(|r| {
            let m = &r.manifest;
            IntegrationView {
                domain: &m.domain,
                name: &m.name,
                version: &m.version,
                description: &m.description,
                task_types: &m.task_types,
                credentials: m
                    .credentials
                    .iter()
                    .map(|f| FieldView {
                        name: &f.name,
                        secret: f.secret,
                        required: f.required,
                        description: &f.description,
                    })
                    .collect(),
                start_every_seconds: m.schedule.start_every_seconds,
                history_task: m.schedule.history_task.as_deref(),
            }
        })
        .collect();
    if global.json {
        return print_json(&views);
    }
    let mut table = Table::new([
        "domain",
        "name",
        "version",
        "task types",
        "credential fields",
    ]);
    for v in &views {
        let fields: Vec<String> = v
            .credentials
            .iter()
            .map(|f| {
                let mut name = f.name.to_owned();
                match (f.secret, f.required) {
                    (true, true) => name.push_str(" (secret)"),
                    (true, false) => name.push_str(" (secret, optional)"),
                    (false, false) => name.push_str(" (optional)"),
                    (false, true) => {}
                }
                name
            })
            .collect();
        table.row([
            v.domain.to_owned(),
            v.name.to_owned(),
            v.version.to_owned(),
            v.task_types.join(", "),
            fields.join(", "),
        ]);
    }
    table.print_or("no integrations");
    Ok(())
}
