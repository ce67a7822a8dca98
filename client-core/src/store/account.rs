//! The device's account on its branch server: one row, written at enrollment.
//!
//! The account is what a device needs to reconnect: where the server is, the
//! fingerprint that pins its certificate, and the device id and secret the server
//! issued. It also remembers what the server last said about the device (branch,
//! member, role, the branch's name), so the app can show it offline.
//!
//! A revoked device forgets its account but remembers the [`Revocation`]: who it
//! was and when it heard. Its records stay readable; every write through
//! [`Store::require_writable`] fails with [`Error::DeviceRevoked`] until the device
//! enrolls again (saving a new account ends the revocation).

use std::fmt;

use branchline_protocol::{DeviceId as WireDeviceId, DeviceSecret, Role};
use rusqlite::{OptionalExtension, params};

use super::Store;
use crate::error::{Error, Result};
use crate::ids::{BranchId, MemberId};
use crate::model::Timestamp;

/// Who this device is on its branch server.
#[derive(Clone, PartialEq, Eq)]
pub struct Account {
    /// The server's address, `host:port`.
    pub server: String,
    /// The SHA-256 fingerprint of the server's certificate (DER), from the invite.
    pub cert_sha256: [u8; 32],
    /// The id the server gave this device when it enrolled.
    pub device_id: WireDeviceId,
    /// The secret the server gave this device when it enrolled; never logged.
    pub secret: DeviceSecret,
    /// The branch whose records this device syncs.
    pub branch: BranchId,
    /// The member this device belongs to (none for a resident's device).
    pub member: Option<MemberId>,
    /// What the device's member may do in the branch, as of the last Welcome.
    pub role: Role,
    /// The name the device enrolled under, e.g. "Maria's phone".
    pub device_name: String,
    /// The branch's name, as the server last said (none from a server older than
    /// protocol version 4).
    pub branch_name: Option<String>,
}

/// Who a device was when its server revoked it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Revocation {
    /// The device id the server revoked.
    pub device_id: WireDeviceId,
    /// The branch it belonged to.
    pub branch: BranchId,
    /// That branch's name, if the server had told it.
    pub branch_name: Option<String>,
    /// When the device heard it was revoked, by the store's clock.
    pub revoked_at: Timestamp,
}

impl fmt::Debug for Account {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Account")
            .field("server", &self.server)
            .field("cert_sha256", &hex(&self.cert_sha256))
            .field("device_id", &self.device_id)
            .field("secret", &"<redacted>")
            .field("branch", &self.branch)
            .field("member", &self.member)
            .field("role", &self.role)
            .field("device_name", &self.device_name)
            .field("branch_name", &self.branch_name)
            .finish()
    }
}

/// Lowercase hex, the form fingerprints take in invite links and peer names.
pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn role_from_str(text: &str) -> Result<Role> {
    [
        Role::Secretary,
        Role::Committee,
        Role::Member,
        Role::Resident,
    ]
    .into_iter()
    .find(|role| role.as_str() == text)
    .ok_or_else(|| Error::Corrupt(format!("stored role {text:?}")))
}

impl Store {
    /// The device's account, if it has enrolled (and not been revoked since).
    pub fn account(&self) -> Result<Option<Account>> {
        let row = self
            .conn
            .query_row(
                "SELECT server, cert_sha256, device_id, secret, branch_id, member_id, role,
                        device_name, branch_name
                 FROM account WHERE singleton = 1",
                [],
                |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, Vec<u8>>(1)?,
                        r.get::<_, String>(2)?,
                        r.get::<_, Vec<u8>>(3)?,
                        r.get::<_, String>(4)?,
                        r.get::<_, Option<String>>(5)?,
                        r.get::<_, String>(6)?,
                        r.get::<_, String>(7)?,
                        r.get::<_, Option<String>>(8)?,
                    ))
                },
            )
            .optional()?;
        let Some((server, cert, device, secret, branch, member, role, device_name, branch_name)) =
            row
        else {
            return Ok(None);
        };
        let corrupt = |what: &str| Error::Corrupt(format!("stored account: {what}"));
        Ok(Some(Account {
            server,
            cert_sha256: cert.try_into().map_err(|_| corrupt("fingerprint"))?,
            device_id: device.parse().map_err(|_| corrupt("device id"))?,
            secret: DeviceSecret::from_bytes(secret.try_into().map_err(|_| corrupt("secret"))?),
            branch: branch.parse()?,
            member: member.map(|m| m.parse()).transpose()?,
            role: role_from_str(&role)?,
            device_name,
            branch_name,
        }))
    }

    /// Stores the device's account, replacing any earlier one; a device that was
    /// revoked and enrolled again is no longer revoked.
    pub fn save_account(&mut self, account: &Account) -> Result<()> {
        let tx = self.conn.unchecked_transaction()?;
        tx.execute("DELETE FROM revocation", [])?;
        tx.execute(
            "INSERT OR REPLACE INTO account (singleton, server, cert_sha256, device_id, secret,
                                             branch_id, member_id, role, device_name,
                                             branch_name)
             VALUES (1, ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            params![
                account.server,
                account.cert_sha256.as_slice(),
                account.device_id.to_string(),
                account.secret.expose().as_slice(),
                account.branch.to_string(),
                account.member.map(|m| m.to_string()),
                account.role.as_str(),
                account.device_name,
                account.branch_name,
            ],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// Forgets the account (the server revoked this device) and remembers who the
    /// device was, now. The records stay, to read only; the device must enroll
    /// again to change or sync them.
    pub fn forget_account(&mut self) -> Result<()> {
        let now = self.now().0;
        let tx = self.conn.unchecked_transaction()?;
        tx.execute(
            "INSERT OR REPLACE INTO revocation
                 (singleton, device_id, branch_id, branch_name, revoked_at_ms)
             SELECT 1, device_id, branch_id, branch_name, ?1 FROM account WHERE singleton = 1",
            params![now],
        )?;
        tx.execute("DELETE FROM account", [])?;
        tx.commit()?;
        Ok(())
    }

    /// Who this device was when the server revoked it, if it did (and it has not
    /// enrolled again since).
    pub fn revocation(&self) -> Result<Option<Revocation>> {
        let row = self
            .conn
            .query_row(
                "SELECT device_id, branch_id, branch_name, revoked_at_ms
                 FROM revocation WHERE singleton = 1",
                [],
                |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, Option<String>>(2)?,
                        r.get::<_, i64>(3)?,
                    ))
                },
            )
            .optional()?;
        let Some((device, branch, branch_name, at)) = row else {
            return Ok(None);
        };
        Ok(Some(Revocation {
            device_id: device
                .parse()
                .map_err(|_| Error::Corrupt("stored revocation: device id".into()))?,
            branch: branch.parse()?,
            branch_name,
            revoked_at: Timestamp(at),
        }))
    }

    /// Fails with [`Error::DeviceRevoked`] if the server revoked this device: its
    /// records are then for reading only. Apps call it before every edit.
    pub fn require_writable(&self) -> Result<()> {
        match self.revocation()? {
            Some(_) => Err(Error::DeviceRevoked),
            None => Ok(()),
        }
    }
}

/// The member the enrolled device belongs to, if any.
pub(crate) fn member_of_device(conn: &rusqlite::Connection) -> Result<Option<MemberId>> {
    use rusqlite::OptionalExtension as _;
    let member: Option<Option<String>> = conn
        .query_row(
            "SELECT member_id FROM account WHERE singleton = 1",
            [],
            |r| r.get(0),
        )
        .optional()?;
    member.flatten().map(|m| m.parse()).transpose()
}
