//! Test doubles for Tributary: a synthetic integration with its source, and faithful
//! fakes of cloud APIs.

pub mod gmail;
