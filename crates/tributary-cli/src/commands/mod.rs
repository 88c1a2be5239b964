//! One module per command (or family of commands). Each exposes its clap arguments
//! and an async `run`-style function taking the global options.

pub mod auth;
pub mod content;
pub mod fake;
pub mod integrations;
pub mod jobs;
pub mod links;
pub mod run;
pub mod sync;
pub mod users;
