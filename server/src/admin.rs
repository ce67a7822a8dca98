//! Administration: branches, alliances of partner branches, invites,
//! devices, the audit log, and read access to stored documents (for exports
//! and tests).
//!
//! [`Admin`] opens the server database directly, so it works whether or not
//! a server runs on the same data directory: SQLite serialises the writes,
//! and a running server notices new branches, documents and revocations
//! within a second (it polls).
//!
//! Branches, members and documents are named here by the domain's ids
//! (`branchline_core::{BranchId, MemberId, DocId}`), the ones the records
//! themselves hold; devices by the id the server gave them at enrollment.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use automerge::{ActorId, Automerge};
use branchline_core::model::{self, BranchProfile, Level, Roster};
use branchline_core::{BranchId, DocId, MemberId};
use branchline_protocol::{DeviceId, InviteLink, Role};
use rusqlite::{Connection, TransactionBehavior};

use crate::access::DocAttributes;
use crate::audit::{self, AuditEntry, AuditRecord, event};
use crate::auth;
use crate::db::{self, parse_id, parse_opt_id};
use crate::error::{Error, Result};
use crate::sql::{Dialect, Sql, params};
use crate::storage::documents;
use crate::tls;

/// The address put into invite links before any server recorded its own.
const DEFAULT_PUBLIC_ADDR: &str = "localhost:4433";

/// The audit event of a new alliance (kept here: alliances are an admin
/// matter only).
pub const ALLIANCE_ADDED: &str = "alliance.added";

/// An alliance of partner branches (结对共建 / 党建联盟), which co-organize
/// joint activities and share them with each other.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllianceInfo {
    /// The alliance's id.
    pub id: uuid::Uuid,
    /// Its name.
    pub name: String,
    /// Its partner branches, in the order they were given.
    pub branches: Vec<BranchId>,
    /// When it was recorded (ms since the Unix epoch).
    pub created_at_ms: i64,
}

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
    conn: Mutex<Option<AdminDb>>,
}

/// The database an [`Admin`] works on.
#[derive(Debug)]
enum AdminDb {
    Sqlite(Connection),
    Postgres(crate::postgres::PgDb),
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

    /// Runs `f` on the database the data directory names, opened (and
    /// migrated) on first use.
    fn with_database<T>(&self, f: impl FnOnce(&mut AdminDb) -> Result<T>) -> Result<T> {
        let mut guard = self.conn.lock().unwrap_or_else(PoisonError::into_inner);
        if guard.is_none() {
            *guard = Some(match db::Location::of(&self.data_dir)? {
                db::Location::Sqlite(path) => AdminDb::Sqlite(db::open(&path)?),
                db::Location::Postgres(url) => {
                    AdminDb::Postgres(crate::postgres::PgDb::open(&url)?.0)
                }
            });
        }
        match guard.as_mut() {
            Some(database) => f(database),
            None => Err(Error::Internal("database not open".into())),
        }
    }

    /// The server's TLS identity: the data directory's own, or on
    /// PostgreSQL the one every node of the database shares.
    fn identity(&self) -> Result<tls::Identity> {
        let dir = self.data_dir.clone();
        self.with_database(|database| match database {
            AdminDb::Sqlite(_) => tls::load_or_create(&dir),
            AdminDb::Postgres(pg) => pg.transaction(false, |conn| tls::shared(conn, &dir)),
        })
    }

    /// Runs `f` in a read transaction.
    fn with_conn<T>(&self, f: impl FnOnce(&dyn Sql) -> Result<T>) -> Result<T> {
        self.with_database(|database| match database {
            AdminDb::Sqlite(conn) => f(conn),
            AdminDb::Postgres(pg) => pg.transaction(true, f),
        })
    }

    /// Runs `f` in a write transaction and commits it.
    fn write<T>(&self, f: impl FnOnce(&dyn Sql) -> Result<T>) -> Result<T> {
        self.with_database(|database| match database {
            AdminDb::Sqlite(conn) => {
                let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
                let out = f(&tx)?;
                tx.commit()?;
                Ok(out)
            }
            AdminDb::Postgres(pg) => pg.transaction(false, f),
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
            if let Some(parent) = parent
                && !db::branch_known(tx, &parent)?
            {
                return Err(Error::UnknownBranch(parent.to_string()));
            }
            tx.execute(
                "INSERT INTO branches (branch_id, name, level, parent_id, created_at_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![
                    &branch.to_string(),
                    name,
                    level.as_str(),
                    &parent.map(|p| p.to_string()),
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
            for (doc_id, attrs, profile, doc) in &loaded {
                if let Some(profile) = profile
                    && !db::branch_known(tx, &attrs.branch)?
                {
                    if let Some(parent) = profile.parent
                        && !db::branch_known(tx, &parent)?
                    {
                        return Err(Error::UnknownBranch(parent.to_string()));
                    }
                    tx.execute(
                        "INSERT INTO branches (branch_id, name, level, parent_id, created_at_ms)
                         VALUES (?1, ?2, ?3, ?4, ?5)",
                        params![
                            &attrs.branch.to_string(),
                            &profile.name,
                            profile.level.as_str(),
                            &profile.parent.map(|p| p.to_string()),
                            db::now_ms()
                        ],
                    )?;
                    let mut record = AuditRecord::new(event::BRANCH_ADDED);
                    record.branch = Some(attrs.branch);
                    record.detail =
                        format!("{} ({}), imported", profile.name, profile.level.as_str());
                    record.insert(tx)?;
                }
                if !db::branch_known(tx, &attrs.branch)? {
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
            conn.query(
                "SELECT branch_id, name, level, parent_id FROM branches ORDER BY created_at_ms, name",
                params![],
            )?
            .iter()
            .map(|row| {
                Ok(BranchInfo {
                    branch: parse_id(&row.text(0)?)?,
                    name: row.text(1)?,
                    level: row.text(2)?,
                    parent: parse_opt_id(row.opt_text(3)?)?,
                })
            })
            .collect()
        })
    }

    /// Creates a one-time invite into `branch`, valid for `valid_for`; the
    /// link carries the server's public address and certificate fingerprint.
    ///
    /// A `member` must be an active member on the branch's roster as the
    /// server stores it (`member.unknown`, `member.not_active`).
    pub fn create_invite(
        &self,
        branch: BranchId,
        role: Role,
        member: Option<MemberId>,
        valid_for: Duration,
    ) -> Result<InviteLink> {
        if let Some(member) = member {
            // A device bound to a member must be bound to someone on the
            // branch's roster who is still on the branch.
            let roster = self.roster(branch)?;
            let entry = roster.member(member)?;
            if entry.status != model::MemberStatus::Active {
                return Err(branchline_core::Error::MemberNotActive(member).into());
            }
        }
        let identity = self.identity()?;
        let (invite, server) = self.write(|tx| {
            let invite = auth::create_invite(
                tx,
                db::now_ms(),
                branch.into(),
                role,
                member.map(Into::into),
                valid_for,
                None,
            )?;
            Ok((invite, stored_public_addr(tx)?))
        })?;
        Ok(InviteLink {
            server,
            code: invite.code,
            cert_sha256: identity.fingerprint,
        })
    }

    /// The branch's public submission code (民情直通车), created on first
    /// use; `rotate` replaces it, and the old code stops registering
    /// residents at once. The code is public: it goes on posters.
    pub fn submission_code(&self, branch: BranchId, rotate: bool) -> Result<String> {
        self.write(|tx| auth::submission_code(tx, branch.into(), rotate))
    }

    /// The link residents scan to register with the branch's submission
    /// code: an invite link (server address, code, certificate
    /// fingerprint) whose code is [`Admin::submission_code`].
    pub fn submission_link(&self, branch: BranchId, rotate: bool) -> Result<InviteLink> {
        let identity = self.identity()?;
        let (code, server) = self.write(|tx| {
            let code = auth::submission_code(tx, branch.into(), rotate)?;
            Ok((code, stored_public_addr(tx)?))
        })?;
        Ok(InviteLink {
            server,
            code,
            cert_sha256: identity.fingerprint,
        })
    }

    /// Records an alliance of at least two known, distinct branches, with
    /// an audit entry, in one transaction. Returns its id.
    ///
    /// Only recorded for now: sharing an activity with a partner branch
    /// works through the activity's `shared_with` whether or not the two
    /// branches are allied.
    pub fn add_alliance(&self, name: &str, branches: &[BranchId]) -> Result<uuid::Uuid> {
        let name = name.trim();
        if name.is_empty() {
            return Err(Error::Invalid {
                what: "name",
                reason: "an alliance needs a name".into(),
            });
        }
        let mut partners: Vec<BranchId> = Vec::with_capacity(branches.len());
        for branch in branches {
            if !partners.contains(branch) {
                partners.push(*branch);
            }
        }
        if partners.len() < 2 {
            return Err(Error::Invalid {
                what: "branches",
                reason: "an alliance needs at least two different branches".into(),
            });
        }
        let id = uuid::Uuid::new_v4();
        self.write(|tx| {
            for branch in &partners {
                if !db::branch_known(tx, branch)? {
                    return Err(Error::UnknownBranch(branch.to_string()));
                }
            }
            tx.execute(
                "INSERT INTO alliances (alliance_id, name, created_at_ms) VALUES (?1, ?2, ?3)",
                params![&id.to_string(), name, db::now_ms()],
            )?;
            for (position, branch) in partners.iter().enumerate() {
                tx.execute(
                    "INSERT INTO alliance_branches (alliance_id, branch_id, position)
                     VALUES (?1, ?2, ?3)",
                    params![&id.to_string(), &branch.to_string(), position as i64],
                )?;
            }
            let mut record = AuditRecord::new(ALLIANCE_ADDED);
            let listed: Vec<String> = partners.iter().map(ToString::to_string).collect();
            record.detail = format!("{id} {name}: {}", listed.join(", "));
            record.insert(tx)?;
            Ok(id)
        })
    }

    /// Every alliance, oldest first; with `branch`, only those it belongs to.
    pub fn alliances(&self, branch: Option<BranchId>) -> Result<Vec<AllianceInfo>> {
        self.with_conn(|conn| {
            // Alliances recorded in the same millisecond keep the order they
            // were stored in where the engine tells it (SQLite's rowid).
            let tie = match conn.dialect() {
                Dialect::Sqlite => "a.rowid",
                Dialect::Postgres => "a.alliance_id",
            };
            let rows = conn.query(
                &format!(
                    "SELECT a.alliance_id, a.name, a.created_at_ms, m.branch_id
                     FROM alliances a JOIN alliance_branches m ON m.alliance_id = a.alliance_id
                     WHERE ?1 IS NULL OR a.alliance_id IN
                         (SELECT alliance_id FROM alliance_branches WHERE branch_id = ?1)
                     ORDER BY a.created_at_ms, {tie}, m.position"
                ),
                params![&branch.map(|b| b.to_string())],
            )?;
            let mut alliances: Vec<AllianceInfo> = Vec::new();
            for row in rows {
                let id: uuid::Uuid = parse_id(&row.text(0)?)?;
                let name = row.text(1)?;
                let created_at_ms = row.int(2)?;
                let member: BranchId = parse_id(&row.text(3)?)?;
                match alliances.last_mut() {
                    Some(last) if last.id == id => last.branches.push(member),
                    _ => alliances.push(AllianceInfo {
                        id,
                        name,
                        branches: vec![member],
                        created_at_ms,
                    }),
                }
            }
            Ok(alliances)
        })
    }

    /// The SHA-256 fingerprint of the server's certificate, which invite
    /// links carry and devices pin; the certificate and key are created
    /// on first use and never replaced.
    pub fn certificate_fingerprint(&self) -> Result<[u8; 32]> {
        Ok(self.identity()?.fingerprint)
    }

    /// The `host:port` written into invite links, as last recorded by
    /// `init` or a running server.
    pub fn public_addr(&self) -> Result<Option<String>> {
        self.with_conn(|conn| {
            Ok(db::get_info(conn, "public_addr")?.and_then(|addr| String::from_utf8(addr).ok()))
        })
    }

    /// Records the `host:port` to write into invite links until a server
    /// records its own.
    pub fn set_public_addr(&self, addr: &str) -> Result<()> {
        let addr = addr.trim();
        if addr.is_empty() || !addr.contains(':') {
            return Err(Error::Invalid {
                what: "public address",
                reason: format!("expected host:port, got {addr:?}"),
            });
        }
        self.write(|tx| db::set_info(tx, "public_addr", addr.as_bytes()))
    }

    /// The branch's roster as the server stores it.
    pub fn roster(&self, branch: BranchId) -> Result<Roster> {
        let doc = self
            .branch_document(branch, model::DocKind::Roster)?
            .ok_or_else(|| Error::Model(branchline_core::Error::MissingBranchDocument("roster")))?;
        self.hydrate(doc)
    }

    /// The name of every member on every branch's roster, by member id, for
    /// naming people in the audit log and the device list. A branch whose
    /// roster cannot be read (missing, or written by a newer version) is
    /// left out with a warning: its members are then shown by id.
    pub fn member_names(&self) -> Result<HashMap<MemberId, String>> {
        let mut names = HashMap::new();
        for branch in self.branches()? {
            match self.roster(branch.branch) {
                Ok(roster) => {
                    names.extend(roster.members.values().map(|m| (m.id, m.name.clone())));
                }
                Err(e) => tracing::warn!(
                    branch = %branch.branch,
                    error = %e,
                    "cannot read the roster; its members are shown by id"
                ),
            }
        }
        Ok(names)
    }

    /// The branch's profile as the server stores it.
    pub fn profile(&self, branch: BranchId) -> Result<BranchProfile> {
        let doc = self
            .branch_document(branch, model::DocKind::BranchProfile)?
            .ok_or_else(|| {
                Error::Model(branchline_core::Error::MissingBranchDocument(
                    "branch_profile",
                ))
            })?;
        self.hydrate(doc)
    }

    /// The one document of `kind` a branch has (profile, roster): the lowest
    /// id, as devices choose. Fails if the branch is unknown.
    fn branch_document(&self, branch: BranchId, kind: model::DocKind) -> Result<Option<DocId>> {
        self.with_conn(|conn| {
            if !db::branch_known(conn, &branch)? {
                return Err(Error::UnknownBranch(branch.to_string()));
            }
            let id = conn
                .query_opt(
                    "SELECT doc_id FROM documents WHERE branch_id = ?1 AND kind = ?2
                     ORDER BY doc_id LIMIT 1",
                    params![&branch.to_string(), kind.as_str()],
                )?
                .map(|row| row.text(0))
                .transpose()?;
            parse_opt_id(id)
        })
    }

    /// The typed record stored in document `doc`.
    pub fn hydrate<R: model::Record>(&self, doc: DocId) -> Result<R> {
        let bytes = self
            .document_bytes(doc)?
            .ok_or(Error::Model(branchline_core::Error::DocNotFound(doc)))?;
        let loaded = Automerge::load(&bytes).map_err(|e| Error::CorruptDocument {
            doc: doc.into(),
            reason: e.to_string(),
        })?;
        Ok(model::hydrate(&loaded)?)
    }

    /// The documents of `branch`, with their kinds, plus the activities of
    /// other branches shared with it; ordered by id.
    pub fn branch_documents(&self, branch: BranchId) -> Result<Vec<(DocId, String)>> {
        self.with_conn(|conn| {
            if !db::branch_known(conn, &branch)? {
                return Err(Error::UnknownBranch(branch.to_string()));
            }
            let partners = match conn.dialect() {
                Dialect::Sqlite => {
                    "SELECT 1 FROM json_each(documents.shared_with) WHERE value = ?1"
                }
                Dialect::Postgres => {
                    "SELECT 1 FROM jsonb_array_elements_text(documents.shared_with::jsonb) AS p
                     WHERE p = ?1"
                }
            };
            conn.query(
                &format!(
                    "SELECT doc_id, kind FROM documents
                     WHERE branch_id = ?1 OR EXISTS ({partners})
                     ORDER BY doc_id"
                ),
                params![&branch.to_string()],
            )?
            .iter()
            .map(|row| Ok((parse_id(&row.text(0)?)?, row.text(1)?)))
            .collect()
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
            conn.query(
                "SELECT device_id, name, branch_id, role, member_id, enrolled_at_ms, last_seen_ms,
                        revoked_at_ms
                 FROM devices WHERE ?1 IS NULL OR branch_id = ?1 ORDER BY enrolled_at_ms",
                params![&branch.map(|b| b.to_string())],
            )?
            .iter()
            .map(|row| {
                let role = row.text(3)?;
                Ok(DeviceInfo {
                    device_id: parse_id(&row.text(0)?)?,
                    name: row.text(1)?,
                    branch: parse_id(&row.text(2)?)?,
                    role: auth::parse_role(&role)
                        .ok_or_else(|| Error::Corrupt(format!("role {role:?}")))?,
                    member: parse_opt_id(row.opt_text(4)?)?,
                    enrolled_at_ms: row.int(5)?,
                    last_seen_ms: row.opt_int(6)?,
                    revoked_at_ms: row.opt_int(7)?,
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
        let Some(bytes) = self.with_conn(|conn| documents::read_bytes(conn, doc))? else {
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

/// The address a server last recorded as its public one, for links.
fn stored_public_addr(conn: &dyn Sql) -> Result<String> {
    Ok(db::get_info(conn, "public_addr")?
        .and_then(|addr| String::from_utf8(addr).ok())
        .unwrap_or_else(|| DEFAULT_PUBLIC_ADDR.to_owned()))
}

#[cfg(test)]
mod tests {
    use branchline_core::model::DocKind;
    use branchline_core::workload::{WorkloadSpec, generate};

    use super::*;

    #[test]
    fn alliances_are_recorded_whole_or_not_at_all() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let admin = Admin::open(dir.path())?;
        let a = admin.add_branch("一支部", Level::Branch, None)?;
        let b = admin.add_branch("二支部", Level::Branch, None)?;
        let c = admin.add_branch("三支部", Level::Branch, None)?;
        let audit_before = admin.audit(100)?.len();
        assert!(matches!(
            admin.add_alliance("联盟", &[a, a]),
            Err(Error::Invalid { .. })
        ));
        assert!(matches!(
            admin.add_alliance("  ", &[a, b]),
            Err(Error::Invalid { .. })
        ));
        assert!(matches!(
            admin.add_alliance("联盟", &[a, BranchId::random()]),
            Err(Error::UnknownBranch(_))
        ));
        assert!(admin.alliances(None)?.is_empty());
        assert_eq!(admin.audit(100)?.len(), audit_before);

        let river = admin.add_alliance("河畔联盟", &[b, a])?;
        let hill = admin.add_alliance("山区联盟", &[c, a, c])?;
        let all = admin.alliances(None)?;
        assert_eq!(all.len(), 2);
        assert_eq!((all[0].id, all[0].branches.clone()), (river, vec![b, a]));
        assert_eq!((all[1].id, all[1].branches.clone()), (hill, vec![c, a]));
        let of_b = admin.alliances(Some(b))?;
        assert_eq!(of_b.len(), 1);
        assert_eq!(of_b[0].name, "河畔联盟");
        assert_eq!(admin.audit(1)?[0].event, ALLIANCE_ADDED);
        Ok(())
    }

    #[test]
    fn invites_for_a_member_need_an_active_roster_entry() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let admin = Admin::open(dir.path())?;
        let spec = WorkloadSpec {
            members: 6,
            years: 1,
            activities_per_month: 1,
            petitions: 2,
            ..WorkloadSpec::default()
        };
        let branch = generate(&spec)?;
        admin.import_documents(branch.documents.iter().map(|d| d.bytes.as_slice()))?;
        let day = Duration::from_secs(86_400);
        let on_roster = branch.roster.members.values().next().expect("a member");
        admin.create_invite(branch.branch, Role::Member, Some(on_roster.id), day)?;
        let stranger =
            admin.create_invite(branch.branch, Role::Member, Some(MemberId::random()), day);
        assert!(
            matches!(stranger, Err(Error::Model(ref e)) if e.code() == "member.unknown"),
            "{stranger:?}"
        );
        // Someone on another branch's roster is a stranger here too.
        let other = admin.add_branch("二支部", Level::Branch, None)?;
        let elsewhere = admin.create_invite(other, Role::Member, Some(on_roster.id), day);
        assert!(matches!(elsewhere, Err(Error::Model(_))));
        assert_eq!(admin.roster(branch.branch)?.members.len(), spec.members);
        Ok(())
    }

    #[test]
    fn branch_documents_include_activities_partners_share() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let admin = Admin::open(dir.path())?;
        let home = admin.add_branch("一支部", Level::Branch, None)?;
        let partner = admin.add_branch("二支部", Level::Branch, None)?;
        let mut joint = model::Activity::new(
            partner,
            model::NewActivity {
                kind: "joint".into(),
                title: "联建共建：清理河道".into(),
                starts_at: "2025-03-01T09:00".parse().ok(),
                ends_at: "2025-03-01T11:00".parse().ok(),
                ..Default::default()
            },
        )?;
        joint.share_with(home)?;
        let doc = model::create_document(&joint, ActorId::random())?.save();
        admin.import_documents([doc.as_slice()])?;
        let of_home: Vec<String> = admin
            .branch_documents(home)?
            .into_iter()
            .map(|(_, kind)| kind)
            .collect();
        assert_eq!(of_home.len(), 3, "profile, roster and the shared activity");
        assert!(of_home.contains(&"activity".to_owned()));
        assert_eq!(admin.branch_documents(partner)?.len(), 3);
        let shared: model::Activity = admin.hydrate(joint.meta.id)?;
        assert_eq!(shared.title, joint.title);
        assert!(matches!(
            admin.branch_documents(BranchId::random()),
            Err(Error::UnknownBranch(_))
        ));
        Ok(())
    }

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
