//! The audit log: who enrolled, who was revoked, what was refused, and every
//! change the server accepted, with the device and member it came from.
//!
//! A change names the automerge actor that made it. Each device registers its
//! actor id at enrollment, so a change maps to the device (and member) that
//! wrote it even when another device delivered it; a change whose actor is
//! unknown is recorded with the delivering device.

use branchline_protocol::{BranchId, DeviceId, DocId, MemberId};

/// The domain's ids, which the audit log reports in.
mod domain {
    pub use branchline_core::{BranchId, DocId, MemberId};
}

use crate::db::{self, parse_opt_id};
use crate::error::Result;
use crate::sql::{Sql, params};

/// Stable names of audit events.
pub mod event {
    /// A device enrolled with an invite.
    pub const DEVICE_ENROLLED: &str = "device.enrolled";
    /// A device was revoked.
    pub const DEVICE_REVOKED: &str = "device.revoked";
    /// An invite was created.
    pub const INVITE_CREATED: &str = "invite.created";
    /// A branch was added.
    pub const BRANCH_ADDED: &str = "branch.added";
    /// A Hello was refused (bad invite, bad secret, revoked device…).
    pub const AUTH_REFUSED: &str = "auth.refused";
    /// A request or document sync was refused with an error code.
    pub const REQUEST_REFUSED: &str = "request.refused";
    /// A change was stored.
    pub const CHANGE_ACCEPTED: &str = "change.accepted";
    /// A branch's public submission code was created or rotated.
    pub const SUBMISSION_CODE_CREATED: &str = "submission_code.created";
    /// A resident device registered with a branch's submission code (the
    /// device and branch only: nothing personal).
    pub const RESIDENT_REGISTERED: &str = "resident.registered";
    /// The server wrote a petition a device submitted (device, member,
    /// branch, document).
    pub const PETITION_SUBMITTED: &str = "petition.submitted";
    /// The server wrote a named suggestion into the feedback box.
    pub const SUGGESTION_ACCEPTED: &str = "suggestion.accepted";
    /// The server wrote an anonymous suggestion into the feedback box: the
    /// branch and the document only, never a device, member or actor.
    pub const SUGGESTION_ANONYMOUS_ACCEPTED: &str = "suggestion.anonymous_accepted";
}

/// One row of the audit log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEntry {
    /// Position in the log (ascending).
    pub id: i64,
    /// When, in milliseconds since the Unix epoch.
    pub at_ms: i64,
    /// What happened; one of [`event`].
    pub event: String,
    /// The device concerned (the author of a change, or the one refused).
    pub device: Option<DeviceId>,
    /// The member concerned.
    pub member: Option<domain::MemberId>,
    /// The branch concerned.
    pub branch: Option<domain::BranchId>,
    /// The document concerned.
    pub doc: Option<domain::DocId>,
    /// The error code of a refusal.
    pub code: Option<String>,
    /// The hash of an accepted change.
    pub change_hash: Option<[u8; 32]>,
    /// The automerge actor of an accepted change.
    pub actor: Option<Vec<u8>>,
    /// Free text for people (device name, invite role…).
    pub detail: String,
}

/// An audit row about to be written.
#[derive(Debug, Clone, Default)]
pub struct AuditRecord {
    /// When, in milliseconds since the epoch; `None`: when it is written.
    /// Rows that limits are counted from carry the time the limit was
    /// judged by.
    pub at_ms: Option<i64>,
    /// What happened (one of [`event`]'s names).
    pub event: &'static str,
    /// The device that did it.
    pub device: Option<DeviceId>,
    /// The member that device belongs to.
    pub member: Option<MemberId>,
    /// The branch concerned.
    pub branch: Option<BranchId>,
    /// The document concerned.
    pub doc: Option<DocId>,
    /// The stable code of a refusal.
    pub code: Option<String>,
    /// The automerge change concerned.
    pub change_hash: Option<[u8; 32]>,
    /// The automerge actor of that change.
    pub actor: Option<Vec<u8>>,
    /// Anything else, for people.
    pub detail: String,
}

impl AuditRecord {
    /// A record of `event` with nothing else set.
    pub fn new(event: &'static str) -> Self {
        AuditRecord {
            event,
            ..Default::default()
        }
    }

    /// Writes the record, stamped now.
    pub(crate) fn insert(&self, conn: &dyn Sql) -> Result<()> {
        conn.execute(
            "INSERT INTO audit (at_ms, event, device_id, member_id, branch_id, doc_id, code,
                                change_hash, actor_id, detail)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
            params![
                self.at_ms.unwrap_or_else(db::now_ms),
                self.event,
                &self.device.map(|d| d.to_string()),
                &self.member.map(|m| m.to_string()),
                &self.branch.map(|b| b.to_string()),
                &self.doc.map(|d| d.to_string()),
                &self.code,
                self.change_hash.as_ref().map(|h| h.as_slice()),
                self.actor.as_deref(),
                &self.detail,
            ],
        )?;
        Ok(())
    }
}

/// The newest `limit` entries, newest first.
pub(crate) fn recent(conn: &dyn Sql, limit: usize) -> Result<Vec<AuditEntry>> {
    conn.query(
        "SELECT id, at_ms, event, device_id, member_id, branch_id, doc_id, code, change_hash,
                actor_id, detail
         FROM audit ORDER BY id DESC LIMIT ?1",
        params![limit.min(i64::MAX as usize) as i64],
    )?
    .iter()
    .map(|row| {
        Ok(AuditEntry {
            id: row.int(0)?,
            at_ms: row.int(1)?,
            event: row.text(2)?,
            device: parse_opt_id(row.opt_text(3)?)?,
            member: parse_opt_id(row.opt_text(4)?)?,
            branch: parse_opt_id(row.opt_text(5)?)?,
            doc: parse_opt_id(row.opt_text(6)?)?,
            code: row.opt_text(7)?,
            change_hash: row.opt_blob(8)?.and_then(|h| h.try_into().ok()),
            actor: row.opt_blob(9)?,
            detail: row.text(10)?,
        })
    })
    .collect()
}
