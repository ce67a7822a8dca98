//! One error type for the crate, with a stable code per variant.
//!
//! Apps translate errors by [`Error::code`], never by the English message, so a code
//! once published never changes meaning. New variants may appear (the enum is
//! `#[non_exhaustive]`); an app shows its generic message for a code it does not know.

use crate::ids::{DocId, MemberId, SuggestionId};

/// Everything that can go wrong in `branchline-core`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A ledger entry (payment, award…) with this id is not in the ledger.
    #[error("no entry {0} in the ledger")]
    UnknownEntry(crate::ids::EntryId),
    /// The payment was voided already.
    #[error("payment {0} is voided already")]
    AlreadyVoided(crate::ids::EntryId),
    /// A ledger of one year cannot hold an entry dated in another.
    #[error("{day} is not in the ledger's year {year}")]
    OutsideYear {
        /// The ledger's year.
        year: i64,
        /// The entry's day.
        day: crate::model::Date,
    },
    /// An applicant's step needs the step before it first.
    #[error("{stage} needs {missing} recorded first")]
    StageOutOfOrder {
        /// The step asked for.
        stage: &'static str,
        /// The step missing before it.
        missing: &'static str,
    },
    /// An applicant's step comes too soon after the one before.
    #[error("{stage} may be recorded from {earliest} on")]
    StageTooEarly {
        /// The step asked for.
        stage: &'static str,
        /// The first day it may be taken.
        earliest: crate::model::Date,
    },
    /// Probation needs the introducers named first.
    #[error("{needed} introducers must be named first")]
    IntroducersMissing {
        /// How many are needed.
        needed: usize,
    },
    /// The person already has an applicant file.
    #[error("the person already has an applicant file ({0})")]
    ApplicantExists(DocId),
    /// The person has no applicant file.
    #[error("member {0} is not in the applicant pipeline")]
    NotAnApplicant(MemberId),
    /// A required text field was empty or only whitespace.
    #[error("{field} must not be empty")]
    EmptyField {
        /// The field's name in the domain model.
        field: &'static str,
    },
    /// A value could not be parsed (a date, an id, a category name…).
    #[error("invalid {what}: {value:?}")]
    InvalidValue {
        /// What kind of value was expected.
        what: &'static str,
        /// The rejected input.
        value: String,
    },
    /// An activity would end before (or when) it starts.
    #[error("an activity must end after it starts")]
    EndBeforeStart,
    /// No member with this id is on the branch's roster.
    #[error("unknown member {0}")]
    UnknownMember(MemberId),
    /// The member exists but is no longer active (transferred out or deceased).
    #[error("member {0} is not active")]
    MemberNotActive(MemberId),
    /// The branch profile does not configure this activity kind.
    #[error("unknown activity kind {0:?}")]
    UnknownActivityKind(String),
    /// The branch profile has no point item with this code.
    #[error("unknown point rule {0:?}")]
    UnknownPointRule(String),
    /// The member already signed in to this activity.
    #[error("member {0} already signed in")]
    AlreadySignedIn(MemberId),
    /// The member already asked for leave from this activity.
    #[error("member {0} already asked for leave")]
    AlreadyOnLeave(MemberId),
    /// The activity is closed: sign-ins, leave and minutes are final.
    #[error("the activity is closed")]
    ActivityClosed,
    /// The operation needs the petition to have an owner first.
    #[error("the petition has no owner yet")]
    PetitionNoOwner,
    /// The operation needs a resolved petition.
    #[error("the petition is not resolved")]
    PetitionNotResolved,
    /// The petition is already resolved.
    #[error("the petition is already resolved")]
    PetitionAlreadyResolved,
    /// The submitter already rated the resolution.
    #[error("the petition is already rated")]
    PetitionAlreadyRated,
    /// A satisfaction rating must be between 1 and 5.
    #[error("a rating must be between 1 and 5, not {0}")]
    RatingOutOfRange(u8),
    /// A deadline must not fall before the day the petition was submitted.
    #[error("the deadline falls before the petition was submitted")]
    DeadlineBeforeSubmission,
    /// A suggestion is longer than the feedback box accepts.
    #[error("a suggestion may have at most {max} characters, not {found}")]
    SuggestionTooLong {
        /// Characters in the (trimmed) suggestion.
        found: usize,
        /// The most a suggestion may have.
        max: usize,
    },
    /// A suggestion with this id is already in the feedback box.
    #[error("suggestion {0} is already in the feedback box")]
    DuplicateSuggestion(SuggestionId),
    /// No suggestion with this id is in the feedback box.
    #[error("no suggestion {0} in the feedback box")]
    UnknownSuggestion(SuggestionId),
    /// Only an answered suggestion can be published.
    #[error("suggestion {0} has no answer to publish")]
    SuggestionNotAnswered(SuggestionId),
    /// The branch already has a feedback box; it has exactly one.
    #[error("the branch already has a feedback box, document {0}")]
    FeedbackBoxExists(DocId),
    /// No document with this id is in the store.
    #[error("no document {0}")]
    DocNotFound(DocId),
    /// No document of this kind exists for the branch yet.
    #[error("the branch has no {0} document")]
    MissingBranchDocument(&'static str),
    /// The bytes are not a readable automerge document.
    #[error("corrupt document: {0}")]
    Corrupt(String),
    /// Received changes would remove or alter a document's header (its kind, branch
    /// or id), or a new document does not name the id or kind it arrived as. Nothing
    /// was stored.
    #[error("refused changes to document {doc}: {reason}")]
    InvalidHeader {
        /// The document the changes were for.
        doc: DocId,
        /// What was wrong with them.
        reason: String,
    },
    /// The document is of another kind than the operation expects.
    #[error("document is a {found}, expected a {expected}")]
    WrongKind {
        /// The kind the operation works on.
        expected: &'static str,
        /// The kind recorded in the document.
        found: String,
    },
    /// The document was written by a newer schema than this build understands.
    #[error("document schema {found} is newer than supported {supported}")]
    SchemaTooNew {
        /// The schema version in the document.
        found: u64,
        /// The newest schema version this build reads and writes.
        supported: u64,
    },
    /// The document's content does not have the shape its kind requires.
    #[error("malformed document: {0}")]
    Malformed(String),
    /// The conflict to settle is not (or no longer) present.
    #[error("no conflict at {0}")]
    ConflictNotFound(String),
    /// The database was written by a newer version of Branchline.
    #[error("store version {found} is newer than supported {supported}")]
    StoreTooNew {
        /// The store's schema version.
        found: i64,
        /// The newest store schema this build knows.
        supported: i64,
    },
    /// The store's file is damaged (a page that does not read back as written);
    /// `Store::salvage` rebuilds it from what can be read and the server.
    #[error("the store is damaged: {0}")]
    StoreDamaged(String),
    /// The file exists but is not a Branchline store.
    #[error("not a Branchline store: {0}")]
    NotAStore(String),
    /// SQLite failed.
    #[error("storage error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// The server revoked this device: its records can be read, not changed
    /// (see [`crate::Store::revocation`]). The same code the server refuses
    /// a revoked device's sync with.
    #[error("the server revoked this device: it can still read its records, but not change them")]
    DeviceRevoked,
}

impl Error {
    /// The stable identifier of this error, for apps to translate and scripts to match.
    pub fn code(&self) -> &'static str {
        match self {
            Error::EmptyField { .. } => "input.empty",
            Error::UnknownEntry(_) => "ledger.unknown_entry",
            Error::AlreadyVoided(_) => "ledger.already_voided",
            Error::OutsideYear { .. } => "ledger.outside_year",
            Error::ApplicantExists(_) => "applicant.exists",
            Error::NotAnApplicant(_) => "applicant.unknown",
            Error::StageOutOfOrder { .. } => "applicant.out_of_order",
            Error::StageTooEarly { .. } => "applicant.too_early",
            Error::IntroducersMissing { .. } => "applicant.introducers_missing",
            Error::InvalidValue { .. } => "input.invalid",
            Error::EndBeforeStart => "activity.end_before_start",
            Error::UnknownMember(_) => "member.unknown",
            Error::MemberNotActive(_) => "member.not_active",
            Error::UnknownActivityKind(_) => "activity.unknown_kind",
            Error::UnknownPointRule(_) => "points.unknown_rule",
            Error::AlreadySignedIn(_) => "activity.already_signed_in",
            Error::AlreadyOnLeave(_) => "activity.already_on_leave",
            Error::ActivityClosed => "activity.closed",
            Error::PetitionNoOwner => "petition.no_owner",
            Error::PetitionNotResolved => "petition.not_resolved",
            Error::PetitionAlreadyResolved => "petition.already_resolved",
            Error::PetitionAlreadyRated => "petition.already_rated",
            Error::RatingOutOfRange(_) => "petition.rating_out_of_range",
            Error::DeadlineBeforeSubmission => "petition.deadline_before_submission",
            Error::SuggestionTooLong { .. } => "feedback.too_long",
            Error::DuplicateSuggestion(_) => "feedback.duplicate_suggestion",
            Error::UnknownSuggestion(_) => "feedback.unknown_suggestion",
            Error::SuggestionNotAnswered(_) => "feedback.no_answer",
            Error::FeedbackBoxExists(_) => "feedback.box_exists",
            Error::DocNotFound(_) => "doc.not_found",
            Error::MissingBranchDocument(_) => "doc.missing_branch_document",
            Error::Corrupt(_) => "doc.corrupt",
            Error::InvalidHeader { .. } => "doc.invalid_header",
            Error::WrongKind { .. } => "doc.wrong_kind",
            Error::SchemaTooNew { .. } => "doc.schema_too_new",
            Error::Malformed(_) => "doc.malformed",
            Error::ConflictNotFound(_) => "conflict.not_found",
            Error::StoreTooNew { .. } => "store.too_new",
            Error::NotAStore(_) => "store.not_a_store",
            Error::StoreDamaged(_) => "store.damaged",
            // The device's storage is full: nothing was written; the same
            // operation succeeds once space is freed.
            Error::Sqlite(e) if e.sqlite_error_code() == Some(rusqlite::ErrorCode::DiskFull) => {
                "store.full"
            }
            Error::Sqlite(_) => "store.sqlite",
            Error::DeviceRevoked => "auth.device_revoked",
        }
    }

    pub(crate) fn invalid(what: &'static str, value: impl Into<String>) -> Self {
        Error::InvalidValue {
            what,
            value: value.into(),
        }
    }
}

impl From<autosurgeon::HydrateError> for Error {
    fn from(e: autosurgeon::HydrateError) -> Self {
        Error::Malformed(e.to_string())
    }
}

impl From<autosurgeon::ReconcileError> for Error {
    fn from(e: autosurgeon::ReconcileError) -> Self {
        Error::Malformed(e.to_string())
    }
}

impl From<automerge::AutomergeError> for Error {
    fn from(e: automerge::AutomergeError) -> Self {
        Error::Corrupt(e.to_string())
    }
}

/// Result with the crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
