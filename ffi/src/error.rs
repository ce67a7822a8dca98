//! The one error type apps see, and the one place every other error turns into it.
//!
//! client-core, the transport and the invite parser each have their own error enum.
//! Apps should not have to know that: they get a [`BranchlineError`] whose variant says
//! what they can do about it (fix the input, refresh, retry later, ask a person) and
//! whose `code` is the stable identifier they translate (`petition.no_owner`,
//! `auth.invite_used`, …). Codes are client-core's and the server's own; the few
//! codes this crate adds are listed on [`BranchlineError`].

use branchline_core::net::NetError;
use branchline_protocol::{ErrorCode, InviteParseError};

/// Everything that can go wrong in a call to the library.
///
/// Every variant carries `code`, a stable identifier apps translate and never
/// parse, and `reason`, an English explanation for logs. Codes added by this
/// library (besides client-core's and the server's): `net.not_running` (no
/// background sync; enroll or start it first), `net.already_enrolled` (`enroll` on
/// a device that has an account; use `start_sync`), `internal.poisoned` (an earlier call
/// panicked while holding the store), `internal.task` (a background task died),
/// `store.io` (the data directory could not be created).
#[derive(Clone, Debug, thiserror::Error, uniffi::Error)]
#[non_exhaustive]
pub enum BranchlineError {
    /// The input was refused; fix it and try again (`input.*`, `invite.*`,
    /// `activity.end_before_start`, `petition.rating_out_of_range`,
    /// `feedback.too_long`, the server's `request.invalid`, …).
    #[error("{code}: {reason}")]
    InvalidInput {
        /// Stable identifier of the error.
        code: String,
        /// Explanation for logs.
        reason: String,
    },
    /// The record (or the device) is not in a state that allows the operation
    /// (`activity.closed`, `net.already_enrolled`,
    /// `petition.no_owner`, `member.not_active`, `feedback.no_answer`,
    /// `feedback.duplicate_suggestion`, `feedback.box_exists`, `doc.schema_too_new`, …).
    #[error("{code}: {reason}")]
    InvalidState {
        /// Stable identifier of the error.
        code: String,
        /// Explanation for logs.
        reason: String,
    },
    /// The document, member or conflict named is not in the store (`doc.not_found`,
    /// `member.unknown`, `feedback.unknown_suggestion`, `conflict.not_found`, …).
    #[error("{code}: {reason}")]
    NotFound {
        /// Stable identifier of the error.
        code: String,
        /// Explanation for logs.
        reason: String,
    },
    /// The network is unavailable or the connection failed; retrying later may
    /// help (`net.offline`, `net.connection`, `net.timeout`, `net.not_running`, …).
    #[error("{code}: {reason}")]
    Network {
        /// Stable identifier of the error.
        code: String,
        /// Explanation for logs.
        reason: String,
    },
    /// The server refused; a person must act (`auth.invite_used`,
    /// `auth.device_revoked`, `access.denied`, `request.rate_limited`, and the
    /// `rule.*` codes of changes it refused, …). Every edit on a device the
    /// server revoked fails with `auth.device_revoked` too: its records stay
    /// readable until it enrolls again.
    #[error("{code}: {reason}")]
    Refused {
        /// Stable identifier of the error.
        code: String,
        /// Explanation for logs.
        reason: String,
    },
    /// The local store cannot be used (`store.not_a_store`, `store.too_new`,
    /// `store.damaged`, `store.full`, `store.sqlite`, `doc.corrupt`, …).
    #[error("{code}: {reason}")]
    Storage {
        /// Stable identifier of the error.
        code: String,
        /// Explanation for logs.
        reason: String,
    },
    /// A defect in the library (`internal.*`); please report it.
    #[error("{code}: {reason}")]
    Internal {
        /// Stable identifier of the error.
        code: String,
        /// Explanation for logs.
        reason: String,
    },
}

/// Result with the library's [`BranchlineError`].
pub type Result<T, E = BranchlineError> = std::result::Result<T, E>;

/// Which variant an error becomes.
#[derive(Clone, Copy)]
enum Kind {
    InvalidInput,
    InvalidState,
    NotFound,
    Network,
    Refused,
    Storage,
    Internal,
}

impl BranchlineError {
    /// The stable identifier of this error.
    pub fn code(&self) -> &str {
        match self {
            BranchlineError::InvalidInput { code, .. }
            | BranchlineError::InvalidState { code, .. }
            | BranchlineError::NotFound { code, .. }
            | BranchlineError::Network { code, .. }
            | BranchlineError::Refused { code, .. }
            | BranchlineError::Storage { code, .. }
            | BranchlineError::Internal { code, .. } => code,
        }
    }

    fn new(kind: Kind, code: &str, reason: impl std::fmt::Display) -> Self {
        let (code, reason) = (code.to_owned(), reason.to_string());
        match kind {
            Kind::InvalidInput => BranchlineError::InvalidInput { code, reason },
            Kind::InvalidState => BranchlineError::InvalidState { code, reason },
            Kind::NotFound => BranchlineError::NotFound { code, reason },
            Kind::Network => BranchlineError::Network { code, reason },
            Kind::Refused => BranchlineError::Refused { code, reason },
            Kind::Storage => BranchlineError::Storage { code, reason },
            Kind::Internal => BranchlineError::Internal { code, reason },
        }
    }

    /// Background sync is not running, so there is nothing to control.
    pub(crate) fn not_running() -> Self {
        Self::new(
            Kind::Network,
            "net.not_running",
            "background sync is not running; enroll or start it first",
        )
    }

    /// `enroll` on a device that has enrolled already.
    pub(crate) fn already_enrolled() -> Self {
        Self::new(
            Kind::InvalidState,
            "net.already_enrolled",
            "this device has enrolled already; start its sync instead",
        )
    }

    /// A mutex was poisoned by a panic in an earlier call.
    pub(crate) fn poisoned(what: &str) -> Self {
        Self::new(
            Kind::Internal,
            "internal.poisoned",
            format!("an earlier call panicked while holding the {what}"),
        )
    }

    /// A task on the library's runtime panicked or was cancelled.
    pub(crate) fn task(error: impl std::fmt::Display) -> Self {
        Self::new(Kind::Internal, "internal.task", error)
    }

    /// The data directory could not be prepared.
    pub(crate) fn io(error: impl std::fmt::Display) -> Self {
        Self::new(Kind::Storage, "store.io", error)
    }

    /// A value the caller passed that is out of range for the library's types.
    pub(crate) fn invalid(what: &str, value: impl std::fmt::Display) -> Self {
        Self::new(
            Kind::InvalidInput,
            "input.invalid",
            format!("invalid {what}: {value}"),
        )
    }
}

impl From<branchline_core::Error> for BranchlineError {
    fn from(error: branchline_core::Error) -> Self {
        use branchline_core::Error as E;
        let kind = match &error {
            E::EmptyField { .. }
            | E::InvalidValue { .. }
            | E::EndBeforeStart
            | E::UnknownActivityKind(_)
            | E::RatingOutOfRange(_)
            | E::DeadlineBeforeSubmission
            | E::SuggestionTooLong { .. }
            | E::WrongKind { .. }
            | E::OutsideYear { .. }
            | E::UnknownPointRule(_) => Kind::InvalidInput,
            E::MemberNotActive(_)
            | E::AlreadySignedIn(_)
            | E::AlreadyOnLeave(_)
            | E::ActivityClosed
            | E::PetitionNoOwner
            | E::PetitionNotResolved
            | E::PetitionAlreadyResolved
            | E::PetitionAlreadyRated
            | E::DuplicateSuggestion(_)
            | E::SuggestionNotAnswered(_)
            | E::FeedbackBoxExists(_)
            | E::SchemaTooNew { .. }
            | E::AlreadyVoided(_)
            | E::StageOutOfOrder { .. }
            | E::StageTooEarly { .. }
            | E::IntroducersMissing { .. }
            | E::ApplicantExists(_) => Kind::InvalidState,
            E::UnknownMember(_)
            | E::DocNotFound(_)
            | E::MissingBranchDocument(_)
            | E::UnknownSuggestion(_)
            | E::ConflictNotFound(_)
            | E::UnknownEntry(_)
            | E::NotAnApplicant(_) => Kind::NotFound,
            E::Corrupt(_)
            | E::InvalidHeader { .. }
            | E::Malformed(_)
            | E::StoreTooNew { .. }
            | E::NotAStore(_)
            | E::StoreDamaged(_)
            | E::Sqlite(_) => Kind::Storage,
            // An edit on a device the server revoked: a person must act (a new
            // invite), as when the server refuses the device's sync.
            E::DeviceRevoked => Kind::Refused,
            // A variant added to client-core later: its code is still stable.
            _ => Kind::Internal,
        };
        Self::new(kind, error.code(), &error)
    }
}

impl From<NetError> for BranchlineError {
    fn from(error: NetError) -> Self {
        match error {
            NetError::Store(e) => e.into(),
            // The server checked a request's fields (a blank title, a suggestion
            // too long): the caller fixes the input, no person needs to act.
            NetError::Refused {
                code: ErrorCode::InvalidRequest,
                message,
            } => Self::new(
                Kind::InvalidInput,
                ErrorCode::InvalidRequest.as_str(),
                message,
            ),
            NetError::Refused { code, message } => Self::new(Kind::Refused, code.as_str(), message),
            NetError::NotEnrolled
            | NetError::Offline
            | NetError::Connection(_)
            | NetError::Timeout
            | NetError::Stopped => Self::new(Kind::Network, error.code(), &error),
            other => Self::new(Kind::Internal, other.code(), &other),
        }
    }
}

impl From<InviteParseError> for BranchlineError {
    fn from(error: InviteParseError) -> Self {
        Self::new(Kind::InvalidInput, error.code(), &error)
    }
}

/// The refusal of a server as the error apps see (a revoked device, a used invite).
pub(crate) fn refused(code: &str, reason: impl std::fmt::Display) -> BranchlineError {
    BranchlineError::new(Kind::Refused, code, reason)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn core_errors_keep_their_codes_and_land_in_actionable_variants() {
        let e = BranchlineError::from(branchline_core::Error::PetitionNoOwner);
        assert!(
            matches!(&e, BranchlineError::InvalidState { code, .. } if code == "petition.no_owner")
        );
        let e = BranchlineError::from(branchline_core::Error::EmptyField { field: "name" });
        assert!(
            matches!(&e, BranchlineError::InvalidInput { code, reason } if code == "input.empty" && reason.contains("name"))
        );
        let e = BranchlineError::from(NetError::Timeout);
        assert!(matches!(&e, BranchlineError::Network { code, .. } if code == "net.timeout"));
        let e = BranchlineError::from(InviteParseError::Scheme);
        assert_eq!(e.code(), "invite.scheme");
    }

    #[test]
    fn feedback_box_errors_are_actionable_not_internal() {
        use branchline_core::Error as E;
        use branchline_core::ids::SuggestionId;
        let id = SuggestionId::random();
        let cases = [
            (
                E::SuggestionTooLong {
                    found: 2001,
                    max: 2000,
                },
                "feedback.too_long",
            ),
            (E::UnknownSuggestion(id), "feedback.unknown_suggestion"),
            (E::SuggestionNotAnswered(id), "feedback.no_answer"),
            (E::DuplicateSuggestion(id), "feedback.duplicate_suggestion"),
            (
                E::FeedbackBoxExists(branchline_core::DocId::random()),
                "feedback.box_exists",
            ),
        ];
        for (error, code) in cases {
            let e = BranchlineError::from(error);
            assert_eq!(e.code(), code);
            let fits = match code {
                "feedback.too_long" => matches!(e, BranchlineError::InvalidInput { .. }),
                "feedback.unknown_suggestion" => matches!(e, BranchlineError::NotFound { .. }),
                _ => matches!(e, BranchlineError::InvalidState { .. }),
            };
            assert!(fits, "{code} landed in {e:?}");
        }
    }

    #[test]
    fn branch_work_errors_land_where_an_app_can_act_on_them() {
        use branchline_core::Error as E;
        use branchline_core::model::Date;
        use branchline_core::{DocId, EntryId, MemberId};
        let day = Date::ymd(2026, 1, 1).unwrap();
        let cases = [
            (E::UnknownEntry(EntryId::random()), "ledger.unknown_entry"),
            (E::NotAnApplicant(MemberId::random()), "applicant.unknown"),
            (E::AlreadyVoided(EntryId::random()), "ledger.already_voided"),
            (
                E::StageOutOfOrder {
                    stage: "candidate",
                    missing: "activist",
                },
                "applicant.out_of_order",
            ),
            (
                E::StageTooEarly {
                    stage: "candidate",
                    earliest: day,
                },
                "applicant.too_early",
            ),
            (
                E::IntroducersMissing { needed: 2 },
                "applicant.introducers_missing",
            ),
            (E::ApplicantExists(DocId::random()), "applicant.exists"),
            (E::OutsideYear { year: 2025, day }, "ledger.outside_year"),
            (E::UnknownPointRule("x".into()), "points.unknown_rule"),
        ];
        for (error, code) in cases {
            let e = BranchlineError::from(error);
            assert_eq!(e.code(), code);
            let fits = match code {
                "ledger.unknown_entry" | "applicant.unknown" => {
                    matches!(e, BranchlineError::NotFound { .. })
                }
                "ledger.outside_year" | "points.unknown_rule" => {
                    matches!(e, BranchlineError::InvalidInput { .. })
                }
                _ => matches!(e, BranchlineError::InvalidState { .. }),
            };
            assert!(fits, "{code} landed in {e:?}");
        }
    }

    #[test]
    fn a_request_the_server_found_invalid_is_the_callers_input_to_fix() {
        let e = BranchlineError::from(NetError::Refused {
            code: ErrorCode::InvalidRequest,
            message: "text: required".into(),
        });
        assert!(
            matches!(&e, BranchlineError::InvalidInput { code, reason } if code == "request.invalid" && reason == "text: required")
        );
        let e = BranchlineError::from(NetError::Refused {
            code: ErrorCode::RateLimited,
            message: "at most 20 petitions per device in 24 hours".into(),
        });
        assert!(
            matches!(&e, BranchlineError::Refused { code, .. } if code == "request.rate_limited")
        );
    }
}
