//! Golden bytes: one fixed example of every message, and every
//! `Credentials` variant, encoded as a frame and compared with the hex
//! dump committed under `tests/snapshots/`.
//!
//! If one of these fails, the wire format changed. That is only correct
//! together with a new tag or protocol version (see the `message` module
//! docs); then regenerate with `INSTA_UPDATE=always cargo test -p
//! branchline-protocol --test golden` and commit the new snapshots.

use std::fmt::Write as _;

use branchline_protocol::{
    BranchId, ChangeRejection, Credentials, DeviceId, DeviceSecret, DocId, ErrorCode, Heads,
    ManifestEntry, MemberId, Message, RangeSummary, Role, decode, encode,
};

fn doc_a() -> DocId {
    "0f1e2d3c-4b5a-4978-8796-a5b4c3d2e1f0".parse().unwrap()
}

fn doc_b() -> DocId {
    "8a7b6c5d-4e3f-4a1b-9c8d-7e6f5a4b3c2d".parse().unwrap()
}

fn device() -> DeviceId {
    "d0d1d2d3-d4d5-46d7-98d9-dadbdcdddedf".parse().unwrap()
}

fn heads() -> Heads {
    Heads::new(vec![[0xbb; 32], [0xaa; 32]])
}

fn secret() -> DeviceSecret {
    DeviceSecret::from_bytes(std::array::from_fn(|i| i as u8))
}

/// The frame as text: the length and tag on the first line, then the body
/// sixteen bytes to a line with offsets into the body.
fn dump(message: &Message) -> String {
    let frame = encode(message).unwrap();
    // Each golden value must also decode back to itself.
    assert_eq!(&decode(&frame).unwrap(), message);

    let (prefix, rest) = frame.split_at(4);
    let (tag, body) = rest.split_first().unwrap();
    let mut text = format!(
        "length {} (prefix {})  tag {tag:#04x} ({})\n",
        rest.len(),
        hex(prefix),
        message.name(),
    );
    for (row, chunk) in body.chunks(16).enumerate() {
        writeln!(text, "{:04x}  {}", row * 16, hex(chunk)).unwrap();
    }
    text
}

fn hex(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Every golden example, by snapshot name.
fn examples() -> Vec<(&'static str, Message)> {
    vec![
        (
            "hello_enroll",
            Message::Hello {
                version: 1,
                min_version: 1,
                credentials: Credentials::Enroll {
                    invite_code: "RIVER-OTTER-42".to_owned(),
                    device_name: "Maria's phone".to_owned(),
                    actor_id: vec![0xac, 0x70, 0x12, 0x34],
                },
            },
        ),
        (
            "hello_device",
            Message::Hello {
                version: 3,
                min_version: 1,
                credentials: Credentials::Device {
                    device_id: device(),
                    secret: secret(),
                },
            },
        ),
        (
            "welcome_enrolled",
            Message::Welcome {
                version: 1,
                server_time_ms: 1_767_225_600_000,
                device_id: device(),
                member_id: Some(
                    "11112222-3333-4444-8555-666677778888"
                        .parse::<MemberId>()
                        .unwrap(),
                ),
                branch_id: "b0b1b2b3-b4b5-46b7-88b9-babbbcbdbebf"
                    .parse::<BranchId>()
                    .unwrap(),
                role: Role::Secretary,
                device_secret: Some(secret()),
                // Before version 4 a Welcome has no name: these bytes are
                // the same as they always were.
                branch_name: None,
            },
        ),
        (
            "welcome_named",
            Message::Welcome {
                version: 4,
                server_time_ms: 1_767_225_600_000,
                device_id: device(),
                member_id: None,
                branch_id: "b0b1b2b3-b4b5-46b7-88b9-babbbcbdbebf"
                    .parse::<BranchId>()
                    .unwrap(),
                role: Role::Resident,
                device_secret: Some(secret()),
                branch_name: Some("和平社区第一支部".to_owned()),
            },
        ),
        (
            "welcome_returning",
            Message::Welcome {
                version: 1,
                server_time_ms: -1,
                device_id: device(),
                member_id: None,
                branch_id: "b0b1b2b3-b4b5-46b7-88b9-babbbcbdbebf"
                    .parse::<BranchId>()
                    .unwrap(),
                role: Role::Resident,
                device_secret: None,
                branch_name: None,
            },
        ),
        (
            "error_known_code",
            Message::Error {
                code: ErrorCode::AccessDenied,
                message: "committee only".to_owned(),
                doc_id: Some(doc_a()),
            },
        ),
        (
            "error_unknown_code",
            Message::Error {
                code: ErrorCode::Unknown("billing.past_due".to_owned()),
                message: String::new(),
                doc_id: None,
            },
        ),
        (
            "manifest_digest",
            Message::ManifestDigest {
                doc_count: 300,
                digest: std::array::from_fn(|i| 0xff - i as u8),
            },
        ),
        (
            "manifest_ranges",
            Message::ManifestRanges {
                ranges: vec![
                    RangeSummary {
                        start: DocId::MIN,
                        end: Some(doc_b()),
                        doc_count: 2,
                        digest: [0x11; 32],
                    },
                    RangeSummary {
                        start: doc_b(),
                        end: None,
                        doc_count: 0,
                        digest: [0; 32],
                    },
                ],
            },
        ),
        (
            "manifest_entries",
            Message::ManifestEntries {
                start: doc_a(),
                end: None,
                entries: vec![
                    ManifestEntry {
                        doc_id: doc_a(),
                        kind: "roster".to_owned(),
                        heads: heads(),
                    },
                    ManifestEntry {
                        doc_id: doc_b(),
                        kind: "activity".to_owned(),
                        heads: Heads::default(),
                    },
                ],
            },
        ),
        (
            "sync_doc",
            Message::SyncDoc {
                doc_id: doc_a(),
                payload: b"\x42automerge sync bytes".to_vec(),
            },
        ),
        (
            "doc_changed",
            Message::DocChanged {
                doc_id: doc_b(),
                heads: heads(),
            },
        ),
        (
            "ack",
            Message::Ack {
                doc_id: doc_a(),
                heads: Heads::new(vec![[0x01; 32]]),
            },
        ),
        (
            "create_invite",
            Message::CreateInvite {
                role: Role::Member,
                member_id: Some(
                    "11112222-3333-4444-8555-666677778888"
                        .parse::<MemberId>()
                        .unwrap(),
                ),
                valid_for_secs: 259_200,
            },
        ),
        (
            "invite_created",
            Message::InviteCreated {
                invite: "branchline://example.org:4433/RIVER?cert=00".to_owned(),
                expires_at_ms: 1_767_225_600_000,
            },
        ),
        (
            "revoke_device",
            Message::RevokeDevice {
                device_id: device(),
            },
        ),
        (
            "device_revoked",
            Message::DeviceRevoked {
                device_id: device(),
            },
        ),
        (
            "rejected",
            Message::Rejected {
                doc_id: doc_a(),
                rejections: vec![ChangeRejection {
                    change: [0x5a; 32],
                    code: ErrorCode::NotOwnEntry,
                    message: "sign_ins/m2".to_owned(),
                }],
            },
        ),
        ("get_submission_code", Message::GetSubmissionCode),
        (
            "submission_code",
            Message::SubmissionCode {
                link: "branchline://example.org:4433/PUBLIC?cert=00".to_owned(),
            },
        ),
        (
            "submit_petition",
            Message::SubmitPetition {
                category: "环境".to_owned(),
                title: "路灯".to_owned(),
                description: "坏了".to_owned(),
                location: Some("3号楼".to_owned()),
                name: None,
                contact: Some("138".to_owned()),
            },
        ),
        (
            "petition_submitted",
            Message::PetitionSubmitted { doc_id: doc_b() },
        ),
        (
            "submit_suggestion",
            Message::SubmitSuggestion {
                text: "多开夜校".to_owned(),
                anonymous: true,
            },
        ),
        (
            "get_documents",
            Message::GetDocuments {
                doc_ids: vec![doc_a(), doc_b()],
            },
        ),
        (
            "documents",
            Message::Documents {
                bundle: branchline_protocol::bundle::pack([(doc_a(), &[0x85, 0x6f][..])]),
            },
        ),
        (
            "suggestion_submitted",
            Message::SuggestionSubmitted {
                doc_id: doc_a(),
                suggestion_id: "s1".to_owned(),
            },
        ),
    ]
}

#[test]
fn every_message_matches_its_golden_bytes() {
    for (name, message) in examples() {
        insta::assert_snapshot!(name, dump(&message));
    }
}

#[test]
fn examples_cover_every_message_and_credentials_variant() {
    let mut seen = Vec::new();
    for (_, message) in examples() {
        // Exhaustive on purpose: a new variant fails to compile here until
        // it has a golden example.
        let variant = match message {
            Message::Hello {
                credentials: Credentials::Enroll { .. },
                ..
            } => "hello/enroll",
            Message::Hello {
                credentials: Credentials::Device { .. },
                ..
            } => "hello/device",
            Message::Welcome { .. } => "welcome",
            Message::Error { .. } => "error",
            Message::ManifestDigest { .. } => "manifest_digest",
            Message::ManifestRanges { .. } => "manifest_ranges",
            Message::ManifestEntries { .. } => "manifest_entries",
            Message::SyncDoc { .. } => "sync_doc",
            Message::DocChanged { .. } => "doc_changed",
            Message::Ack { .. } => "ack",
            Message::CreateInvite { .. } => "create_invite",
            Message::InviteCreated { .. } => "invite_created",
            Message::RevokeDevice { .. } => "revoke_device",
            Message::DeviceRevoked { .. } => "device_revoked",
            Message::Rejected { .. } => "rejected",
            Message::GetDocuments { .. } => "get_documents",
            Message::Documents { .. } => "documents",
            Message::GetSubmissionCode => "get_submission_code",
            Message::SubmissionCode { .. } => "submission_code",
            Message::SubmitPetition { .. } => "submit_petition",
            Message::PetitionSubmitted { .. } => "petition_submitted",
            Message::SubmitSuggestion { .. } => "submit_suggestion",
            Message::SuggestionSubmitted { .. } => "suggestion_submitted",
        };
        if !seen.contains(&variant) {
            seen.push(variant);
        }
    }
    assert_eq!(seen.len(), 23, "missing a golden example: have {seen:?}");
}
