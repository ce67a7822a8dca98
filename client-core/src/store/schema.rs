//! Numbered migrations of the local database.
//!
//! `PRAGMA user_version` holds the number of migrations applied. Each migration runs
//! in the transaction that opens the store, so a database is never half-migrated.
//! Tables prefixed `idx_` are the query index: derived entirely from the documents, so
//! a migration that changes them marks the index for a rebuild instead of converting
//! rows.

use rusqlite::Transaction;

use crate::error::{Error, Result};

/// `PRAGMA application_id` of a Branchline store ("BRLN"), so a stray SQLite file is
/// recognised as not ours before we touch it.
pub(crate) const APPLICATION_ID: i64 = 0x4252_4C4E;

/// One migration: its SQL, and whether the index must be rebuilt after it.
struct Migration {
    sql: &'static str,
    rebuilds_index: bool,
}

const MIGRATIONS: &[Migration] = &[
    // 1: documents and what is not yet acknowledged by a server.
    Migration {
        sql: "
        CREATE TABLE store_info (
            key   TEXT PRIMARY KEY,
            value TEXT NOT NULL
        );
        CREATE TABLE documents (
            doc_id       TEXT PRIMARY KEY,
            kind         TEXT NOT NULL,
            branch_id    TEXT NOT NULL,
            schema       INTEGER NOT NULL,
            snapshot     BLOB NOT NULL,
            chunks_len   INTEGER NOT NULL DEFAULT 0,
            next_chunk   INTEGER NOT NULL DEFAULT 0,
            heads        BLOB NOT NULL,
            updated_at   INTEGER NOT NULL
        );
        CREATE INDEX documents_by_kind ON documents (kind, branch_id);
        CREATE TABLE doc_chunks (
            doc_id TEXT NOT NULL REFERENCES documents (doc_id) ON DELETE CASCADE,
            seq    INTEGER NOT NULL,
            data   BLOB NOT NULL,
            PRIMARY KEY (doc_id, seq)
        );
        CREATE TABLE unacked_changes (
            doc_id TEXT NOT NULL REFERENCES documents (doc_id) ON DELETE CASCADE,
            hash   BLOB NOT NULL,
            PRIMARY KEY (doc_id, hash)
        ) WITHOUT ROWID;
        ",
        rebuilds_index: false,
    },
    // 2: the query index and the conflict list.
    Migration {
        sql: "
        CREATE TABLE idx_profiles (
            branch_id        TEXT PRIMARY KEY,
            doc_id           TEXT NOT NULL,
            name             TEXT NOT NULL,
            level            TEXT NOT NULL,
            parent           TEXT,
            term_start       TEXT,
            term_end         TEXT,
            silent_threshold INTEGER NOT NULL
        );
        CREATE TABLE idx_activity_kinds (
            branch_id         TEXT NOT NULL,
            code              TEXT NOT NULL,
            doc_id            TEXT NOT NULL,
            name              TEXT NOT NULL,
            frequency         TEXT,
            attendance_points INTEGER NOT NULL,
            PRIMARY KEY (branch_id, code)
        ) WITHOUT ROWID;
        CREATE TABLE idx_members (
            member_id    TEXT PRIMARY KEY,
            branch_id    TEXT NOT NULL,
            doc_id       TEXT NOT NULL,
            name         TEXT NOT NULL,
            gender       TEXT NOT NULL,
            birth_date   TEXT,
            joined       TEXT,
            category     TEXT NOT NULL,
            group_name   TEXT,
            post         TEXT,
            phone        TEXT,
            status       TEXT NOT NULL,
            status_since TEXT
        );
        CREATE INDEX idx_members_by_branch ON idx_members (branch_id, status);
        CREATE TABLE idx_member_files (
            doc_id    TEXT PRIMARY KEY,
            branch_id TEXT NOT NULL,
            member_id TEXT NOT NULL
        );
        CREATE INDEX idx_member_files_by_member ON idx_member_files (member_id);
        CREATE TABLE idx_activities (
            doc_id     TEXT PRIMARY KEY,
            branch_id  TEXT NOT NULL,
            kind       TEXT NOT NULL,
            title      TEXT NOT NULL,
            starts_at  TEXT NOT NULL,
            ends_at    TEXT NOT NULL,
            place      TEXT,
            organizer  TEXT,
            group_name TEXT,
            status     TEXT NOT NULL,
            sign_ins   INTEGER NOT NULL,
            leaves     INTEGER NOT NULL
        );
        CREATE INDEX idx_activities_by_start ON idx_activities (branch_id, starts_at);
        CREATE INDEX idx_activities_by_kind ON idx_activities (branch_id, kind, starts_at);
        CREATE TABLE idx_activity_branches (
            branch_id TEXT NOT NULL,
            doc_id    TEXT NOT NULL,
            PRIMARY KEY (branch_id, doc_id)
        ) WITHOUT ROWID;
        CREATE TABLE idx_attendance (
            doc_id    TEXT NOT NULL,
            member_id TEXT NOT NULL,
            state     TEXT NOT NULL,
            mode      TEXT,
            at        INTEGER NOT NULL,
            PRIMARY KEY (doc_id, member_id)
        ) WITHOUT ROWID;
        CREATE INDEX idx_attendance_by_member ON idx_attendance (member_id);
        CREATE TABLE idx_petitions (
            doc_id         TEXT PRIMARY KEY,
            branch_id      TEXT NOT NULL,
            category       TEXT NOT NULL,
            title          TEXT NOT NULL,
            status         TEXT NOT NULL,
            owner          TEXT,
            deadline       TEXT,
            submitted_at   INTEGER NOT NULL,
            resolved_at    INTEGER,
            rating         INTEGER,
            progress_count INTEGER NOT NULL
        );
        CREATE INDEX idx_petitions_by_status ON idx_petitions (branch_id, status, deadline);
        CREATE INDEX idx_petitions_by_owner ON idx_petitions (owner);
        CREATE TABLE idx_conflicts (
            doc_id TEXT NOT NULL,
            path   TEXT NOT NULL,
            PRIMARY KEY (doc_id, path)
        ) WITHOUT ROWID;
        ",
        rebuilds_index: true,
    },
    // 3: syncing with a server: the device's account, per-document sync states, and
    // received changes that cannot be stored yet.
    Migration {
        sql: "
        CREATE TABLE account (
            singleton   INTEGER PRIMARY KEY CHECK (singleton = 1),
            server      TEXT NOT NULL,
            cert_sha256 BLOB NOT NULL,
            device_id   TEXT NOT NULL,
            secret      BLOB NOT NULL,
            branch_id   TEXT NOT NULL,
            member_id   TEXT,
            role        TEXT NOT NULL,
            device_name TEXT NOT NULL
        );
        CREATE TABLE sync_states (
            peer   TEXT NOT NULL,
            doc_id TEXT NOT NULL,
            state  BLOB NOT NULL,
            PRIMARY KEY (peer, doc_id)
        ) WITHOUT ROWID;
        CREATE TABLE sync_pending (
            doc_id TEXT NOT NULL,
            seq    INTEGER NOT NULL,
            data   BLOB NOT NULL,
            PRIMARY KEY (doc_id, seq)
        );
        ",
        rebuilds_index: false,
    },
    // 4: changes a server refused, dropped from their documents, for the app to show.
    Migration {
        sql: "
        CREATE TABLE rejections (
            id          INTEGER PRIMARY KEY,
            doc_id      TEXT NOT NULL,
            kind        TEXT NOT NULL,
            change_hash BLOB NOT NULL,
            code        TEXT NOT NULL,
            message     TEXT NOT NULL,
            at          INTEGER NOT NULL,
            dropped     INTEGER NOT NULL,
            replayed    INTEGER NOT NULL,
            removed     INTEGER NOT NULL
        );
        ",
        rebuilds_index: false,
    },
    // 5: the branch's name from the Welcome, so the device can show which branch it
    // joined; and who a revoked device was, so it still reads its records (only
    // reads) and says it was revoked after the account is forgotten.
    Migration {
        sql: "
        ALTER TABLE account ADD COLUMN branch_name TEXT;
        CREATE TABLE revocation (
            singleton     INTEGER PRIMARY KEY CHECK (singleton = 1),
            device_id     TEXT NOT NULL,
            branch_id     TEXT NOT NULL,
            branch_name   TEXT,
            revoked_at_ms INTEGER NOT NULL
        );
        ",
        rebuilds_index: false,
    },
    // 6: the branch work: dues, points, applicants, the problem library; and awards
    // made at activities, which are now entries.
    Migration {
        sql: "
        CREATE TABLE idx_yearly (
            doc_id    TEXT PRIMARY KEY,
            kind      TEXT NOT NULL,
            branch_id TEXT NOT NULL,
            year      INTEGER NOT NULL
        );
        CREATE INDEX idx_yearly_by_branch ON idx_yearly (branch_id, kind, year);
        CREATE TABLE idx_dues_monthly (
            doc_id    TEXT NOT NULL,
            member_id TEXT NOT NULL,
            fen       INTEGER NOT NULL,
            PRIMARY KEY (doc_id, member_id)
        );
        CREATE TABLE idx_dues_payments (
            doc_id      TEXT NOT NULL,
            entry_id    TEXT NOT NULL,
            branch_id   TEXT NOT NULL,
            year        INTEGER NOT NULL,
            member_id   TEXT NOT NULL,
            first_month INTEGER NOT NULL,
            last_month  INTEGER NOT NULL,
            amount_fen  INTEGER NOT NULL,
            paid_on     TEXT NOT NULL,
            voided_on   TEXT,
            void_reason TEXT,
            PRIMARY KEY (doc_id, entry_id)
        );
        CREATE INDEX idx_dues_payments_by_year ON idx_dues_payments (branch_id, year);
        CREATE TABLE idx_dues_spending (
            doc_id      TEXT NOT NULL,
            entry_id    TEXT NOT NULL,
            branch_id   TEXT NOT NULL,
            year        INTEGER NOT NULL,
            amount_fen  INTEGER NOT NULL,
            category    TEXT NOT NULL,
            purpose     TEXT NOT NULL,
            approved_by TEXT NOT NULL,
            spent_on    TEXT NOT NULL,
            PRIMARY KEY (doc_id, entry_id)
        );
        CREATE TABLE idx_awards (
            doc_id    TEXT NOT NULL,
            entry_id  TEXT NOT NULL,
            branch_id TEXT NOT NULL,
            member_id TEXT NOT NULL,
            points    INTEGER NOT NULL,
            rule      TEXT,
            reason    TEXT,
            on_day    TEXT NOT NULL,
            PRIMARY KEY (doc_id, entry_id)
        );
        CREATE INDEX idx_awards_by_member ON idx_awards (member_id, on_day);
        CREATE TABLE idx_thought_reports (
            doc_id    TEXT NOT NULL,
            entry_id  TEXT NOT NULL,
            branch_id TEXT NOT NULL,
            member_id TEXT NOT NULL,
            due       TEXT NOT NULL,
            received  TEXT NOT NULL,
            PRIMARY KEY (doc_id, entry_id)
        );
        CREATE INDEX idx_thought_reports_by_member ON idx_thought_reports (member_id, received);
        CREATE TABLE idx_applicants (
            doc_id      TEXT PRIMARY KEY,
            branch_id   TEXT NOT NULL,
            member_id   TEXT NOT NULL,
            stage       TEXT NOT NULL,
            stage_on    TEXT NOT NULL,
            introducers TEXT NOT NULL
        );
        CREATE INDEX idx_applicants_by_member ON idx_applicants (member_id);
        CREATE TABLE idx_library (
            doc_id      TEXT PRIMARY KEY,
            branch_id   TEXT NOT NULL,
            collection  TEXT NOT NULL,
            title       TEXT NOT NULL,
            written_on  TEXT NOT NULL,
            tags        TEXT NOT NULL,
            shared_down INTEGER NOT NULL
        );
        ",
        rebuilds_index: true,
    },
];

/// The store schema version this build creates.
pub(crate) const STORE_VERSION: i64 = MIGRATIONS.len() as i64;

/// What [`migrate`] did.
pub(crate) struct Migrated {
    /// The index tables changed shape and must be rebuilt from the documents.
    pub(crate) rebuild_index: bool,
}

/// Brings the database up to [`STORE_VERSION`], or to `target` in tests.
pub(crate) fn migrate(tx: &Transaction, target: i64) -> Result<Migrated> {
    let app_id: i64 = tx.query_row("PRAGMA application_id", [], |r| r.get(0))?;
    let version: i64 = tx.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if app_id != APPLICATION_ID {
        let tables: i64 = tx.query_row("SELECT count(*) FROM sqlite_master", [], |r| r.get(0))?;
        if tables > 0 || version != 0 {
            return Err(Error::NotAStore(
                "the database belongs to another application".into(),
            ));
        }
        tx.pragma_update(None, "application_id", APPLICATION_ID)?;
    }
    if version > STORE_VERSION {
        return Err(Error::StoreTooNew {
            found: version,
            supported: STORE_VERSION,
        });
    }
    let mut rebuild_index = false;
    for (n, migration) in MIGRATIONS
        .iter()
        .enumerate()
        .take(target as usize)
        .skip(version as usize)
    {
        tracing::info!(to = n + 1, "migrating local store");
        tx.execute_batch(migration.sql)?;
        rebuild_index |= migration.rebuilds_index && version > 0;
    }
    tx.pragma_update(None, "user_version", target.max(version))?;
    Ok(Migrated { rebuild_index })
}
