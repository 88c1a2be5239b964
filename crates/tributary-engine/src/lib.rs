//! Tributary engine.
