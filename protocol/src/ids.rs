//! Identifiers and small value types shared by every message.
//!
//! Documents, branches, members and devices are named by random 128-bit
//! ids (the bytes of a version 4 UUID). On the wire an id is exactly its
//! 16 bytes; in text (logs, JSON, the command line) it is the usual
//! lowercase hyphenated UUID form, e.g. `67e55044-10b1-426f-9247-bb680e5fe0c8`.
//! Ids order by their bytes, which is the order manifest ranges use.
//!
//! [`Heads`] are the automerge change hashes at the tip of a document's
//! history: two replicas with equal heads hold the same document.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Why a piece of text is not an id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IdParseError {
    /// The text is not in lowercase hyphenated UUID form
    /// (`xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx`).
    #[error("not a lowercase hyphenated UUID: {0:?}")]
    NotCanonical(String),
}

/// Parses the canonical text form only, so that text and id map one to one
/// and ids compare equal as strings wherever they are stored as text.
fn parse_canonical_uuid(text: &str) -> Result<[u8; 16], IdParseError> {
    // uuid also accepts braced, URN, simple and uppercase forms; comparing
    // the re-formatted id with the input rejects all of them.
    match uuid::Uuid::try_parse(text) {
        Ok(id) if id.hyphenated().to_string() == text => Ok(id.into_bytes()),
        _ => Err(IdParseError::NotCanonical(text.to_owned())),
    }
}

/// Defines a 16-byte id newtype with text, debug and serde forms.
macro_rules! define_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name([u8; 16]);

        impl $name {
            /// The smallest id (all zero bytes); the start of the whole id space.
            pub const MIN: Self = Self([0; 16]);

            /// The largest id (all 0xff bytes).
            pub const MAX: Self = Self([0xff; 16]);

            /// A new random id (a version 4 UUID).
            pub fn new_random() -> Self {
                Self(uuid::Uuid::new_v4().into_bytes())
            }

            /// The id with these bytes.
            pub const fn from_bytes(bytes: [u8; 16]) -> Self {
                Self(bytes)
            }

            /// The id's 16 bytes, as sent on the wire.
            pub const fn as_bytes(&self) -> &[u8; 16] {
                &self.0
            }
        }

        impl From<[u8; 16]> for $name {
            fn from(bytes: [u8; 16]) -> Self {
                Self(bytes)
            }
        }

        impl From<$name> for [u8; 16] {
            fn from(id: $name) -> Self {
                id.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&uuid::Uuid::from_bytes(self.0).hyphenated(), f)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({self})", stringify!($name))
            }
        }

        impl FromStr for $name {
            type Err = IdParseError;

            fn from_str(text: &str) -> Result<Self, Self::Err> {
                parse_canonical_uuid(text).map(Self)
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                // Binary formats get the bare 16 bytes (a fixed-size array
                // has no length prefix in postcard); text formats such as
                // JSON get the UUID text people recognise.
                if serializer.is_human_readable() {
                    serializer.collect_str(self)
                } else {
                    self.0.serialize(serializer)
                }
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                if deserializer.is_human_readable() {
                    let text = String::deserialize(deserializer)?;
                    text.parse().map_err(serde::de::Error::custom)
                } else {
                    <[u8; 16]>::deserialize(deserializer).map(Self)
                }
            }
        }
    };
}

define_id!(
    /// Names one automerge document (a roster, an activity, a sign-in sheet…).
    DocId
);
define_id!(
    /// Names one branch: the unit of membership and of data on a server.
    BranchId
);
define_id!(
    /// Names one member of a branch (a person, not a device).
    MemberId
);
define_id!(
    /// Names one enrolled device; a member may have several.
    DeviceId
);

/// The secret a device proves itself with, issued once at enrollment.
///
/// Its `Debug` form is redacted so that logging a message never leaks it,
/// and equality runs in constant time so comparing a presented secret with
/// a stored one does not reveal how many leading bytes matched.
#[derive(Clone, Serialize, Deserialize)]
#[serde(transparent)]
pub struct DeviceSecret([u8; 32]);

impl DeviceSecret {
    /// The secret with these bytes.
    pub const fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// The secret's bytes, for storing it or hashing it.
    pub const fn expose(&self) -> &[u8; 32] {
        &self.0
    }
}

impl PartialEq for DeviceSecret {
    fn eq(&self, other: &Self) -> bool {
        // Fold every byte difference together instead of returning at the
        // first mismatch.
        let difference = self
            .0
            .iter()
            .zip(other.0.iter())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b));
        std::hint::black_box(difference) == 0
    }
}

impl Eq for DeviceSecret {}

impl fmt::Debug for DeviceSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DeviceSecret(<redacted>)")
    }
}

/// The heads of an automerge document: the hashes of the changes that no
/// other change depends on, kept sorted and free of duplicates.
///
/// Keeping them sorted makes equal heads equal as values and gives the
/// manifest digest a single canonical input. Heads decoded from the wire
/// are normalised the same way, so a sloppy peer cannot break that rule.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Heads(Vec<[u8; 32]>);

impl Heads {
    /// Heads from change hashes in any order; sorts them and drops repeats.
    pub fn new(mut hashes: Vec<[u8; 32]>) -> Self {
        hashes.sort_unstable();
        hashes.dedup();
        Self(hashes)
    }

    /// The change hashes, sorted.
    pub fn as_slice(&self) -> &[[u8; 32]] {
        &self.0
    }

    /// How many change hashes there are.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True for a document with no changes at all.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The hash of one manifest entry, `(doc_id, self)`, as defined in
    /// [`crate::manifest`]; a shorthand for [`crate::manifest::entry_digest`].
    pub fn digest(&self, doc_id: DocId) -> [u8; 32] {
        crate::manifest::entry_digest(doc_id, self)
    }
}

impl From<Vec<[u8; 32]>> for Heads {
    fn from(hashes: Vec<[u8; 32]>) -> Self {
        Self::new(hashes)
    }
}

impl FromIterator<[u8; 32]> for Heads {
    fn from_iter<I: IntoIterator<Item = [u8; 32]>>(iter: I) -> Self {
        Self::new(iter.into_iter().collect())
    }
}

impl Serialize for Heads {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Heads {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Vec::<[u8; 32]>::deserialize(deserializer).map(Self::new)
    }
}

/// What a member may do in a branch, from most to least authority.
///
/// On the wire this is postcard's variant index, so the order below is part
/// of the wire format: add new roles only at the end, together with a new
/// protocol version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Role {
    /// Runs the branch: manages members, devices and invites.
    Secretary,
    /// Sits on the branch committee: edits records and sees reports.
    Committee,
    /// A member of the union: sees and signs what is shared with members.
    Member,
    /// A resident who is not (yet) a member: the narrowest view.
    Resident,
}

impl Role {
    /// A stable lowercase name for logs and the command line.
    pub const fn as_str(self) -> &'static str {
        match self {
            Role::Secretary => "secretary",
            Role::Committee => "committee",
            Role::Member => "member",
            Role::Resident => "resident",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const TEXT: &str = "67e55044-10b1-426f-9247-bb680e5fe0c8";

    #[test]
    fn id_text_form_is_lowercase_hyphenated_uuid() {
        let id: DocId = TEXT.parse().unwrap();
        assert_eq!(id.as_bytes()[..4], [0x67, 0xe5, 0x50, 0x44]);
        assert_eq!(id.to_string(), TEXT);
        assert_eq!(
            format!("{id:?}"),
            "DocId(67e55044-10b1-426f-9247-bb680e5fe0c8)"
        );
    }

    #[test]
    fn id_parse_rejects_other_uuid_spellings() {
        for text in [
            "67E55044-10B1-426F-9247-BB680E5FE0C8",
            "67e5504410b1426f9247bb680e5fe0c8",
            "{67e55044-10b1-426f-9247-bb680e5fe0c8}",
            "urn:uuid:67e55044-10b1-426f-9247-bb680e5fe0c8",
            " 67e55044-10b1-426f-9247-bb680e5fe0c8",
            "67e55044-10b1-426f-9247-bb680e5fe0c",
            "",
        ] {
            assert_eq!(
                text.parse::<MemberId>(),
                Err(IdParseError::NotCanonical(text.to_owned())),
                "{text:?} should not parse"
            );
        }
    }

    #[test]
    fn id_is_16_bare_bytes_in_postcard_and_text_in_json() {
        let id: BranchId = TEXT.parse().unwrap();
        let wire = postcard::to_stdvec(&id).unwrap();
        assert_eq!(wire, id.as_bytes());
        assert_eq!(postcard::from_bytes::<BranchId>(&wire).unwrap(), id);

        let json = serde_json::to_string(&id).unwrap();
        assert_eq!(json, format!("\"{TEXT}\""));
        assert_eq!(serde_json::from_str::<BranchId>(&json).unwrap(), id);
        assert!(serde_json::from_str::<BranchId>("\"not-an-id\"").is_err());
    }

    #[test]
    fn random_ids_differ_and_are_version_4() {
        let a = DeviceId::new_random();
        let b = DeviceId::new_random();
        assert_ne!(a, b);
        assert_eq!(a.as_bytes()[6] >> 4, 4, "version nibble");
    }

    #[test]
    fn ids_order_by_bytes() {
        let low = DocId::from_bytes([0; 16]);
        let mut high_bytes = [0; 16];
        high_bytes[0] = 1;
        assert!(low < DocId::from_bytes(high_bytes));
        assert_eq!(low, DocId::MIN);
        assert!(DocId::from_bytes(high_bytes) < DocId::MAX);
    }

    #[test]
    fn heads_are_sorted_and_deduplicated_even_from_the_wire() {
        let heads = Heads::new(vec![[3; 32], [1; 32], [3; 32], [2; 32]]);
        assert_eq!(heads.as_slice(), &[[1; 32], [2; 32], [3; 32]]);

        let sloppy = postcard::to_stdvec(&vec![[9u8; 32], [4; 32], [9; 32]]).unwrap();
        let decoded: Heads = postcard::from_bytes(&sloppy).unwrap();
        assert_eq!(decoded.as_slice(), &[[4; 32], [9; 32]]);
    }

    #[test]
    fn device_secret_debug_is_redacted_and_eq_compares_all_bytes() {
        let secret = DeviceSecret::from_bytes([0xab; 32]);
        assert_eq!(format!("{secret:?}"), "DeviceSecret(<redacted>)");
        let mut last_differs = [0xab; 32];
        last_differs[31] = 0;
        assert_ne!(secret, DeviceSecret::from_bytes(last_differs));
        assert_eq!(secret, DeviceSecret::from_bytes([0xab; 32]));
        assert_eq!(postcard::to_stdvec(&secret).unwrap(), [0xab; 32]);
    }

    #[test]
    fn role_names_are_stable() {
        let names: Vec<_> = [
            Role::Secretary,
            Role::Committee,
            Role::Member,
            Role::Resident,
        ]
        .iter()
        .map(|role| role.to_string())
        .collect();
        assert_eq!(names, ["secretary", "committee", "member", "resident"]);
    }

    proptest! {
        #[test]
        fn id_text_round_trips(bytes in any::<[u8; 16]>()) {
            let id = DocId::from_bytes(bytes);
            prop_assert_eq!(id.to_string().parse::<DocId>(), Ok(id));
        }
    }
}
