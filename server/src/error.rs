//! The server's error type, with a stable code per variant for the admin CLI.

use branchline_protocol::{DeviceId, DocId};

/// Everything that can go wrong in the server's storage and administration.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The database file belongs to something else (wrong `application_id`).
    #[error("{0} is not a Branchline server database")]
    NotAServerDatabase(String),
    /// The database was written by a newer server build.
    #[error("the database has schema version {found}; this build knows up to {supported}")]
    SchemaTooNew {
        /// The version in the file.
        found: i64,
        /// The newest version this build knows.
        supported: i64,
    },
    /// No branch with this id.
    #[error("unknown branch {0}")]
    UnknownBranch(String),
    /// No device with this id.
    #[error("unknown device {0}")]
    UnknownDevice(DeviceId),
    /// A stored document could not be read back.
    #[error("document {doc} is corrupt: {reason}")]
    CorruptDocument {
        /// The document.
        doc: DocId,
        /// What failed.
        reason: String,
    },
    /// A value stored in the database is unreadable.
    #[error("corrupt database value: {0}")]
    Corrupt(String),
    /// An argument was out of range (an empty name, a zero validity…).
    #[error("invalid {what}: {reason}")]
    Invalid {
        /// Which argument.
        what: &'static str,
        /// Why.
        reason: String,
    },
    /// Creating a document with the core model failed.
    #[error("document model: {0}")]
    Model(#[from] branchline_core::Error),
    /// The certificate or key could not be created or read.
    #[error("certificate: {0}")]
    Certificate(String),
    /// The storage writer thread has stopped (the server is shutting down).
    #[error("the storage writer has stopped")]
    WriterStopped,
    /// The transaction holding this write failed to commit.
    #[error("commit failed: {0}")]
    CommitFailed(String),
    /// The server could not listen on its address.
    #[error("cannot listen on {addr}: {reason}")]
    Listen {
        /// The address.
        addr: std::net::SocketAddr,
        /// Why.
        reason: String,
    },
    /// A background task failed (panicked or was cancelled).
    #[error("internal: {0}")]
    Internal(String),
    /// The store already holds the one document of this kind its branch
    /// may have.
    #[error("the branch already has this document: {0}")]
    AlreadyExists(DocId),
    /// The document changed in the store since this writer loaded it (another
    /// server process wrote it); the writer reloads and tries again.
    #[error("document {0} changed meanwhile")]
    Stale(DocId),
    /// A limit on submissions was reached (the limit).
    #[error("limit of {0} reached")]
    LimitReached(u32),
    /// The database failed.
    #[error("database: {0}")]
    Database(String),
    /// A file operation failed.
    #[error("file: {0}")]
    Io(#[from] std::io::Error),
}

impl Error {
    /// A stable code for programs and translations, e.g. `"admin.unknown_branch"`.
    pub fn code(&self) -> &'static str {
        match self {
            Error::NotAServerDatabase(_) => "db.not_a_server_database",
            Error::SchemaTooNew { .. } => "db.schema_too_new",
            Error::UnknownBranch(_) => "admin.unknown_branch",
            Error::UnknownDevice(_) => "admin.unknown_device",
            Error::CorruptDocument { .. } => "db.corrupt_document",
            Error::Corrupt(_) => "db.corrupt",
            Error::Invalid { .. } => "input.invalid",
            Error::Model(_) => "model.error",
            Error::Certificate(_) => "tls.certificate",
            Error::WriterStopped => "server.stopping",
            Error::CommitFailed(_) => "db.commit_failed",
            Error::Listen { .. } => "server.cannot_listen",
            Error::Internal(_) => "server.internal",
            Error::AlreadyExists(_) => "db.already_exists",
            Error::Stale(_) => "db.stale",
            Error::LimitReached(_) => "request.rate_limited",
            Error::Database(_) => "db.error",
            Error::Io(_) => "io.error",
        }
    }
}

impl Error {
    /// The code a device is sent when this failure stops a request: a
    /// database that cannot be reached or written is `server.unavailable`
    /// (nothing was stored; the device tries again), anything else
    /// `server.internal`.
    pub fn wire_code(&self) -> branchline_protocol::ErrorCode {
        use branchline_protocol::ErrorCode;
        match self {
            Error::Database(_) | Error::CommitFailed(_) | Error::WriterStopped | Error::Io(_) => {
                ErrorCode::Unavailable
            }
            _ => ErrorCode::Internal,
        }
    }
}

impl From<rusqlite::Error> for Error {
    fn from(e: rusqlite::Error) -> Self {
        Error::Database(e.to_string())
    }
}

/// The server's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
