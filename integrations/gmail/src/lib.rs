//! The Gmail integration (being written).
