//! Protocol version negotiation.
//!
//! A client's Hello names the range of versions it speaks
//! (`min_version..=version`). The server answers with the highest version
//! in both its own range and the client's, or with
//! [`ErrorCode::VersionUnsupported`] if the ranges do not overlap. The
//! client should check the version in the Welcome the same way, with
//! [`negotiate_between`], before trusting it.

use std::ops::RangeInclusive;

use crate::message::ErrorCode;
use crate::{MIN_SUPPORTED_VERSION, PROTOCOL_VERSION};

/// The version to use with a client that speaks `client_min..=client_max`,
/// given the versions this build supports
/// ([`MIN_SUPPORTED_VERSION`]`..=`[`PROTOCOL_VERSION`]).
pub fn negotiate(client_min: u16, client_max: u16) -> Result<u16, ErrorCode> {
    negotiate_between(
        MIN_SUPPORTED_VERSION..=PROTOCOL_VERSION,
        client_min..=client_max,
    )
}

/// The highest version in both ranges, or
/// [`ErrorCode::VersionUnsupported`] if they share none (an empty range,
/// such as one whose minimum is above its maximum, shares none).
pub fn negotiate_between(
    ours: RangeInclusive<u16>,
    theirs: RangeInclusive<u16>,
) -> Result<u16, ErrorCode> {
    let highest = (*ours.end()).min(*theirs.end());
    let lowest = (*ours.start()).max(*theirs.start());
    if lowest <= highest {
        Ok(highest)
    } else {
        Err(ErrorCode::VersionUnsupported)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn current_client_gets_current_version() {
        assert_eq!(
            negotiate(MIN_SUPPORTED_VERSION, PROTOCOL_VERSION),
            Ok(PROTOCOL_VERSION)
        );
    }

    #[test]
    fn newer_client_is_talked_down_to_our_version() {
        assert_eq!(negotiate(1, PROTOCOL_VERSION + 3), Ok(PROTOCOL_VERSION));
    }

    #[test]
    fn highest_common_version_wins() {
        assert_eq!(negotiate_between(2..=5, 1..=4), Ok(4));
        assert_eq!(negotiate_between(2..=5, 3..=9), Ok(5));
        assert_eq!(negotiate_between(2..=5, 5..=5), Ok(5));
        assert_eq!(negotiate_between(2..=5, 2..=2), Ok(2));
    }

    #[test]
    fn disjoint_ranges_are_unsupported() {
        // A client too old for us.
        assert_eq!(
            negotiate_between(3..=5, 1..=2),
            Err(ErrorCode::VersionUnsupported)
        );
        // A client that only speaks versions newer than ours.
        assert_eq!(
            negotiate(PROTOCOL_VERSION + 1, PROTOCOL_VERSION + 2),
            Err(ErrorCode::VersionUnsupported)
        );
        // Version 0 was never a protocol version.
        assert_eq!(negotiate(0, 0), Err(ErrorCode::VersionUnsupported));
    }

    #[test]
    fn inverted_client_range_is_unsupported() {
        // Built with `new` because the range is empty on purpose.
        assert_eq!(
            negotiate_between(1..=5, RangeInclusive::new(4, 2)),
            Err(ErrorCode::VersionUnsupported)
        );
        assert_eq!(
            negotiate(PROTOCOL_VERSION, MIN_SUPPORTED_VERSION.saturating_sub(1)),
            Err(ErrorCode::VersionUnsupported)
        );
    }

    proptest! {
        #[test]
        fn agreed_version_is_the_highest_in_both_ranges(
            // Small numbers, so that ranges overlap about half the time.
            (a, b, c, d) in (0u16..12, 0u16..12, 0u16..12, 0u16..12),
        ) {
            let (ours, theirs) = (a..=b, c..=d);
            let in_both = |v: &u16| ours.contains(v) && theirs.contains(v);
            let expected = (0..=12).rev().find(in_both);
            let agreed = negotiate_between(ours.clone(), theirs.clone());
            match expected {
                Some(version) => prop_assert_eq!(agreed, Ok(version)),
                None => prop_assert_eq!(agreed, Err(ErrorCode::VersionUnsupported)),
            }
        }
    }
}
