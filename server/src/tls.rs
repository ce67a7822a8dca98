//! The server's TLS identity: a self-signed certificate made on first run.
//!
//! Devices do not trust it through a certificate authority: the invite link
//! carries the SHA-256 of the certificate (DER), and a device pins that
//! fingerprint. So the certificate must stay the same across restarts; it
//! is written once, as PEM files under `tls/` in the data directory (the
//! key readable by the owner only), and reused afterwards.
//!
//! Nodes sharing a PostgreSQL database must all present the one certificate
//! their invites pin, so there the identity lives in the database
//! (`server_info`), made by the first node that starts (or taken from its
//! `tls/` directory, where an older deployment kept it) and read by every
//! other: a new node needs only the database's address.

use std::fs;
use std::path::{Path, PathBuf};

use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use sha2::{Digest as _, Sha256};

use crate::db;
use crate::error::{Error, Result};
use crate::sql::Sql;

/// Host names the certificate is made for.
const SUBJECT_ALT_NAMES: [&str; 2] = ["localhost", "branchline.local"];

/// The certificate and key the server presents.
pub(crate) struct Identity {
    pub cert: CertificateDer<'static>,
    pub key: PrivateKeyDer<'static>,
    pub fingerprint: [u8; 32],
    /// The key QUIC stateless resets are derived from. Kept across
    /// restarts, so after a crash the server can tell devices at once that
    /// their old connection is gone, instead of leaving them to wait out
    /// the idle timeout.
    pub reset_key: [u8; 32],
}

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Identity")
            .field("fingerprint", &hex(&self.fingerprint))
            .finish_non_exhaustive()
    }
}

/// Lowercase hex of some bytes.
pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The SHA-256 fingerprint of a certificate.
pub(crate) fn fingerprint(cert: &CertificateDer<'_>) -> [u8; 32] {
    Sha256::digest(cert.as_ref()).into()
}

fn tls_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("tls")
}

impl Identity {
    /// The identity in its stored forms: PEM certificate and key, and the
    /// 32-byte reset key.
    fn from_stored(cert_pem: &[u8], key_pem: &[u8], reset_key: &[u8]) -> Result<Identity> {
        let cert = CertificateDer::from_pem_slice(cert_pem)
            .map_err(|e| Error::Certificate(format!("certificate: {e}")))?;
        let key = PrivateKeyDer::from_pem_slice(key_pem)
            .map_err(|e| Error::Certificate(format!("private key: {e}")))?;
        let reset_key = reset_key
            .try_into()
            .map_err(|_| Error::Certificate("the reset key must hold exactly 32 bytes".into()))?;
        Ok(Identity {
            fingerprint: fingerprint(&cert),
            cert,
            key,
            reset_key,
        })
    }
}

/// Loads the identity from `data_dir`, creating it on first run.
pub(crate) fn load_or_create(data_dir: &Path) -> Result<Identity> {
    let dir = tls_dir(data_dir);
    if !dir.join("cert.pem").exists() {
        create(data_dir, &dir)?;
    }
    let read = |name: &str| {
        fs::read(dir.join(name)).map_err(|e| Error::Certificate(format!("{name}: {e}")))
    };
    let reset_key = load_or_create_reset_key(&dir)?;
    Identity::from_stored(&read("cert.pem")?, &read("key.pem")?, &reset_key)
}

/// `server_info` keys of the identity nodes share.
const SHARED_KEYS: [&str; 3] = ["tls_cert_pem", "tls_key_pem", "tls_reset_key"];

/// The identity every node on one PostgreSQL database presents: read from
/// the database, or, by the first node, stored there (the one in its
/// `data_dir` if it has one, so links already handed out stay valid,
/// otherwise a new one). Run in a write transaction: the lock makes nodes
/// starting together agree on one.
pub(crate) fn shared(conn: &dyn Sql, data_dir: &Path) -> Result<Identity> {
    crate::postgres::lock(conn, "tls_identity")?;
    let mut stored = Vec::with_capacity(SHARED_KEYS.len());
    for key in SHARED_KEYS {
        stored.push(db::get_info(conn, key)?);
    }
    if let [Some(cert), Some(key), Some(reset)] = stored.as_slice() {
        return Identity::from_stored(cert, key, reset);
    }
    let dir = tls_dir(data_dir);
    let (cert, key, reset) = if dir.join("cert.pem").exists() {
        let read = |name: &str| {
            fs::read(dir.join(name)).map_err(|e| Error::Certificate(format!("{name}: {e}")))
        };
        (
            read("cert.pem")?,
            read("key.pem")?,
            load_or_create_reset_key(&dir)?.to_vec(),
        )
    } else {
        let (cert, key) = generate()?;
        (
            cert.into_bytes(),
            key.into_bytes(),
            rand::random::<[u8; 32]>().to_vec(),
        )
    };
    let identity = Identity::from_stored(&cert, &key, &reset)?;
    for (name, value) in SHARED_KEYS.into_iter().zip([&cert, &key, &reset]) {
        db::set_info(conn, name, value)?;
    }
    Ok(identity)
}

/// Reads `reset.key`, creating it (32 random bytes, owner-only) if absent.
fn load_or_create_reset_key(dir: &Path) -> Result<[u8; 32]> {
    let path = dir.join("reset.key");
    if !path.exists() {
        match write_private(&path, &rand::random::<[u8; 32]>()) {
            Ok(()) => {}
            // Another process starting at the same time made it first.
            Err(_) if path.exists() => {}
            Err(e) => return Err(e),
        }
    }
    fs::read(&path)?
        .try_into()
        .map_err(|_| Error::Certificate("tls/reset.key must hold exactly 32 bytes".to_owned()))
}

/// Writes a new certificate and key into a temporary directory, then
/// renames it into place, so a reader never sees a half-written pair and two
/// processes starting at once end up sharing one identity.
fn create(data_dir: &Path, dir: &Path) -> Result<()> {
    let (cert, key) = generate()?;
    let staging = data_dir.join(format!("tls.tmp-{}", hex(&rand::random::<[u8; 8]>())));
    fs::create_dir_all(&staging)?;
    fs::write(staging.join("cert.pem"), cert)?;
    write_private(&staging.join("key.pem"), key.as_bytes())?;
    match fs::rename(&staging, dir) {
        Ok(()) => Ok(()),
        // Someone else won the race: use theirs.
        Err(_) if dir.join("cert.pem").exists() => {
            let _ = fs::remove_dir_all(&staging);
            Ok(())
        }
        Err(e) => {
            let _ = fs::remove_dir_all(&staging);
            Err(e.into())
        }
    }
}

/// A new self-signed certificate and its key, as PEM.
fn generate() -> Result<(String, String)> {
    let names: Vec<String> = SUBJECT_ALT_NAMES.iter().map(|n| (*n).to_owned()).collect();
    // Ed25519: the shortest certificate and signature TLS 1.3 offers, and every
    // full handshake carries both to the phone.
    let certificate_error = |e: rcgen::Error| Error::Certificate(e.to_string());
    let signing_key =
        rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).map_err(certificate_error)?;
    let cert = rcgen::CertificateParams::new(names)
        .and_then(|params| params.self_signed(&signing_key))
        .map_err(certificate_error)?;
    Ok((cert.pem(), signing_key.serialize_pem()))
}

/// Writes a file only its owner can read.
fn write_private(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write as _;
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    Ok(())
}

/// Creates the data directory (owner-only on Unix) if it does not exist.
pub(crate) fn prepare_data_dir(data_dir: &Path) -> Result<()> {
    if !data_dir.exists() {
        fs::create_dir_all(data_dir)?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            fs::set_permissions(data_dir, fs::Permissions::from_mode(0o700))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_is_created_once_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let first = load_or_create(dir.path()).unwrap();
        let again = load_or_create(dir.path()).unwrap();
        assert_eq!(first.fingerprint, again.fingerprint);
        assert_eq!(first.fingerprint, fingerprint(&again.cert));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = fs::metadata(dir.path().join("tls/key.pem"))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        // No staging directories are left behind.
        let leftovers = fs::read_dir(dir.path())
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .starts_with("tls.tmp")
            })
            .count();
        assert_eq!(leftovers, 0);
    }

    /// Data directories naming one PostgreSQL database: a node needs only
    /// the database's address, and every node presents one certificate.
    #[test]
    fn nodes_on_one_postgres_share_one_identity() {
        let cluster = crate::pg_cluster::TempCluster::start().unwrap_or_else(|e| panic!("{e}"));
        let node = |tls_from: Option<&Path>| {
            let dir = tempfile::tempdir().unwrap();
            fs::write(dir.path().join(db::DATABASE_URL_FILE), cluster.url()).unwrap();
            if let Some(older) = tls_from {
                let copied = dir.path().join("tls");
                fs::create_dir(&copied).unwrap();
                for name in ["cert.pem", "key.pem", "reset.key"] {
                    fs::copy(older.join("tls").join(name), copied.join(name)).unwrap();
                }
            }
            dir
        };
        // The first node to start had its own identity on disk (an older
        // deployment): it is the one the database keeps, so links already
        // handed out stay valid.
        let older = tempfile::tempdir().unwrap();
        let on_disk = load_or_create(older.path()).unwrap();
        let first = node(Some(older.path()));
        let second = node(None);
        let fingerprint_of = |dir: &Path| {
            crate::Admin::open(dir)
                .and_then(|admin| admin.certificate_fingerprint())
                .unwrap()
        };
        assert_eq!(fingerprint_of(first.path()), on_disk.fingerprint);
        assert_eq!(fingerprint_of(second.path()), on_disk.fingerprint);
        assert!(
            !second.path().join("tls").exists(),
            "a node with the database's address writes no identity of its own"
        );
        // A node that brings another identity still presents the shared one.
        let stray = tempfile::tempdir().unwrap();
        load_or_create(stray.path()).unwrap();
        let third = node(Some(stray.path()));
        assert_eq!(fingerprint_of(third.path()), on_disk.fingerprint);
    }
}
