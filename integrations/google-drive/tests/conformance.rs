//! The Google Drive integration through the conformance scenarios, against its fake
//! (`integrations/google-drive/fake/`), on SQLite and PostgreSQL. Drive declares every
//! capability, so every scenario runs. The subject is in `support/`.

mod support;

use support::DriveSubject;
use tributary_conformance::conformance_tests;

conformance_tests!(DriveSubject);
