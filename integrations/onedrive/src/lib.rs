//! The OneDrive integration through Microsoft Graph (issue 14): not written yet.
//!
//! This crate holds the folder's place in the workspace so that its fake
//! (`integrations/onedrive/fake/`, the Graph drive fake) builds and is tested; it is
//! not registered, and `tributary integrations` does not list `onedrive`.
