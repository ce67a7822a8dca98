//! The PostgreSQL schema, as numbered migrations.
//!
//! The tables and columns are those of the SQLite schema (`crate::db`), in
//! types both engines read the same way (text, `bigint`, `bytea`), plus
//! what several writers need: sequences for the change and revocation
//! positions, and the id of the transaction that wrote each (`xid8`), by
//! which a reader knows which positions may still appear below the highest
//! it saw. `schema_migrations` counts the migrations applied; each runs in
//! its own transaction under an advisory lock, so nodes starting together
//! migrate once.

use tokio_postgres::Client;

/// The numbered migrations.
const MIGRATIONS: &[&str] = &[
    // 1: everything the SQLite schema holds at its version 3.
    "
    CREATE TABLE server_info (
        key   TEXT PRIMARY KEY,
        value BYTEA NOT NULL
    );
    CREATE TABLE branches (
        branch_id     TEXT PRIMARY KEY,
        name          TEXT NOT NULL,
        level         TEXT NOT NULL,
        parent_id     TEXT REFERENCES branches (branch_id),
        created_at_ms BIGINT NOT NULL
    );
    CREATE TABLE invites (
        code_hash     BYTEA PRIMARY KEY,
        branch_id     TEXT NOT NULL REFERENCES branches (branch_id),
        role          TEXT NOT NULL,
        member_id     TEXT,
        created_by    TEXT,
        created_at_ms BIGINT NOT NULL,
        expires_at_ms BIGINT NOT NULL,
        used_at_ms    BIGINT,
        used_by       TEXT
    );
    CREATE SEQUENCE revocation_seq;
    CREATE TABLE devices (
        device_id      TEXT PRIMARY KEY,
        branch_id      TEXT NOT NULL REFERENCES branches (branch_id),
        role           TEXT NOT NULL,
        member_id      TEXT,
        name           TEXT NOT NULL,
        secret_hash    BYTEA NOT NULL,
        actor_id       BYTEA NOT NULL,
        enrolled_at_ms BIGINT NOT NULL,
        last_seen_ms   BIGINT,
        revoked_at_ms  BIGINT,
        revoked_seq    BIGINT,
        revoked_xid    XID8
    );
    CREATE INDEX devices_by_branch ON devices (branch_id);
    CREATE INDEX devices_revoked ON devices (revoked_seq) WHERE revoked_seq IS NOT NULL;
    CREATE INDEX devices_revoked_xid ON devices (revoked_xid) WHERE revoked_xid IS NOT NULL;
    CREATE TABLE actors (
        actor_id  BYTEA PRIMARY KEY,
        device_id TEXT NOT NULL REFERENCES devices (device_id)
    );
    CREATE SEQUENCE change_seq;
    CREATE TABLE documents (
        doc_id           TEXT PRIMARY KEY,
        kind             TEXT NOT NULL,
        branch_id        TEXT NOT NULL,
        shared_with      TEXT NOT NULL DEFAULT '[]',
        owner_member     TEXT,
        submitter_member TEXT,
        subject_member   TEXT,
        creator_device   TEXT,
        heads            BYTEA NOT NULL,
        snapshot         BYTEA NOT NULL,
        snapshot_len     BIGINT NOT NULL,
        chunks_len       BIGINT NOT NULL DEFAULT 0,
        next_chunk       BIGINT NOT NULL DEFAULT 0,
        change_seq       BIGINT NOT NULL,
        change_xid       XID8 NOT NULL DEFAULT pg_current_xact_id(),
        created_at_ms    BIGINT NOT NULL,
        updated_at_ms    BIGINT NOT NULL
    );
    CREATE INDEX documents_by_seq ON documents (change_seq);
    CREATE INDEX documents_by_xid ON documents (change_xid);
    CREATE INDEX documents_by_kind ON documents (branch_id, kind);
    CREATE INDEX documents_to_compact ON documents (doc_id) WHERE chunks_len > snapshot_len;
    CREATE TABLE doc_chunks (
        doc_id TEXT NOT NULL REFERENCES documents (doc_id) ON DELETE CASCADE,
        seq    BIGINT NOT NULL,
        data   BYTEA NOT NULL,
        PRIMARY KEY (doc_id, seq)
    );
    CREATE TABLE sync_states (
        device_id     TEXT NOT NULL,
        doc_id        TEXT NOT NULL,
        state         BYTEA NOT NULL,
        updated_at_ms BIGINT NOT NULL,
        PRIMARY KEY (device_id, doc_id)
    );
    CREATE TABLE audit (
        id          BIGSERIAL PRIMARY KEY,
        at_ms       BIGINT NOT NULL,
        event       TEXT NOT NULL,
        device_id   TEXT,
        member_id   TEXT,
        branch_id   TEXT,
        doc_id      TEXT,
        code        TEXT,
        change_hash BYTEA,
        actor_id    BYTEA,
        detail      TEXT NOT NULL DEFAULT ''
    );
    CREATE INDEX audit_by_event ON audit (event, at_ms);
    CREATE TABLE alliances (
        alliance_id   TEXT PRIMARY KEY,
        name          TEXT NOT NULL,
        created_at_ms BIGINT NOT NULL
    );
    CREATE TABLE alliance_branches (
        alliance_id TEXT NOT NULL REFERENCES alliances (alliance_id),
        branch_id   TEXT NOT NULL REFERENCES branches (branch_id),
        position    BIGINT NOT NULL,
        PRIMARY KEY (alliance_id, branch_id)
    );
    CREATE INDEX alliance_branches_by_branch ON alliance_branches (branch_id);
    CREATE TABLE submission_codes (
        branch_id     TEXT PRIMARY KEY REFERENCES branches (branch_id),
        code          TEXT NOT NULL UNIQUE,
        created_at_ms BIGINT NOT NULL
    );
    ",
    // 2: the SQLite schema's version 4, a library entry's `shared_down`
    // (0 or 1, as SQLite keeps it).
    "
    ALTER TABLE documents ADD COLUMN shared_down BIGINT NOT NULL DEFAULT 0;
    ",
];

/// The schema version this build writes.
pub(crate) const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// An advisory lock key for migrations ("BRLS").
const MIGRATION_LOCK: i64 = 0x4252_4C53;

/// Why a database cannot be migrated.
#[derive(Debug)]
pub(crate) enum MigrateError {
    /// The database said no.
    Database(tokio_postgres::Error),
    /// A newer build migrated it.
    TooNew(i64),
}

impl From<tokio_postgres::Error> for MigrateError {
    fn from(e: tokio_postgres::Error) -> Self {
        MigrateError::Database(e)
    }
}

impl From<MigrateError> for crate::Error {
    fn from(e: MigrateError) -> Self {
        match e {
            MigrateError::Database(e) => crate::Error::from(e),
            MigrateError::TooNew(found) => crate::Error::SchemaTooNew {
                found,
                supported: SCHEMA_VERSION,
            },
        }
    }
}

/// Applies the migrations the database lacks.
pub(crate) async fn run(client: &mut Client) -> Result<(), MigrateError> {
    client
        .query("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK])
        .await?;
    let outcome = apply(client).await;
    client
        .query("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK])
        .await?;
    outcome
}

async fn apply(client: &mut Client) -> Result<(), MigrateError> {
    client
        .batch_execute("CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT NOT NULL)")
        .await?;
    let version: i64 = client
        .query_one(
            "SELECT coalesce(max(version), 0) FROM schema_migrations",
            &[],
        )
        .await?
        .try_get(0)?;
    if version > SCHEMA_VERSION {
        return Err(MigrateError::TooNew(version));
    }
    for (number, sql) in MIGRATIONS.iter().enumerate().skip(version as usize) {
        let tx = client.transaction().await?;
        tx.batch_execute(sql).await?;
        tx.execute(
            "INSERT INTO schema_migrations (version) VALUES ($1)",
            &[&(number as i64 + 1)],
        )
        .await?;
        tx.commit().await?;
    }
    Ok(())
}
