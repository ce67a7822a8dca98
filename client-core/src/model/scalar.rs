//! How dates, times and closed vocabularies are written into documents.
//!
//! - A calendar day (birth date, deadline) is text `YYYY-MM-DD`: readable by any
//!   automerge client and sortable as text.
//! - A meeting's start and end are the branch's wall-clock time, text
//!   `YYYY-MM-DDTHH:MM`: a meeting "at 9:00" stays at 9:00 whatever the device's zone.
//! - An instant something happened (a sign-in, a progress note) is an automerge
//!   timestamp (milliseconds since the Unix epoch, UTC).
//! - A closed vocabulary (category, status…) is its stable snake_case name.

use std::fmt;
use std::str::FromStr;

use autosurgeon::{Hydrate, HydrateError, Reconcile, Reconciler};
use chrono::{NaiveDate, NaiveDateTime};

use crate::error::Error;

/// A calendar day.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Date(pub NaiveDate);

impl Date {
    /// The day from year, month and day, if it exists.
    pub fn ymd(year: i32, month: u32, day: u32) -> Option<Self> {
        NaiveDate::from_ymd_opt(year, month, day).map(Date)
    }
}

impl fmt::Display for Date {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0.format("%Y-%m-%d"))
    }
}

impl FromStr for Date {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        NaiveDate::parse_from_str(s.trim(), "%Y-%m-%d")
            .map(Date)
            .map_err(|_| Error::invalid("date (YYYY-MM-DD)", s))
    }
}

/// A wall-clock time in the branch's own time zone, to the minute.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LocalDateTime(pub NaiveDateTime);

impl LocalDateTime {
    /// The calendar day of this time.
    pub fn date(&self) -> Date {
        Date(self.0.date())
    }
}

impl fmt::Display for LocalDateTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0.format("%Y-%m-%dT%H:%M"))
    }
}

impl FromStr for LocalDateTime {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        let s = s.trim();
        ["%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M:%S"]
            .iter()
            .find_map(|format| NaiveDateTime::parse_from_str(s, format).ok())
            .map(LocalDateTime)
            .ok_or_else(|| Error::invalid("date and time (YYYY-MM-DDTHH:MM)", s))
    }
}

/// An instant, in milliseconds since the Unix epoch (UTC).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
pub struct Timestamp(pub i64);

impl Timestamp {
    /// The current instant by the system clock.
    pub fn now() -> Self {
        Timestamp(chrono::Utc::now().timestamp_millis())
    }

    /// The UTC calendar day of this instant.
    pub fn utc_date(&self) -> Date {
        let time = chrono::DateTime::from_timestamp_millis(self.0).unwrap_or_default();
        Date(time.date_naive())
    }
}

macro_rules! text_scalar {
    ($ty:ty, $what:literal) => {
        impl serde::Serialize for $ty {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }

        impl Hydrate for $ty {
            fn hydrate_string(s: &str) -> Result<Self, HydrateError> {
                s.parse()
                    .map_err(|_| HydrateError::unexpected($what, s.to_string()))
            }
        }

        impl Reconcile for $ty {
            type Key<'a> = autosurgeon::reconcile::NoKey;

            fn reconcile<R: Reconciler>(&self, mut reconciler: R) -> Result<(), R::Error> {
                reconciler.str(self.to_string())
            }
        }
    };
}

text_scalar!(Date, "a date");
text_scalar!(LocalDateTime, "a local date and time");

impl Hydrate for Timestamp {
    fn hydrate_timestamp(t: i64) -> Result<Self, HydrateError> {
        Ok(Timestamp(t))
    }

    fn hydrate_int(t: i64) -> Result<Self, HydrateError> {
        Ok(Timestamp(t))
    }
}

impl Reconcile for Timestamp {
    type Key<'a> = autosurgeon::reconcile::NoKey;

    fn reconcile<R: Reconciler>(&self, mut reconciler: R) -> Result<(), R::Error> {
        reconciler.timestamp(self.0)
    }
}

/// Declares a closed vocabulary stored as stable snake_case names.
macro_rules! vocabulary {
    (
        $(#[$doc:meta])*
        $name:ident, $what:literal {
            $( $(#[$vdoc:meta])* $variant:ident = $text:literal ),+ $(,)?
        }
    ) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum $name {
            $( $(#[$vdoc])* $variant ),+
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The stable name stored in documents and shown to scripts.
            pub fn as_str(&self) -> &'static str {
                match self {
                    $($name::$variant => $text),+
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl std::str::FromStr for $name {
            type Err = $crate::error::Error;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s.trim() {
                    $($text => Ok($name::$variant),)+
                    _ => Err($crate::error::Error::invalid($what, s)),
                }
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl autosurgeon::Hydrate for $name {
            fn hydrate_string(s: &str) -> Result<Self, autosurgeon::HydrateError> {
                s.parse()
                    .map_err(|_| autosurgeon::HydrateError::unexpected($what, s.to_string()))
            }
        }

        impl autosurgeon::Reconcile for $name {
            type Key<'a> = autosurgeon::reconcile::NoKey;

            fn reconcile<R: autosurgeon::Reconciler>(
                &self,
                mut reconciler: R,
            ) -> Result<(), R::Error> {
                reconciler.str(self.as_str())
            }
        }
    };
}
pub(crate) use vocabulary;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_parse_and_print_the_same() {
        let d: Date = "2025-03-01".parse().unwrap();
        assert_eq!(d.to_string(), "2025-03-01");
        assert_eq!(
            "2025-02-30".parse::<Date>().unwrap_err().code(),
            "input.invalid"
        );
        let t: LocalDateTime = "2025-03-01 09:30".parse().unwrap();
        assert_eq!(t.to_string(), "2025-03-01T09:30");
        assert_eq!(t.date(), d);
    }
}
