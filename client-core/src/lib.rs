//! `branchline-core`: a branch's records on a member's phone, offline.
//!
//! - [`model`]: the records as automerge documents, and every workflow as a typed,
//!   validated operation.
//! - [`conflict`]: fields edited concurrently on two devices, reported after a merge so
//!   a person can settle them.
//! - [`store`]: the SQLite store: documents persisted incrementally, an index for
//!   queries that never parses documents, and acknowledgement tracking.
//! - [`report`]: the branch's reports, computed on the device from the index.
//! - [`rollup`]: the higher committee's roll-up and star rating of the branches
//!   below it.
//! - [`refusal`]: why the server refused, in English and Chinese words.
//! - [`sync`]: the sync engine, sans I/O: one session per connection to the branch
//!   server, driven by the transport.
//! - [`workload`]: a seeded generator of realistic branches for tests and benchmarks.

pub mod conflict;
pub mod error;
pub mod ids;
pub mod model;
pub mod net;
pub mod qr;
pub mod refusal;
pub mod report;
pub mod rollup;
pub mod store;
pub mod sync;
pub mod workload;

pub use error::{Error, Result};
pub use ids::{BranchId, DeviceId, DocId, EntryId, MemberId};
pub use store::Store;
