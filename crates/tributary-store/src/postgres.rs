//! postgres (being written)
