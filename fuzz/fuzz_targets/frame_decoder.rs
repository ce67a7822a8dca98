//! The frame decoder, as the session's stream readers run it: one frame
//! decoded on its own, and the same bytes fed to the streaming codec in
//! pieces cut where the input says. Nothing panics; a frame that decodes
//! encodes back to bytes that decode to the same message; the codec yields
//! the frames one-shot decoding finds, however the bytes are cut.

#![no_main]

use branchline_protocol::{FrameCodec, decode, encode};
use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use tokio_util::codec::Decoder as _;

fuzz_target!(|data: &[u8]| {
    let Some((&cut, frames)) = data.split_first() else {
        return;
    };
    if let Ok(message) = decode(frames) {
        let again = encode(&message).expect("a decoded message encodes");
        assert_eq!(
            decode(&again).expect("an encoded message decodes"),
            message,
            "a message changed on its way back through the codec"
        );
    }

    // The same bytes through the streaming codec, arriving in pieces of
    // 1 to 256 bytes.
    let piece = usize::from(cut) + 1;
    let mut codec = FrameCodec::new();
    let mut buffer = BytesMut::new();
    let mut seen = Vec::new();
    'feed: for chunk in frames.chunks(piece) {
        buffer.extend_from_slice(chunk);
        loop {
            match codec.decode(&mut buffer) {
                Ok(Some(message)) => seen.push(message),
                Ok(None) => break,
                // A bad frame ends the stream, as the session closes it.
                Err(_) => break 'feed,
            }
        }
    }
    // Every frame the codec yielded is the one-shot decoding of its bytes,
    // in order from the start of the input.
    let mut rest = frames;
    for message in seen {
        let len = 4 + u32::from_be_bytes(rest[..4].try_into().expect("a length prefix")) as usize;
        let alone = decode(&rest[..len]).expect("a frame the codec took decodes alone");
        assert_eq!(alone, message, "the codec and one-shot decoding disagree");
        rest = &rest[len..];
    }
});
