//! The Branchline mobile library: client-core for Kotlin and Swift, through UniFFI.
//!
//! A thin wrapper with no domain logic of its own. One object,
//! [`BranchlineClient`], opens a device's store in a data directory, enrolls with
//! an invite link, runs every workflow operation, list and report of
//! `branchline-core`, and syncs in the background on its own tokio runtime. The app
//! hears what happens through observers (callback interfaces) and gets one error
//! type, [`BranchlineError`], with a stable code.
//!
//! - [`client`]: the client, its runtime, sync control.
//! - [`records`]: client-core's records and vocabularies, mirrored.
//! - [`branch_work`]: dues, points and rankings, applicants, the problem library,
//!   the committee's roll-up, and the clock correction.
//! - [`observe`]: the observer interfaces.
//! - [`error`]: the flattened error, converted in one place.
//!
//! Bindings are generated from the built library (`uniffi-bindgen generate
//! --library`); see `ffi/README.md`.

// No `unsafe` here: the workspace's `unsafe_code = "deny"` holds. The `extern "C"`
// scaffolding comes from UniFFI's macros, where the lint does not fire.

pub mod branch_work;
pub mod client;
pub mod error;
pub mod observe;
pub mod records;

pub use client::{BranchlineClient, SyncHandle};
pub use error::BranchlineError;
pub use observe::{
    ConflictsObserver, DocumentsObserver, ErrorObserver, ObserverHandle, RejectionsObserver,
    SyncStatusObserver,
};

uniffi::setup_scaffolding!();
