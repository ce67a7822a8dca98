//! `branchline-server`: the central server every branch device syncs with.
//!
//! A device connects over QUIC (TLS 1.3, ALPN `branchline/1`), proves who it
//! is with an invite (first run) or its device id and secret, and then syncs
//! documents as `docs/sync-design.md` describes: a manifest exchange to find
//! what differs, one stream per document running the automerge sync
//! protocol, and live `DocChanged` notices.
//!
//! - [`access`]: who may read and write which document (pure functions).
//! - `auth`: invites, device credentials, revocation.
//! - `storage`: documents as snapshot plus chunks, written durably by one
//!   writer thread with group commit before any `Ack`; an in-memory catalog
//!   for manifests; a bounded cache of loaded documents.
//! - [`server_core`]: the server's side of the protocol, once, without
//!   I/O: what it answers to every event of a connection. The QUIC session
//!   and the simulations drive the same core.
//! - [`store`]: the storage traits the core speaks; `storage` is their
//!   SQLite implementation.
//! - `session`: the QUIC driver of one connection over the core.
//! - [`endpoint`]: the QUIC endpoint, admission control, graceful shutdown.
//! - [`admin`]: branches, invites, devices and the audit log, straight on the
//!   database (the CLI uses it, with or without a running server).
//! - [`audit`]: the audit log.
//! - `submissions`: resident petitions and feedback-box suggestions the
//!   server writes itself, with their validation and rate limits.

pub mod access;
pub mod admin;
pub mod audit;
mod auth;
mod config;
mod db;
pub mod endpoint;
mod error;
mod hub;
pub mod pg_cluster;
mod postgres;
pub mod rules;
pub mod server_core;
mod session;
mod sql;
mod storage;
pub mod store;
mod submissions;
mod tls;

pub use admin::{Admin, BranchInfo, DeviceInfo};
pub use audit::AuditEntry;
pub use auth::parse_role;
pub use config::ServerConfig;
pub use endpoint::{RunningServer, Server, close_code};
pub use error::{Error, Result};
