//! The server core from an enrolled committee device's connection, and the
//! admin's import: every input a device's bytes reach once it is welcomed.
//!
//! Records: a control-stream frame (op 0); a frame opening a stream, whose
//! document stream then stays open for the next records (op 1); a frame on
//! the open document stream (op 2); the open stream's honest end (op 3);
//! raw bytes as an automerge sync message for the roster (op 4) or for a
//! new document (op 5); raw bytes as a document for the admin's import
//! (op 6). Nothing panics; answers have the shape the protocol gives them;
//! whatever the server stored loads, and an honest sync of the roster
//! still works (checked every 64 inputs).

#![no_main]

use std::cell::RefCell;

use branchline_fuzz::{ServerTarget, records, with_target};
use branchline_protocol::{DocId, Message, decode};
use branchline_server::server_core::Stream;
use libfuzzer_sys::fuzz_target;

thread_local! {
    static TARGET: RefCell<Option<ServerTarget>> = const { RefCell::new(None) };
}

/// A document id from the bytes, so a sync for a new document keeps its id
/// across the records of one input.
fn new_doc_id(bytes: &[u8]) -> DocId {
    let mut id = [0x5a; 16];
    for (i, byte) in bytes.iter().take(64).enumerate() {
        id[i % 16] ^= byte.rotate_left(i as u32 % 8);
    }
    DocId::from_bytes(id)
}

fuzz_target!(|data: &[u8]| {
    with_target(&TARGET, ServerTarget::new, |target| {
        let peer = target.peer.clone();
        let mut open = None;
        let mut touched = Vec::new();
        for record in records(data) {
            match record.op % 7 {
                0 => {
                    if let Ok(message) = decode(record.bytes) {
                        target.control(&peer, message);
                    }
                }
                1 => {
                    if let Ok(message) = decode(record.bytes) {
                        if let Message::SyncDoc { doc_id, .. } = &message {
                            touched.push(*doc_id);
                        }
                        if let Some(Stream::Doc(stream)) = target.open_stream(&peer, message) {
                            if let Some(previous) = open.replace(stream) {
                                target.core.finish_stream(&peer, previous);
                            }
                        }
                    }
                }
                2 => {
                    if let (Some(stream), Ok(message)) = (open.as_mut(), decode(record.bytes)) {
                        let answer = target.core.doc_message(&peer, stream, message);
                        if answer.end {
                            open = None;
                        }
                    }
                }
                3 => {
                    if let Some(stream) = open.take() {
                        target.core.finish_stream(&peer, stream);
                    }
                }
                op @ (4 | 5) => {
                    let doc_id = if op == 4 {
                        target.roster
                    } else {
                        new_doc_id(record.bytes)
                    };
                    touched.push(doc_id);
                    let message = Message::SyncDoc {
                        doc_id,
                        payload: record.bytes.to_vec(),
                    };
                    if let Some(Stream::Doc(stream)) = target.open_stream(&peer, message) {
                        target.core.finish_stream(&peer, stream);
                    }
                }
                _ => {
                    // An import refuses damaged documents with an error.
                    let _ = target.admin.import_documents([record.bytes]);
                }
            }
        }
        if let Some(stream) = open {
            target.core.finish_stream(&peer, stream);
        }
        for id in touched {
            target.check_stored(id);
        }
        // An honest sync now and then: every input would halve the rate.
        target.inputs += 1;
        if target.inputs % 64 != 1 {
            return;
        }
        let (stream, answer) = target.core.open_stream(
            branchline_fuzz::now(),
            &peer,
            Message::SyncDoc {
                doc_id: target.roster,
                payload: Vec::new(),
            },
        );
        assert!(
            matches!(answer.messages.last(), Some(Message::SyncDoc { .. })),
            "an honest sync of the roster is refused: {:?}",
            answer.messages
        );
        if let Some(Stream::Doc(stream)) = stream {
            target.core.finish_stream(&peer, stream);
        }
    });
});
