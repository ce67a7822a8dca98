//! Random, stable identifiers.
//!
//! Every id is a random (v4) UUID, created once and never derived from content, so two
//! devices creating records offline can never collide and an id never changes when the
//! record does. In documents an id is stored as its hyphenated text form.

use std::fmt;
use std::str::FromStr;

use autosurgeon::{Hydrate, HydrateError, Reconcile, Reconciler};
use uuid::Uuid;

use crate::error::Error;

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident, $what:literal) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(Uuid);

        impl $name {
            /// A new random id.
            pub fn random() -> Self {
                Self(Uuid::new_v4())
            }

            /// An id from its 16 raw bytes.
            pub fn from_bytes(bytes: [u8; 16]) -> Self {
                Self(Uuid::from_bytes(bytes))
            }

            /// The 16 raw bytes of this id.
            pub fn as_bytes(&self) -> &[u8; 16] {
                self.0.as_bytes()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.hyphenated().fmt(f)
            }
        }

        impl FromStr for $name {
            type Err = Error;

            fn from_str(s: &str) -> Result<Self, Error> {
                Uuid::parse_str(s.trim())
                    .map(Self)
                    .map_err(|_| Error::invalid($what, s))
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }

        impl Hydrate for $name {
            fn hydrate_string(s: &str) -> Result<Self, HydrateError> {
                s.parse()
                    .map_err(|_| HydrateError::unexpected($what, s.to_string()))
            }
        }

        impl Reconcile for $name {
            type Key<'a> = autosurgeon::reconcile::NoKey;

            fn reconcile<R: Reconciler>(&self, mut reconciler: R) -> Result<(), R::Error> {
                reconciler.str(self.to_string())
            }
        }
    };
}

id_type!(
    /// A document: the unit of storage, access and sharing.
    DocId,
    "document id"
);
id_type!(
    /// A branch (or general branch, or committee) of the organization.
    BranchId,
    "branch id"
);
id_type!(
    /// A person on a branch's roster.
    MemberId,
    "member id"
);
id_type!(
    /// One installation of Branchline on one phone or PC.
    DeviceId,
    "device id"
);
id_type!(
    /// A suggestion in a branch's feedback box (意见箱).
    SuggestionId,
    "suggestion id"
);
id_type!(
    /// One entry of a ledger kept as a keyed map: a dues payment, a spending, a
    /// points award, a thought report received.
    EntryId,
    "entry id"
);

/// Conversions to and from the wire ids of `branchline-protocol`: the same 16 bytes.
macro_rules! wire_conversions {
    ($($name:ident),*) => {$(
        impl From<branchline_protocol::$name> for $name {
            fn from(id: branchline_protocol::$name) -> Self {
                Self::from_bytes(*id.as_bytes())
            }
        }

        impl From<$name> for branchline_protocol::$name {
            fn from(id: $name) -> Self {
                Self::from_bytes(*id.as_bytes())
            }
        }
    )*};
}

wire_conversions!(DocId, BranchId, MemberId, DeviceId);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_through_text() {
        let id = DocId::random();
        assert_eq!(id.to_string().parse::<DocId>().unwrap(), id);
        assert_ne!(DocId::random(), DocId::random());
    }

    #[test]
    fn ids_convert_to_and_from_wire_ids_byte_for_byte() {
        let id = DocId::random();
        let wire = branchline_protocol::DocId::from(id);
        assert_eq!(wire.as_bytes(), id.as_bytes());
        assert_eq!(wire.to_string(), id.to_string());
        assert_eq!(DocId::from(wire), id);
        let member = MemberId::random();
        assert_eq!(
            MemberId::from(branchline_protocol::MemberId::from(member)),
            member
        );
    }

    #[test]
    fn bad_id_text_is_a_typed_error() {
        let err = "not-an-id".parse::<MemberId>().unwrap_err();
        assert_eq!(err.code(), "input.invalid");
    }
}
