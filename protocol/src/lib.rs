//! The Branchline wire protocol: what a client and the server say to each
//! other, and how those messages become bytes. There is no I/O in this
//! crate; the QUIC transport lives in `client-core` and `server`.
//!
//! # A session in plain words
//!
//! A device opens one QUIC connection to its branch server (ALPN
//! [`ALPN`]) and opens the first bidirectional stream, the *control
//! stream*.
//!
//! 1. **Hello → Welcome.** The device sends [`Message::Hello`] with the
//!    range of protocol versions it speaks and its [`Credentials`]: either
//!    an invite code (first run: *enrollment*) or the device id and
//!    secret it was given when it enrolled. The server picks the highest
//!    version both sides speak ([`negotiate`]) and answers
//!    [`Message::Welcome`], which says who the device is, which branch it
//!    belongs to and what [`Role`] it holds. On enrollment the Welcome
//!    carries the new device secret, which the device must store; it is
//!    never sent again. If anything is wrong the server answers
//!    [`Message::Error`] instead and closes the connection.
//! 2. **Manifest exchange.** Both sides summarise the set of documents in
//!    scope as a [`Message::ManifestDigest`]: a document count and a
//!    digest over every (document id, heads) pair (see [`manifest`]). If
//!    the digests match, the sides already agree and nothing more is
//!    needed. If not, they split the document-id space into ranges and
//!    exchange a [`Message::ManifestRanges`] for each, recursing into the
//!    ranges that differ until the ranges are small enough to list as
//!    [`Message::ManifestEntries`]: each document with its kind and
//!    heads.
//!
//!    The exact rules (who splits, when entries are listed, how an answer
//!    ends) are in `docs/sync-design.md` and [`Manifest::respond`].
//! 3. **Per-document sync.** For each document whose heads differ, the
//!    sides run the automerge sync protocol on a stream of their own,
//!    carrying each automerge sync message as an opaque
//!    [`Message::SyncDoc`] payload, until both have the same heads.
//! 4. **Live notices.** While the connection stays open the server tells
//!    the device about documents that changed elsewhere with
//!    [`Message::DocChanged`], so the device can start a sync for them.
//! 5. **Acks.** When the server has stored a document's changes durably
//!    it sends [`Message::Ack`] with the heads it now holds. Until a
//!    device has seen an Ack covering its local heads, it must treat its
//!    local changes as not yet safe on the server.
//!
//! Keep-alive is left to QUIC, so there is no ping message.
//!
//! # Frames
//!
//! Every message travels as one frame: a 4-byte big-endian length, then a
//! 1-byte message tag, then the message body in [postcard] form. The
//! length counts the tag and the body. The tag table and the rules for
//! changing it are in the [`message`] module; framing is in [`codec`].

pub mod bundle;
pub mod codec;
pub mod ids;
pub mod invite;
pub mod manifest;
pub mod message;
pub mod version;

pub use codec::{DecodeError, EncodeError, FrameCodec, decode, encode};
pub use ids::{BranchId, DeviceId, DeviceSecret, DocId, Heads, IdParseError, MemberId, Role};
pub use invite::{InviteLink, InviteParseError};
pub use manifest::{Manifest, ManifestTally};
pub use message::{ChangeRejection, Credentials, ErrorCode, ManifestEntry, Message, RangeSummary};
pub use version::{negotiate, negotiate_between};

/// The QUIC ALPN protocol id; a server refuses connections that offer
/// anything else, so incompatible clients fail during the TLS handshake.
pub const ALPN: &[u8] = b"branchline/1";

/// The newest protocol version this build speaks.
///
/// Version 2 added [`Message::Rejected`] and the submission requests
/// (resident petitions, the feedback box). Version 3 added
/// [`Message::GetDocuments`] and [`Message::Documents`]: whole documents,
/// compressed together, for a device's first sync. Version 4 added the
/// branch's name to [`Message::Welcome`], so a device can show which branch
/// it joined.
pub const PROTOCOL_VERSION: u16 = 4;

/// The oldest protocol version this build still speaks.
///
/// Raise it only when support for an old version is dropped on purpose;
/// devices that only speak older versions then get
/// [`ErrorCode::VersionUnsupported`] at Hello.
pub const MIN_SUPPORTED_VERSION: u16 = 1;

/// The largest frame (tag plus body) either side accepts, in bytes.
///
/// The codec must hold a whole frame in memory before it can decode it,
/// so this bounds the memory one stream can make its peer allocate. 16 MiB
/// is far above any realistic automerge sync message for branch records,
/// yet small enough that a few hundred concurrent streams cannot exhaust a
/// small server. A sender must keep each frame under this limit (the
/// encoder refuses larger ones) rather than rely on the peer to cope.
pub const MAX_FRAME_LEN: usize = 16 * 1024 * 1024;
