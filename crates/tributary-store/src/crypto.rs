//! crypto (being written)
