//! A stateful fake of the Gmail API (being written).
