//! The invite link a secretary hands to a new device, as text or a QR code.
//!
//! ```text
//! branchline://<host>:<port>/<code>?cert=<SHA-256 of the server certificate, 64 hex digits>
//! branchline://<host>:<port>,<host>:<port>/<code>?cert=…
//! ```
//!
//! A deployment of several nodes on one database lists them all, separated
//! by commas (or gives one name that resolves to several addresses): a
//! device tries them in turn and moves on when the one it uses dies. Every
//! node shares the certificate the fingerprint pins.
//!
//! The link carries everything a device needs to join without any other
//! setup: where the server is, the one-time code that enrolls it, and the
//! fingerprint that pins the server's (self-signed) certificate, so the
//! device can trust the server before it has ever talked to it.

use std::fmt;
use std::str::FromStr;

/// The scheme every invite link starts with.
pub const SCHEME: &str = "branchline://";

/// A parsed invite link; see the [module docs](self).
#[derive(Clone, PartialEq, Eq)]
pub struct InviteLink {
    /// The server's address as `host:port`, or the addresses of several
    /// nodes serving the same branches, separated by commas; see
    /// [`InviteLink::addresses`].
    pub server: String,
    /// The one-time code that enrolls the device.
    pub code: String,
    /// The SHA-256 fingerprint of the server's certificate (DER).
    pub cert_sha256: [u8; 32],
}

/// Why text is not an invite link.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InviteParseError {
    /// The text does not start with `branchline://`.
    #[error("an invite link starts with {SCHEME}")]
    Scheme,
    /// The server address is missing or one of them has no port.
    #[error("the invite link has no server address with a port")]
    Server,
    /// The invite code is missing or holds characters other than letters, digits and `-`.
    #[error("the invite link has no valid invite code")]
    Code,
    /// The certificate fingerprint is missing or is not 64 hex digits.
    #[error("the invite link has no valid certificate fingerprint (cert=<64 hex digits>)")]
    Fingerprint,
}

impl InviteParseError {
    /// The stable code of this error, for apps to translate.
    pub const fn code(&self) -> &'static str {
        match self {
            InviteParseError::Scheme => "invite.scheme",
            InviteParseError::Server => "invite.server",
            InviteParseError::Code => "invite.code",
            InviteParseError::Fingerprint => "invite.fingerprint",
        }
    }
}

/// The most node addresses a link or an account may list.
pub const MAX_ADDRESSES: usize = 16;

/// The `host:port` entries of a server field, in order; `None` if one is
/// empty, lacks a port, or there are more than [`MAX_ADDRESSES`].
pub fn split_addresses(server: &str) -> Option<Vec<&str>> {
    let addresses: Vec<&str> = server.split(',').collect();
    let valid = addresses.len() <= MAX_ADDRESSES
        && addresses.iter().all(|address| {
            address
                .rsplit_once(':')
                .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok())
        });
    valid.then_some(addresses)
}

impl InviteLink {
    /// The `host:port` of every node the link names, in the order a device
    /// tries them.
    pub fn addresses(&self) -> Vec<&str> {
        split_addresses(&self.server).unwrap_or_else(|| vec![self.server.as_str()])
    }
}

impl fmt::Display for InviteLink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{SCHEME}{}/{}?cert=", self.server, self.code)?;
        self.cert_sha256
            .iter()
            .try_for_each(|byte| write!(f, "{byte:02x}"))
    }
}

impl fmt::Debug for InviteLink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The code is a bearer secret until it is used.
        f.debug_struct("InviteLink")
            .field("server", &self.server)
            .field("code", &"<redacted>")
            .finish_non_exhaustive()
    }
}

impl FromStr for InviteLink {
    type Err = InviteParseError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let rest = text
            .trim()
            .strip_prefix(SCHEME)
            .ok_or(InviteParseError::Scheme)?;
        let (server, rest) = rest.split_once('/').ok_or(InviteParseError::Server)?;
        if split_addresses(server).is_none() {
            return Err(InviteParseError::Server);
        }
        let (code, query) = rest.split_once('?').ok_or(InviteParseError::Fingerprint)?;
        let code_ok = !code.is_empty()
            && code.len() <= 128
            && code.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
        if !code_ok {
            return Err(InviteParseError::Code);
        }
        let hex = query
            .strip_prefix("cert=")
            .ok_or(InviteParseError::Fingerprint)?;
        Ok(InviteLink {
            server: server.to_owned(),
            code: code.to_owned(),
            cert_sha256: parse_fingerprint(hex).ok_or(InviteParseError::Fingerprint)?,
        })
    }
}

/// Parses 64 hex digits into a SHA-256 fingerprint.
pub fn parse_fingerprint(hex: &str) -> Option<[u8; 32]> {
    if hex.len() != 64 || !hex.is_ascii() {
        return None;
    }
    let mut out = [0; 32];
    for (byte, pair) in out.iter_mut().zip(hex.as_bytes().chunks(2)) {
        // Both bytes are ASCII, so this slice is valid UTF-8.
        *byte = u8::from_str_radix(std::str::from_utf8(pair).ok()?, 16).ok()?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn link() -> InviteLink {
        InviteLink {
            server: "branch.example.org:4433".to_owned(),
            code: "K7QX-M2PA-9RTD".to_owned(),
            cert_sha256: std::array::from_fn(|i| i as u8 * 7),
        }
    }

    #[test]
    fn link_text_is_stable() {
        assert_eq!(
            link().to_string(),
            "branchline://branch.example.org:4433/K7QX-M2PA-9RTD?cert=\
             00070e151c232a31383f464d545b626970777e858c939aa1a8afb6bdc4cbd2d9"
        );
        assert_eq!(link().to_string().parse::<InviteLink>(), Ok(link()));
    }

    #[test]
    fn bad_links_name_what_is_wrong() {
        let cert = "00".repeat(32);
        let cases = [
            ("https://x:1/C?cert=00", InviteParseError::Scheme),
            ("branchline://x/C?cert=00", InviteParseError::Server),
            ("branchline://x:99999/C?cert=00", InviteParseError::Server),
            ("branchline://:1/C?cert=00", InviteParseError::Server),
            ("branchline://x:1,/C?cert=00", InviteParseError::Server),
            ("branchline://x:1,y/C?cert=00", InviteParseError::Server),
            (
                &*format!("branchline://{}/C?cert=00", vec!["x:1"; 17].join(",")),
                InviteParseError::Server,
            ),
            (
                &*format!("branchline://x:1/?cert={cert}"),
                InviteParseError::Code,
            ),
            (
                &*format!("branchline://x:1/a b?cert={cert}"),
                InviteParseError::Code,
            ),
            ("branchline://x:1/C", InviteParseError::Fingerprint),
            ("branchline://x:1/C?cert=zz", InviteParseError::Fingerprint),
            (
                &*format!("branchline://x:1/C?cert={}", "é".repeat(32)),
                InviteParseError::Fingerprint,
            ),
        ];
        for (text, expected) in cases {
            assert_eq!(text.parse::<InviteLink>(), Err(expected.clone()), "{text}");
            assert!(expected.code().starts_with("invite."));
        }
    }

    #[test]
    fn a_link_names_several_nodes_in_order() {
        let text = format!(
            "branchline://node1.example.org:4433,10.0.0.2:4433/K7QX?cert={}",
            "00".repeat(32)
        );
        let link: InviteLink = text.parse().unwrap();
        assert_eq!(
            link.addresses(),
            ["node1.example.org:4433", "10.0.0.2:4433"]
        );
        assert_eq!(link.to_string(), text);
        assert_eq!(
            InviteLink {
                server: "x:1".into(),
                ..link
            }
            .addresses(),
            ["x:1"]
        );
    }

    #[test]
    fn debug_hides_the_code() {
        assert!(!format!("{:?}", link()).contains("K7QX"));
    }

    proptest! {
        #[test]
        fn parsing_never_panics(text in ".*") {
            let _ = text.parse::<InviteLink>();
        }

        #[test]
        fn links_round_trip(
            host in "[a-z0-9.]{1,20}",
            port: u16,
            code in "[A-Za-z0-9-]{1,40}",
            cert: [u8; 32],
        ) {
            let link = InviteLink { server: format!("{host}:{port}"), code, cert_sha256: cert };
            prop_assert_eq!(link.to_string().parse::<InviteLink>(), Ok(link));
        }
    }
}
