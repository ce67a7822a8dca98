//! Fuzzing with proptest, inside `cargo test` (the coverage-guided targets of
//! `fuzz/` run under libFuzzer with `scripts/fuzz.sh`):
//! the server's message handler and document loading, on both sides, fed
//! arbitrary and mutated bytes.
//!
//! - **Server message handler**: frames (valid ones mutated, and random
//!   bytes) decoded as the server's stream readers do and handed to the
//!   server's core (`ServerCore`) as a welcomed device's control and stream
//!   messages, on one long-lived server per test. Nothing may panic; a
//!   refusal is an `Error`; afterwards every stored document still loads
//!   and an honest sync still works.
//! - **Document loading**: mutated automerge documents merged into a client
//!   store and imported by the server's admin import. Nothing may panic; a
//!   document the store accepted loads back; the store stays intact.
//!
//! The server-facing properties run once on each backend
//! (`…::sqlite`, `…::postgres`): a node on PostgreSQL must refuse hostile
//! bytes as the embedded default does, and damaged input must not leave a
//! row behind that the next reader chokes on.
//!
//! `BRANCHLINE_FUZZ_CASES=100000 cargo test -p branchline-tests --release
//! --test hostile_bytes` runs a long campaign on both backends
//! ([`CI_CASES`] by default).

use std::cell::RefCell;
use std::time::Duration;

use automerge::sync::SyncDoc as _;
use branchline_core::model::{self, Activity, Level, NewActivity};
use branchline_core::{BranchId, Store};
use branchline_protocol::{Credentials, DocId, Message, decode, encode};
use branchline_server::Admin;
use branchline_server::pg_cluster::TempCluster;
use branchline_server::server_core::{CoreSettings, Peer, ServerCore, Stream};
use branchline_tests::Backend;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

/// Cases per property in a plain `cargo test`, on either backend. The
/// PostgreSQL variants run as many as SQLite's: they run beside the
/// client-side property, which takes longest, and add only a few seconds
/// to the binary on two cores.
const CI_CASES: u32 = 1_000;

fn config() -> Config {
    Config {
        cases: std::env::var("BRANCHLINE_FUZZ_CASES")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(CI_CASES),
        failure_persistence: None,
        ..Config::default()
    }
}

/// One server for every case of a property, as a long-running server
/// meets many hostile connections.
struct Target {
    admin: Admin,
    core: ServerCore,
    peer: Peer,
    branch: BranchId,
    /// A document the device may write, stored on the server.
    roster: DocId,
    /// Valid frames to mutate.
    seeds: Vec<Vec<u8>>,
    // Dropped last: the core and the admin hold their files and connections.
    _dir: tempfile::TempDir,
    _cluster: Option<TempCluster>,
}

/// Runs `case` on one fresh [`Target`] on `backend` for every input
/// `strategy` generates, shrinking a failure as `proptest!` does. The
/// server's storage calls block, so the cases run off the async workers.
async fn fuzz<S>(
    backend: Backend,
    strategy: S,
    case: fn(&mut Target, S::Value) -> Result<(), TestCaseError>,
) -> anyhow::Result<()>
where
    S: Strategy + Send + 'static,
    S::Value: std::fmt::Debug,
{
    tokio::task::spawn_blocking(move || {
        let target = RefCell::new(build_target(backend)?);
        let mut runner = TestRunner::new(config());
        runner
            .run(&strategy, |input| case(&mut target.borrow_mut(), input))
            .map_err(|e| anyhow::anyhow!("on {backend:?}: {e}"))
    })
    .await?
}

fn build_target(backend: Backend) -> anyhow::Result<Target> {
    branchline_tests::init_tracing();
    let dir = tempfile::tempdir()?;
    let cluster = match backend {
        Backend::Sqlite => None,
        Backend::Postgres => {
            let cluster = TempCluster::start()?;
            // As `branchline-server init --database postgres://…` leaves
            // it: the admin finds the database through the data directory.
            std::fs::write(dir.path().join("database.url"), cluster.url())?;
            Some(cluster)
        }
    };
    let admin = Admin::open(dir.path())?;
    let branch = admin.add_branch("Riverside", Level::Branch, None)?;
    let invite = admin.create_invite(
        branch,
        branchline_protocol::Role::Committee,
        None,
        Duration::from_secs(3600),
    )?;
    let settings = CoreSettings::new("127.0.0.1:4433".into(), [0; 32]);
    let core = match &cluster {
        None => ServerCore::open_sqlite(dir.path(), settings)?,
        Some(cluster) => ServerCore::open_postgres(&cluster.url(), settings)?,
    };
    let hello = Message::Hello {
        version: branchline_protocol::PROTOCOL_VERSION,
        min_version: branchline_protocol::MIN_SUPPORTED_VERSION,
        credentials: Credentials::Enroll {
            invite_code: invite.code.clone(),
            device_name: "fuzzer".into(),
            actor_id: vec![0xf0; 16],
        },
    };
    let (mut peer, _) = core
        .hello(now(), hello)
        .map_err(|e| anyhow::anyhow!("hello refused: {e:?}"))?;
    core.connected(&mut peer)
        .map_err(|e| anyhow::anyhow!("not connected: {e:?}"))?;
    let roster_id = admin
        .document_ids()?
        .into_iter()
        .find(|id| {
            admin
                .document_bytes(*id)
                .ok()
                .flatten()
                .and_then(|b| automerge::AutoCommit::load(&b).ok())
                .and_then(|d| model::read_meta(&d).ok())
                .is_some_and(|m| m.kind == "roster")
        })
        .ok_or_else(|| anyhow::anyhow!("no roster"))?;
    let roster = DocId::from(roster_id);

    // Seeds: what an honest device sends. A new activity's first sync
    // message, a sync message for the stored roster, manifest requests.
    let mut seeds = Vec::new();
    let activity = Activity::new(branch, activity_plan())?;
    let mut doc = model::create_document(&activity, automerge::ActorId::from(&[0xf0; 16][..]))?;
    let mut state = automerge::sync::State::new();
    let first = doc
        .sync()
        .generate_sync_message(&mut state)
        .expect("a new document has something to say");
    seeds.push(encode(&Message::SyncDoc {
        doc_id: activity.meta.id.into(),
        payload: first.encode(),
    })?);
    let mut empty = automerge::AutoCommit::new();
    let mut state = automerge::sync::State::new();
    if let Some(hello_roster) = empty.sync().generate_sync_message(&mut state) {
        seeds.push(encode(&Message::SyncDoc {
            doc_id: roster,
            payload: hello_roster.encode(),
        })?);
    }
    seeds.push(encode(&Message::SyncDoc {
        doc_id: roster,
        payload: Vec::new(),
    })?);
    let whole = branchline_protocol::manifest::split(DocId::MIN, None).expect("splits");
    let ranges: Vec<_> = whole
        .iter()
        .map(|(start, end)| branchline_protocol::RangeSummary {
            start: *start,
            end: *end,
            doc_count: 1,
            digest: [7; 32],
        })
        .collect();
    seeds.push(encode(&Message::ManifestRanges { ranges })?);
    seeds.push(encode(&Message::ManifestDigest {
        doc_count: 3,
        digest: [1; 32],
    })?);
    Ok(Target {
        admin,
        core,
        peer,
        branch,
        roster,
        seeds,
        _dir: dir,
        _cluster: cluster,
    })
}

fn activity_plan() -> NewActivity {
    NewActivity {
        kind: "branch_meeting".to_owned(),
        title: "Meeting".to_owned(),
        starts_at: "2026-11-20T19:00".parse().ok(),
        ends_at: "2026-11-20T21:00".parse().ok(),
        ..NewActivity::default()
    }
}

/// Damage to a byte string.
#[derive(Debug, Clone)]
enum Mutation {
    Flip(prop::sample::Index, u8),
    Insert(prop::sample::Index, u8),
    Remove(prop::sample::Index),
    Truncate(prop::sample::Index),
    Overwrite(prop::sample::Index, Vec<u8>),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        4 => (any::<prop::sample::Index>(), 1..=255u8).prop_map(|(i, m)| Mutation::Flip(i, m)),
        2 => (any::<prop::sample::Index>(), any::<u8>()).prop_map(|(i, b)| Mutation::Insert(i, b)),
        2 => any::<prop::sample::Index>().prop_map(Mutation::Remove),
        1 => any::<prop::sample::Index>().prop_map(Mutation::Truncate),
        1 => (any::<prop::sample::Index>(), prop::collection::vec(any::<u8>(), 1..8))
            .prop_map(|(i, b)| Mutation::Overwrite(i, b)),
    ]
}

fn damage(bytes: &mut Vec<u8>, mutations: &[Mutation]) {
    for m in mutations {
        match m {
            Mutation::Flip(i, mask) if !bytes.is_empty() => {
                let at = i.index(bytes.len());
                bytes[at] ^= mask;
            }
            Mutation::Insert(i, b) => {
                let at = i.index(bytes.len() + 1);
                bytes.insert(at, *b);
            }
            Mutation::Remove(i) if !bytes.is_empty() => {
                let at = i.index(bytes.len());
                bytes.remove(at);
            }
            Mutation::Truncate(i) => {
                let at = i.index(bytes.len() + 1);
                bytes.truncate(at);
            }
            Mutation::Overwrite(i, new) if !bytes.is_empty() => {
                let at = i.index(bytes.len());
                for (k, b) in new.iter().enumerate() {
                    if let Some(slot) = bytes.get_mut(at + k) {
                        *slot = *b;
                    }
                }
            }
            _ => {}
        }
    }
}

/// Mutates the payload of a `SyncDoc` frame rather than the frame, so the
/// damage reaches automerge instead of the frame decoder.
fn damage_payload(frame: &[u8], mutations: &[Mutation]) -> Option<Vec<u8>> {
    match decode(frame).ok()? {
        Message::SyncDoc {
            doc_id,
            mut payload,
        } => {
            damage(&mut payload, mutations);
            encode(&Message::SyncDoc { doc_id, payload }).ok()
        }
        _ => None,
    }
}

/// Feeds one frame to the server as the device's next message on a
/// stream, the way the session's readers do, and checks the shape of
/// what it answers.
fn feed(target: &mut Target, frame: &[u8], on_control: bool) {
    let Ok(message) = decode(frame) else {
        // The session answers a bad frame with an Error; nothing reaches
        // the core.
        return;
    };
    if on_control {
        let answer = target.core.control(&target.peer, message);
        if answer.end {
            assert!(
                matches!(answer.messages.last(), Some(Message::Error { .. })),
                "a control stream ends with an Error"
            );
        }
        return;
    }
    let syncs = matches!(message, Message::SyncDoc { .. });
    let (stream, answer) = target.core.open_stream(now(), &target.peer, message);
    if !syncs {
        // A request (or a stream that cannot start so): one answer, then the end.
        assert!(
            stream.is_some() || (answer.end && answer.messages.len() == 1),
            "a request gets one answer and its stream ends: {:?}",
            answer.messages
        );
    }
    for m in &answer.messages {
        assert!(
            !syncs
                || matches!(
                    m,
                    Message::Ack { .. }
                        | Message::SyncDoc { .. }
                        | Message::Rejected { .. }
                        | Message::Error { .. }
                ),
            "a document stream carries only Ack, SyncDoc, Rejected and Error, not {}",
            m.name()
        );
    }
    match stream {
        // Honest end of the stream: the sync state is saved.
        Some(Stream::Doc(stream)) => target.core.finish_stream(&target.peer, stream),
        Some(Stream::Bundles(mut cursor)) => {
            while let Some(bundle) = target.core.next_bundle(&target.peer, &mut cursor) {
                assert!(
                    matches!(bundle, Message::Documents { .. } | Message::Error { .. }),
                    "a fetch carries only Documents, not {}",
                    bundle.name()
                );
            }
        }
        None => {}
    }
}

/// The time, as the QUIC session passes it to the core.
fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| since.as_millis() as i64)
}

/// Every stored document still loads, and an honest sync of the roster
/// still runs to its end.
fn server_still_healthy(target: &mut Target) -> Result<(), TestCaseError> {
    for id in target.admin.document_ids().map_err(fail)? {
        let bytes = target
            .admin
            .document_bytes(id)
            .map_err(fail)?
            .ok_or_else(|| fail("a listed document has no bytes"))?;
        let doc = automerge::AutoCommit::load(&bytes).map_err(fail)?;
        let meta = model::read_meta(&doc).map_err(fail)?;
        prop_assert_eq!(meta.id, id, "a stored header names another document");
    }
    let (stream, answer) = target.core.open_stream(
        now(),
        &target.peer,
        Message::SyncDoc {
            doc_id: target.roster,
            payload: Vec::new(),
        },
    );
    prop_assert!(
        matches!(answer.messages.last(), Some(Message::SyncDoc { .. })),
        "an honest sync is refused: {:?}",
        answer.messages
    );
    if let Some(Stream::Doc(stream)) = stream {
        target.core.finish_stream(&target.peer, stream);
    }
    Ok(())
}

fn fail(e: impl std::fmt::Display) -> TestCaseError {
    TestCaseError::fail(e.to_string())
}

/// A client store holding one activity, and that activity's bytes.
fn store_with_activity(branch: BranchId) -> (Store, Vec<u8>) {
    let mut store = Store::open_in_memory().expect("a store");
    let activity = Activity::new(branch, activity_plan()).expect("an activity");
    let id = store.create(&activity).expect("stored");
    store
        .write_minutes(id, "Minutes of the meeting: 会议记录")
        .expect("minutes");
    let bytes = store.export(id).expect("export");
    (store, bytes)
}

/// A valid frame with up to three mutations, to the frame or (for a
/// `SyncDoc`) inside its payload, on the control stream or a new stream.
fn server_survives_mutated_frames_case(
    target: &mut Target,
    (which, mutations, inside_payload, on_control): (usize, Vec<Mutation>, bool, bool),
) -> Result<(), TestCaseError> {
    let seed = target.seeds[which % target.seeds.len()].clone();
    let frame = if inside_payload {
        damage_payload(&seed, &mutations).unwrap_or_else(|| {
            let mut f = seed.clone();
            damage(&mut f, &mutations);
            f
        })
    } else {
        let mut f = seed.clone();
        damage(&mut f, &mutations);
        f
    };
    feed(target, &frame, on_control);
    server_still_healthy(target)
}

async fn server_survives_mutated_frames(backend: Backend) -> anyhow::Result<()> {
    let strategy = (
        0..5usize,
        prop::collection::vec(mutation(), 1..4),
        any::<bool>(),
        any::<bool>(),
    );
    fuzz(backend, strategy, server_survives_mutated_frames_case).await
}

/// A well-framed message of any tag with a random body.
fn server_survives_random_frames_case(
    target: &mut Target,
    (body, tag, on_control): (Vec<u8>, u8, bool),
) -> Result<(), TestCaseError> {
    let mut frame = u32::try_from(body.len() + 1)
        .unwrap()
        .to_be_bytes()
        .to_vec();
    frame.push(tag);
    frame.extend_from_slice(&body);
    feed(target, &frame, on_control);
    server_still_healthy(target)
}

async fn server_survives_random_frames(backend: Backend) -> anyhow::Result<()> {
    let strategy = (
        prop::collection::vec(any::<u8>(), 0..300),
        any::<u8>(),
        any::<bool>(),
    );
    fuzz(backend, strategy, server_survives_random_frames_case).await
}

/// A damaged activity handed to the admin import.
fn server_import_refuses_or_stores_mutated_documents_case(
    target: &mut Target,
    mutations: Vec<Mutation>,
) -> Result<(), TestCaseError> {
    let (_, mut bytes) = store_with_activity(target.branch);
    damage(&mut bytes, &mutations);
    let imported = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        target.admin.import_documents([bytes.as_slice()])
    }));
    prop_assert!(
        imported.is_ok(),
        "Admin::import_documents panicked on damaged bytes"
    );
    server_still_healthy(target)
}

async fn server_import_refuses_or_stores_mutated_documents(backend: Backend) -> anyhow::Result<()> {
    let strategy = prop::collection::vec(mutation(), 1..5);
    fuzz(
        backend,
        strategy,
        server_import_refuses_or_stores_mutated_documents_case,
    )
    .await
}

branchline_tests::on_both_backends!(
    server_survives_mutated_frames,
    server_survives_random_frames,
    server_import_refuses_or_stores_mutated_documents,
);

proptest! {
    #![proptest_config(config())]

    #[test]
    fn mutated_documents_never_break_a_store(
        mutations in prop::collection::vec(mutation(), 1..5),
    ) {
        let branch = BranchId::from_bytes([3; 16]);
        let (mut store, mut bytes) = store_with_activity(branch);
        damage(&mut bytes, &mutations);
        let merged = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| store.merge(&bytes)));
        let merged = merged.map_err(|_| fail("Store::merge panicked on damaged bytes"))?;
        if let Ok(id) = merged {
            // Whatever was accepted loads back and is listed.
            store.load_document(id).map_err(fail)?;
            prop_assert!(store.documents().map_err(fail)?.iter().any(|d| d.id == id));
        }
        let imported = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            store.import_all([bytes.as_slice()])
        }));
        prop_assert!(imported.is_ok(), "Store::import_all panicked on damaged bytes");
        // The store still works: every document loads and the index answers.
        for summary in store.documents().map_err(fail)? {
            store.load_document(summary.id).map_err(fail)?;
        }
        store
            .list_activities(branch, &Default::default())
            .map_err(fail)?;
    }
}
