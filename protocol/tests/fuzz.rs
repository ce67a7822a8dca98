//! Fuzzing the frame decoder with proptest, in `cargo test` with a bounded
//! number of cases (`fuzz/frame_decoder` is the coverage-guided target).
//!
//! Inputs are valid frames of every message, mutated the way damaged or
//! hostile input looks: bytes flipped, inserted, removed, the length prefix
//! or tag rewritten, frames truncated, spliced, or run together, plus plain
//! random bytes. The properties:
//!
//! - decoding never panics, whole-frame or streamed in arbitrary pieces;
//! - a frame that decodes re-encodes to a frame that decodes to the same
//!   message (nothing the decoder accepts is lost on the way back out);
//! - the streaming decoder refuses an oversized length prefix before
//!   buffering, and never reserves more than one maximum frame.
//!
//! `BRANCHLINE_FUZZ_CASES=200000 cargo test -p branchline-protocol --test
//! fuzz --release` runs a long campaign; CI runs [`CI_CASES`] per property.

use branchline_protocol::{
    BranchId, Credentials, DecodeError, DeviceId, DeviceSecret, DocId, ErrorCode, FrameCodec,
    Heads, ManifestEntry, MemberId, Message, RangeSummary, Role, decode, encode,
};
use bytes::BytesMut;
use proptest::prelude::*;
use proptest::test_runner::Config;
use tokio_util::codec::{Decoder as _, Encoder as _};

/// Cases per property in a plain `cargo test`.
const CI_CASES: u32 = 3_000;

fn cases() -> u32 {
    std::env::var("BRANCHLINE_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(CI_CASES)
}

fn config() -> Config {
    Config {
        cases: cases(),
        failure_persistence: None,
        ..Config::default()
    }
}

/// One valid example of every message kind.
fn seeds() -> Vec<Message> {
    let doc: DocId = "0f1e2d3c-4b5a-4978-8796-a5b4c3d2e1f0".parse().unwrap();
    let other: DocId = "8a7b6c5d-4e3f-4a1b-9c8d-7e6f5a4b3c2d".parse().unwrap();
    let device: DeviceId = "d0d1d2d3-d4d5-46d7-98d9-dadbdcdddedf".parse().unwrap();
    let branch: BranchId = "b0b1b2b3-b4b5-46b7-88b9-babbbcbdbebf".parse().unwrap();
    let member: MemberId = "11112222-3333-4444-8555-666677778888".parse().unwrap();
    let heads = Heads::new(vec![[0xbb; 32], [0xaa; 32]]);
    let secret = DeviceSecret::from_bytes([9; 32]);
    vec![
        Message::Hello {
            version: 1,
            min_version: 1,
            credentials: Credentials::Enroll {
                invite_code: "RIVER-OTTER-42".into(),
                device_name: "Maria's phone".into(),
                actor_id: vec![0xac, 0x70, 0x12, 0x34],
            },
        },
        Message::Hello {
            version: 1,
            min_version: 1,
            credentials: Credentials::Device {
                device_id: device,
                secret: secret.clone(),
            },
        },
        Message::Welcome {
            version: 1,
            server_time_ms: 1_767_225_600_000,
            device_id: device,
            member_id: Some(member),
            branch_id: branch,
            role: Role::Member,
            device_secret: Some(secret.clone()),
            branch_name: None,
        },
        Message::Welcome {
            version: 4,
            server_time_ms: 1_767_225_600_000,
            device_id: device,
            member_id: None,
            branch_id: branch,
            role: Role::Resident,
            device_secret: Some(secret),
            branch_name: Some("幸福里支部".into()),
        },
        Message::Error {
            code: ErrorCode::AccessDenied,
            message: "committee only".into(),
            doc_id: Some(doc),
        },
        Message::ManifestDigest {
            doc_count: 300,
            digest: [0x5a; 32],
        },
        Message::ManifestRanges {
            ranges: vec![RangeSummary {
                start: DocId::MIN,
                end: Some(other),
                doc_count: 2,
                digest: [0x11; 32],
            }],
        },
        Message::ManifestEntries {
            start: doc,
            end: None,
            entries: vec![ManifestEntry {
                doc_id: doc,
                kind: "roster".into(),
                heads: heads.clone(),
            }],
        },
        Message::SyncDoc {
            doc_id: doc,
            payload: b"\x42automerge sync bytes".to_vec(),
        },
        Message::Ack {
            doc_id: doc,
            heads: heads.clone(),
        },
        Message::DocChanged {
            doc_id: other,
            heads,
        },
        Message::CreateInvite {
            role: Role::Resident,
            member_id: None,
            valid_for_secs: 3600,
        },
        Message::RevokeDevice { device_id: device },
    ]
}

/// One way to damage a frame.
#[derive(Debug, Clone)]
enum Mutation {
    Flip {
        at: prop::sample::Index,
        mask: u8,
    },
    Insert {
        at: prop::sample::Index,
        byte: u8,
    },
    Remove {
        at: prop::sample::Index,
    },
    Truncate {
        at: prop::sample::Index,
    },
    Length(u32),
    /// Adds to the length prefix, keeping the bytes.
    LengthDelta(i8),
    Tag(u8),
    Append(Vec<u8>),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        4 => (any::<prop::sample::Index>(), 1..=255u8).prop_map(|(at, mask)| Mutation::Flip { at, mask }),
        2 => (any::<prop::sample::Index>(), any::<u8>()).prop_map(|(at, byte)| Mutation::Insert { at, byte }),
        2 => any::<prop::sample::Index>().prop_map(|at| Mutation::Remove { at }),
        1 => any::<prop::sample::Index>().prop_map(|at| Mutation::Truncate { at }),
        1 => any::<u32>().prop_map(Mutation::Length),
        2 => any::<i8>().prop_map(Mutation::LengthDelta),
        2 => any::<u8>().prop_map(Mutation::Tag),
        1 => prop::collection::vec(any::<u8>(), 1..16).prop_map(Mutation::Append),
    ]
}

fn apply(frame: &mut Vec<u8>, mutation: &Mutation) {
    match mutation {
        Mutation::Flip { at, mask } if !frame.is_empty() => {
            let i = at.index(frame.len());
            frame[i] ^= mask;
        }
        Mutation::Insert { at, byte } => {
            let i = at.index(frame.len() + 1);
            frame.insert(i, *byte);
        }
        Mutation::Remove { at } if !frame.is_empty() => {
            let i = at.index(frame.len());
            frame.remove(i);
        }
        Mutation::Truncate { at } => {
            let i = at.index(frame.len() + 1);
            frame.truncate(i);
        }
        Mutation::Length(len) if frame.len() >= 4 => {
            frame[..4].copy_from_slice(&len.to_be_bytes());
        }
        Mutation::LengthDelta(delta) if frame.len() >= 4 => {
            let len = u32::from_be_bytes(frame[..4].try_into().unwrap());
            let len = len.wrapping_add_signed(i32::from(*delta));
            frame[..4].copy_from_slice(&len.to_be_bytes());
        }
        Mutation::Tag(tag) if frame.len() >= 5 => frame[4] = *tag,
        Mutation::Append(bytes) => frame.extend_from_slice(bytes),
        _ => {}
    }
}

/// A valid frame of one of the seed messages, damaged by a few mutations.
fn mutated_frame() -> impl Strategy<Value = Vec<u8>> {
    let count = seeds().len();
    (0..count, prop::collection::vec(mutation(), 1..5)).prop_map(|(which, mutations)| {
        let mut frame = encode(&seeds()[which]).unwrap();
        for m in &mutations {
            apply(&mut frame, m);
        }
        frame
    })
}

/// Whatever decoded must survive a round trip.
fn check_round_trip(message: &Message) -> Result<(), TestCaseError> {
    let again = encode(message).map_err(|e| TestCaseError::fail(format!("re-encode: {e}")))?;
    prop_assert_eq!(&decode(&again).unwrap(), message);
    Ok(())
}

/// Feeds `bytes` to a streaming decoder in pieces; returns what decoded.
fn stream_decode(
    bytes: &[u8],
    pieces: &[prop::sample::Index],
    max: usize,
) -> Result<Vec<Message>, TestCaseError> {
    let mut cuts: Vec<usize> = pieces.iter().map(|i| i.index(bytes.len() + 1)).collect();
    cuts.push(bytes.len());
    cuts.sort_unstable();
    let mut codec = FrameCodec::with_max_frame_len(max);
    let mut buffer = BytesMut::new();
    let mut out = Vec::new();
    let mut from = 0;
    for cut in cuts {
        buffer.extend_from_slice(&bytes[from..cut]);
        from = cut;
        loop {
            match codec.decode(&mut buffer) {
                Ok(Some(message)) => out.push(message),
                Ok(None) => break,
                // The connection would end here; bad bodies are skipped
                // whole, so a stream could go on, but an oversized prefix
                // must stop it.
                Err(DecodeError::FrameTooLarge { len, max: limit }) => {
                    prop_assert!(len > limit);
                    return Ok(out);
                }
                Err(_) => {}
            }
            prop_assert!(
                buffer.capacity() <= (max + 4).max(bytes.len()) * 2 + 64,
                "the decoder reserved {} bytes for a {max}-byte limit",
                buffer.capacity()
            );
        }
    }
    Ok(out)
}

#[test]
fn every_seed_round_trips() {
    for message in seeds() {
        assert_eq!(decode(&encode(&message).unwrap()).unwrap(), message);
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn mutated_frames_never_panic_and_what_decodes_round_trips(frame in mutated_frame()) {
        if let Ok(message) = decode(&frame) {
            check_round_trip(&message)?;
        }
    }

    #[test]
    fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..600)) {
        if let Ok(message) = decode(&bytes) {
            check_round_trip(&message)?;
        }
    }

    #[test]
    fn mutated_streams_decode_in_any_pieces_without_panic(
        frames in prop::collection::vec(mutated_frame(), 1..6),
        pieces in prop::collection::vec(any::<prop::sample::Index>(), 0..8),
        max in prop_oneof![Just(64usize), Just(1024), Just(branchline_protocol::MAX_FRAME_LEN)],
    ) {
        let bytes: Vec<u8> = frames.concat();
        for message in stream_decode(&bytes, &pieces, max)? {
            check_round_trip(&message)?;
        }
    }

    #[test]
    fn valid_frames_between_damaged_ones_still_decode(
        before in mutated_frame(),
        which in 0..12usize,
    ) {
        // A frame with a damaged tag or body but a true length prefix is
        // skipped whole: the next valid frame still decodes.
        let mut before = before;
        if before.len() < 5 {
            before.resize(5, 0);
        }
        let len = u32::try_from(before.len() - 4).unwrap();
        before[..4].copy_from_slice(&len.to_be_bytes());
        let good = seeds()[which % seeds().len()].clone();
        let mut codec = FrameCodec::new();
        let mut buffer = BytesMut::from(&before[..]);
        codec.encode(&good, &mut buffer).unwrap();
        let first = codec.decode(&mut buffer);
        prop_assert!(matches!(first, Ok(Some(_)) | Err(_)));
        prop_assert_eq!(codec.decode(&mut buffer).unwrap(), Some(good));
    }
}
