//! sqlite (being written)
