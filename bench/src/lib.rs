//! Branchline beside samod (automerge-repo in Rust), on the same workloads, in
//! the same run, on the same machine.
//!
//! # Method
//!
//! - **Servers run in a child process** (this binary re-executed as
//!   `branchline-bench serve <system> <dir>`), one fresh process per
//!   measurement, so that the server's CPU time (`utime + stime` from
//!   `/proc/<pid>/stat`) and its memory (`VmRSS`, peak `VmHWM` from
//!   `/proc/<pid>/status`) are the server's alone. Devices run in this process.
//! - **Branchline**: the real server ([`branchline_server::Server`]) over QUIC
//!   with TLS 1.3 on 127.0.0.1, SQLite with `synchronous = FULL`; documents are
//!   seeded with [`branchline_server::Admin::import_documents`]. Devices are the
//!   real [`branchline_core::net::SyncClient`]: file-backed SQLite stores for
//!   B1 to B4, in-memory stores for the many devices of B5 and B6. Bytes on the
//!   wire are the client's UDP payload bytes (QUIC and TLS included, IP and UDP
//!   headers not) from its `SessionReport`.
//! - **samod**: a `samod::Repo` with its own filesystem storage
//!   (`TokioFilesystemStorage`), accepting TCP connections through its
//!   `tokio_io` transport (length-delimited frames, its fastest transport; no
//!   TLS). Devices are `samod::Repo`s that dial it with a dialer equivalent to
//!   samod's `TcpDialer` whose stream counts the bytes (TCP payload, both
//!   ways). Both ends set `TCP_NODELAY`, which only helps samod's latency.
//!   Documents are seeded with `Repo::create` on the server's storage
//!   before the server process starts. The server does not announce
//!   documents to peers that did not ask for them
//!   (`ShareConfig::read_write().with_announce(false)`), as automerge-repo's
//!   reference sync server does; devices use samod's default policy.
//! - Both systems get the same automerge documents (the generated branch from
//!   [`branchline_core::workload`]) and the same edits (a line appended to an
//!   activity's `minutes` text, one automerge change per edit).
//!
//! [`workloads`] holds B1 to B6 and says, for each, what is measured;
//! [`nodes`] holds N1, Branchline alone on SQLite and on PostgreSQL with one
//! to three nodes (issue 17).

pub mod branchline_side;
pub mod nodes;
pub mod process;
pub mod samod_side;
pub mod table;
pub mod wire;
pub mod workloads;
