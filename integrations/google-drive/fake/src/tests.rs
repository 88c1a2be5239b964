//! The fake's own tests.
