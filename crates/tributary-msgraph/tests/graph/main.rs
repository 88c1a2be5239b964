//! The Graph client against the Graph fakes: error mappings, the identity platform,
//! request preferences, link and redirect safety, and delta rounds.

mod client;
mod delta;
mod errors;
mod oauth;
mod support;
