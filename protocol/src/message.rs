//! The messages a client and the server exchange, and their wire bodies.
//!
//! # Tag table
//!
//! Each frame carries a one-byte tag naming the message, then the message's
//! fields in declaration order, each in [postcard] form (integers as
//! varints, `i64` zigzag-encoded; strings and byte strings with a varint
//! length; ids and hashes as their bare 16 or 32 bytes; `Option` as a
//! `0`/`1` byte; small enums as a varint variant index).
//!
//! | tag    | message                            | sent by         |
//! |--------|------------------------------------|-----------------|
//! | `0x00` | never used, so zeroed bytes fail   |                 |
//! | `0x01` | [`Message::Hello`]                 | client          |
//! | `0x02` | [`Message::Welcome`]               | server          |
//! | `0x03` | [`Message::Error`]                 | either          |
//! | `0x10` | [`Message::ManifestDigest`]        | either          |
//! | `0x11` | [`Message::ManifestRanges`]        | either          |
//! | `0x12` | [`Message::ManifestEntries`]       | either          |
//! | `0x20` | [`Message::SyncDoc`]               | either          |
//! | `0x21` | [`Message::DocChanged`]            | server          |
//! | `0x22` | [`Message::Ack`]                   | server          |
//! | `0x23` | [`Message::Rejected`]              | server          |
//! | `0x24` | [`Message::GetDocuments`]          | client          |
//! | `0x25` | [`Message::Documents`]             | server          |
//! | `0x30` | [`Message::CreateInvite`]          | client          |
//! | `0x31` | [`Message::InviteCreated`]         | server          |
//! | `0x32` | [`Message::RevokeDevice`]          | client          |
//! | `0x33` | [`Message::DeviceRevoked`]         | server          |
//! | `0x34` | [`Message::GetSubmissionCode`]     | client          |
//! | `0x35` | [`Message::SubmissionCode`]        | server          |
//! | `0x36` | [`Message::SubmitPetition`]        | client          |
//! | `0x37` | [`Message::PetitionSubmitted`]     | server          |
//! | `0x38` | [`Message::SubmitSuggestion`]      | client          |
//! | `0x39` | [`Message::SuggestionSubmitted`]   | server          |
//!
//! Tags `0x23` and `0x34`–`0x39` are protocol version 2: a server sends
//! `Rejected` only on a version-2 connection (a version-1 device gets the
//! first rejection's code as an `Error`), and a client sends the requests
//! only once version 2 was agreed. Tags `0x24` and `0x25` are protocol version 3:
//! a client asks for whole documents only once version 3 was agreed.
//! Protocol version 4 adds the branch's name at the end of
//! [`Message::Welcome`]: the Welcome's first field is the version it was
//! chosen for, so a decoder knows from that field whether the name follows
//! (a version-1 to -3 Welcome, from an older server or to an older client,
//! ends after the device secret, byte for byte as before).
//!
//! The tags are written out here rather than taken from postcard's enum
//! numbering so that reordering the Rust enum cannot change the wire, and
//! so that a tag we do not know is reported as
//! [`DecodeError::UnknownMessage`] rather than as a garbled body.
//!
//! # Changing the wire
//!
//! A tag is never reused. A new message gets a new tag; a message whose
//! body changes gets a new tag or a new [`crate::PROTOCOL_VERSION`], and a
//! peer only sends it once [`crate::negotiate`] has agreed a version that
//! includes it. The golden-bytes tests fail on any change to existing
//! bodies, which is the reminder to do one or the other. Bodies are
//! decoded strictly: bytes left over after the last field are rejected
//! rather than ignored, so an older peer can never silently drop a field
//! added by a newer one.
//!
//! The one deliberate exception is [`ErrorCode`], which travels as its
//! string form so a newer server can send codes an older client has never
//! heard of (they decode as [`ErrorCode::Unknown`]).

use std::convert::Infallible;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::str::FromStr;

use serde::de::{self, DeserializeOwned, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::codec::DecodeError;
use crate::ids::{BranchId, DeviceId, DeviceSecret, DocId, Heads, MemberId, Role};

/// The tag byte of each message; see the [tag table](self#tag-table).
pub mod tag {
    /// [`Message::Hello`](super::Message::Hello).
    pub const HELLO: u8 = 0x01;
    /// [`Message::Welcome`](super::Message::Welcome).
    pub const WELCOME: u8 = 0x02;
    /// [`Message::Error`](super::Message::Error).
    pub const ERROR: u8 = 0x03;
    /// [`Message::ManifestDigest`](super::Message::ManifestDigest).
    pub const MANIFEST_DIGEST: u8 = 0x10;
    /// [`Message::ManifestRanges`](super::Message::ManifestRanges).
    pub const MANIFEST_RANGES: u8 = 0x11;
    /// [`Message::ManifestEntries`](super::Message::ManifestEntries).
    pub const MANIFEST_ENTRIES: u8 = 0x12;
    /// [`Message::SyncDoc`](super::Message::SyncDoc).
    pub const SYNC_DOC: u8 = 0x20;
    /// [`Message::DocChanged`](super::Message::DocChanged).
    pub const DOC_CHANGED: u8 = 0x21;
    /// [`Message::Ack`](super::Message::Ack).
    pub const ACK: u8 = 0x22;
    /// [`Message::Rejected`](super::Message::Rejected).
    pub const REJECTED: u8 = 0x23;
    /// [`Message::CreateInvite`](super::Message::CreateInvite).
    pub const CREATE_INVITE: u8 = 0x30;
    /// [`Message::InviteCreated`](super::Message::InviteCreated).
    pub const INVITE_CREATED: u8 = 0x31;
    /// [`Message::RevokeDevice`](super::Message::RevokeDevice).
    pub const REVOKE_DEVICE: u8 = 0x32;
    /// [`Message::DeviceRevoked`](super::Message::DeviceRevoked).
    pub const DEVICE_REVOKED: u8 = 0x33;
    /// [`Message::GetSubmissionCode`](super::Message::GetSubmissionCode).
    pub const GET_SUBMISSION_CODE: u8 = 0x34;
    /// [`Message::SubmissionCode`](super::Message::SubmissionCode).
    pub const SUBMISSION_CODE: u8 = 0x35;
    /// [`Message::SubmitPetition`](super::Message::SubmitPetition).
    pub const SUBMIT_PETITION: u8 = 0x36;
    /// [`Message::PetitionSubmitted`](super::Message::PetitionSubmitted).
    pub const PETITION_SUBMITTED: u8 = 0x37;
    /// [`Message::SubmitSuggestion`](super::Message::SubmitSuggestion).
    pub const SUBMIT_SUGGESTION: u8 = 0x38;
    /// [`Message::SuggestionSubmitted`](super::Message::SuggestionSubmitted).
    pub const SUGGESTION_SUBMITTED: u8 = 0x39;
    /// [`Message::GetDocuments`](super::Message::GetDocuments).
    pub const GET_DOCUMENTS: u8 = 0x24;
    /// [`Message::Documents`](super::Message::Documents).
    pub const DOCUMENTS: u8 = 0x25;

    /// Every tag in use, in table order.
    pub const ALL: [u8; 22] = [
        HELLO,
        WELCOME,
        ERROR,
        MANIFEST_DIGEST,
        MANIFEST_RANGES,
        MANIFEST_ENTRIES,
        SYNC_DOC,
        DOC_CHANGED,
        ACK,
        REJECTED,
        CREATE_INVITE,
        INVITE_CREATED,
        REVOKE_DEVICE,
        DEVICE_REVOKED,
        GET_SUBMISSION_CODE,
        SUBMISSION_CODE,
        SUBMIT_PETITION,
        PETITION_SUBMITTED,
        SUBMIT_SUGGESTION,
        SUGGESTION_SUBMITTED,
        GET_DOCUMENTS,
        DOCUMENTS,
    ];
}

/// One protocol message. See the [crate docs](crate) for how a session
/// uses them and the [tag table](self#tag-table) for their wire form.
///
/// `Message` deliberately has no serde implementation of its own: its only
/// wire form is the tagged frame made by [`crate::encode`] and
/// [`crate::FrameCodec`].
#[derive(Clone, PartialEq, Eq)]
pub enum Message {
    /// Client → server, first message on a connection: who I am and which
    /// protocol versions I speak.
    Hello {
        /// The newest protocol version the client speaks.
        version: u16,
        /// The oldest protocol version the client speaks.
        min_version: u16,
        /// How the device proves who it is.
        credentials: Credentials,
    },
    /// Server → client, the answer to a successful Hello.
    Welcome {
        /// The protocol version chosen for this connection; both sides use
        /// it from the next message on.
        version: u16,
        /// The server's clock, in milliseconds since the Unix epoch, so the
        /// client can notice and allow for its own clock being wrong.
        server_time_ms: i64,
        /// The device's id (newly assigned on enrollment).
        device_id: DeviceId,
        /// The member this device belongs to, if the branch has linked it
        /// to one yet.
        member_id: Option<MemberId>,
        /// The branch whose documents this connection syncs.
        branch_id: BranchId,
        /// What the device's member may do in the branch.
        role: Role,
        /// The device's new secret, sent only in answer to an enrollment.
        /// The device must store it; the server keeps only a hash of it
        /// and cannot send it again.
        device_secret: Option<DeviceSecret>,
        /// The branch's name, so the device can show which branch it joined.
        /// On the wire from protocol version 4 on: a Welcome whose `version`
        /// is older is sent without it (a name given is not written) and
        /// always decodes as `None`.
        branch_name: Option<String>,
    },
    /// Either side: a summary of every document in scope, so the peer can
    /// tell at once whether the two sides agree.
    ManifestDigest {
        /// How many documents are in scope.
        doc_count: u64,
        /// The XOR of their entry digests; see [`crate::manifest`].
        digest: [u8; 32],
    },
    /// Either side: summaries of sub-ranges of the document-id space, sent
    /// to narrow down where the two sides differ.
    ManifestRanges {
        /// Adjacent ranges, in ascending order of `start`.
        ranges: Vec<RangeSummary>,
    },
    /// Either side: every document the sender holds in a range that was
    /// found to differ, listed in full.
    ManifestEntries {
        /// The first id of the range (inclusive).
        start: DocId,
        /// The id just past the range (exclusive), or `None` for a range
        /// that runs to the end of the id space.
        end: Option<DocId>,
        /// The documents, in ascending order of id. A document of the
        /// receiver's in the range but not listed here is one the sender
        /// does not have.
        entries: Vec<ManifestEntry>,
    },
    /// Either side: one automerge sync message for one document.
    SyncDoc {
        /// The document being synced.
        doc_id: DocId,
        /// The automerge sync message bytes; opaque to this crate.
        payload: Vec<u8>,
    },
    /// Server → client: a document changed on the server (another device
    /// synced it), so the client should sync it if its heads differ.
    DocChanged {
        /// The document that changed.
        doc_id: DocId,
        /// Its heads on the server now.
        heads: Heads,
    },
    /// Server → client: the server has stored this document durably, up to
    /// and including these heads.
    Ack {
        /// The document stored.
        doc_id: DocId,
        /// The heads now safe on the server.
        heads: Heads,
    },
    /// Client → server, opening a request stream: send these documents whole.
    /// A device asks this for documents it holds nothing of (a first sync), at
    /// most [`crate::bundle::MAX_DOCS_PER_REQUEST`] at a time. Protocol 3.
    GetDocuments {
        /// The documents wanted.
        doc_ids: Vec<DocId>,
    },
    /// Server → client, on a `GetDocuments` stream: some of the documents asked
    /// for, each as the server stores it (automerge's saved form), compressed
    /// together; see [`crate::bundle`]. One or more follow a request, then the
    /// server finishes the stream. A document asked for but in no bundle is one
    /// the device may not read or the server does not hold: the device syncs it
    /// the ordinary way to learn why. Protocol 3.
    Documents {
        /// The compressed bundle.
        bundle: Vec<u8>,
    },
    /// Server → client, on a document stream: changes the server refused.
    /// They were not stored and no other device receives them; nor does
    /// any change that depends on them. The document sync ends here: the
    /// device drops the refused changes (and replays its later ones as
    /// new changes), forgets its sync state for the document and syncs it
    /// again. Changes accepted from the same message were acknowledged by
    /// an [`Message::Ack`] just before.
    Rejected {
        /// The document.
        doc_id: DocId,
        /// Each refused change with the rule it broke.
        rejections: Vec<ChangeRejection>,
    },
    /// Client → server, on a request stream: make a one-time invite into
    /// the device's own branch.
    CreateInvite {
        /// The role the invited device will hold.
        role: Role,
        /// The member the invited device will belong to, if any.
        member_id: Option<MemberId>,
        /// How long the invite stays usable, in seconds.
        valid_for_secs: u32,
    },
    /// Server → client: the answer to [`Message::CreateInvite`].
    InviteCreated {
        /// The invite link to hand to the new device (see `InviteLink`).
        invite: String,
        /// When the invite stops working, in milliseconds since the Unix
        /// epoch.
        expires_at_ms: i64,
    },
    /// Client → server, on a request stream: revoke a device of the
    /// sender's branch. Its connections are closed and it is refused from
    /// then on.
    RevokeDevice {
        /// The device to revoke.
        device_id: DeviceId,
    },
    /// Server → client: the answer to [`Message::RevokeDevice`].
    DeviceRevoked {
        /// The device now revoked.
        device_id: DeviceId,
    },
    /// Client → server, on a request stream: the branch's public
    /// submission link, which residents scan to send requests (committee
    /// devices only).
    GetSubmissionCode,
    /// Server → client: the answer to [`Message::GetSubmissionCode`].
    SubmissionCode {
        /// The link residents open (an invite link whose code is the
        /// branch's public submission code).
        link: String,
    },
    /// Client → server, on a request stream: a resident's request to the
    /// branch. The server writes the petition document itself and gives
    /// the sending device access to that petition only.
    SubmitPetition {
        /// The kind of problem, e.g. "环境卫生".
        category: String,
        /// A short title.
        title: String,
        /// What the resident asks for.
        description: String,
        /// Where, if it is about a place.
        location: Option<String>,
        /// The resident's name, if they give it.
        name: Option<String>,
        /// How to reach them (seen only by the committee and the owner).
        contact: Option<String>,
    },
    /// Server → client: the answer to [`Message::SubmitPetition`].
    PetitionSubmitted {
        /// The new petition document, which the device now syncs.
        doc_id: DocId,
    },
    /// Client → server, on a request stream: a member's suggestion for the
    /// branch's feedback box. When `anonymous`, the server keeps nothing
    /// that links it to the device or the member.
    SubmitSuggestion {
        /// The suggestion.
        text: String,
        /// Whether to leave the author out.
        anonymous: bool,
    },
    /// Server → client: the answer to [`Message::SubmitSuggestion`].
    SuggestionSubmitted {
        /// The feedback box document it was written to.
        doc_id: DocId,
        /// The suggestion's key in the box (a UUID).
        suggestion_id: String,
    },
    /// Either side: a request failed, or the sender is about to close the
    /// connection or stream, and why.
    Error {
        /// What went wrong, in a form a program can act on.
        code: ErrorCode,
        /// A human-readable explanation for logs; clients show their own
        /// wording chosen by `code`, not this text.
        message: String,
        /// The document the error is about, if any.
        doc_id: Option<DocId>,
    },
}

/// How a device proves who it is in [`Message::Hello`].
///
/// On the wire this is postcard's variant index, so variants may only be
/// added at the end, and only with a new protocol version.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Credentials {
    /// A new device joining with an invite code a secretary gave out.
    Enroll {
        /// The code from the invite.
        invite_code: String,
        /// A name the member will recognise in the device list, e.g.
        /// "Maria's phone".
        device_name: String,
        /// The automerge actor id this device will write changes as.
        #[serde(with = "byte_string")]
        actor_id: Vec<u8>,
    },
    /// A device that enrolled before.
    Device {
        /// The id from the device's enrollment Welcome.
        device_id: DeviceId,
        /// The secret from the device's enrollment Welcome.
        secret: DeviceSecret,
    },
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // An invite code is a bearer secret until it is used, so it stays
        // out of logs like the device secret does.
        match self {
            Credentials::Enroll {
                invite_code: _,
                device_name,
                actor_id,
            } => f
                .debug_struct("Enroll")
                .field("invite_code", &"<redacted>")
                .field("device_name", device_name)
                .field("actor_id", &HexBytes(actor_id))
                .finish(),
            Credentials::Device { device_id, secret } => f
                .debug_struct("Device")
                .field("device_id", device_id)
                .field("secret", secret)
                .finish(),
        }
    }
}

/// The summary of one range of document ids in [`Message::ManifestRanges`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RangeSummary {
    /// The first id in the range (inclusive).
    pub start: DocId,
    /// The id just past the range (exclusive), or `None` for a range that
    /// runs to the end of the id space, [`DocId::MAX`] included.
    pub end: Option<DocId>,
    /// How many documents are in the range.
    pub doc_count: u64,
    /// The XOR of their entry digests; see [`crate::manifest`].
    pub digest: [u8; 32],
}

impl RangeSummary {
    /// True if `doc_id` falls in this range.
    pub fn contains(&self, doc_id: DocId) -> bool {
        self.start <= doc_id && self.end.is_none_or(|end| doc_id < end)
    }
}

/// One document, listed in full, in [`Message::ManifestEntries`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestEntry {
    /// The document.
    pub doc_id: DocId,
    /// What kind of record the document holds (e.g. `"roster"`), so a
    /// receiver that has never seen it knows how to open it.
    pub kind: String,
    /// The document's heads on the sender's side.
    pub heads: Heads,
}

/// One refused change in [`Message::Rejected`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChangeRejection {
    /// The automerge change hash.
    pub change: [u8; 32],
    /// The rule it broke.
    pub code: ErrorCode,
    /// A human-readable explanation for logs, naming the field.
    pub message: String,
}

/// Why a request failed, as carried by [`Message::Error`].
///
/// Each code has a stable dotted string form ([`as_str`](Self::as_str)),
/// and that string is what travels on the wire. A code this build does not
/// know parses as [`ErrorCode::Unknown`] holding the string, so an older
/// client can still show "something went wrong" and log the code. Two
/// codes are equal when their strings are equal, even if one was built as
/// `Unknown` by hand.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum ErrorCode {
    /// `protocol.version_unsupported`: no protocol version both sides speak.
    VersionUnsupported,
    /// `protocol.frame_too_large`: a frame exceeded the size limit.
    FrameTooLarge,
    /// `protocol.malformed`: a frame or message body could not be decoded,
    /// or a message came at a point in the session where it makes no sense.
    Malformed,
    /// `protocol.unknown_message`: a frame carried a tag this side does not know.
    UnknownMessage,
    /// `auth.invite_invalid`: no such invite code.
    InviteInvalid,
    /// `auth.invite_expired`: the invite code is past its expiry time.
    InviteExpired,
    /// `auth.invite_used`: the invite code was already used to enroll a device.
    InviteUsed,
    /// `auth.device_revoked`: a secretary removed this device; it must enroll again.
    DeviceRevoked,
    /// `auth.unauthenticated`: the device id or secret is wrong, or no Hello came first.
    Unauthenticated,
    /// `access.denied`: the device's role may not read or write this document.
    AccessDenied,
    /// `access.read_only`: the device may read this document but sent changes to it.
    ReadOnly,
    /// `sync.invalid_payload`: an automerge sync message could not be applied.
    InvalidSyncPayload,
    /// `sync.invalid_document`: the changes would remove or alter the
    /// document's header, or create a document the device may not create.
    InvalidDocument,
    /// `server.busy`: the server is overloaded; try again later.
    ServerBusy,
    /// `server.internal`: something broke on the server; not the client's fault.
    Internal,
    /// `server.unavailable`: the server cannot reach or write its storage
    /// (its database restarting, say); nothing was stored, try again shortly.
    Unavailable,
    /// `rule.committee_only`: only the branch committee may change this.
    CommitteeOnly,
    /// `rule.not_own_entry`: a member may add or remove only their own
    /// sign-in or leave request.
    NotOwnEntry,
    /// `rule.organizer_only`: only the activity's organizer or the
    /// committee may change this.
    OrganizerOnly,
    /// `rule.owner_only`: only the petition's owner or the committee may
    /// record progress or resolve it.
    OwnerOnly,
    /// `rule.submitter_only`: only the petition's submitter may rate it.
    SubmitterOnly,
    /// `rule.not_resolved`: a petition is rated only once it is resolved.
    NotResolved,
    /// `rule.foreign_actor`: the change was written under another device's
    /// actor id.
    ForeignActor,
    /// `rule.not_a_new_submission`: a petition created by a member or a
    /// resident must start open, unassigned and unrated.
    NotANewSubmission,
    /// `rule.not_allied`: an activity is shared only with branches allied
    /// with its own (partner branches recorded by the server's admin).
    NotAllied,
    /// `request.rate_limited`: too many requests of this kind; try later.
    RateLimited,
    /// `request.invalid`: a field of the request is missing or too long.
    InvalidRequest,
    /// `tls.certificate_mismatch`: the server's certificate is not the one the
    /// invite pinned. Never sent by a server: a device says it when it refuses
    /// to talk to one.
    CertificateMismatch,
    /// A code this build does not know, kept as its string form.
    Unknown(String),
}

impl ErrorCode {
    /// Every known code, for tests and documentation.
    pub const KNOWN: [ErrorCode; 28] = [
        ErrorCode::VersionUnsupported,
        ErrorCode::FrameTooLarge,
        ErrorCode::Malformed,
        ErrorCode::UnknownMessage,
        ErrorCode::InviteInvalid,
        ErrorCode::InviteExpired,
        ErrorCode::InviteUsed,
        ErrorCode::DeviceRevoked,
        ErrorCode::Unauthenticated,
        ErrorCode::AccessDenied,
        ErrorCode::InvalidSyncPayload,
        ErrorCode::ServerBusy,
        ErrorCode::Internal,
        ErrorCode::ReadOnly,
        ErrorCode::InvalidDocument,
        ErrorCode::CommitteeOnly,
        ErrorCode::NotOwnEntry,
        ErrorCode::OrganizerOnly,
        ErrorCode::OwnerOnly,
        ErrorCode::SubmitterOnly,
        ErrorCode::NotResolved,
        ErrorCode::ForeignActor,
        ErrorCode::NotANewSubmission,
        ErrorCode::NotAllied,
        ErrorCode::RateLimited,
        ErrorCode::InvalidRequest,
        ErrorCode::CertificateMismatch,
        ErrorCode::Unavailable,
    ];

    /// The code's stable string form, as sent on the wire.
    pub fn as_str(&self) -> &str {
        match self {
            ErrorCode::VersionUnsupported => "protocol.version_unsupported",
            ErrorCode::FrameTooLarge => "protocol.frame_too_large",
            ErrorCode::Malformed => "protocol.malformed",
            ErrorCode::UnknownMessage => "protocol.unknown_message",
            ErrorCode::InviteInvalid => "auth.invite_invalid",
            ErrorCode::InviteExpired => "auth.invite_expired",
            ErrorCode::InviteUsed => "auth.invite_used",
            ErrorCode::DeviceRevoked => "auth.device_revoked",
            ErrorCode::Unauthenticated => "auth.unauthenticated",
            ErrorCode::AccessDenied => "access.denied",
            ErrorCode::InvalidSyncPayload => "sync.invalid_payload",
            ErrorCode::ServerBusy => "server.busy",
            ErrorCode::Internal => "server.internal",
            ErrorCode::ReadOnly => "access.read_only",
            ErrorCode::InvalidDocument => "sync.invalid_document",
            ErrorCode::CommitteeOnly => "rule.committee_only",
            ErrorCode::NotOwnEntry => "rule.not_own_entry",
            ErrorCode::OrganizerOnly => "rule.organizer_only",
            ErrorCode::OwnerOnly => "rule.owner_only",
            ErrorCode::SubmitterOnly => "rule.submitter_only",
            ErrorCode::NotResolved => "rule.not_resolved",
            ErrorCode::ForeignActor => "rule.foreign_actor",
            ErrorCode::NotANewSubmission => "rule.not_a_new_submission",
            ErrorCode::NotAllied => "rule.not_allied",
            ErrorCode::RateLimited => "request.rate_limited",
            ErrorCode::InvalidRequest => "request.invalid",
            ErrorCode::CertificateMismatch => "tls.certificate_mismatch",
            ErrorCode::Unavailable => "server.unavailable",
            ErrorCode::Unknown(code) => code,
        }
    }

    /// The code for this string form: a known code if there is one,
    /// otherwise [`ErrorCode::Unknown`].
    pub fn from_code(code: &str) -> Self {
        Self::KNOWN
            .into_iter()
            .find(|known| known.as_str() == code)
            .unwrap_or_else(|| ErrorCode::Unknown(code.to_owned()))
    }

    /// A failure on the server's side that may pass: the same request can
    /// succeed a little later, so a device tries again (with a growing
    /// delay) instead of giving up on the document or the connection.
    pub fn is_transient(&self) -> bool {
        matches!(
            Self::from_code(self.as_str()),
            ErrorCode::ServerBusy | ErrorCode::Internal | ErrorCode::Unavailable
        )
    }

    /// True unless this is a code this build does not know.
    pub fn is_known(&self) -> bool {
        // Compare by string so a hand-built `Unknown("server.busy")` counts
        // as known, matching how equality works.
        !matches!(Self::from_code(self.as_str()), ErrorCode::Unknown(_))
    }
}

impl PartialEq for ErrorCode {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for ErrorCode {}

impl Hash for ErrorCode {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.as_str().hash(state);
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ErrorCode {
    /// Parsing never fails: unknown codes become [`ErrorCode::Unknown`].
    type Err = Infallible;

    fn from_str(code: &str) -> Result<Self, Self::Err> {
        Ok(Self::from_code(code))
    }
}

impl Serialize for ErrorCode {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for ErrorCode {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct CodeVisitor;

        impl Visitor<'_> for CodeVisitor {
            type Value = ErrorCode;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an error code string")
            }

            fn visit_str<E: de::Error>(self, code: &str) -> Result<ErrorCode, E> {
                Ok(ErrorCode::from_code(code))
            }
        }

        deserializer.deserialize_str(CodeVisitor)
    }
}

impl Message {
    /// This message's tag byte; see the [tag table](self#tag-table).
    pub const fn tag(&self) -> u8 {
        match self {
            Message::Hello { .. } => tag::HELLO,
            Message::Welcome { .. } => tag::WELCOME,
            Message::Error { .. } => tag::ERROR,
            Message::ManifestDigest { .. } => tag::MANIFEST_DIGEST,
            Message::ManifestRanges { .. } => tag::MANIFEST_RANGES,
            Message::ManifestEntries { .. } => tag::MANIFEST_ENTRIES,
            Message::SyncDoc { .. } => tag::SYNC_DOC,
            Message::DocChanged { .. } => tag::DOC_CHANGED,
            Message::Ack { .. } => tag::ACK,
            Message::Rejected { .. } => tag::REJECTED,
            Message::GetDocuments { .. } => tag::GET_DOCUMENTS,
            Message::Documents { .. } => tag::DOCUMENTS,
            Message::CreateInvite { .. } => tag::CREATE_INVITE,
            Message::InviteCreated { .. } => tag::INVITE_CREATED,
            Message::RevokeDevice { .. } => tag::REVOKE_DEVICE,
            Message::DeviceRevoked { .. } => tag::DEVICE_REVOKED,
            Message::GetSubmissionCode => tag::GET_SUBMISSION_CODE,
            Message::SubmissionCode { .. } => tag::SUBMISSION_CODE,
            Message::SubmitPetition { .. } => tag::SUBMIT_PETITION,
            Message::PetitionSubmitted { .. } => tag::PETITION_SUBMITTED,
            Message::SubmitSuggestion { .. } => tag::SUBMIT_SUGGESTION,
            Message::SuggestionSubmitted { .. } => tag::SUGGESTION_SUBMITTED,
        }
    }

    /// A short name for logs and tracing fields, e.g. `"sync_doc"`.
    pub const fn name(&self) -> &'static str {
        match self {
            Message::Hello { .. } => "hello",
            Message::Welcome { .. } => "welcome",
            Message::Error { .. } => "error",
            Message::ManifestDigest { .. } => "manifest_digest",
            Message::ManifestRanges { .. } => "manifest_ranges",
            Message::ManifestEntries { .. } => "manifest_entries",
            Message::SyncDoc { .. } => "sync_doc",
            Message::DocChanged { .. } => "doc_changed",
            Message::Ack { .. } => "ack",
            Message::Rejected { .. } => "rejected",
            Message::GetDocuments { .. } => "get_documents",
            Message::Documents { .. } => "documents",
            Message::CreateInvite { .. } => "create_invite",
            Message::InviteCreated { .. } => "invite_created",
            Message::RevokeDevice { .. } => "revoke_device",
            Message::DeviceRevoked { .. } => "device_revoked",
            Message::GetSubmissionCode => "get_submission_code",
            Message::SubmissionCode { .. } => "submission_code",
            Message::SubmitPetition { .. } => "submit_petition",
            Message::PetitionSubmitted { .. } => "petition_submitted",
            Message::SubmitSuggestion { .. } => "submit_suggestion",
            Message::SuggestionSubmitted { .. } => "suggestion_submitted",
        }
    }

    /// Writes the body (everything after the tag) to `out`.
    pub(crate) fn write_body<W: std::io::Write>(&self, out: W) {
        // Fields are serialised as a tuple, which postcard lays out exactly
        // like a struct: each field in order, with nothing in between.
        let written = match self {
            Message::Hello {
                version,
                min_version,
                credentials,
            } => postcard::to_io(&(version, min_version, credentials), out),
            Message::Welcome {
                version,
                server_time_ms,
                device_id,
                member_id,
                branch_id,
                role,
                device_secret,
                branch_name,
            } => {
                let fields = (
                    version,
                    server_time_ms,
                    device_id,
                    member_id,
                    branch_id,
                    role,
                    device_secret,
                );
                if *version >= WELCOME_NAMES_BRANCH {
                    postcard::to_io(&(fields, branch_name), out)
                } else {
                    postcard::to_io(&fields, out)
                }
            }
            Message::Error {
                code,
                message,
                doc_id,
            } => postcard::to_io(&(code, message, doc_id), out),
            Message::ManifestDigest { doc_count, digest } => {
                postcard::to_io(&(doc_count, digest), out)
            }
            Message::ManifestRanges { ranges } => postcard::to_io(ranges, out),
            Message::ManifestEntries {
                start,
                end,
                entries,
            } => postcard::to_io(&(start, end, entries), out),
            Message::SyncDoc { doc_id, payload } => {
                postcard::to_io(&(doc_id, ByteStr(payload)), out)
            }
            Message::DocChanged { doc_id, heads } => postcard::to_io(&(doc_id, heads), out),
            Message::Ack { doc_id, heads } => postcard::to_io(&(doc_id, heads), out),
            Message::Rejected { doc_id, rejections } => postcard::to_io(&(doc_id, rejections), out),
            Message::GetDocuments { doc_ids } => postcard::to_io(doc_ids, out),
            Message::Documents { bundle } => postcard::to_io(&ByteStr(bundle), out),
            Message::CreateInvite {
                role,
                member_id,
                valid_for_secs,
            } => postcard::to_io(&(role, member_id, valid_for_secs), out),
            Message::InviteCreated {
                invite,
                expires_at_ms,
            } => postcard::to_io(&(invite, expires_at_ms), out),
            Message::RevokeDevice { device_id } => postcard::to_io(device_id, out),
            Message::DeviceRevoked { device_id } => postcard::to_io(device_id, out),
            Message::GetSubmissionCode => postcard::to_io(&(), out),
            Message::SubmissionCode { link } => postcard::to_io(link, out),
            Message::SubmitPetition {
                category,
                title,
                description,
                location,
                name,
                contact,
            } => postcard::to_io(
                &(category, title, description, location, name, contact),
                out,
            ),
            Message::PetitionSubmitted { doc_id } => postcard::to_io(doc_id, out),
            Message::SubmitSuggestion { text, anonymous } => {
                postcard::to_io(&(text, anonymous), out)
            }
            Message::SuggestionSubmitted {
                doc_id,
                suggestion_id,
            } => postcard::to_io(&(doc_id, suggestion_id), out),
        };
        // Every field type here serialises infallibly (sequences know their
        // length up front), and callers write into memory, which cannot fail.
        written.expect("serialising a message body into memory cannot fail");
    }

    /// Reads the body of a message with this tag; `body` must hold exactly
    /// one body and nothing else.
    pub(crate) fn read_body(tag: u8, body: &[u8]) -> Result<Self, DecodeError> {
        let message = match tag {
            tag::HELLO => {
                let (version, min_version, credentials) = read_exactly(tag, body)?;
                Message::Hello {
                    version,
                    min_version,
                    credentials,
                }
            }
            tag::WELCOME => {
                let (
                    (version, server_time_ms, device_id, member_id, branch_id, role, device_secret),
                    rest,
                ) = postcard::take_from_bytes::<(u16, i64, _, _, _, _, _)>(body)
                    .map_err(|source| DecodeError::Malformed { tag, source })?;
                // The version the Welcome was chosen for says whether the
                // branch's name follows; see the tag table.
                let branch_name = if version >= WELCOME_NAMES_BRANCH {
                    read_exactly(tag, rest)?
                } else {
                    read_exactly::<()>(tag, rest)?;
                    None
                };
                Message::Welcome {
                    version,
                    server_time_ms,
                    device_id,
                    member_id,
                    branch_id,
                    role,
                    device_secret,
                    branch_name,
                }
            }
            tag::ERROR => {
                let (code, message, doc_id) = read_exactly(tag, body)?;
                Message::Error {
                    code,
                    message,
                    doc_id,
                }
            }
            tag::MANIFEST_DIGEST => {
                let (doc_count, digest) = read_exactly(tag, body)?;
                Message::ManifestDigest { doc_count, digest }
            }
            tag::MANIFEST_RANGES => Message::ManifestRanges {
                ranges: read_exactly(tag, body)?,
            },
            tag::MANIFEST_ENTRIES => {
                let (start, end, entries) = read_exactly(tag, body)?;
                Message::ManifestEntries {
                    start,
                    end,
                    entries,
                }
            }
            tag::SYNC_DOC => {
                let (doc_id, ByteBuf(payload)) = read_exactly(tag, body)?;
                Message::SyncDoc { doc_id, payload }
            }
            tag::DOC_CHANGED => {
                let (doc_id, heads) = read_exactly(tag, body)?;
                Message::DocChanged { doc_id, heads }
            }
            tag::ACK => {
                let (doc_id, heads) = read_exactly(tag, body)?;
                Message::Ack { doc_id, heads }
            }
            tag::CREATE_INVITE => {
                let (role, member_id, valid_for_secs) = read_exactly(tag, body)?;
                Message::CreateInvite {
                    role,
                    member_id,
                    valid_for_secs,
                }
            }
            tag::INVITE_CREATED => {
                let (invite, expires_at_ms) = read_exactly(tag, body)?;
                Message::InviteCreated {
                    invite,
                    expires_at_ms,
                }
            }
            tag::REVOKE_DEVICE => Message::RevokeDevice {
                device_id: read_exactly(tag, body)?,
            },
            tag::DEVICE_REVOKED => Message::DeviceRevoked {
                device_id: read_exactly(tag, body)?,
            },
            tag::REJECTED => {
                let (doc_id, rejections) = read_exactly(tag, body)?;
                Message::Rejected { doc_id, rejections }
            }
            tag::GET_DOCUMENTS => Message::GetDocuments {
                doc_ids: read_exactly(tag, body)?,
            },
            tag::DOCUMENTS => Message::Documents {
                bundle: read_exactly::<ByteBuf>(tag, body)?.0,
            },
            tag::GET_SUBMISSION_CODE => {
                read_exactly::<()>(tag, body)?;
                Message::GetSubmissionCode
            }
            tag::SUBMISSION_CODE => Message::SubmissionCode {
                link: read_exactly(tag, body)?,
            },
            tag::SUBMIT_PETITION => {
                let (category, title, description, location, name, contact) =
                    read_exactly(tag, body)?;
                Message::SubmitPetition {
                    category,
                    title,
                    description,
                    location,
                    name,
                    contact,
                }
            }
            tag::PETITION_SUBMITTED => Message::PetitionSubmitted {
                doc_id: read_exactly(tag, body)?,
            },
            tag::SUBMIT_SUGGESTION => {
                let (text, anonymous) = read_exactly(tag, body)?;
                Message::SubmitSuggestion { text, anonymous }
            }
            tag::SUGGESTION_SUBMITTED => {
                let (doc_id, suggestion_id) = read_exactly(tag, body)?;
                Message::SuggestionSubmitted {
                    doc_id,
                    suggestion_id,
                }
            }
            _ => return Err(DecodeError::UnknownMessage { tag }),
        };
        Ok(message)
    }
}

/// The first protocol version whose [`Message::Welcome`] carries the branch's name.
const WELCOME_NAMES_BRANCH: u16 = 4;

/// Decodes one `T` that must use up all of `body`.
fn read_exactly<T: DeserializeOwned>(tag: u8, body: &[u8]) -> Result<T, DecodeError> {
    let (value, rest) =
        postcard::take_from_bytes(body).map_err(|source| DecodeError::Malformed { tag, source })?;
    if rest.is_empty() {
        Ok(value)
    } else {
        Err(DecodeError::TrailingBytes { count: rest.len() })
    }
}

impl fmt::Debug for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Written by hand so that a sync payload (up to 16 MiB) shows as its
        // length rather than flooding the log.
        match self {
            Message::Hello {
                version,
                min_version,
                credentials,
            } => f
                .debug_struct("Hello")
                .field("version", version)
                .field("min_version", min_version)
                .field("credentials", credentials)
                .finish(),
            Message::Welcome {
                version,
                server_time_ms,
                device_id,
                member_id,
                branch_id,
                role,
                device_secret,
                branch_name,
            } => f
                .debug_struct("Welcome")
                .field("version", version)
                .field("server_time_ms", server_time_ms)
                .field("device_id", device_id)
                .field("member_id", member_id)
                .field("branch_id", branch_id)
                .field("role", role)
                .field("device_secret", device_secret)
                .field("branch_name", branch_name)
                .finish(),
            Message::Error {
                code,
                message,
                doc_id,
            } => f
                .debug_struct("Error")
                .field("code", code)
                .field("message", message)
                .field("doc_id", doc_id)
                .finish(),
            Message::ManifestDigest { doc_count, digest } => f
                .debug_struct("ManifestDigest")
                .field("doc_count", doc_count)
                .field("digest", &HexBytes(digest))
                .finish(),
            Message::ManifestRanges { ranges } => f
                .debug_struct("ManifestRanges")
                .field("ranges", ranges)
                .finish(),
            Message::ManifestEntries {
                start,
                end,
                entries,
            } => f
                .debug_struct("ManifestEntries")
                .field("start", start)
                .field("end", end)
                .field("entries", entries)
                .finish(),
            Message::SyncDoc { doc_id, payload } => f
                .debug_struct("SyncDoc")
                .field("doc_id", doc_id)
                .field("payload_len", &payload.len())
                .finish(),
            Message::DocChanged { doc_id, heads } => f
                .debug_struct("DocChanged")
                .field("doc_id", doc_id)
                .field("heads", heads)
                .finish(),
            Message::Ack { doc_id, heads } => f
                .debug_struct("Ack")
                .field("doc_id", doc_id)
                .field("heads", heads)
                .finish(),
            Message::CreateInvite {
                role,
                member_id,
                valid_for_secs,
            } => f
                .debug_struct("CreateInvite")
                .field("role", role)
                .field("member_id", member_id)
                .field("valid_for_secs", valid_for_secs)
                .finish(),
            // The invite is a bearer secret until it is used.
            Message::InviteCreated {
                invite: _,
                expires_at_ms,
            } => f
                .debug_struct("InviteCreated")
                .field("invite", &"<redacted>")
                .field("expires_at_ms", expires_at_ms)
                .finish(),
            Message::RevokeDevice { device_id } => f
                .debug_struct("RevokeDevice")
                .field("device_id", device_id)
                .finish(),
            Message::DeviceRevoked { device_id } => f
                .debug_struct("DeviceRevoked")
                .field("device_id", device_id)
                .finish(),
            Message::Rejected { doc_id, rejections } => f
                .debug_struct("Rejected")
                .field("doc_id", doc_id)
                .field("rejections", rejections)
                .finish(),
            Message::GetDocuments { doc_ids } => f
                .debug_struct("GetDocuments")
                .field("doc_ids", &doc_ids.len())
                .finish(),
            Message::Documents { bundle } => f
                .debug_struct("Documents")
                .field("bundle_len", &bundle.len())
                .finish(),
            Message::GetSubmissionCode => f.write_str("GetSubmissionCode"),
            Message::SubmissionCode { link } => f
                .debug_struct("SubmissionCode")
                .field("link", link)
                .finish(),
            // What residents write stays out of logs: only its size shows.
            Message::SubmitPetition {
                category,
                title,
                description,
                ..
            } => f
                .debug_struct("SubmitPetition")
                .field("category", category)
                .field("title_len", &title.len())
                .field("description_len", &description.len())
                .finish_non_exhaustive(),
            Message::PetitionSubmitted { doc_id } => f
                .debug_struct("PetitionSubmitted")
                .field("doc_id", doc_id)
                .finish(),
            Message::SubmitSuggestion { text, anonymous } => f
                .debug_struct("SubmitSuggestion")
                .field("text_len", &text.len())
                .field("anonymous", anonymous)
                .finish(),
            Message::SuggestionSubmitted {
                doc_id,
                suggestion_id,
            } => f
                .debug_struct("SuggestionSubmitted")
                .field("doc_id", doc_id)
                .field("suggestion_id", suggestion_id)
                .finish(),
        }
    }
}

/// Shows bytes as one hex string in `Debug` output.
struct HexBytes<'a>(&'a [u8]);

impl fmt::Debug for HexBytes<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.iter().try_for_each(|byte| write!(f, "{byte:02x}"))
    }
}

/// Serialises borrowed bytes as a byte string.
///
/// Postcard writes a byte string exactly like a `Vec<u8>` (varint length,
/// then the bytes), but as one copy instead of one call per byte, which
/// matters for multi-megabyte sync payloads.
struct ByteStr<'a>(&'a [u8]);

impl Serialize for ByteStr<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_bytes(self.0)
    }
}

/// Deserialises a byte string into an owned buffer; see [`ByteStr`].
struct ByteBuf(Vec<u8>);

impl<'de> Deserialize<'de> for ByteBuf {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        byte_string::deserialize(deserializer).map(ByteBuf)
    }
}

/// `#[serde(with)]` helpers that treat a `Vec<u8>` as a byte string.
pub(crate) mod byte_string {
    use super::*;

    pub(crate) fn serialize<S: Serializer>(bytes: &[u8], serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_bytes(bytes)
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Vec<u8>, D::Error> {
        struct BytesVisitor;

        impl<'de> Visitor<'de> for BytesVisitor {
            type Value = Vec<u8>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a byte string")
            }

            fn visit_bytes<E: de::Error>(self, bytes: &[u8]) -> Result<Vec<u8>, E> {
                Ok(bytes.to_vec())
            }

            fn visit_byte_buf<E: de::Error>(self, bytes: Vec<u8>) -> Result<Vec<u8>, E> {
                Ok(bytes)
            }

            // Text formats such as JSON write byte strings as arrays of numbers.
            fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<u8>, A::Error> {
                let mut bytes = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(4096));
                while let Some(byte) = seq.next_element()? {
                    bytes.push(byte);
                }
                Ok(bytes)
            }
        }

        deserializer.deserialize_byte_buf(BytesVisitor)
    }
}

/// Proptest strategies for every wire type, shared by the codec tests.
#[cfg(test)]
pub(crate) mod strategy {
    use proptest::prelude::*;

    use super::*;

    pub(crate) fn doc_id() -> impl Strategy<Value = DocId> {
        any::<[u8; 16]>().prop_map(DocId::from_bytes)
    }

    pub(crate) fn heads() -> impl Strategy<Value = Heads> {
        prop::collection::vec(any::<[u8; 32]>(), 0..4).prop_map(Heads::new)
    }

    pub(crate) fn role() -> impl Strategy<Value = Role> {
        prop_oneof![
            Just(Role::Secretary),
            Just(Role::Committee),
            Just(Role::Member),
            Just(Role::Resident),
        ]
    }

    fn credentials() -> impl Strategy<Value = Credentials> {
        prop_oneof![
            (any::<String>(), any::<String>(), any::<Vec<u8>>()).prop_map(
                |(invite_code, device_name, actor_id)| Credentials::Enroll {
                    invite_code,
                    device_name,
                    actor_id,
                }
            ),
            (any::<[u8; 16]>(), any::<[u8; 32]>()).prop_map(|(device, secret)| {
                Credentials::Device {
                    device_id: DeviceId::from_bytes(device),
                    secret: DeviceSecret::from_bytes(secret),
                }
            }),
        ]
    }

    pub(crate) fn error_code() -> impl Strategy<Value = ErrorCode> {
        prop_oneof![
            prop::sample::select(ErrorCode::KNOWN.to_vec()),
            any::<String>().prop_map(|code| ErrorCode::from_code(&code)),
        ]
    }

    fn range_summary() -> impl Strategy<Value = RangeSummary> {
        (
            doc_id(),
            prop::option::of(doc_id()),
            any::<u64>(),
            any::<[u8; 32]>(),
        )
            .prop_map(|(start, end, doc_count, digest)| RangeSummary {
                start,
                end,
                doc_count,
                digest,
            })
    }

    fn manifest_entry() -> impl Strategy<Value = ManifestEntry> {
        (doc_id(), any::<String>(), heads()).prop_map(|(doc_id, kind, heads)| ManifestEntry {
            doc_id,
            kind,
            heads,
        })
    }

    /// Any message, with every field drawn from its whole range.
    pub(crate) fn message() -> impl Strategy<Value = Message> {
        prop_oneof![
            (any::<u16>(), any::<u16>(), credentials()).prop_map(
                |(version, min_version, credentials)| Message::Hello {
                    version,
                    min_version,
                    credentials,
                }
            ),
            (
                any::<u16>(),
                any::<i64>(),
                any::<[u8; 16]>(),
                prop::option::of(any::<[u8; 16]>()),
                any::<[u8; 16]>(),
                role(),
                prop::option::of(any::<[u8; 32]>()),
                prop::option::of(any::<String>()),
            )
                .prop_map(
                    |(version, server_time_ms, device, member, branch, role, secret, name)| {
                        Message::Welcome {
                            version,
                            server_time_ms,
                            device_id: DeviceId::from_bytes(device),
                            member_id: member.map(MemberId::from_bytes),
                            branch_id: BranchId::from_bytes(branch),
                            role,
                            device_secret: secret.map(DeviceSecret::from_bytes),
                            // Only a version-4 Welcome carries the name.
                            branch_name: name.filter(|_| version >= WELCOME_NAMES_BRANCH),
                        }
                    }
                ),
            (error_code(), any::<String>(), prop::option::of(doc_id())).prop_map(
                |(code, message, doc_id)| Message::Error {
                    code,
                    message,
                    doc_id,
                }
            ),
            (any::<u64>(), any::<[u8; 32]>())
                .prop_map(|(doc_count, digest)| Message::ManifestDigest { doc_count, digest }),
            prop::collection::vec(range_summary(), 0..4)
                .prop_map(|ranges| Message::ManifestRanges { ranges }),
            (
                doc_id(),
                prop::option::of(doc_id()),
                prop::collection::vec(manifest_entry(), 0..4)
            )
                .prop_map(|(start, end, entries)| Message::ManifestEntries {
                    start,
                    end,
                    entries
                }),
            (doc_id(), prop::collection::vec(any::<u8>(), 0..300))
                .prop_map(|(doc_id, payload)| Message::SyncDoc { doc_id, payload }),
            (doc_id(), heads()).prop_map(|(doc_id, heads)| Message::DocChanged { doc_id, heads }),
            (doc_id(), heads()).prop_map(|(doc_id, heads)| Message::Ack { doc_id, heads }),
            (role(), prop::option::of(any::<[u8; 16]>()), any::<u32>()).prop_map(
                |(role, member, valid_for_secs)| Message::CreateInvite {
                    role,
                    member_id: member.map(MemberId::from_bytes),
                    valid_for_secs,
                }
            ),
            (any::<String>(), any::<i64>()).prop_map(|(invite, expires_at_ms)| {
                Message::InviteCreated {
                    invite,
                    expires_at_ms,
                }
            }),
            any::<[u8; 16]>().prop_map(|device| Message::RevokeDevice {
                device_id: DeviceId::from_bytes(device)
            }),
            any::<[u8; 16]>().prop_map(|device| Message::DeviceRevoked {
                device_id: DeviceId::from_bytes(device)
            }),
            (
                doc_id(),
                prop::collection::vec(
                    (any::<[u8; 32]>(), error_code(), any::<String>()).prop_map(
                        |(change, code, message)| ChangeRejection {
                            change,
                            code,
                            message
                        }
                    ),
                    0..3
                )
            )
                .prop_map(|(doc_id, rejections)| Message::Rejected { doc_id, rejections }),
            prop::collection::vec(doc_id(), 0..5)
                .prop_map(|doc_ids| Message::GetDocuments { doc_ids }),
            prop::collection::vec(any::<u8>(), 0..300)
                .prop_map(|bundle| Message::Documents { bundle }),
            Just(Message::GetSubmissionCode),
            any::<String>().prop_map(|link| Message::SubmissionCode { link }),
            (
                any::<String>(),
                any::<String>(),
                any::<String>(),
                prop::option::of(any::<String>()),
                prop::option::of(any::<String>()),
                prop::option::of(any::<String>()),
            )
                .prop_map(|(category, title, description, location, name, contact)| {
                    Message::SubmitPetition {
                        category,
                        title,
                        description,
                        location,
                        name,
                        contact,
                    }
                }),
            doc_id().prop_map(|doc_id| Message::PetitionSubmitted { doc_id }),
            (any::<String>(), any::<bool>())
                .prop_map(|(text, anonymous)| Message::SubmitSuggestion { text, anonymous }),
            (doc_id(), any::<String>()).prop_map(|(doc_id, suggestion_id)| {
                Message::SuggestionSubmitted {
                    doc_id,
                    suggestion_id,
                }
            }),
        ]
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn known_codes_round_trip_through_their_strings() {
        for code in ErrorCode::KNOWN {
            let text = code.as_str();
            assert!(code.is_known(), "{text}");
            assert_eq!(text.parse::<ErrorCode>(), Ok(code.clone()));
            assert!(!matches!(ErrorCode::from_code(text), ErrorCode::Unknown(_)));
        }
        let mut strings: Vec<_> = ErrorCode::KNOWN.iter().map(ErrorCode::as_str).collect();
        strings.sort_unstable();
        strings.dedup();
        assert_eq!(
            strings.len(),
            ErrorCode::KNOWN.len(),
            "codes must be distinct"
        );
    }

    #[test]
    fn code_strings_are_stable() {
        // The strings are the wire form; changing one breaks older peers.
        let strings: Vec<_> = ErrorCode::KNOWN.iter().map(ErrorCode::as_str).collect();
        assert_eq!(
            strings,
            [
                "protocol.version_unsupported",
                "protocol.frame_too_large",
                "protocol.malformed",
                "protocol.unknown_message",
                "auth.invite_invalid",
                "auth.invite_expired",
                "auth.invite_used",
                "auth.device_revoked",
                "auth.unauthenticated",
                "access.denied",
                "sync.invalid_payload",
                "server.busy",
                "server.internal",
                "access.read_only",
                "sync.invalid_document",
                "rule.committee_only",
                "rule.not_own_entry",
                "rule.organizer_only",
                "rule.owner_only",
                "rule.submitter_only",
                "rule.not_resolved",
                "rule.foreign_actor",
                "rule.not_a_new_submission",
                "rule.not_allied",
                "request.rate_limited",
                "request.invalid",
                "tls.certificate_mismatch",
                "server.unavailable",
            ]
        );
    }

    #[test]
    fn only_server_side_failures_are_transient() {
        let transient: Vec<_> = ErrorCode::KNOWN
            .iter()
            .filter(|code| code.is_transient())
            .map(ErrorCode::as_str)
            .collect();
        assert_eq!(
            transient,
            ["server.busy", "server.internal", "server.unavailable"]
        );
        assert!(ErrorCode::Unknown("server.unavailable".to_owned()).is_transient());
        assert!(!ErrorCode::Unknown("billing.overdue".to_owned()).is_transient());
    }

    #[test]
    fn unknown_code_parses_as_unknown_and_keeps_its_string() {
        let code: ErrorCode = "billing.overdue".parse().unwrap();
        assert_eq!(code, ErrorCode::Unknown("billing.overdue".to_owned()));
        assert!(matches!(&code, ErrorCode::Unknown(text) if text == "billing.overdue"));
        assert!(!code.is_known());
        assert_eq!(code.to_string(), "billing.overdue");
    }

    #[test]
    fn hand_built_unknown_equals_the_known_code_with_that_string() {
        let hand_built = ErrorCode::Unknown("server.busy".to_owned());
        assert_eq!(hand_built, ErrorCode::ServerBusy);
        assert!(hand_built.is_known());
        assert_ne!(hand_built, ErrorCode::Internal);
    }

    #[test]
    fn error_code_travels_as_its_string() {
        let wire = postcard::to_stdvec(&ErrorCode::AccessDenied).unwrap();
        assert_eq!(wire[0] as usize, "access.denied".len());
        assert_eq!(&wire[1..], b"access.denied");
    }

    #[test]
    fn unknown_code_from_a_newer_peer_decodes_as_unknown() {
        // The body a newer server would send with a code we never heard of,
        // written out field by field: code, message, doc_id.
        let mut body = Vec::new();
        body.push(16);
        body.extend_from_slice(b"billing.past_due");
        body.push(2);
        body.extend_from_slice(b"hi");
        body.push(0);
        let decoded = Message::read_body(tag::ERROR, &body).unwrap();
        assert_eq!(
            decoded,
            Message::Error {
                code: ErrorCode::Unknown("billing.past_due".to_owned()),
                message: "hi".to_owned(),
                doc_id: None,
            }
        );

        // And it goes out again unchanged when relayed.
        let mut reencoded = Vec::new();
        decoded.write_body(&mut reencoded);
        assert_eq!(reencoded, body);
    }

    #[test]
    fn unknown_tag_is_a_typed_error() {
        assert!(matches!(
            Message::read_body(0x7f, &[]),
            Err(DecodeError::UnknownMessage { tag: 0x7f })
        ));
        assert!(matches!(
            Message::read_body(0x00, &[1, 2, 3]),
            Err(DecodeError::UnknownMessage { tag: 0x00 })
        ));
    }

    #[test]
    fn leftover_body_bytes_are_rejected() {
        let mut body = Vec::new();
        Message::Ack {
            doc_id: DocId::MIN,
            heads: Heads::default(),
        }
        .write_body(&mut body);
        body.push(0);
        assert!(matches!(
            Message::read_body(tag::ACK, &body),
            Err(DecodeError::TrailingBytes { count: 1 })
        ));
    }

    #[test]
    fn debug_hides_secrets_and_payloads() {
        let hello = Message::Hello {
            version: 1,
            min_version: 1,
            credentials: Credentials::Enroll {
                invite_code: "TOPSECRET".to_owned(),
                device_name: "phone".to_owned(),
                actor_id: vec![0xab, 0xcd],
            },
        };
        let shown = format!("{hello:?}");
        assert!(!shown.contains("TOPSECRET"), "{shown}");
        assert!(shown.contains("abcd"), "{shown}");

        let sync = Message::SyncDoc {
            doc_id: DocId::MIN,
            payload: vec![0x5a; 1000],
        };
        assert!(format!("{sync:?}").contains("payload_len: 1000"));
    }

    #[test]
    fn range_contains_respects_bounds() {
        let id = |n: u8| DocId::from_bytes([n; 16]);
        let bounded = RangeSummary {
            start: id(2),
            end: Some(id(5)),
            doc_count: 0,
            digest: [0; 32],
        };
        assert!(!bounded.contains(id(1)));
        assert!(bounded.contains(id(2)));
        assert!(bounded.contains(id(4)));
        assert!(!bounded.contains(id(5)));

        let open = RangeSummary {
            end: None,
            ..bounded
        };
        assert!(open.contains(DocId::MAX));
    }

    fn welcome(version: u16, branch_name: Option<&str>) -> Message {
        Message::Welcome {
            version,
            server_time_ms: 7,
            device_id: DeviceId::from_bytes([1; 16]),
            member_id: None,
            branch_id: BranchId::from_bytes([2; 16]),
            role: Role::Resident,
            device_secret: None,
            branch_name: branch_name.map(str::to_owned),
        }
    }

    fn body(message: &Message) -> Vec<u8> {
        let mut body = Vec::new();
        message.write_body(&mut body);
        body
    }

    #[test]
    fn welcome_names_the_branch_from_version_4_on() {
        let named = welcome(4, Some("幸福里支部"));
        let unnamed = body(&welcome(4, None));
        let with_name = body(&named);
        // The same fields, then the name as an `Option<String>`.
        assert_eq!(with_name[..unnamed.len() - 1], unnamed[..unnamed.len() - 1]);
        assert_eq!(unnamed.last(), Some(&0));
        assert_eq!(with_name[unnamed.len() - 1], 1);
        assert!(with_name.ends_with("幸福里支部".as_bytes()));
        assert_eq!(Message::read_body(tag::WELCOME, &with_name).unwrap(), named);
    }

    #[test]
    fn an_older_welcome_keeps_its_bytes_and_has_no_name() {
        // What a version-3 server sends, and what a version-3 client can read:
        // a name given to an older Welcome is not written.
        let old = body(&welcome(3, None));
        assert_eq!(body(&welcome(3, Some("幸福里支部"))), old);
        assert_eq!(
            Message::read_body(tag::WELCOME, &old).unwrap(),
            welcome(3, None)
        );
        // A name after an older Welcome is not part of it.
        let mut padded = old.clone();
        padded.push(0);
        assert!(matches!(
            Message::read_body(tag::WELCOME, &padded),
            Err(DecodeError::TrailingBytes { count: 1 })
        ));
        // A version-4 Welcome without its name field is cut short.
        let mut cut = body(&welcome(4, None));
        cut.pop();
        assert!(matches!(
            Message::read_body(tag::WELCOME, &cut),
            Err(DecodeError::Malformed { .. })
        ));
    }

    #[test]
    fn tags_are_distinct_and_never_zero() {
        let mut tags = tag::ALL.to_vec();
        tags.sort_unstable();
        tags.dedup();
        assert_eq!(tags.len(), tag::ALL.len());
        assert!(!tags.contains(&0));
    }

    proptest! {
        #[test]
        fn error_code_string_round_trips(code in strategy::error_code()) {
            let wire = postcard::to_stdvec(&code).unwrap();
            let back: ErrorCode = postcard::from_bytes(&wire).unwrap();
            prop_assert_eq!(back.as_str(), code.as_str());
            prop_assert_eq!(back.is_known(), code.is_known());
        }

        #[test]
        fn bodies_round_trip(message in strategy::message()) {
            let mut body = Vec::new();
            message.write_body(&mut body);
            prop_assert_eq!(Message::read_body(message.tag(), &body).unwrap(), message);
        }
    }
}
