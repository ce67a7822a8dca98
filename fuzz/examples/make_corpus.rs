//! Writes the seed corpus, `fuzz/seeds/<target>/`, from honest messages,
//! documents and links: `cargo run --manifest-path fuzz/Cargo.toml --example
//! make_corpus`. The fuzzers start from what real devices send and mutate
//! from there.

use std::path::{Path, PathBuf};

use branchline_core::BranchId;
use branchline_fuzz::{honest_activity, honest_frames, store_with_activity, write_records};
use branchline_protocol::{DocId, InviteLink, bundle};

fn write(dir: &Path, name: &str, bytes: &[u8]) {
    std::fs::create_dir_all(dir).expect("a corpus directory");
    std::fs::write(dir.join(name), bytes).expect("a seed written");
}

fn main() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("seeds");
    let branch = BranchId::from_bytes([3; 16]);
    let roster = DocId::from_bytes([0x33; 16]);
    let frames = honest_frames(branch, roster);
    let (doc_id, saved, first_sync) = honest_activity(branch);
    let (_, minutes) = store_with_activity(branch);

    let dir = root.join("frame_decoder");
    for (i, frame) in frames.iter().enumerate() {
        // The first byte cuts the stream into pieces; then two frames back to back.
        let mut seed = vec![i as u8 * 17];
        seed.extend_from_slice(frame);
        seed.extend_from_slice(&frames[(i + 1) % frames.len()]);
        write(&dir, &format!("frames-{i:02}"), &seed);
    }

    let dir = root.join("bundle_decoder");
    write(&dir, "one", &bundle::pack([(doc_id, saved.as_slice())]));
    write(
        &dir,
        "two",
        &bundle::pack([(doc_id, saved.as_slice()), (roster, minutes.as_slice())]),
    );
    write(&dir, "empty", &bundle::pack([]));

    let dir = root.join("invite_link");
    let link = InviteLink {
        server: "sync.example.org:4433".into(),
        code: "k7Qx2mP9".into(),
        cert_sha256: [0xab; 32],
    };
    write(&dir, "one-server", link.to_string().as_bytes());
    let link = InviteLink {
        server: "10.0.0.2:4433,[::1]:4433,sync.example.org:4433".into(),
        ..link
    };
    write(&dir, "three-servers", link.to_string().as_bytes());

    // server_fresh: each kind of Hello, then a digest and a sync.
    let dir = root.join("server_fresh");
    let digest = &frames[4];
    let sync = &frames[2];
    for (op, first) in [
        (0u8, frames[0].as_slice()),
        (0, frames[1].as_slice()),
        (
            1,
            b"Maria's phone\xf0\xf0\xf0\xf0\xf0\xf0\xf0\xf0".as_slice(),
        ),
        (2, [5u8; 32].as_slice()),
        (3, [5u8, 0, 1, 0].as_slice()),
    ] {
        write(
            &dir,
            &format!("hello-{op}-{}", first.len()),
            &write_records([(op, first), (0, digest.as_slice()), (1, sync.as_slice())]),
        );
    }

    // server_enrolled: every frame on each stream kind, and raw automerge.
    let dir = root.join("server_enrolled");
    for (i, frame) in frames.iter().enumerate() {
        write(
            &dir,
            &format!("control-{i:02}"),
            &write_records([(0, frame.as_slice())]),
        );
        write(
            &dir,
            &format!("stream-{i:02}"),
            &write_records([(1, frame.as_slice()), (2, frame.as_slice()), (3, &[])]),
        );
    }
    write(
        &dir,
        "sync-roster",
        &write_records([(4, first_sync.as_slice())]),
    );
    write(
        &dir,
        "sync-new",
        &write_records([(5, first_sync.as_slice())]),
    );
    write(&dir, "import", &write_records([(6, minutes.as_slice())]));

    // client_session: the server's side of a session.
    let dir = root.join("client_session");
    let mut known_sync = vec![1u8];
    known_sync.extend_from_slice(&first_sync);
    let mut known_doc = vec![1u8];
    known_doc.extend_from_slice(&saved);
    write(
        &dir,
        "live-then-sync",
        &write_records([(5, &[][..]), (4, &[1][..]), (1, known_sync.as_slice())]),
    );
    write(&dir, "fetch", &write_records([(3, known_doc.as_slice())]));
    write(&dir, "merge", &write_records([(6, minutes.as_slice())]));
    for (i, frame) in frames.iter().enumerate() {
        write(
            &dir,
            &format!("frame-{i:02}"),
            &write_records([(5, &[][..]), (0, frame.as_slice())]),
        );
    }
    println!("seed corpus written to {}", root.display());
}
