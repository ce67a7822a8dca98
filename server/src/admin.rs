//! Administration: branches, invites, devices, the audit log, and read access
//! to stored documents for tests.
//!
//! [`Admin`] opens the server database directly, so it works whether or not
//! a server runs on the same data directory: SQLite serialises the writes,
//! and a running server notices new branches, documents and revocations
//! within a second (it polls).
//!
//! Branches, members and documents are named here by the domain's ids
//! (`branchline_core::{BranchId, MemberId, DocId}`), the ones the records
//! themselves hold; devices by the id the server gave them at enrollment.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use automerge::{ActorId, Automerge};
use branchline_core::model::{self, BranchProfile, Level, Roster};
use branchline_core::{BranchId, DocId, MemberId};
use branchline_protocol::{DeviceId, InviteLink, Role};
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

use crate::access::DocAttributes;
use crate::audit::{self, AuditEntry, AuditRecord, event};
use crate::auth;
use crate::db::{self, parse_id, parse_opt_id};
use crate::error::{Error, Result};
use crate::storage::documents;
use crate::tls;

/// The address put into invite links before any server recorded its own.
const DEFAULT_PUBLIC_ADDR: &str = "localhost:4433";

/// One enrolled device, as the admin CLI lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceInfo {
    /// The device.
    pub device_id: DeviceId,
    /// The name it enrolled with.
    pub name: String,
    /// Its branch.
    pub branch: BranchId,
    /// Its role.
    pub role: Role,
    /// Its member, if any.
    pub member: Option<MemberId>,
    /// When it enrolled (ms since the Unix epoch).
    pub enrolled_at_ms: i64,
    /// When it last connected.
    pub last_seen_ms: Option<i64>,
    /// When it was revoked, if it was.
    pub revoked_at_ms: Option<i64>,
}

/// One branch, as the admin CLI lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BranchInfo {
    /// The branch.
    pub branch: BranchId,
    /// Its name.
    pub name: String,
    /// Its level (`committee`, `general_branch`, `branch`).
    pub level: String,
    /// The branch above it.
    pub parent: Option<BranchId>,
}

/// Direct access to a server's database for administration.
#[derive(Debug)]
pub struct Admin {
    data_dir: PathBuf,
    conn: Mutex<Option<Connection>>,
}

impl Admin {
    /// Opens (creating on first use) the data directory and its database.
    pub fn open(data_dir: impl AsRef<Path>) -> Result<Admin> {
        let admin = Admin::lazy(data_dir.as_ref());
        tls::prepare_data_dir(&admin.data_dir)?;
        admin.with_conn(|_| Ok(()))?;
        Ok(admin)
    }

    /// A handle that opens the database on first use.
    pub(crate) fn lazy(data_dir: &Path) -> Admin {
        Admin {
            data_dir: data_dir.to_owned(),
            conn: Mutex::new(None),
        }
    }

    fn with_conn<T>(&self, f: impl FnOnce(&mut Connection) -> Result<T>) -> Result<T> {
        let mut guard = self.conn.lock().unwrap_or_else(PoisonError::into_inner);
        if guard.is_none() {
            *guard = Some(db::open(&self.data_dir.join(db::FILE_NAME))?);
        }
        match guard.as_mut() {
            Some(conn) => f(conn),
            None => Err(Error::Internal("database not open".into())),
        }
    }

    fn write<T>(&self, f: impl FnOnce(&rusqlite::Transaction<'_>) -> Result<T>) -> Result<T> {
        self.with_conn(|conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let out = f(&tx)?;
            tx.commit()?;
            Ok(out)
        })
    }

    /// Adds a branch (or a general branch or committee: an organization is
    /// a branch with no parent) and writes its profile and empty roster, as
    /// the server's own automerge actor.
    pub fn add_branch(
        &self,
        name: &str,
        level: Level,
        parent: Option<BranchId>,
    ) -> Result<BranchId> {
        let name = name.trim();
        if name.is_empty() {
            return Err(Error::Invalid {
                what: "name",
                reason: "a branch needs a name".into(),
            });
        }
        let branch = BranchId::random();
        let wire_branch = branchline_protocol::BranchId::from(branch);
        let profile = BranchProfile::new(branch, name, level, parent)?;
        let roster = Roster::new(branch);
        self.write(|tx| {
            if let Some(parent) = parent {
                let known = tx
                    .query_row(
                        "SELECT 1 FROM branches WHERE branch_id = ?1",
                        [parent.to_string()],
                        |_| Ok(()),
                    )
                    .optional()?
                    .is_some();
                if !known {
                    return Err(Error::UnknownBranch(parent.to_string()));
                }
            }
            tx.execute(
                "INSERT INTO branches (branch_id, name, level, parent_id, created_at_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![
                    branch.to_string(),
                    name,
                    level.as_str(),
                    parent.map(|p| p.to_string()),
                    db::now_ms()
                ],
            )?;
            let actor = ActorId::from(
                db::get_info(tx, "actor_id")?
                    .ok_or_else(|| Error::Corrupt("no server actor id".into()))?,
            );
            let mut profile_doc = model::create_document(&profile, actor.clone())?;
            let mut roster_doc = model::create_document(&roster, actor)?;
            for (doc, id, kind) in [
                (&mut profile_doc, profile.meta.id, "branch_profile"),
                (&mut roster_doc, roster.meta.id, "roster"),
            ] {
                let doc_id = branchline_protocol::DocId::from(id);
                let attrs = DocAttributes::new(kind, wire_branch);
                documents::insert(tx, doc_id, &attrs, &doc.save(), &doc.get_heads())?;
            }
            let mut record = AuditRecord::new(event::BRANCH_ADDED);
            record.branch = Some(wire_branch);
            record.detail = format!("{name} ({})", level.as_str());
            record.insert(tx)?;
            Ok(branch)
        })
    }

    /// Stores automerge documents (`save()` bytes) directly, as they are,
    /// for seeding a server with an existing branch (benchmarks, migrations):
    /// each document's id, kind and branch come from its `meta` header and its
    /// access attributes from its content, exactly as for a document a device
    /// uploads, but nothing is checked against a device's rights and no
    /// per-change audit entries are written (one `branch.added` entry is
    /// written per branch registered here).
    ///
    /// A branch profile whose branch the server does not know yet registers
    /// that branch (name, level and parent from the profile; the parent must
    /// be known or registered by the same call). Every other document must
    /// belong to a known branch. A document the server already stores is
    /// refused. Everything is written in one transaction: on error nothing
    /// is stored. A running server announces the documents within a poll
    /// interval, and before the next device's manifest. Returns how many
    /// documents were stored.
    pub fn import_documents<'a>(&self, docs: impl IntoIterator<Item = &'a [u8]>) -> Result<usize> {
        let mut loaded = Vec::new();
        for bytes in docs {
            let doc = Automerge::load(bytes).map_err(|e| Error::Invalid {
                what: "document",
                reason: e.to_string(),
            })?;
            let meta = model::read_meta(&doc)?;
            let doc_id = branchline_protocol::DocId::from(meta.id);
            let branch = branchline_protocol::BranchId::from(meta.branch);
            let attrs = documents::attributes_of(&doc, &meta.kind, branch, None);
            let profile = if meta.kind == model::DocKind::BranchProfile.as_str() {
                Some(model::hydrate::<BranchProfile>(&doc)?)
            } else {
                None
            };
            loaded.push((doc_id, attrs, profile, doc));
        }
        // Profiles first, so the branches they register exist for the rest.
        loaded.sort_by_key(|(_, _, profile, _)| profile.is_none());
        self.write(|tx| {
            let known = |branch: String| -> Result<bool> {
                Ok(tx
                    .query_row(
                        "SELECT 1 FROM branches WHERE branch_id = ?1",
                        [branch],
                        |_| Ok(()),
                    )
                    .optional()?
                    .is_some())
            };
            for (doc_id, attrs, profile, doc) in &loaded {
                if let Some(profile) = profile
                    && !known(attrs.branch.to_string())?
                {
                    if let Some(parent) = profile.parent
                        && !known(parent.to_string())?
                    {
                        return Err(Error::UnknownBranch(parent.to_string()));
                    }
                    tx.execute(
                        "INSERT INTO branches (branch_id, name, level, parent_id, created_at_ms)
                         VALUES (?1, ?2, ?3, ?4, ?5)",
                        params![
                            attrs.branch.to_string(),
                            profile.name,
                            profile.level.as_str(),
                            profile.parent.map(|p| p.to_string()),
                            db::now_ms()
                        ],
                    )?;
                    let mut record = AuditRecord::new(event::BRANCH_ADDED);
                    record.branch = Some(attrs.branch);
                    record.detail =
                        format!("{} ({}), imported", profile.name, profile.level.as_str());
                    record.insert(tx)?;
                }
                if !known(attrs.branch.to_string())? {
                    return Err(Error::UnknownBranch(attrs.branch.to_string()));
                }
                if documents::row(tx, *doc_id)?.is_some() {
                    return Err(Error::Invalid {
                        what: "document",
                        reason: format!("the server already stores document {doc_id}"),
                    });
                }
                documents::insert(tx, *doc_id, attrs, &doc.save(), &doc.get_heads())?;
            }
            Ok(loaded.len())
        })
    }

    /// Every branch.
    pub fn branches(&self) -> Result<Vec<BranchInfo>> {
        self.with_conn(|conn| {
            let mut stmt = conn.prepare(
                "SELECT branch_id, name, level, parent_id FROM branches ORDER BY created_at_ms, name",
            )?;
            let rows = stmt.query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, Option<String>>(3)?,
                ))
            })?;
            rows.map(|row| {
                let (branch, name, level, parent) = row?;
                Ok(BranchInfo {
                    branch: parse_id(&branch)?,
                    name,
                    level,
                    parent: parse_opt_id(parent)?,
                })
            })
            .collect()
        })
    }

    /// Creates a one-time invite into `branch`, valid for `valid_for`; the
    /// link carries the server's public address and certificate fingerprint.
    pub fn create_invite(
        &self,
        branch: BranchId,
        role: Role,
        member: Option<MemberId>,
        valid_for: Duration,
    ) -> Result<InviteLink> {
        let identity = tls::load_or_create(&self.data_dir)?;
        let (invite, server) = self.write(|tx| {
            let invite = auth::create_invite(
                tx,
                branch.into(),
                role,
                member.map(Into::into),
                valid_for,
                None,
            )?;
            let server = db::get_info(tx, "public_addr")?
                .and_then(|addr| String::from_utf8(addr).ok())
                .unwrap_or_else(|| DEFAULT_PUBLIC_ADDR.to_owned());
            Ok((invite, server))
        })?;
        Ok(InviteLink {
            server,
            code: invite.code,
            cert_sha256: identity.fingerprint,
        })
    }

    /// Revokes a device: a running server closes its connections within a
    /// second and refuses it from then on.
    pub fn revoke_device(&self, device: DeviceId) -> Result<()> {
        self.write(|tx| auth::revoke(tx, device, None))
    }

    /// Enrolled devices, of one branch or of all.
    pub fn devices(&self, branch: Option<BranchId>) -> Result<Vec<DeviceInfo>> {
        self.with_conn(|conn| {
            let mut stmt = conn.prepare(
                "SELECT device_id, name, branch_id, role, member_id, enrolled_at_ms, last_seen_ms,
                        revoked_at_ms
                 FROM devices WHERE ?1 IS NULL OR branch_id = ?1 ORDER BY enrolled_at_ms",
            )?;
            let rows = stmt.query_map([branch.map(|b| b.to_string())], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, String>(3)?,
                    r.get::<_, Option<String>>(4)?,
                    r.get::<_, i64>(5)?,
                    r.get::<_, Option<i64>>(6)?,
                    r.get::<_, Option<i64>>(7)?,
                ))
            })?;
            rows.map(|row| {
                let (device, name, branch, role, member, enrolled, seen, revoked) = row?;
                Ok(DeviceInfo {
                    device_id: parse_id(&device)?,
                    name,
                    branch: parse_id(&branch)?,
                    role: auth::parse_role(&role)
                        .ok_or_else(|| Error::Corrupt(format!("role {role:?}")))?,
                    member: parse_opt_id(member)?,
                    enrolled_at_ms: enrolled,
                    last_seen_ms: seen,
                    revoked_at_ms: revoked,
                })
            })
            .collect()
        })
    }

    /// The newest `limit` audit entries, newest first.
    pub fn audit(&self, limit: usize) -> Result<Vec<AuditEntry>> {
        self.with_conn(|conn| audit::recent(conn, limit))
    }

    /// A stored document in automerge's save format, or `None` if the
    /// server has no such document.
    pub fn document_bytes(&self, doc: DocId) -> Result<Option<Vec<u8>>> {
        let doc = branchline_protocol::DocId::from(doc);
        let Some(bytes) = self.with_conn(|conn| documents::load_bytes(conn, doc))? else {
            return Ok(None);
        };
        let loaded = Automerge::load(&bytes).map_err(|e| Error::CorruptDocument {
            doc,
            reason: e.to_string(),
        })?;
        Ok(Some(loaded.save()))
    }

    /// Every stored document id, ascending.
    pub fn document_ids(&self) -> Result<Vec<DocId>> {
        let ids = self.with_conn(|conn| documents::ids(conn))?;
        Ok(ids.into_iter().map(DocId::from).collect())
    }
}

#[cfg(test)]
mod tests {
    use branchline_core::model::DocKind;
    use branchline_core::workload::{WorkloadSpec, generate};

    use super::*;

    #[test]
    fn import_documents_registers_the_branch_and_stores_everything() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let admin = Admin::open(dir.path())?;
        let spec = WorkloadSpec {
            members: 6,
            years: 1,
            activities_per_month: 1,
            petitions: 5,
            ..WorkloadSpec::default()
        };
        let branch = generate(&spec)?;
        // Everything but the profile first: its branch is unknown, nothing is stored.
        let without_profile = branch
            .documents
            .iter()
            .filter(|d| d.kind != DocKind::BranchProfile)
            .map(|d| d.bytes.as_slice());
        assert!(matches!(
            admin.import_documents(without_profile),
            Err(Error::UnknownBranch(_))
        ));
        assert!(admin.document_ids()?.is_empty());

        let n = admin.import_documents(branch.documents.iter().map(|d| d.bytes.as_slice()))?;
        assert_eq!(n, branch.documents.len());
        let branches = admin.branches()?;
        assert_eq!(branches.len(), 1);
        assert_eq!(branches[0].branch, branch.branch);
        assert_eq!(branches[0].name, branch.profile.name);
        assert_eq!(branches[0].level, "branch");
        assert_eq!(admin.document_ids()?.len(), branch.documents.len());
        for generated in &branch.documents {
            let stored = admin
                .document_bytes(generated.id)?
                .expect("the document is stored");
            let heads = |bytes: &[u8]| -> anyhow::Result<_> {
                let mut heads = Automerge::load(bytes)?.get_heads();
                heads.sort();
                Ok(heads)
            };
            assert_eq!(heads(&stored)?, heads(&generated.bytes)?);
            let row = admin
                .with_conn(|conn| documents::row(conn, generated.id.into()))?
                .expect("a row");
            assert_eq!(row.attrs.kind, generated.kind.as_str());
            assert_eq!(row.attrs.branch, branch.branch.into());
        }
        // Access attributes come from the content, as for an upload.
        let petition = &branch.petitions[0];
        let row = admin
            .with_conn(|conn| documents::row(conn, petition.meta.id.into()))?
            .expect("a row");
        assert_eq!(row.attrs.owner, petition.owner.map(Into::into));

        // The same documents again are refused, and nothing changes.
        let again = admin.import_documents(branch.documents.iter().map(|d| d.bytes.as_slice()));
        assert!(matches!(again, Err(Error::Invalid { .. })));
        assert_eq!(admin.document_ids()?.len(), branch.documents.len());
        assert_eq!(admin.branches()?.len(), 1);
        Ok(())
    }
}
