//! What the program measures in memory, from a year of one branch made by
//! client-core's workload generator: documents, changes and their sizes,
//! the protocol frames a push and a pull of each change cost, who may read
//! each document (the server's own access function), and the memory a
//! catalog entry and a loaded document take.
//!
//! Everything here is deterministic: the generator is seeded, its changes
//! carry no timestamps, and memory is counted by the allocator
//! ([`crate::heap`]), not read from the process's resident size.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use anyhow::{Context as _, Result, bail, ensure};
use automerge::sync::{self, SyncDoc as _};
use automerge::transaction::CommitOptions;
use automerge::{ActorId, AutoCommit, Automerge, ChangeHash};
use branchline_core::model::{self, Activity, NewActivity, SignInMode, Timestamp};
use branchline_core::workload::{GeneratedBranch, WorkloadSpec, generate};
use branchline_protocol::{BranchId, DeviceId, DocId, Heads, MemberId, Message, Role};
use branchline_server::access::{DocAttributes, Principal, decide};

use crate::model::Inputs;

/// The generated year: the survey's branch, for one year.
pub fn generated_year(inputs: &Inputs) -> Result<GeneratedBranch> {
    let spec = WorkloadSpec {
        members: inputs.members_per_branch as usize,
        years: 1,
        activities_per_month: inputs.activities_per_month as u32,
        attendance: inputs.attendance,
        petitions: inputs.petitions_per_branch_year as usize,
        ..WorkloadSpec::default()
    };
    Ok(generate(&spec)?)
}

/// Fills in every measured input that needs no server.
pub fn measure(inputs: &mut Inputs, year: &GeneratedBranch) -> Result<()> {
    inputs.catalog_entry_bytes = catalog_entry_bytes(year)?;
    inputs.loaded_doc_bytes = loaded_doc_bytes(year)?;
    let traffic = replay(year)?;
    let changes = traffic.changes as f64;
    inputs.docs_per_branch_year = year.documents.len() as f64;
    inputs.changes_per_branch_year = changes;
    inputs.change_bytes = traffic.change_bytes as f64 / changes;
    inputs.saved_bytes_per_branch_year =
        year.documents.iter().map(|d| d.bytes.len()).sum::<usize>() as f64;
    inputs.push_frame_bytes = traffic.push_frames as f64 / changes;
    inputs.pull_frame_bytes = traffic.pull_frames as f64 / changes;
    inputs.sync_state_bytes = traffic.state_bytes as f64 / traffic.states as f64;

    let readers = readers(
        year,
        inputs.ancestor_levels as usize,
        &traffic.changes_per_doc,
    )?;
    inputs.member_readers_per_change = readers.members_per_change;
    inputs.resident_readers_per_change = readers.residents_per_change;
    inputs.oversight_share_changes = readers.oversight_per_change;
    inputs.member_readers_per_doc = readers.members_per_doc;
    inputs.resident_readers_per_doc = readers.residents_per_doc;
    inputs.oversight_share_docs = readers.oversight_per_doc;

    let (wire, stored) = author_message_cost(year)?;
    inputs.author_message_bytes = wire;
    inputs.author_message_stored_bytes = stored;
    Ok(())
}

// --- the sync of every change ------------------------------------------------------

/// Protocol bytes of one document stream, both ways.
#[derive(Debug, Default, Clone, Copy)]
struct Traffic {
    up: usize,
    down: usize,
}

impl Traffic {
    fn total(self) -> usize {
        self.up + self.down
    }
}

/// Sums over the replay of the year.
#[derive(Debug, Default)]
struct Replay {
    changes: usize,
    change_bytes: usize,
    push_frames: usize,
    pull_frames: usize,
    state_bytes: usize,
    states: usize,
    changes_per_doc: HashMap<[u8; 16], usize>,
}

/// A sync between devices and the server never needs this many turns for one
/// change; more means the emulation is wrong.
const MAX_TURNS: usize = 32;

fn frame(message: &Message) -> Result<usize> {
    Ok(branchline_protocol::encode(message)?.len())
}

fn wire_heads(heads: &[ChangeHash]) -> Heads {
    Heads::new(heads.iter().map(|h| h.0).collect())
}

/// One document stream as docs/sync-design.md runs it: the device opens it
/// with a `SyncDoc` (empty when it has nothing to say), the server answers
/// every `SyncDoc` with one `SyncDoc`, preceded by an `Ack` when it stored
/// new changes, until neither side has anything to say. Both sides reload
/// their saved sync state first, as they do for every stream. `announced`
/// adds the `DocChanged` that makes a connected device pull.
fn document_stream(
    doc_id: DocId,
    device: &mut Automerge,
    device_state: &mut sync::State,
    server: &mut Automerge,
    server_state: &mut sync::State,
    announced: bool,
) -> Result<Traffic> {
    *device_state = sync::State::decode(&device_state.encode())?;
    *server_state = sync::State::decode(&server_state.encode())?;
    let mut traffic = Traffic::default();
    if announced {
        traffic.down += frame(&Message::DocChanged {
            doc_id,
            heads: wire_heads(&server.get_heads()),
        })?;
    }
    let mut outgoing = device.generate_sync_message(device_state);
    for _ in 0..MAX_TURNS {
        let payload = outgoing
            .take()
            .map(sync::Message::encode)
            .unwrap_or_default();
        let before = server.get_heads();
        if !payload.is_empty() {
            server.receive_sync_message(server_state, sync::Message::decode(&payload)?)?;
        }
        traffic.up += frame(&Message::SyncDoc { doc_id, payload })?;
        let after = server.get_heads();
        if after != before {
            traffic.down += frame(&Message::Ack {
                doc_id,
                heads: wire_heads(&after),
            })?;
        }
        let reply = server
            .generate_sync_message(server_state)
            .map(sync::Message::encode)
            .unwrap_or_default();
        let replied = !reply.is_empty();
        if replied {
            device.receive_sync_message(device_state, sync::Message::decode(&reply)?)?;
        }
        traffic.down += frame(&Message::SyncDoc {
            doc_id,
            payload: reply,
        })?;
        outgoing = device.generate_sync_message(device_state);
        if outgoing.is_none() && !replied {
            return Ok(traffic);
        }
    }
    bail!("a document sync of {doc_id} took more than {MAX_TURNS} turns")
}

/// Replays every change of the year as it was made: the writing device
/// pushes it to the server, then another connected device pulls it.
fn replay(year: &GeneratedBranch) -> Result<Replay> {
    let mut out = Replay::default();
    for generated in &year.documents {
        let doc_id = DocId::from_bytes(*generated.id.as_bytes());
        let full = Automerge::load(&generated.bytes)?;
        let changes = full.get_changes(&[]);
        out.changes_per_doc
            .insert(*generated.id.as_bytes(), changes.len());
        let (mut writer, mut server, mut reader) =
            (Automerge::new(), Automerge::new(), Automerge::new());
        let mut states: [sync::State; 4] = Default::default();
        let [writer_state, server_writer, reader_state, server_reader] = &mut states;
        for change in changes {
            out.changes += 1;
            out.change_bytes += change.raw_bytes().len();
            writer.apply_changes([change])?;
            let push = document_stream(
                doc_id,
                &mut writer,
                writer_state,
                &mut server,
                server_writer,
                false,
            )?;
            let pull = document_stream(
                doc_id,
                &mut reader,
                reader_state,
                &mut server,
                server_reader,
                true,
            )?;
            out.push_frames += push.total();
            out.pull_frames += pull.total();
            out.state_bytes += server_writer.encode().len() + server_reader.encode().len();
            out.states += 2;
        }
        ensure!(
            server.get_heads() == full.get_heads() && reader.get_heads() == full.get_heads(),
            "the replay of {doc_id} did not converge"
        );
    }
    Ok(out)
}

// --- who reads what ----------------------------------------------------------------

/// Readers per change and per document, by the server's access table.
#[derive(Debug, Default)]
struct Readers {
    members_per_change: f64,
    residents_per_change: f64,
    oversight_per_change: f64,
    members_per_doc: f64,
    residents_per_doc: f64,
    oversight_per_doc: f64,
}

fn branch_id(id: branchline_core::BranchId) -> BranchId {
    BranchId::from_bytes(*id.as_bytes())
}

fn member_id(id: branchline_core::MemberId) -> MemberId {
    MemberId::from_bytes(*id.as_bytes())
}

/// The branches of a `shared_with` set, keyed by branch id.
fn shared_branches(set: &std::collections::BTreeMap<String, bool>) -> Vec<BranchId> {
    set.keys()
        .filter_map(|b| b.parse::<branchline_core::BranchId>().ok())
        .map(branch_id)
        .collect()
}

/// The access attributes the server would record for each generated
/// document, from its typed record.
fn attributes(year: &GeneratedBranch) -> Result<HashMap<[u8; 16], DocAttributes>> {
    let branch = branch_id(year.branch);
    let bytes: HashMap<[u8; 16], &[u8]> = year
        .documents
        .iter()
        .map(|d| (*d.id.as_bytes(), d.bytes.as_slice()))
        .collect();
    let mut out = HashMap::new();
    let mut put = |id: branchline_core::DocId, attrs: DocAttributes| {
        out.insert(*id.as_bytes(), attrs);
    };
    put(
        year.profile.meta.id,
        DocAttributes::new(year.profile.meta.kind.clone(), branch),
    );
    put(
        year.roster.meta.id,
        DocAttributes::new(year.roster.meta.kind.clone(), branch),
    );
    for file in &year.member_files {
        let mut attrs = DocAttributes::new(file.meta.kind.clone(), branch);
        attrs.subject = Some(member_id(file.member));
        put(file.meta.id, attrs);
    }
    for activity in &year.activities {
        let mut attrs = DocAttributes::new(activity.meta.kind.clone(), branch);
        attrs.shared_with = shared_branches(&activity.shared_with);
        put(activity.meta.id, attrs);
    }
    for petition in &year.petitions {
        let mut attrs = DocAttributes::new(petition.meta.kind.clone(), branch);
        attrs.owner = petition.owner.map(member_id);
        attrs.submitter = petition.submitter.member.map(member_id);
        // The device that delivered the first change created it on the server.
        let doc = Automerge::load(
            bytes
                .get(petition.meta.id.as_bytes())
                .context("a petition's document")?,
        )?;
        let first = doc.get_changes(&[]);
        let actor = first
            .first()
            .context("a petition's first change")?
            .actor_id();
        let device: [u8; 16] = actor
            .to_bytes()
            .try_into()
            .context("a device actor is 16 bytes")?;
        attrs.creator = Some(DeviceId::from_bytes(device));
        put(petition.meta.id, attrs);
    }
    let yearly = year
        .dues_ledgers
        .iter()
        .map(|l| &l.meta)
        .chain(year.points_books.iter().map(|b| &b.meta));
    for meta in yearly {
        put(meta.id, DocAttributes::new(meta.kind.clone(), branch));
    }
    for applicant in &year.applicants {
        let mut attrs = DocAttributes::new(applicant.meta.kind.clone(), branch);
        attrs.subject = Some(member_id(applicant.member));
        put(applicant.meta.id, attrs);
    }
    for entry in &year.library {
        let mut attrs = DocAttributes::new(entry.meta.kind.clone(), branch);
        attrs.shared_with = shared_branches(&entry.shared_with);
        attrs.shared_down = entry.shared_down;
        put(entry.meta.id, attrs);
    }
    ensure!(
        out.len() == year.documents.len(),
        "attributes for {} of {} documents",
        out.len(),
        year.documents.len()
    );
    Ok(out)
}

/// Counts who may read each document: the roster's members (secretary and
/// committee by their posts), the residents who filed petitions, and the
/// committee of each of `levels` ancestor branches.
fn readers(
    year: &GeneratedBranch,
    levels: usize,
    changes_per_doc: &HashMap<[u8; 16], usize>,
) -> Result<Readers> {
    let branch = branch_id(year.branch);
    let attrs = attributes(year)?;
    let members: Vec<Principal> = year
        .roster
        .members
        .values()
        .enumerate()
        .map(|(i, m)| Principal {
            device: DeviceId::from_bytes((i as u128 + 1).to_be_bytes()),
            role: match m.post.as_deref() {
                Some("书记") => Role::Secretary,
                Some(_) => Role::Committee,
                None => Role::Member,
            },
            branch,
            member: Some(member_id(m.id)),
        })
        .collect();
    ensure!(
        members.iter().any(|p| p.role == Role::Secretary),
        "the generated roster has no secretary"
    );
    let residents: Vec<Principal> = attrs
        .values()
        .filter_map(|a| a.creator)
        .map(|device| Principal {
            device,
            role: Role::Resident,
            branch,
            member: None,
        })
        .collect();
    let ancestors: Vec<BranchId> = (0..levels)
        .map(|l| BranchId::from_bytes([0xA0 + l as u8; 16]))
        .collect();
    let overseers: Vec<Principal> = ancestors
        .iter()
        .enumerate()
        .map(|(l, b)| Principal {
            device: DeviceId::from_bytes([0xB0 + l as u8; 16]),
            role: Role::Committee,
            branch: *b,
            member: Some(MemberId::from_bytes([0xC0 + l as u8; 16])),
        })
        .collect();

    let mut sums = Readers::default();
    let (mut docs, mut changes) = (0.0, 0.0);
    for (id, doc) in &attrs {
        // The model holds no library entries, the one kind that reads the
        // viewer's own ancestors.
        let can = |p: &&Principal| decide(p, doc, &ancestors, &[]).read;
        let m = members.iter().filter(can).count() as f64;
        let r = residents.iter().filter(can).count() as f64;
        let o = if overseers.is_empty() {
            0.0
        } else {
            overseers.iter().filter(can).count() as f64 / overseers.len() as f64
        };
        let n = *changes_per_doc.get(id).context("a replayed document")? as f64;
        docs += 1.0;
        changes += n;
        sums.members_per_doc += m;
        sums.residents_per_doc += r;
        sums.oversight_per_doc += o;
        sums.members_per_change += m * n;
        sums.residents_per_change += r * n;
        sums.oversight_per_change += o * n;
    }
    Ok(Readers {
        members_per_change: sums.members_per_change / changes,
        residents_per_change: sums.residents_per_change / changes,
        oversight_per_change: sums.oversight_per_change / changes,
        members_per_doc: sums.members_per_doc / docs,
        residents_per_doc: sums.residents_per_doc / docs,
        oversight_per_doc: sums.oversight_per_doc / docs,
    })
}

// --- the author message --------------------------------------------------------------

/// What the `member:<id>` message a device's store puts on each change
/// costs, per change, on the wire and saved: every roster member signs in
/// to one meeting, once with the message and once without.
fn author_message_cost(year: &GeneratedBranch) -> Result<(f64, f64)> {
    let activity = Activity::new(
        year.branch,
        NewActivity {
            kind: "branch_meeting".to_owned(),
            title: "支部党员大会".to_owned(),
            starts_at: Some("2026-03-05T14:30".parse()?),
            ends_at: Some("2026-03-05T16:30".parse()?),
            place: Some("党群服务中心".to_owned()),
            organizer: None,
            group: None,
            agenda: None,
        },
    )?;
    let secretary = ActorId::from([0x5Eu8; 16].as_slice());
    let mut plain = model::create_document(&activity, secretary.clone())?;
    plain.commit();
    let mut signed = model::create_document(&activity, secretary)?;
    signed.commit();
    let (mut wire_plain, mut wire_signed) = (0usize, 0usize);
    let members: Vec<_> = year.roster.members.values().collect();
    for (i, member) in members.iter().enumerate() {
        let actor = ActorId::from((i as u128 + 1).to_be_bytes().as_slice());
        let at = Timestamp(1_772_692_200_000 + i as i64 * 1000);
        let message = format!("member:{}", member.id);
        ensure!(
            branchline_core::conflict::author_of(Some(&message)) == Ok(Some(member.id)),
            "client-core no longer reads {message:?} as the change's author"
        );
        wire_plain += sign_in(&mut plain, actor.clone(), member.id, at, None)?;
        wire_signed += sign_in(&mut signed, actor, member.id, at, Some(message))?;
    }
    let n = members.len() as f64;
    let wire = (wire_signed as f64 - wire_plain as f64) / n;
    let stored = (signed.save().len() as f64 - plain.save().len() as f64) / n;
    Ok((wire, stored))
}

/// Signs `member` in on `doc` as `actor`, committing with `message`;
/// returns the new change's encoded size.
fn sign_in(
    doc: &mut AutoCommit,
    actor: ActorId,
    member: branchline_core::MemberId,
    at: Timestamp,
    message: Option<String>,
) -> Result<usize> {
    let before = doc.get_heads();
    doc.set_actor(actor);
    model::edit(doc, |a: &mut Activity| {
        a.sign_in(member, at, SignInMode::OnSite)
    })?;
    let options = match message {
        Some(m) => CommitOptions::default().with_message(m),
        None => CommitOptions::default(),
    };
    doc.commit_with(options);
    let changes = doc.get_changes(&before);
    ensure!(changes.len() == 1, "a sign-in is one change");
    Ok(changes[0].raw_bytes().len())
}

// --- memory ------------------------------------------------------------------------

/// Entries in the catalog whose memory is measured.
const CATALOG_ENTRIES: usize = 200_000;

/// Heap memory per entry of a catalog laid out as the server's
/// (`server/src/storage/mod.rs`: document id → shared attributes, heads,
/// database position and feed position, and feed position → document id),
/// filled with the generated year's attributes and heads.
fn catalog_entry_bytes(year: &GeneratedBranch) -> Result<f64> {
    let attrs = attributes(year)?;
    let samples: Vec<(DocAttributes, Heads)> = year
        .documents
        .iter()
        .map(|d| {
            let doc = Automerge::load(&d.bytes)?;
            Ok((attrs[d.id.as_bytes()].clone(), wire_heads(&doc.get_heads())))
        })
        .collect::<Result<_>>()?;
    let before = crate::heap::held();
    let mut docs: HashMap<DocId, (Arc<DocAttributes>, Heads, i64, i64)> = HashMap::new();
    let mut by_position: BTreeMap<i64, DocId> = BTreeMap::new();
    for n in 0..CATALOG_ENTRIES {
        let (a, h) = &samples[n % samples.len()];
        let id = DocId::from_bytes(
            (n as u128)
                .wrapping_mul(0x9E37_79B9_7F4A_7C15)
                .to_be_bytes(),
        );
        let seq = n as i64 + 1;
        docs.insert(id, (Arc::new(a.clone()), h.clone(), seq, seq));
        by_position.insert(seq, id);
    }
    let after = crate::heap::held();
    ensure!(docs.len() == CATALOG_ENTRIES && by_position.len() == CATALOG_ENTRIES);
    drop((docs, by_position));
    Ok((after - before) as f64 / CATALOG_ENTRIES as f64)
}

/// Heap memory per loaded automerge document, over the generated year's
/// documents.
fn loaded_doc_bytes(year: &GeneratedBranch) -> Result<f64> {
    let before = crate::heap::held();
    let mut loaded = Vec::with_capacity(year.documents.len());
    for d in &year.documents {
        loaded.push(Automerge::load(&d.bytes)?);
    }
    let after = crate::heap::held();
    let n = loaded.len() as f64;
    drop(loaded);
    Ok((after - before) as f64 / n)
}
