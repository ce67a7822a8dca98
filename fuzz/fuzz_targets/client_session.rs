//! The device's side: a welcomed sync session and its store fed what a
//! server (or anything posing as one) may send, and automerge bytes
//! arriving as documents and as sync messages.
//!
//! Each input is one session on a long-lived store, opened and welcomed as
//! the server would. Records: a raw frame from the server (op 0); raw bytes
//! as a sync message for a known document (op 1); raw bytes as a
//! `Documents` bundle (op 2); raw bytes as a document inside a well-formed
//! bundle (op 3); a change notice for a known document, which opens its
//! sync (op 4); the server's digest agreeing with the store's, which makes
//! the session live (op 5); raw bytes merged into the store as a document
//! (op 6); a known document's stream ending (op 7). Nothing panics; after
//! every input the store lists its documents and each one touched loads.

#![no_main]

use std::cell::RefCell;

use branchline_core::sync::{Join, Session};
use branchline_core::{BranchId, DocId, Store};
use branchline_fuzz::{now, records, store_with_activity, with_target};
use branchline_protocol::{DeviceSecret, InviteLink, Message, Role, bundle, decode};
use libfuzzer_sys::fuzz_target;

struct Client {
    store: Store,
    branch: BranchId,
    /// Documents the records name by index: the store's activity and two
    /// the store does not hold.
    known: [DocId; 3],
}

impl Client {
    fn new() -> Client {
        let branch = BranchId::from_bytes([3; 16]);
        let (store, _) = store_with_activity(branch);
        let activity = store.documents().expect("listed")[0].id;
        Client {
            store,
            branch,
            known: [
                activity,
                DocId::from_bytes([0x11; 16]),
                DocId::from_bytes([0x22; 16]),
            ],
        }
    }

    /// A session past its `Welcome`, as after a server's honest answer.
    fn welcomed(&mut self) -> Session {
        let (join, device_id, secret) = match self.store.account().expect("readable") {
            Some(account) => {
                let device = account.device_id;
                (Join::Resume(account), device, None)
            }
            None => (
                Join::Enroll {
                    invite: InviteLink {
                        server: "127.0.0.1:4433".into(),
                        code: "k7Qx2mP9".into(),
                        cert_sha256: [0; 32],
                    },
                    device_name: "fuzzer".into(),
                },
                branchline_protocol::DeviceId::from_bytes([4; 16]),
                Some(DeviceSecret::from_bytes([5; 32])),
            ),
        };
        let mut session = Session::new(join);
        session.start(&mut self.store).expect("a session starts");
        session
            .handle(
                &mut self.store,
                Message::Welcome {
                    version: branchline_protocol::PROTOCOL_VERSION,
                    server_time_ms: now(),
                    device_id,
                    member_id: None,
                    branch_id: self.branch.into(),
                    role: Role::Committee,
                    device_secret: secret,
                    branch_name: Some("Riverside".into()),
                },
            )
            .expect("an honest Welcome is taken");
        session
    }

    fn known(&self, bytes: &[u8]) -> DocId {
        self.known[usize::from(bytes.first().copied().unwrap_or(0)) % self.known.len()]
    }
}

fuzz_target!(|data: &[u8]| {
    with_target(&TARGET, Client::new, |client| {
        let mut session = client.welcomed();
        let mut touched = Vec::new();
        for record in records(data) {
            let bytes = record.bytes;
            let message = match record.op % 8 {
                0 => match decode(bytes) {
                    Ok(message) => message,
                    Err(_) => continue,
                },
                1 => Message::SyncDoc {
                    doc_id: client.known(bytes).into(),
                    payload: bytes.get(1..).unwrap_or_default().to_vec(),
                },
                2 => Message::Documents {
                    bundle: bytes.to_vec(),
                },
                3 => {
                    let doc = client.known(bytes);
                    Message::Documents {
                        bundle: bundle::pack([(doc.into(), bytes.get(1..).unwrap_or_default())]),
                    }
                }
                4 => Message::DocChanged {
                    doc_id: client.known(bytes).into(),
                    heads: branchline_protocol::Heads::new(Vec::new()),
                },
                5 => client
                    .store
                    .manifest()
                    .expect("a manifest")
                    .digest_message(),
                6 => {
                    if let Ok(id) = client.store.merge(bytes) {
                        touched.push(id);
                    }
                    continue;
                }
                _ => {
                    let doc = client.known(bytes);
                    let _ = session.doc_stream_closed(&mut client.store, doc);
                    continue;
                }
            };
            // An error ends the session; later messages are refused by it.
            let _ = session.handle(&mut client.store, message);
        }
        touched.extend(client.known);
        let listed = client
            .store
            .documents()
            .expect("the store lists its documents");
        for id in touched {
            if listed.iter().any(|d| d.id == id) {
                client
                    .store
                    .load_document(id)
                    .expect("a document the store took loads");
            }
        }
    });
});

thread_local! {
    static TARGET: RefCell<Option<Client>> = const { RefCell::new(None) };
}
