//! Enrollment and device credentials.
//!
//! An invite is a one-time code with an expiry, bound to a branch, a role and
//! optionally a member. The server stores only a SHA-256 hash of the code.
//! Enrolling with it creates a device: a random id and a random 32-byte
//! secret, of which the server keeps only a hash, and the automerge actor id
//! the device will write changes as (for the audit log). A returning device
//! presents id and secret; the hashes are compared in constant time. A
//! revoked device is refused with `auth.device_revoked` from then on.
//!
//! A branch also has one public **submission code** (民情直通车: printed on
//! a poster as a QR code), `P-` followed by four groups of the invite
//! alphabet, so nobody mistakes it for a one-time invite. Enrolling with it
//! registers a new *resident* device of that branch, with no member: a
//! resident sees nothing of the branch but the petitions its device
//! submitted. A code registers at most `resident_registrations_per_hour`
//! devices in any hour (counted from the audit log, so a restart does not
//! reset it); rotating the code stops the old one at once.

use std::time::Duration;

use branchline_protocol::{BranchId, DeviceId, DeviceSecret, ErrorCode, MemberId, Role};
use rand::Rng as _;
use sha2::{Digest as _, Sha256};

use crate::audit::{AuditRecord, event};
use crate::config::limits;
use crate::db::{self, parse_id, parse_opt_id};
use crate::error::{Error, Result};
use crate::sql::{Dialect, Sql, params};

/// Letters and digits that cannot be mistaken for one another when read
/// aloud or typed from a screen (no 0/O, 1/I/L).
const CODE_ALPHABET: &[u8] = b"23456789ABCDEFGHJKMNPQRSTUVWXYZ";

/// A new invite code: four groups of four, e.g. `K7QX-M2PA-9RTD-H4WE` (about
/// 79 bits).
pub(crate) fn new_invite_code() -> String {
    let mut rng = rand::rng();
    let mut code = String::with_capacity(19);
    for i in 0..16 {
        if i > 0 && i % 4 == 0 {
            code.push('-');
        }
        let pick = loop {
            // Rejection sampling keeps every symbol equally likely.
            let byte = (rng.next_u32() & 0xff) as usize;
            if byte < 256 - 256 % CODE_ALPHABET.len() {
                break byte % CODE_ALPHABET.len();
            }
        };
        code.push(CODE_ALPHABET[pick] as char);
    }
    code
}

/// What starts a branch's public submission code, e.g.
/// `P-K7QX-M2PA-9RTD-H4WE`.
pub(crate) const SUBMISSION_CODE_PREFIX: &str = "P-";

/// A new public submission code: [`SUBMISSION_CODE_PREFIX`] and an
/// invite-shaped code.
pub(crate) fn new_submission_code() -> String {
    format!("{SUBMISSION_CODE_PREFIX}{}", new_invite_code())
}

/// A code as typed: surrounding space and case do not matter.
fn normalize_code(code: &str) -> String {
    code.trim().to_ascii_uppercase()
}

/// The stored form of an invite code; case and surrounding space are
/// ignored so a code typed by hand still matches.
pub(crate) fn hash_code(code: &str) -> [u8; 32] {
    let mut hasher = Sha256::new();
    hasher.update(b"branchline/invite/1");
    hasher.update(code.trim().to_ascii_uppercase().as_bytes());
    hasher.finalize().into()
}

/// The stored form of a device secret.
pub(crate) fn hash_secret(secret: &DeviceSecret) -> [u8; 32] {
    let mut hasher = Sha256::new();
    hasher.update(b"branchline/device-secret/1");
    hasher.update(secret.expose());
    hasher.finalize().into()
}

/// Compares two hashes without an early exit.
fn same_hash(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let difference = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(difference) == 0
}

/// Parses a role's stable name.
pub fn parse_role(text: &str) -> Option<Role> {
    [
        Role::Secretary,
        Role::Committee,
        Role::Member,
        Role::Resident,
    ]
    .into_iter()
    .find(|role| role.as_str() == text)
}

/// An enrolled device as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceRecord {
    /// The device.
    pub device_id: DeviceId,
    /// Its branch.
    pub branch: BranchId,
    /// Its branch's name, which the Welcome tells the device.
    pub branch_name: String,
    /// Its role there.
    pub role: Role,
    /// The member it belongs to (none for residents and shared devices).
    pub member: Option<MemberId>,
    /// The name it enrolled with.
    pub name: String,
    /// Whether it was revoked.
    pub revoked: bool,
}

/// Why a Hello was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthFailure {
    /// No such invite or submission code.
    InviteInvalid,
    /// The invite expired.
    InviteExpired,
    /// The invite was used already.
    InviteUsed,
    /// Unknown device or wrong secret.
    Unauthenticated,
    /// The device was revoked.
    DeviceRevoked,
    /// A submission code registered too many residents in the last hour.
    RateLimited,
}

impl AuthFailure {
    /// The wire code.
    pub fn code(self) -> ErrorCode {
        match self {
            AuthFailure::InviteInvalid => ErrorCode::InviteInvalid,
            AuthFailure::InviteExpired => ErrorCode::InviteExpired,
            AuthFailure::InviteUsed => ErrorCode::InviteUsed,
            AuthFailure::Unauthenticated => ErrorCode::Unauthenticated,
            AuthFailure::DeviceRevoked => ErrorCode::DeviceRevoked,
            AuthFailure::RateLimited => ErrorCode::RateLimited,
        }
    }
}

/// A new invite, as stored.
#[derive(Debug, Clone)]
pub struct NewInvite {
    /// The one-time code (only its hash is stored).
    pub code: String,
    /// When it expires, in milliseconds since the epoch.
    pub expires_at_ms: i64,
}

/// Stores a new invite into `branch`; `created_by` is the inviting device,
/// or `None` for the admin CLI.
pub(crate) fn create_invite(
    conn: &dyn Sql,
    now: i64,
    branch: BranchId,
    role: Role,
    member: Option<MemberId>,
    valid_for: Duration,
    created_by: Option<DeviceId>,
) -> Result<NewInvite> {
    if valid_for.is_zero() {
        return Err(Error::Invalid {
            what: "validity",
            reason: "an invite must be valid for some time".into(),
        });
    }
    if !db::branch_known(conn, &branch)? {
        return Err(Error::UnknownBranch(branch.to_string()));
    }
    let expires_at_ms = now.saturating_add(valid_for.as_millis().min(i64::MAX as u128) as i64);
    let code = new_invite_code();
    conn.execute(
        "INSERT INTO invites (code_hash, branch_id, role, member_id, created_by, created_at_ms,
                              expires_at_ms)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![
            hash_code(&code).as_slice(),
            &branch.to_string(),
            role.as_str(),
            &member.map(|m| m.to_string()),
            &created_by.map_or_else(|| "admin".to_owned(), |d| d.to_string()),
            now,
            expires_at_ms,
        ],
    )?;
    let mut audit = AuditRecord::new(event::INVITE_CREATED);
    audit.device = created_by;
    audit.branch = Some(branch);
    audit.member = member;
    audit.detail = format!("role={role}");
    audit.insert(conn)?;
    Ok(NewInvite {
        code,
        expires_at_ms,
    })
}

/// A branch's public submission code, created on first use; `rotate`
/// replaces it with a new one (the old one stops registering residents at
/// once). Fails for an unknown branch.
pub(crate) fn submission_code(conn: &dyn Sql, branch: BranchId, rotate: bool) -> Result<String> {
    let key = branch.to_string();
    if !rotate
        && let Some(row) = conn.query_opt(
            "SELECT code FROM submission_codes WHERE branch_id = ?1",
            params![&key],
        )?
    {
        return row.text(0);
    }
    if !db::branch_known(conn, &branch)? {
        return Err(Error::UnknownBranch(key));
    }
    let code = new_submission_code();
    conn.execute(
        "INSERT INTO submission_codes (branch_id, code, created_at_ms) VALUES (?1, ?2, ?3)
         ON CONFLICT (branch_id) DO UPDATE
             SET code = excluded.code, created_at_ms = excluded.created_at_ms",
        params![&key, &code, db::now_ms()],
    )?;
    let mut audit = AuditRecord::new(event::SUBMISSION_CODE_CREATED);
    audit.branch = Some(branch);
    audit.detail = if rotate { "rotated" } else { "created" }.into();
    audit.insert(conn)?;
    Ok(code)
}

/// Residents registered with `branch`'s submission code since `since_ms`.
pub(crate) fn residents_registered_since(
    conn: &dyn Sql,
    branch: BranchId,
    since_ms: i64,
) -> Result<u64> {
    let count = conn
        .query_one(
            "SELECT count(*) FROM audit
             WHERE event = ?1 AND at_ms >= ?2 AND branch_id = ?3",
            params![event::RESIDENT_REGISTERED, since_ms, &branch.to_string()],
        )?
        .int(0)?;
    Ok(count.max(0) as u64)
}

/// Enrolls a new device with `invite_code`: the invite is used up and the
/// device stored, or the reason it was refused is returned (and audited).
///
/// A code that is no invite but a branch's public submission code
/// registers a resident of that branch instead, unless the code already
/// registered `residents_per_hour` devices within the last hour
/// ([`AuthFailure::RateLimited`]).
///
/// On PostgreSQL the invite row is locked until the transaction ends, so
/// two nodes enrolling with one invite at once cannot both use it.
pub(crate) fn enroll(
    conn: &dyn Sql,
    now: i64,
    invite_code: &str,
    device_name: &str,
    actor_id: &[u8],
    residents_per_hour: u32,
) -> Result<std::result::Result<(DeviceRecord, DeviceSecret), AuthFailure>> {
    let lock = match conn.dialect() {
        Dialect::Sqlite => "",
        Dialect::Postgres => " FOR UPDATE",
    };
    let invite = conn.query_opt(
        &format!(
            "SELECT branch_id, role, member_id, expires_at_ms, used_at_ms
             FROM invites WHERE code_hash = ?1{lock}"
        ),
        params![hash_code(invite_code).as_slice()],
    )?;
    let refuse = |failure: AuthFailure, branch: Option<BranchId>| -> Result<_> {
        let mut audit = AuditRecord::new(event::AUTH_REFUSED);
        audit.code = Some(failure.code().as_str().to_owned());
        audit.branch = branch;
        audit.detail = "enrollment".into();
        audit.insert(conn)?;
        Ok(Err(failure))
    };
    let Some(invite) = invite else {
        let submission = conn.query_opt(
            &format!("SELECT branch_id, created_at_ms FROM submission_codes WHERE code = ?1{lock}"),
            params![&normalize_code(invite_code)],
        )?;
        let Some(submission) = submission else {
            return refuse(AuthFailure::InviteInvalid, None);
        };
        let branch: BranchId = parse_id(&submission.text(0)?)?;
        let code_created_at_ms = submission.int(1)?;
        // Registrations under an earlier code do not count against this one.
        let window_start = now.saturating_sub(3_600_000).max(code_created_at_ms);
        let recent = residents_registered_since(conn, branch, window_start)?;
        if recent >= u64::from(residents_per_hour) {
            return refuse(AuthFailure::RateLimited, Some(branch));
        }
        let (record, secret) =
            insert_device(conn, branch, Role::Resident, None, device_name, actor_id)?;
        // No name, no actor: a resident is nobody in particular to the log.
        let mut audit = AuditRecord::new(event::RESIDENT_REGISTERED);
        audit.device = Some(record.device_id);
        audit.branch = Some(branch);
        // Stamped with the time the limit was judged by.
        audit.at_ms = Some(now);
        audit.insert(conn)?;
        return Ok(Ok((record, secret)));
    };
    let branch: BranchId = parse_id(&invite.text(0)?)?;
    if invite.opt_int(4)?.is_some() {
        return refuse(AuthFailure::InviteUsed, Some(branch));
    }
    if now >= invite.int(3)? {
        return refuse(AuthFailure::InviteExpired, Some(branch));
    }
    let role = invite.text(1)?;
    let role = parse_role(&role).ok_or_else(|| Error::Corrupt(format!("role {role:?}")))?;
    let member: Option<MemberId> = parse_opt_id(invite.opt_text(2)?)?;

    let (record, secret) = insert_device(conn, branch, role, member, device_name, actor_id)?;
    conn.execute(
        "UPDATE invites SET used_at_ms = ?2, used_by = ?3 WHERE code_hash = ?1",
        params![
            hash_code(invite_code).as_slice(),
            now,
            &record.device_id.to_string()
        ],
    )?;
    let mut audit = AuditRecord::new(event::DEVICE_ENROLLED);
    audit.device = Some(record.device_id);
    audit.member = member;
    audit.branch = Some(branch);
    audit.actor = Some(actor_id.to_vec());
    audit.detail = format!("role={role} name={}", record.name);
    audit.insert(conn)?;
    Ok(Ok((record, secret)))
}

/// Stores a new device with a fresh id and secret, and registers its
/// automerge actor.
fn insert_device(
    conn: &dyn Sql,
    branch: BranchId,
    role: Role,
    member: Option<MemberId>,
    device_name: &str,
    actor_id: &[u8],
) -> Result<(DeviceRecord, DeviceSecret)> {
    let now = db::now_ms();
    // A Branchline device writes under its own id as automerge actor; the
    // enrolled id is that same value, so the id a conflict names, the one
    // the device shows and the one `devices list` and `revoke` take are one.
    // A phone enrolling again after a revocation gets a fresh id (the old one
    // stays with the revoked record), as does any other actor.
    let device_id = match <[u8; 16]>::try_from(actor_id) {
        Ok(bytes) if device(conn, DeviceId::from_bytes(bytes))?.is_none() => {
            DeviceId::from_bytes(bytes)
        }
        _ => DeviceId::new_random(),
    };
    let secret = DeviceSecret::from_bytes(rand::random());
    let name: String = device_name
        .trim()
        .chars()
        .filter(|c| !c.is_control())
        .take(limits::MAX_DEVICE_NAME)
        .collect();
    let key = device_id.to_string();
    conn.execute(
        "INSERT INTO devices (device_id, branch_id, role, member_id, name, secret_hash, actor_id,
                              enrolled_at_ms, last_seen_ms)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?8)",
        params![
            &key,
            &branch.to_string(),
            role.as_str(),
            &member.map(|m| m.to_string()),
            &name,
            hash_secret(&secret).as_slice(),
            actor_id,
            now,
        ],
    )?;
    // A phone that enrolls again (after a revocation) keeps its actor id:
    // its changes from then on belong to the new device.
    conn.execute(
        "INSERT INTO actors (actor_id, device_id) VALUES (?1, ?2)
         ON CONFLICT (actor_id) DO UPDATE SET device_id = excluded.device_id",
        params![actor_id, &key],
    )?;
    let branch_name = conn
        .query_one(
            "SELECT name FROM branches WHERE branch_id = ?1",
            params![&branch.to_string()],
        )?
        .text(0)?;
    let record = DeviceRecord {
        device_id,
        branch,
        branch_name,
        role,
        member,
        name,
        revoked: false,
    };
    Ok((record, secret))
}

/// Reads a device as stored.
pub(crate) fn device(conn: &dyn Sql, device_id: DeviceId) -> Result<Option<DeviceRecord>> {
    Ok(device_with_hash(conn, device_id)?.map(|(record, _)| record))
}

fn device_with_hash(
    conn: &dyn Sql,
    device_id: DeviceId,
) -> Result<Option<(DeviceRecord, Vec<u8>)>> {
    let Some(row) = conn.query_opt(
        "SELECT d.branch_id, d.role, d.member_id, d.name, d.revoked_at_ms, d.secret_hash, b.name
         FROM devices d JOIN branches b ON b.branch_id = d.branch_id
         WHERE d.device_id = ?1",
        params![&device_id.to_string()],
    )?
    else {
        return Ok(None);
    };
    let role = row.text(1)?;
    let record = DeviceRecord {
        device_id,
        branch: parse_id(&row.text(0)?)?,
        branch_name: row.text(6)?,
        role: parse_role(&role).ok_or_else(|| Error::Corrupt(format!("role {role:?}")))?,
        member: parse_opt_id(row.opt_text(2)?)?,
        name: row.text(3)?,
        revoked: row.opt_int(4)?.is_some(),
    };
    Ok(Some((record, row.blob(5)?)))
}

/// Checks a returning device's credentials.
pub(crate) fn check_device(
    conn: &dyn Sql,
    device_id: DeviceId,
    secret: &DeviceSecret,
) -> Result<std::result::Result<DeviceRecord, AuthFailure>> {
    let presented = hash_secret(secret);
    let failure = match device_with_hash(conn, device_id)? {
        None => {
            // Same work as a known device, so timing does not tell which
            // device ids exist.
            let _ = same_hash(&presented, &[0; 32]);
            AuthFailure::Unauthenticated
        }
        Some((_, stored)) if !same_hash(&presented, &stored) => AuthFailure::Unauthenticated,
        Some((record, _)) if record.revoked => AuthFailure::DeviceRevoked,
        Some((record, _)) => return Ok(Ok(record)),
    };
    Ok(Err(failure))
}

/// Notes that a device connected.
pub(crate) fn touch(conn: &dyn Sql, device_id: DeviceId, now: i64) -> Result<()> {
    conn.execute(
        "UPDATE devices SET last_seen_ms = ?2 WHERE device_id = ?1",
        params![&device_id.to_string(), now],
    )?;
    Ok(())
}

/// Revokes a device (idempotent); `by` is the revoking device or `None` for
/// the admin CLI. Fails for an unknown device.
///
/// The revocation gets the next position in revocation order, by which
/// other processes find it ([`revoked_since`]); on PostgreSQL that
/// position comes from a sequence, with the writing transaction's id so a
/// reader never passes over one that commits late.
pub(crate) fn revoke(conn: &dyn Sql, device_id: DeviceId, by: Option<DeviceId>) -> Result<()> {
    let record = device(conn, device_id)?.ok_or(Error::UnknownDevice(device_id))?;
    if record.revoked {
        return Ok(());
    }
    let next = match conn.dialect() {
        Dialect::Sqlite => "revoked_seq = (SELECT coalesce(max(revoked_seq), 0) + 1 FROM devices)",
        Dialect::Postgres => {
            "revoked_seq = nextval('revocation_seq'), revoked_xid = pg_current_xact_id()"
        }
    };
    conn.execute(
        &format!("UPDATE devices SET revoked_at_ms = ?2, {next} WHERE device_id = ?1"),
        params![&device_id.to_string(), db::now_ms()],
    )?;
    crate::postgres::announce(conn)?;
    let mut audit = AuditRecord::new(event::DEVICE_REVOKED);
    audit.device = Some(device_id);
    audit.member = record.member;
    audit.branch = Some(record.branch);
    audit.detail = match by {
        Some(by) => format!("by device {by}"),
        None => "by admin".into(),
    };
    audit.insert(conn)?;
    Ok(())
}

/// Devices revoked after position `after` in revocation order, with the
/// newest position.
pub(crate) fn revoked_since(conn: &dyn Sql, after: i64) -> Result<(Vec<DeviceId>, i64)> {
    let rows = conn.query(
        "SELECT device_id, revoked_seq FROM devices WHERE revoked_seq > ?1 ORDER BY revoked_seq",
        params![after],
    )?;
    let mut newest = after;
    let mut devices = Vec::with_capacity(rows.len());
    for row in rows {
        devices.push(parse_id(&row.text(0)?)?);
        newest = newest.max(row.int(1)?);
    }
    Ok((devices, newest))
}

/// The device an automerge actor id was registered by, with its member.
pub(crate) fn device_of_actor(
    conn: &dyn Sql,
    actor: &[u8],
) -> Result<Option<(DeviceId, Option<MemberId>)>> {
    conn.query_opt(
        "SELECT d.device_id, d.member_id FROM actors a JOIN devices d USING (device_id)
         WHERE a.actor_id = ?1",
        params![actor],
    )?
    .map(|row| Ok((parse_id(&row.text(0)?)?, parse_opt_id(row.opt_text(1)?)?)))
    .transpose()
}

#[cfg(test)]
mod tests {
    use rusqlite::Connection;

    use super::*;

    fn database() -> (tempfile::TempDir, Connection, BranchId) {
        let dir = tempfile::tempdir().unwrap();
        let conn = db::open(&dir.path().join(db::FILE_NAME)).unwrap();
        let branch = BranchId::new_random();
        conn.execute(
            "INSERT INTO branches (branch_id, name, level, created_at_ms) VALUES (?1, 'b', 'branch', 0)",
            [branch.to_string()],
        )
        .unwrap();
        (dir, conn, branch)
    }

    #[test]
    fn codes_are_grouped_unambiguous_and_distinct() {
        let a = new_invite_code();
        assert_eq!(a.len(), 19);
        assert!(
            a.split('-')
                .all(|g| g.len() == 4 && g.bytes().all(|b| CODE_ALPHABET.contains(&b)))
        );
        assert_ne!(a, new_invite_code());
        assert_eq!(hash_code(&a), hash_code(&format!(" {} ", a.to_lowercase())));
    }

    #[test]
    fn invite_enrolls_once_then_is_used() {
        let (_dir, conn, branch) = database();
        let member = MemberId::new_random();
        let invite = create_invite(
            &conn,
            db::now_ms(),
            branch,
            Role::Member,
            Some(member),
            Duration::from_secs(3600),
            None,
        )
        .unwrap();
        let (device, secret) = enroll(
            &conn,
            db::now_ms(),
            &invite.code,
            " Li's phone\n",
            b"actor-1",
            30,
        )
        .unwrap()
        .unwrap();
        assert_eq!(device.branch, branch);
        assert_eq!(device.role, Role::Member);
        assert_eq!(device.member, Some(member));
        assert_eq!(device.name, "Li's phone");
        assert_eq!(
            enroll(&conn, db::now_ms(), &invite.code, "again", b"actor-2", 30).unwrap(),
            Err(AuthFailure::InviteUsed)
        );
        assert_eq!(
            enroll(&conn, db::now_ms(), "NOPE-NOPE-NOPE-NOPE", "x", b"a", 30).unwrap(),
            Err(AuthFailure::InviteInvalid)
        );
        // Only hashes are stored.
        let stored: Vec<u8> = conn
            .query_row("SELECT secret_hash FROM devices", [], |r| r.get(0))
            .unwrap();
        assert_ne!(stored.as_slice(), secret.expose());
        assert_eq!(
            device_of_actor(&conn, b"actor-1").unwrap(),
            Some((device.device_id, Some(member)))
        );
    }

    #[test]
    fn submission_codes_register_residents_until_the_hourly_limit() {
        let (_dir, conn, branch) = database();
        let code = submission_code(&conn, branch, false).unwrap();
        assert!(code.starts_with(SUBMISSION_CODE_PREFIX) && code.len() == 21);
        assert_eq!(submission_code(&conn, branch, false).unwrap(), code);
        for i in 0..3u8 {
            let (device, _) = enroll(&conn, db::now_ms(), &code.to_lowercase(), "phone", &[i], 3)
                .unwrap()
                .unwrap();
            assert_eq!((device.role, device.member), (Role::Resident, None));
        }
        assert_eq!(
            enroll(&conn, db::now_ms(), &code, "phone", b"x", 3).unwrap(),
            Err(AuthFailure::RateLimited)
        );
        assert_eq!(residents_registered_since(&conn, branch, 0).unwrap(), 3);
        // A new code starts afresh; the old one is unknown.
        let rotated = submission_code(&conn, branch, true).unwrap();
        assert_ne!(rotated, code);
        assert!(
            enroll(&conn, db::now_ms(), &rotated, "phone", b"y", 3)
                .unwrap()
                .is_ok()
        );
        assert_eq!(
            enroll(&conn, db::now_ms(), &code, "phone", b"z", 3).unwrap(),
            Err(AuthFailure::InviteInvalid)
        );
        assert!(matches!(
            submission_code(&conn, BranchId::new_random(), false),
            Err(Error::UnknownBranch(_))
        ));
    }

    #[test]
    fn expired_invite_is_refused() {
        let (_dir, conn, branch) = database();
        let invite = create_invite(
            &conn,
            db::now_ms(),
            branch,
            Role::Resident,
            None,
            Duration::from_millis(1),
            None,
        )
        .unwrap();
        std::thread::sleep(Duration::from_millis(5));
        assert_eq!(
            enroll(&conn, db::now_ms(), &invite.code, "late", b"a", 30).unwrap(),
            Err(AuthFailure::InviteExpired)
        );
        // An expired invite stays unused: it cannot be revived either.
        let used: Option<i64> = conn
            .query_row("SELECT used_at_ms FROM invites", [], |r| r.get(0))
            .unwrap();
        assert_eq!(used, None);
        assert!(matches!(
            create_invite(
                &conn,
                db::now_ms(),
                branch,
                Role::Member,
                None,
                Duration::ZERO,
                None
            ),
            Err(Error::Invalid { .. })
        ));
        assert!(matches!(
            create_invite(
                &conn,
                db::now_ms(),
                BranchId::new_random(),
                Role::Member,
                None,
                Duration::from_secs(1),
                None
            ),
            Err(Error::UnknownBranch(_))
        ));
    }

    #[test]
    fn device_credentials_and_revocation() {
        let (_dir, conn, branch) = database();
        let invite = create_invite(
            &conn,
            db::now_ms(),
            branch,
            Role::Secretary,
            None,
            Duration::from_secs(60),
            None,
        )
        .unwrap();
        let (device, secret) = enroll(&conn, db::now_ms(), &invite.code, "pc", b"a", 30)
            .unwrap()
            .unwrap();
        assert_eq!(
            check_device(&conn, device.device_id, &secret).unwrap(),
            Ok(device.clone())
        );
        let wrong = DeviceSecret::from_bytes([7; 32]);
        assert_eq!(
            check_device(&conn, device.device_id, &wrong).unwrap(),
            Err(AuthFailure::Unauthenticated)
        );
        assert_eq!(
            check_device(&conn, DeviceId::new_random(), &secret).unwrap(),
            Err(AuthFailure::Unauthenticated)
        );
        revoke(&conn, device.device_id, None).unwrap();
        revoke(&conn, device.device_id, None).unwrap();
        assert_eq!(
            check_device(&conn, device.device_id, &secret).unwrap(),
            Err(AuthFailure::DeviceRevoked)
        );
        // A wrong secret for a revoked device reveals nothing more.
        assert_eq!(
            check_device(&conn, device.device_id, &wrong).unwrap(),
            Err(AuthFailure::Unauthenticated)
        );
        let (revoked, newest) = revoked_since(&conn, 0).unwrap();
        assert_eq!(revoked, vec![device.device_id]);
        assert_eq!(revoked_since(&conn, newest).unwrap().0, vec![]);
        assert!(matches!(
            revoke(&conn, DeviceId::new_random(), None),
            Err(Error::UnknownDevice(_))
        ));
    }

    #[test]
    fn a_device_is_enrolled_under_its_actor_id() {
        let (_dir, conn, branch) = database();
        let invite = |role| {
            create_invite(
                &conn,
                db::now_ms(),
                branch,
                role,
                None,
                Duration::from_secs(60),
                None,
            )
            .unwrap()
            .code
        };
        let actor = [0x5a; 16];
        let (device, _) = enroll(
            &conn,
            db::now_ms(),
            &invite(Role::Secretary),
            "pc",
            &actor,
            30,
        )
        .unwrap()
        .unwrap();
        assert_eq!(device.device_id, DeviceId::from_bytes(actor));
        assert_eq!(
            device_of_actor(&conn, &actor).unwrap().unwrap().0,
            device.device_id
        );
        // Enrolled again after a revocation: a fresh id, which the actor's
        // changes belong to from then on.
        revoke(&conn, device.device_id, None).unwrap();
        let (again, _) = enroll(&conn, db::now_ms(), &invite(Role::Member), "pc", &actor, 30)
            .unwrap()
            .unwrap();
        assert_ne!(again.device_id, device.device_id);
        assert_eq!(
            device_of_actor(&conn, &actor).unwrap().unwrap().0,
            again.device_id
        );
        // An actor that is no device id gets a random one.
        let (other, _) = enroll(&conn, db::now_ms(), &invite(Role::Member), "tool", b"x", 30)
            .unwrap()
            .unwrap();
        assert_ne!(other.device_id.as_bytes().as_slice(), b"x");
    }
}
