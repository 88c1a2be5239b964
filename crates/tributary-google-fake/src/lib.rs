//! What the fakes of Google's APIs share, written once: Google's OAuth 2.0 endpoints
//! ([`oauth`]), Google's JSON error body ([`error`]), and fault injection with call
//! counters ([`faults`]), and the check of answers against a discovery document
//! ([`discovery`]). The Gmail fake and the Drive
//! fake both serve them; each keeps only its own API.

pub mod discovery;
pub mod endpoints;
pub mod error;
pub mod faults;
pub mod gate;
pub mod oauth;

pub use error::ApiError;
pub use oauth::{ClientCredentials, IssuedToken, OAuthError, TokenStore};
