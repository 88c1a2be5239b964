//! The OneDrive integration through the conformance scenarios, against its fake
//! (`integrations/onedrive/fake/`), on SQLite and PostgreSQL. OneDrive has a change
//! feed (the drive's delta query), edits (new content; a folder renamed and back),
//! restores (the recycle bin gives an item back with its id), expiring tokens and a
//! fetch per item, so it declares every capability and every scenario runs. The
//! subject is in `support/`.

mod support;

use support::OneDriveSubject;
use tributary_conformance::conformance_tests;

conformance_tests!(OneDriveSubject);
