//! The server database: one SQLite file in the data directory.
//!
//! WAL mode with `synchronous = FULL`, so a committed transaction has reached
//! the disk (fsync) before the commit returns: an `Ack` is only ever sent
//! after such a commit. `application_id` marks the file as ours, and
//! `PRAGMA user_version` counts the numbered migrations applied; each
//! migration runs in its own transaction, so a database is never half
//! migrated.
//!
//! Ids are stored as their canonical text (lowercase hyphenated UUID), whose
//! order is also their byte order.

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rusqlite::{Connection, OpenFlags};

use crate::error::{Error, Result};
use crate::sql::Sql;

/// `PRAGMA application_id` of a Branchline server database ("BRLS").
pub(crate) const APPLICATION_ID: i64 = 0x4252_4C53;

/// The file name of the database inside the data directory.
pub(crate) const FILE_NAME: &str = "server.sqlite3";

/// The numbered migrations; `user_version` is how many have run.
const MIGRATIONS: &[&str] = &[
    // 1: branches, enrollment, documents, sync states, audit.
    "
    CREATE TABLE server_info (
        key   TEXT PRIMARY KEY,
        value BLOB NOT NULL
    );
    CREATE TABLE branches (
        branch_id     TEXT PRIMARY KEY,
        name          TEXT NOT NULL,
        level         TEXT NOT NULL,
        parent_id     TEXT REFERENCES branches (branch_id),
        created_at_ms INTEGER NOT NULL
    );
    CREATE TABLE invites (
        code_hash     BLOB PRIMARY KEY,
        branch_id     TEXT NOT NULL REFERENCES branches (branch_id),
        role          TEXT NOT NULL,
        member_id     TEXT,
        created_by    TEXT,
        created_at_ms INTEGER NOT NULL,
        expires_at_ms INTEGER NOT NULL,
        used_at_ms    INTEGER,
        used_by       TEXT
    ) WITHOUT ROWID;
    CREATE TABLE devices (
        device_id     TEXT PRIMARY KEY,
        branch_id     TEXT NOT NULL REFERENCES branches (branch_id),
        role          TEXT NOT NULL,
        member_id     TEXT,
        name          TEXT NOT NULL,
        secret_hash   BLOB NOT NULL,
        actor_id      BLOB NOT NULL,
        enrolled_at_ms INTEGER NOT NULL,
        last_seen_ms  INTEGER,
        revoked_at_ms INTEGER,
        revoked_seq   INTEGER
    );
    CREATE INDEX devices_by_branch ON devices (branch_id);
    CREATE INDEX devices_revoked ON devices (revoked_seq) WHERE revoked_seq IS NOT NULL;
    CREATE TABLE actors (
        actor_id  BLOB PRIMARY KEY,
        device_id TEXT NOT NULL REFERENCES devices (device_id)
    ) WITHOUT ROWID;
    CREATE TABLE documents (
        doc_id           TEXT PRIMARY KEY,
        kind             TEXT NOT NULL,
        branch_id        TEXT NOT NULL,
        shared_with      TEXT NOT NULL DEFAULT '[]',
        owner_member     TEXT,
        submitter_member TEXT,
        subject_member   TEXT,
        creator_device   TEXT,
        heads            BLOB NOT NULL,
        snapshot         BLOB NOT NULL,
        snapshot_len     INTEGER NOT NULL,
        chunks_len       INTEGER NOT NULL DEFAULT 0,
        next_chunk       INTEGER NOT NULL DEFAULT 0,
        change_seq       INTEGER NOT NULL,
        created_at_ms    INTEGER NOT NULL,
        updated_at_ms    INTEGER NOT NULL
    );
    CREATE INDEX documents_by_seq ON documents (change_seq);
    CREATE INDEX documents_to_compact ON documents (doc_id) WHERE chunks_len > snapshot_len;
    CREATE TABLE doc_chunks (
        doc_id TEXT NOT NULL REFERENCES documents (doc_id) ON DELETE CASCADE,
        seq    INTEGER NOT NULL,
        data   BLOB NOT NULL,
        PRIMARY KEY (doc_id, seq)
    ) WITHOUT ROWID;
    CREATE TABLE sync_states (
        device_id     TEXT NOT NULL,
        doc_id        TEXT NOT NULL,
        state         BLOB NOT NULL,
        updated_at_ms INTEGER NOT NULL,
        PRIMARY KEY (device_id, doc_id)
    ) WITHOUT ROWID;
    CREATE TABLE audit (
        id          INTEGER PRIMARY KEY AUTOINCREMENT,
        at_ms       INTEGER NOT NULL,
        event       TEXT NOT NULL,
        device_id   TEXT,
        member_id   TEXT,
        branch_id   TEXT,
        doc_id      TEXT,
        code        TEXT,
        change_hash BLOB,
        actor_id    BLOB,
        detail      TEXT NOT NULL DEFAULT ''
    );
    ",
    // 2: alliances of partner branches (结对共建 / 党建联盟).
    "
    CREATE TABLE alliances (
        alliance_id   TEXT PRIMARY KEY,
        name          TEXT NOT NULL,
        created_at_ms INTEGER NOT NULL
    );
    CREATE TABLE alliance_branches (
        alliance_id TEXT NOT NULL REFERENCES alliances (alliance_id),
        branch_id   TEXT NOT NULL REFERENCES branches (branch_id),
        position    INTEGER NOT NULL,
        PRIMARY KEY (alliance_id, branch_id)
    ) WITHOUT ROWID;
    CREATE INDEX alliance_branches_by_branch ON alliance_branches (branch_id);
    ",
    // 3: a branch's public submission code (民情直通车 posters), and an index
    // so rate limits can count recent audit events of one kind.
    //
    // `submission_codes` holds at most one code per branch. The code is
    // public (printed on posters and QR codes), so unlike an invite code it
    // is stored as text; rotating it replaces the row, and the old code
    // stops working at once.
    "
    CREATE TABLE submission_codes (
        branch_id     TEXT PRIMARY KEY REFERENCES branches (branch_id),
        code          TEXT NOT NULL UNIQUE,
        created_at_ms INTEGER NOT NULL
    ) WITHOUT ROWID;
    CREATE INDEX audit_by_event ON audit (event, at_ms);
    ",
    // 4: whether a library entry is shared with every branch below its own
    // (0 or 1), an access attribute beside `shared_with`. Rows stored before
    // say 0, which shares less, never more; the next write of such a
    // document sets it from its content.
    "
    ALTER TABLE documents ADD COLUMN shared_down INTEGER NOT NULL DEFAULT 0;
    ",
];

/// Where a data directory's database is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Location {
    /// The embedded SQLite file (the default).
    Sqlite(std::path::PathBuf),
    /// A PostgreSQL server, by URL.
    Postgres(String),
}

/// The file in the data directory that names a PostgreSQL database; absent,
/// the data directory holds its own SQLite database.
pub(crate) const DATABASE_URL_FILE: &str = "database.url";

impl Location {
    /// The database `data_dir` uses.
    pub(crate) fn of(data_dir: &Path) -> Result<Location> {
        let named = data_dir.join(DATABASE_URL_FILE);
        match std::fs::read_to_string(&named) {
            Ok(text) => {
                let url = text.trim();
                if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
                    return Err(Error::Invalid {
                        what: "database",
                        reason: format!(
                            "{} must hold a postgres:// URL, not {:?}",
                            named.display(),
                            url.chars().take(40).collect::<String>()
                        ),
                    });
                }
                Ok(Location::Postgres(url.to_owned()))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                Ok(Location::Sqlite(data_dir.join(FILE_NAME)))
            }
            Err(e) => Err(e.into()),
        }
    }
}

/// The schema version this build writes.
pub(crate) const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// Opens (creating and migrating if needed) the database at `path`.
pub(crate) fn open(path: &Path) -> Result<Connection> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_CREATE
        | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let mut conn = Connection::open_with_flags(path, flags)?;
    let not_ours = |e: rusqlite::Error| match e.sqlite_error_code() {
        Some(rusqlite::ErrorCode::NotADatabase) => {
            Error::NotAServerDatabase(path.display().to_string())
        }
        _ => Error::from(e),
    };
    // Another process (the admin CLI next to a running server) may hold the
    // write lock for a moment; wait rather than fail.
    conn.busy_timeout(Duration::from_secs(10))?;
    conn.pragma_update(None, "journal_mode", "WAL")
        .map_err(not_ours)?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    migrate(&mut conn, path)?;
    Ok(conn)
}

/// Opens another connection to a database [`open`] already prepared, for
/// reading: no migration, so opening it never takes the write lock.
pub(crate) fn open_reader(path: &Path) -> Result<Connection> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags)?;
    conn.busy_timeout(Duration::from_secs(10))?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    Ok(conn)
}

fn migrate(conn: &mut Connection, path: &Path) -> Result<()> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let app_id: i64 = tx.query_row("PRAGMA application_id", [], |r| r.get(0))?;
    let version: i64 = tx.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if app_id == 0 {
        let tables: i64 = tx.query_row("SELECT count(*) FROM sqlite_master", [], |r| r.get(0))?;
        if tables > 0 {
            return Err(Error::NotAServerDatabase(path.display().to_string()));
        }
        tx.pragma_update(None, "application_id", APPLICATION_ID)?;
    } else if app_id != APPLICATION_ID {
        return Err(Error::NotAServerDatabase(path.display().to_string()));
    }
    if version > SCHEMA_VERSION {
        return Err(Error::SchemaTooNew {
            found: version,
            supported: SCHEMA_VERSION,
        });
    }
    for (number, sql) in MIGRATIONS.iter().enumerate().skip(version as usize) {
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", number as i64 + 1)?;
    }
    if get_info(&tx, "actor_id")?.is_none() {
        // The server's own automerge actor, for the documents it writes
        // itself (a new branch's profile and roster).
        let actor: [u8; 16] = rand::random();
        set_info(&tx, "actor_id", &actor)?;
    }
    tx.commit()?;
    Ok(())
}

/// A value from `server_info`.
pub(crate) fn get_info(conn: &dyn Sql, key: &str) -> Result<Option<Vec<u8>>> {
    conn.query_opt(
        "SELECT value FROM server_info WHERE key = ?1",
        crate::sql::params![key],
    )?
    .map(|row| row.blob(0))
    .transpose()
}

/// Sets a value in `server_info`.
pub(crate) fn set_info(conn: &dyn Sql, key: &str, value: &[u8]) -> Result<()> {
    conn.execute(
        "INSERT INTO server_info (key, value) VALUES (?1, ?2)
         ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        crate::sql::params![key, value],
    )?;
    Ok(())
}

/// Milliseconds since the Unix epoch, now.
/// Whether the server knows the branch `branch` (any id type that prints as
/// the stored text).
pub(crate) fn branch_known(conn: &dyn Sql, branch: &impl std::fmt::Display) -> Result<bool> {
    Ok(conn
        .query_opt(
            "SELECT 1 FROM branches WHERE branch_id = ?1",
            crate::sql::params![&branch.to_string()],
        )?
        .is_some())
}

/// Whether branches `a` and `b` belong to one alliance (partner branches
/// that share joint activities).
pub(crate) fn allied(
    conn: &dyn Sql,
    a: branchline_protocol::BranchId,
    b: branchline_protocol::BranchId,
) -> Result<bool> {
    Ok(conn
        .query_opt(
            "SELECT 1 FROM alliance_branches x JOIN alliance_branches y USING (alliance_id)
             WHERE x.branch_id = ?1 AND y.branch_id = ?2 LIMIT 1",
            crate::sql::params![&a.to_string(), &b.to_string()],
        )?
        .is_some())
}

pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Parses an id stored as text.
pub(crate) fn parse_id<T: std::str::FromStr>(text: &str) -> Result<T> {
    text.parse()
        .map_err(|_| Error::Corrupt(format!("stored id {text:?}")))
}

/// Parses an optional id stored as text.
pub(crate) fn parse_opt_id<T: std::str::FromStr>(text: Option<String>) -> Result<Option<T>> {
    text.as_deref().map(parse_id).transpose()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fresh_database_is_marked_and_migrated_and_reopens() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE_NAME);
        let conn = open(&path).unwrap();
        let app: i64 = conn
            .query_row("PRAGMA application_id", [], |r| r.get(0))
            .unwrap();
        let version: i64 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!((app, version), (APPLICATION_ID, SCHEMA_VERSION));
        let actor = get_info(&conn, "actor_id").unwrap().unwrap();
        drop(conn);
        let conn = open(&path).unwrap();
        assert_eq!(get_info(&conn, "actor_id").unwrap().unwrap(), actor);
        let mode: String = conn
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
    }

    #[test]
    fn foreign_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let other = dir.path().join("other.sqlite3");
        Connection::open(&other)
            .unwrap()
            .execute_batch("CREATE TABLE t (x); PRAGMA application_id = 7;")
            .unwrap();
        assert!(matches!(open(&other), Err(Error::NotAServerDatabase(_))));

        let unmarked = dir.path().join("unmarked.sqlite3");
        Connection::open(&unmarked)
            .unwrap()
            .execute_batch("CREATE TABLE t (x);")
            .unwrap();
        assert!(matches!(open(&unmarked), Err(Error::NotAServerDatabase(_))));

        let text = dir.path().join("notes.txt");
        std::fs::write(&text, vec![b'x'; 4096]).unwrap();
        assert!(matches!(open(&text), Err(Error::NotAServerDatabase(_))));
    }

    #[test]
    fn a_version_1_database_upgrades_to_the_fresh_schema() {
        let dir = tempfile::tempdir().unwrap();
        let old = dir.path().join("old.sqlite3");
        {
            let conn = Connection::open(&old).unwrap();
            conn.pragma_update(None, "application_id", APPLICATION_ID)
                .unwrap();
            conn.execute_batch(MIGRATIONS[0]).unwrap();
            conn.pragma_update(None, "user_version", 1).unwrap();
            conn.execute(
                "INSERT INTO branches (branch_id, name, level, created_at_ms)
                 VALUES ('b', '一支部', 'branch', 1)",
                [],
            )
            .unwrap();
        }
        let upgraded = open(&old).unwrap();
        let fresh = open(&dir.path().join("fresh.sqlite3")).unwrap();
        let schema = |conn: &Connection| -> Vec<(String, String)> {
            let mut stmt = conn
                .prepare(
                    "SELECT name, sql FROM sqlite_master WHERE sql IS NOT NULL
                     ORDER BY type, name",
                )
                .unwrap();
            stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
                .unwrap()
                .collect::<rusqlite::Result<_>>()
                .unwrap()
        };
        assert_eq!(schema(&upgraded), schema(&fresh));
        let version: i64 = upgraded
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(version, SCHEMA_VERSION);
        let kept: String = upgraded
            .query_row("SELECT name FROM branches", [], |r| r.get(0))
            .unwrap();
        assert_eq!(kept, "一支部");
    }

    #[test]
    fn newer_schema_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE_NAME);
        open(&path)
            .unwrap()
            .pragma_update(None, "user_version", SCHEMA_VERSION + 1)
            .unwrap();
        assert!(matches!(open(&path), Err(Error::SchemaTooNew { .. })));
    }
}
