//! The server core from a fresh connection: the first message, as any
//! client may send it, then what follows on the control stream and on new
//! streams. The first record chooses the `Hello`: raw bytes (op 0), an
//! enrollment with a real invite and the record's bytes as device name and
//! actor id (op 1), the enrolled device with the record's bytes as its
//! secret (op 2), or the enrolled device with its real secret and the
//! record's bytes as protocol versions (op 3). Nothing panics; a refusal is
//! an `Error` with a code; only a welcomed connection reaches the streams.

#![no_main]

use std::cell::RefCell;

use branchline_fuzz::{ServerTarget, enroll_hello, now, records, resume_hello, with_target};
use branchline_protocol::{Credentials, DeviceSecret, Message, decode};
use libfuzzer_sys::fuzz_target;

thread_local! {
    static TARGET: RefCell<Option<ServerTarget>> = const { RefCell::new(None) };
}

fn first_message(target: &ServerTarget, op: u8, bytes: &[u8]) -> Option<Message> {
    let (device, secret) = target.device.clone();
    Some(match op % 4 {
        0 => decode(bytes).ok()?,
        1 => {
            let (name, actor) = bytes.split_at(bytes.len() / 2);
            enroll_hello(&target.fresh_invite(), name, actor)
        }
        2 => {
            let mut guess = [0; 32];
            for (slot, byte) in guess.iter_mut().zip(bytes) {
                *slot = *byte;
            }
            resume_hello(device, DeviceSecret::from_bytes(guess))
        }
        _ => {
            let version = |at: usize| {
                u16::from_le_bytes([
                    bytes.get(at).copied().unwrap_or(0),
                    bytes.get(at + 1).copied().unwrap_or(0),
                ])
            };
            Message::Hello {
                version: version(0),
                min_version: version(2),
                credentials: Credentials::Device {
                    device_id: device,
                    secret,
                },
            }
        }
    })
}

fuzz_target!(|data: &[u8]| {
    with_target(&TARGET, ServerTarget::new, |target| {
        let records = records(data);
        let Some((first, rest)) = records.split_first() else {
            return;
        };
        let Some(hello) = first_message(target, first.op, first.bytes) else {
            return;
        };
        let (mut peer, welcome) = match target.core.hello(now(), hello) {
            Ok(welcomed) => welcomed,
            Err(refusal) => {
                assert!(
                    matches!(refusal.into_message(), Message::Error { .. }),
                    "a refused Hello is answered with an Error"
                );
                return;
            }
        };
        assert!(
            matches!(welcome, Message::Welcome { .. }),
            "welcomed with {welcome:?}"
        );
        if target.core.connected(&mut peer).is_err() {
            return;
        }
        for record in rest {
            let Ok(message) = decode(record.bytes) else {
                continue;
            };
            if record.op % 2 == 0 {
                target.control(&peer, message);
            } else if let Some(branchline_server::server_core::Stream::Doc(stream)) =
                target.open_stream(&peer, message)
            {
                target.core.finish_stream(&peer, stream);
            }
        }
    });
});
