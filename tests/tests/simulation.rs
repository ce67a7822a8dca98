//! Deterministic simulation: the devices' sans-I/O sync sessions and the
//! server's `ServerCore` (the code that serves devices) in one process, over a simulated network that delays,
//! reorders, cuts and partitions, while the server and the devices crash and
//! restart with their SQLite stores.
//!
//! **The network model** is what QUIC leaves visible to the application.
//! QUIC retransmits lost packets, drops duplicated ones and puts each stream
//! back in order, so inside a live connection every stream is a reliable FIFO
//! whose messages arrive after a random delay (loss shows up as a longer
//! delay), and messages of different streams overtake each other freely.
//! What the application does see is a connection dying: a burst of loss, a
//! partition, a crash. Then everything in flight towards the device is lost,
//! while what was in flight towards the server may still arrive and be
//! processed (retransmissions of a connection the device already gave up on:
//! a late, duplicate-looking delivery the device never hears the answer to).
//! Partitions keep a device from connecting for a while; crashes drop every
//! in-memory state (sessions, caches, sync states of open streams) and keep
//! what SQLite committed: the server's data directory is reopened, a
//! device's store file is reopened.
//!
//! **A seed** builds a small organization (a town committee over branches A
//! and B), enrolls five devices of different roles over a perfect network,
//! then runs a few hundred random steps: local edits by each role within its
//! rights (activities, minutes, sign-ins, points, members, shared
//! activities, petitions), deliveries, connection cuts, partitions, server
//! and device crashes. Then the faults stop, every device reconnects, and
//! the network drains. Checked:
//!
//! - every device holds exactly the documents the server says it may read,
//!   at the server's heads (convergence, and no document outside its scope);
//! - devices that may read the same documents give the same query results;
//! - every `Ack` a device received names heads the server still holds after
//!   every restart and at the end (no acknowledged change lost); a document a
//!   device counts as fully acknowledged is on the server at its heads;
//! - no local change is left unacknowledged once every device has opened one
//!   more session. (After the first quiet session a device may still mark a
//!   change the server holds as unacknowledged: it reached the server on a
//!   connection whose `Ack` was lost, and the sync on the new connection
//!   found nothing to exchange. The test checks the server holds those and
//!   counts them.)
//!
//! Document ids and the store clocks come from the seed, so a seed replays
//! the same schedule of steps; device ids (automerge actors) are random per
//! run, which changes change hashes but not the schedule.
//!
//! `cargo test -p branchline-tests --test simulation` runs [`CI_SEEDS`] seeds;
//! `BRANCHLINE_SIM_SEEDS=10000` runs that many, `BRANCHLINE_SIM_SEED=n`
//! replays one (a failure prints the command).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail, ensure};
use branchline_core::model::{
    Activity, Level, NewActivity, NewMember, NewPetition, Petition, SignInMode, Submitter,
    Timestamp,
};
use branchline_core::store::query::{ActivityFilter, MemberFilter, PetitionFilter};
use branchline_core::sync::{Join, Outgoing, Session};
use branchline_core::{BranchId, DocId, MemberId, Store};
use branchline_protocol::{Message, Role};
use branchline_server::Admin;
use branchline_server::server_core::{Answer, CoreSettings, DocStream, Peer, ServerCore, Stream};
use branchline_server::store::Notices;
use rand::{RngExt as _, SeedableRng as _};
use rand_chacha::ChaCha8Rng;

/// Seeds a plain `cargo test` runs (about a minute on two busy cores).
const CI_SEEDS: u64 = 80;
/// Random steps per seed before the faults stop.
const STEPS: usize = 400;

/// A stream of one connection: the control stream, or the `gen`-th document
/// stream the device opened for `doc`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum StreamKey {
    Control,
    Doc(DocId, u32),
    /// A `GetDocuments` stream, numbered per connection.
    Fetch(u32),
}

/// What travels on a stream: a frame, or the end of the sender's side.
#[derive(Debug)]
enum Payload {
    Frame(Vec<u8>),
    Finish,
}

#[derive(Debug)]
struct Packet {
    conn: u64,
    to_server: bool,
    stream: StreamKey,
    payload: Payload,
}

/// The server's side of one stream.
enum ServerStream {
    Open(DocStream),
    /// The server finished its side (an error, or the client finished).
    Ended,
}

/// One connection, both ends.
struct Conn {
    device: usize,
    /// The device still has this connection.
    client_alive: bool,
    /// The server still has it (it may outlive the device's side).
    server_alive: bool,
    session: Session,
    /// Document streams the device has open, with their generation.
    open: HashMap<DocId, u32>,
    next_gen: HashMap<DocId, u32>,
    /// Open `GetDocuments` streams and the documents each asked for.
    fetches: HashMap<u32, Vec<DocId>>,
    next_fetch: u32,
    peer: Option<Peer>,
    /// The server's change notices for this connection.
    notices: Option<Notices>,
    streams: HashMap<StreamKey, ServerStream>,
    /// Last delivery time per direction and stream, for FIFO order.
    last_at: HashMap<(bool, StreamKey), u64>,
}

struct DeviceNode {
    name: String,
    path: PathBuf,
    store: Option<Store>,
    role: Role,
    branch: BranchId,
    member: Option<MemberId>,
    conn: Option<u64>,
    /// Partitioned (or crashed) until this time.
    offline_until: u64,
    invite: Option<branchline_protocol::InviteLink>,
}

/// The whole world of one seed.
struct World {
    rng: ChaCha8Rng,
    now: u64,
    clock: Arc<AtomicI64>,
    data_dir: PathBuf,
    admin: Admin,
    server: Option<ServerCore>,
    server_down_until: u64,
    devices: Vec<DeviceNode>,
    conns: BTreeMap<u64, Conn>,
    next_conn: u64,
    /// (time, sequence) → packet.
    queue: BTreeMap<(u64, u64), Packet>,
    next_seq: u64,
    branches: Branches,
    /// Every `Ack` a device received: (device, doc, heads).
    acks: Vec<(usize, DocId, Vec<automerge::ChangeHash>)>,
    stats: SeedStats,
    /// Fault probabilities; zero once the faults stop.
    faults: bool,
}

#[derive(Clone, Copy)]
struct Branches {
    town: BranchId,
    a: BranchId,
    b: BranchId,
}

/// What one seed did.
#[derive(Debug, Default, Clone, Copy)]
struct SeedStats {
    edits: u64,
    delivered: u64,
    cuts: u64,
    partitions: u64,
    server_crashes: u64,
    device_crashes: u64,
    acks: u64,
    /// Documents in sync but still marked unacknowledged after the heal.
    late_acks: u64,
    docs: usize,
}

impl World {
    fn new(seed: u64, root: &Path) -> Result<World> {
        let data_dir = root.join("server");
        let admin = Admin::open(&data_dir)?;
        let town = admin.add_branch("Town committee", Level::Committee, None)?;
        let a = admin.add_branch("Riverside", Level::Branch, Some(town))?;
        let b = admin.add_branch("Hillside", Level::Branch, Some(town))?;
        // Partners, so the branches may share joint activities.
        admin.add_alliance("Riverside and Hillside", &[a, b])?;
        let server = open_server(&data_dir)?;
        let clock = Arc::new(AtomicI64::new(1_767_225_600_000)); // 2026-01-01
        let mut world = World {
            rng: ChaCha8Rng::seed_from_u64(seed),
            now: 0,
            clock,
            data_dir,
            admin,
            server: Some(server),
            server_down_until: 0,
            devices: Vec::new(),
            conns: BTreeMap::new(),
            next_conn: 1,
            queue: BTreeMap::new(),
            next_seq: 0,
            branches: Branches { town, a, b },
            acks: Vec::new(),
            stats: SeedStats::default(),
            faults: false,
        };
        let layout = [
            ("A secretary", Role::Secretary, a),
            ("A committee", Role::Committee, a),
            ("B secretary", Role::Secretary, b),
            ("town committee", Role::Committee, town),
        ];
        for (name, role, branch) in layout {
            world.add_device(root, name, role, branch, None)?;
        }
        world.settle()?;
        // The A secretary adds two members; a member's phone joins as the first.
        let members: Vec<MemberId> = (0..2)
            .map(|n| {
                world.devices[0]
                    .store
                    .as_mut()
                    .expect("open")
                    .add_member(a, new_member(n))
            })
            .collect::<branchline_core::Result<_>>()?;
        let roster = world.devices[0].branch_roster_id()?;
        world.local_change(0, roster)?;
        world.settle()?;
        world.add_device(root, "A member", Role::Member, a, Some(members[0]))?;
        world.settle()?;
        Ok(world)
    }

    fn add_device(
        &mut self,
        root: &Path,
        name: &str,
        role: Role,
        branch: BranchId,
        member: Option<MemberId>,
    ) -> Result<()> {
        let path = root.join(format!("device-{}.db", self.devices.len()));
        let mut store = Store::open(&path)?;
        let clock = self.clock.clone();
        store.set_clock(Box::new(move || Timestamp(clock.load(Ordering::Relaxed))));
        let invite = self
            .admin
            .create_invite(branch, role, member, Duration::from_secs(3600))?;
        self.devices.push(DeviceNode {
            name: name.to_owned(),
            path,
            store: Some(store),
            role,
            branch,
            member,
            conn: None,
            offline_until: 0,
            invite: Some(invite),
        });
        let device = self.devices.len() - 1;
        self.connect(device)?;
        Ok(())
    }

    // --- the network ---------------------------------------------------------------

    fn send(&mut self, conn: u64, to_server: bool, stream: StreamKey, payload: Payload) {
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        let delay = if self.faults {
            // Mostly quick; sometimes a retransmission's worth later.
            if self.rng.random_bool(0.1) {
                self.rng.random_range(200..3_000)
            } else {
                self.rng.random_range(5..120)
            }
        } else {
            self.rng.random_range(1..20)
        };
        let last = c.last_at.entry((to_server, stream)).or_insert(0);
        let at = (self.now + delay).max(*last);
        *last = at;
        self.queue.insert(
            (at, self.next_seq),
            Packet {
                conn,
                to_server,
                stream,
                payload,
            },
        );
        self.next_seq += 1;
    }

    fn send_message(&mut self, conn: u64, to_server: bool, stream: StreamKey, message: &Message) {
        let frame = branchline_protocol::encode(message).expect("every message encodes");
        self.send(conn, to_server, stream, Payload::Frame(frame));
    }

    /// Delivers the next packet; false when nothing is in flight.
    fn deliver_next(&mut self) -> Result<bool> {
        let Some(((at, _), packet)) = self.queue.pop_first() else {
            return Ok(false);
        };
        self.now = self.now.max(at);
        self.clock
            .store(1_767_225_600_000 + self.now as i64, Ordering::Relaxed);
        self.stats.delivered += 1;
        if packet.to_server {
            self.at_server(packet)?;
            self.publish_notices();
        } else {
            self.at_device(packet)?;
        }
        self.collect_dead();
        Ok(true)
    }

    fn collect_dead(&mut self) {
        let queue = &self.queue;
        self.conns.retain(|id, c| {
            c.client_alive || (c.server_alive && queue.values().any(|p| p.conn == *id))
        });
    }

    /// Cuts a connection: the device gives up on it at once; the server may
    /// still take in what was already on its way (`ghost`).
    fn cut(&mut self, conn: u64, ghost: bool) {
        if let Some(c) = self.conns.get_mut(&conn) {
            c.client_alive = false;
            c.server_alive &= ghost;
            let device = c.device;
            if self.devices[device].conn == Some(conn) {
                self.devices[device].conn = None;
            }
        }
        let conns = &self.conns;
        self.queue.retain(|_, p| {
            p.conn != conn || (p.to_server && conns.get(&conn).is_some_and(|c| c.server_alive))
        });
        self.collect_dead();
    }

    // --- the server ------------------------------------------------------------------

    fn at_server(&mut self, packet: Packet) -> Result<()> {
        let Some(server) = self.server.as_mut() else {
            return Ok(());
        };
        let Some(c) = self.conns.get_mut(&packet.conn) else {
            return Ok(());
        };
        if !c.server_alive {
            return Ok(());
        }
        let mut replies: Vec<(StreamKey, Message)> = Vec::new();
        let mut finish: Vec<StreamKey> = Vec::new();
        let mut close = false;
        let decoded = match &packet.payload {
            Payload::Frame(frame) => Some(branchline_protocol::decode(frame)),
            Payload::Finish => None,
        };
        match (packet.stream, decoded) {
            (StreamKey::Control, Some(message)) => {
                let message = message.context("the device sent a frame that does not decode")?;
                let now = self.clock.load(Ordering::Relaxed);
                match &c.peer {
                    None => {
                        let welcomed =
                            server.hello(now, message).and_then(|(mut peer, welcome)| {
                                let (notices, digest) = server.connected(&mut peer)?;
                                Ok((peer, notices, [welcome, digest]))
                            });
                        match welcomed {
                            Ok((peer, notices, messages)) => {
                                c.peer = Some(peer);
                                c.notices = Some(notices);
                                replies
                                    .extend(messages.into_iter().map(|m| (StreamKey::Control, m)));
                            }
                            Err(refusal) => {
                                replies.push((StreamKey::Control, refusal.into_message()));
                                close = true;
                            }
                        }
                    }
                    Some(peer) => {
                        let answer = server.control(peer, message);
                        close = answer.end;
                        replies
                            .extend(answer.messages.into_iter().map(|m| (StreamKey::Control, m)));
                    }
                }
            }
            // The device finished its control stream: it only stops hearing notices.
            (StreamKey::Control, None) => {}
            (key @ (StreamKey::Doc(..) | StreamKey::Fetch(_)), decoded) => {
                let Some(peer) = &c.peer else {
                    bail!("a document stream before Welcome");
                };
                match (c.streams.remove(&key), decoded) {
                    (None, Some(message)) => {
                        let message = message.context("the device sent a bad frame")?;
                        let now = self.clock.load(Ordering::Relaxed);
                        let (stream, mut answer) = server.open_stream(now, peer, message);
                        let state = match stream {
                            Some(Stream::Doc(stream)) => ServerStream::Open(stream),
                            Some(Stream::Bundles(mut cursor)) => {
                                // Every bundle, then the end, as the QUIC server sends them.
                                while let Some(bundle) = server.next_bundle(peer, &mut cursor) {
                                    answer.messages.push(bundle);
                                }
                                answer.end = true;
                                ServerStream::Ended
                            }
                            None => ServerStream::Ended,
                        };
                        c.streams.insert(key, state);
                        push_answer(&mut replies, &mut finish, key, answer);
                    }
                    (Some(ServerStream::Open(mut stream)), Some(message)) => {
                        let message = message.context("the device sent a bad frame")?;
                        let answer = server.doc_message(peer, &mut stream, message);
                        c.streams.insert(
                            key,
                            if answer.end {
                                ServerStream::Ended
                            } else {
                                ServerStream::Open(stream)
                            },
                        );
                        push_answer(&mut replies, &mut finish, key, answer);
                    }
                    (Some(ServerStream::Open(stream)), None) => {
                        server.finish_stream(peer, stream);
                        c.streams.insert(key, ServerStream::Ended);
                        finish.push(key);
                    }
                    (None, None) => {
                        c.streams.insert(key, ServerStream::Ended);
                        finish.push(key);
                    }
                    (Some(ServerStream::Ended), _) => {
                        c.streams.insert(key, ServerStream::Ended);
                    }
                }
            }
        }
        for (stream, message) in replies {
            if let Message::Ack { .. } = &message {
                self.stats.acks += 1;
            }
            self.send_message(packet.conn, false, stream, &message);
        }
        for stream in finish {
            self.send(packet.conn, false, stream, Payload::Finish);
        }
        if close {
            self.send(packet.conn, false, StreamKey::Control, Payload::Finish);
        }
        Ok(())
    }

    /// `DocChanged` for every live connection, as the server's control loops do.
    fn publish_notices(&mut self) {
        let Some(server) = self.server.as_ref() else {
            return;
        };
        let mut out = Vec::new();
        for (id, c) in &mut self.conns {
            if !c.server_alive {
                continue;
            }
            if let (Some(peer), Some(notices)) = (c.peer.as_mut(), c.notices.as_mut()) {
                let events = std::iter::from_fn(|| notices.try_next());
                for message in server.notices(peer, events) {
                    out.push((*id, message));
                }
            }
        }
        for (id, message) in out {
            self.send_message(id, false, StreamKey::Control, &message);
        }
    }

    fn crash_server(&mut self) {
        let ids: Vec<u64> = self.conns.keys().copied().collect();
        for id in ids {
            self.cut(id, false);
        }
        self.server = None;
        self.server_down_until = self.now + self.rng.random_range(100..5_000);
        self.stats.server_crashes += 1;
    }

    fn restart_server(&mut self) -> Result<()> {
        if self.server.is_none() {
            self.server = Some(open_server(&self.data_dir)?);
            self.check_acknowledged()
                .context("after a server restart")?;
        }
        Ok(())
    }

    // --- the devices -----------------------------------------------------------------

    fn connect(&mut self, device: usize) -> Result<()> {
        if self.devices[device].conn.is_some() || self.devices[device].offline_until > self.now {
            return Ok(());
        }
        if self.server.is_none() {
            if self.server_down_until > self.now {
                return Ok(());
            }
            self.restart_server()?;
        }
        let node = &mut self.devices[device];
        if node.store.is_none() {
            let mut store = Store::open(&node.path).context("reopening a crashed store")?;
            let clock = self.clock.clone();
            store.set_clock(Box::new(move || Timestamp(clock.load(Ordering::Relaxed))));
            node.store = Some(store);
        }
        let store = node.store.as_mut().expect("opened above");
        let join = match store.account()? {
            Some(account) => Join::Resume(account),
            None => Join::Enroll {
                invite: node.invite.clone().context("no account and no invite")?,
                device_name: node.name.clone(),
            },
        };
        let mut session = Session::new(join);
        let out = session.start(store)?;
        let id = self.next_conn;
        self.next_conn += 1;
        self.conns.insert(
            id,
            Conn {
                device,
                client_alive: true,
                server_alive: true,
                session,
                open: HashMap::new(),
                next_gen: HashMap::new(),
                fetches: HashMap::new(),
                next_fetch: 0,
                peer: None,
                notices: None,
                streams: HashMap::new(),
                last_at: HashMap::new(),
            },
        );
        self.devices[device].conn = Some(id);
        self.route(id, out);
        Ok(())
    }

    fn route(&mut self, conn: u64, out: Vec<Outgoing>) {
        for outgoing in out {
            match outgoing {
                Outgoing::Control(message) => {
                    self.send_message(conn, true, StreamKey::Control, &message)
                }
                Outgoing::Doc {
                    doc,
                    message,
                    finish,
                } => {
                    let Some(c) = self.conns.get_mut(&conn) else {
                        return;
                    };
                    let generation = match c.open.get(&doc) {
                        Some(generation) => *generation,
                        None => {
                            let next = c.next_gen.entry(doc).or_insert(0);
                            let generation = *next;
                            *next += 1;
                            c.open.insert(doc, generation);
                            generation
                        }
                    };
                    if finish {
                        c.open.remove(&doc);
                    }
                    let key = StreamKey::Doc(doc, generation);
                    if let Some(message) = message {
                        self.send_message(conn, true, key, &message);
                    }
                    if finish {
                        self.send(conn, true, key, Payload::Finish);
                    }
                }
                Outgoing::Fetch { docs } => {
                    let Some(c) = self.conns.get_mut(&conn) else {
                        return;
                    };
                    let number = c.next_fetch;
                    c.next_fetch += 1;
                    let request = Message::GetDocuments {
                        doc_ids: docs.iter().map(|d| (*d).into()).collect(),
                    };
                    c.fetches.insert(number, docs);
                    let key = StreamKey::Fetch(number);
                    self.send_message(conn, true, key, &request);
                    self.send(conn, true, key, Payload::Finish);
                }
            }
        }
    }

    fn at_device(&mut self, packet: Packet) -> Result<()> {
        let Some(c) = self.conns.get_mut(&packet.conn) else {
            return Ok(());
        };
        if !c.client_alive {
            return Ok(());
        }
        let device = c.device;
        let Some(store) = self.devices[device].store.as_mut() else {
            return Ok(());
        };
        let outcome = match (packet.stream, packet.payload) {
            (StreamKey::Control, Payload::Finish) => {
                // The server closed the connection.
                self.cut(packet.conn, false);
                return Ok(());
            }
            (StreamKey::Doc(doc, _), Payload::Finish) => {
                Ok(c.session.doc_stream_closed(store, doc))
            }
            (StreamKey::Fetch(number), Payload::Finish) => {
                let docs = c.fetches.remove(&number).unwrap_or_default();
                c.session
                    .fetch_closed(store, &docs)
                    .map_err(branchline_core::sync::SessionError::Store)
            }
            (_, Payload::Frame(frame)) => {
                let message = branchline_protocol::decode(&frame)
                    .context("the server sent a frame that does not decode")?;
                if let Message::Ack { doc_id, heads } = &message {
                    let heads = heads.as_slice().iter().map(|h| automerge::ChangeHash(*h));
                    self.acks
                        .push((device, DocId::from(*doc_id), heads.collect()));
                }
                c.session.handle(store, message)
            }
        };
        match outcome {
            Ok(out) => self.route(packet.conn, out),
            Err(branchline_core::sync::SessionError::Protocol(why)) => {
                bail!(
                    "{}: the engine saw a protocol error: {why}",
                    self.devices[device].name
                )
            }
            Err(branchline_core::sync::SessionError::Store(e)) => {
                bail!("{}: the store failed: {e}", self.devices[device].name)
            }
            Err(e) => bail!("{}: the session ended: {e}", self.devices[device].name),
        }
        Ok(())
    }

    /// Tells the device's live session about a local edit, as the transport's
    /// change listener does.
    fn local_change(&mut self, device: usize, doc: DocId) -> Result<()> {
        self.stats.edits += 1;
        let Some(conn) = self.devices[device].conn else {
            return Ok(());
        };
        let Some(c) = self.conns.get_mut(&conn) else {
            return Ok(());
        };
        let store = self.devices[device]
            .store
            .as_mut()
            .expect("a connected device has its store");
        let out = c.session.local_change(store, doc)?;
        self.route(conn, out);
        Ok(())
    }

    fn crash_device(&mut self, device: usize) {
        if let Some(conn) = self.devices[device].conn {
            let ghost = self.rng.random_bool(0.5);
            self.cut(conn, ghost);
        }
        self.devices[device].store = None;
        self.devices[device].offline_until = self.now + self.rng.random_range(10..2_000);
        self.stats.device_crashes += 1;
    }

    // --- the workload ----------------------------------------------------------------

    fn seeded_id(&mut self) -> DocId {
        let mut bytes: [u8; 16] = self.rng.random();
        bytes[6] = (bytes[6] & 0x0f) | 0x40;
        bytes[8] = (bytes[8] & 0x3f) | 0x80;
        DocId::from_bytes(bytes)
    }

    /// One random edit the device's role allows; returns the document it
    /// changed, if the edit went through.
    fn edit(&mut self, device: usize) -> Result<Option<DocId>> {
        let other_branch = match self.devices[device].branch {
            b if b == self.branches.a => Some(self.branches.b),
            b if b == self.branches.b => Some(self.branches.a),
            _ => None,
        };
        let choice = self.rng.random_range(0..100u32);
        let new_id = self.seeded_id();
        let pick: u64 = self.rng.random();
        let node = &mut self.devices[device];
        let Some(store) = node.store.as_mut() else {
            return Ok(None);
        };
        let branch = node.branch;
        let committee = matches!(node.role, Role::Secretary | Role::Committee);
        let activities = store.list_activities(branch, &ActivityFilter::default())?;
        let members = store.list_members(branch, &MemberFilter::default())?;
        let some_activity = (!activities.is_empty())
            .then(|| activities[(pick % activities.len() as u64) as usize].id);
        let some_member =
            (!members.is_empty()).then(|| members[(pick % members.len() as u64) as usize].id);
        let done = match choice {
            0..25 if committee => {
                let mut activity = Activity::new(branch, meeting(pick))?;
                activity.meta.id = new_id;
                Some(store.create(&activity)?)
            }
            0..45 => match some_activity {
                Some(id) if committee => store
                    .write_minutes(id, &format!("Minutes, draft {pick}"))
                    .ok()
                    .map(|()| id),
                _ => None,
            },
            45..65 => match (some_activity, some_member, node.member) {
                (Some(id), _, Some(me)) if !committee => {
                    store.sign_in(id, me, SignInMode::OnSite).ok().map(|()| id)
                }
                (Some(id), Some(member), _) if committee => {
                    let mode = if pick.is_multiple_of(2) {
                        SignInMode::OnSite
                    } else {
                        SignInMode::Remote
                    };
                    store.sign_in(id, member, mode).ok().map(|()| id)
                }
                _ => None,
            },
            65..75 if committee => match (some_activity, some_member) {
                (Some(id), Some(member)) => store
                    .award_points(id, member, (pick % 5) as i64 + 1)
                    .ok()
                    .map(|()| id),
                _ => None,
            },
            75..82 if committee => match (some_activity, other_branch) {
                (Some(id), Some(partner)) => {
                    let own = store
                        .get::<Activity>(id)
                        .is_ok_and(|a| a.meta.branch == branch);
                    if own {
                        store.share_activity(id, partner).ok().map(|()| id)
                    } else {
                        None
                    }
                }
                _ => None,
            },
            82..90 if committee && branch != self.branches.town => {
                store.add_member(branch, new_member(pick as usize))?;
                Some(store.branch_document(branch, branchline_core::model::DocKind::Roster)?)
            }
            90..100 if branch != self.branches.town => {
                let new = NewPetition {
                    category: "roads".to_owned(),
                    title: format!("Pothole {pick}"),
                    description: "Deep enough to lose a bicycle in.".to_owned(),
                    location: Some("Main street".to_owned()),
                    submitter: Submitter {
                        name: Some(node.name.clone()),
                        contact: None,
                        member: node.member,
                    },
                };
                let mut petition = Petition::submit(branch, new, store.now())?;
                petition.meta.id = new_id;
                Some(store.create(&petition)?)
            }
            _ => None,
        };
        Ok(done)
    }

    // --- running ---------------------------------------------------------------------

    /// One random step of the faulty phase.
    fn step(&mut self) -> Result<()> {
        let roll = self.rng.random_range(0..1000u32);
        let device = self.rng.random_range(0..self.devices.len());
        match roll {
            0..600 => {
                if !self.deliver_next()? {
                    self.now += 10;
                }
            }
            600..800 => {
                if let Some(doc) = self.edit(device)? {
                    self.local_change(device, doc)?;
                }
            }
            800..900 => {
                self.now += self.rng.random_range(1..50);
                self.connect(device)?;
            }
            900..950 => {
                if let Some(conn) = self.devices[device].conn {
                    let ghost = self.rng.random_bool(0.5);
                    self.cut(conn, ghost);
                    self.stats.cuts += 1;
                }
            }
            950..975 => {
                if let Some(conn) = self.devices[device].conn {
                    self.cut(conn, false);
                }
                self.devices[device].offline_until = self.now + self.rng.random_range(500..20_000);
                self.stats.partitions += 1;
            }
            975..988 => {
                if self.server.is_some() {
                    self.crash_server();
                }
            }
            _ => self.crash_device(device),
        }
        Ok(())
    }

    /// Delivers until nothing is in flight, with no faults.
    fn settle(&mut self) -> Result<()> {
        for round in 0.. {
            ensure!(round < 200_000, "the network never went quiet");
            if !self.deliver_next()? {
                break;
            }
        }
        Ok(())
    }

    /// Faults stop; every device comes back and syncs.
    fn heal(&mut self) -> Result<()> {
        self.faults = false;
        self.now = self.now.max(self.server_down_until);
        self.restart_server()?;
        for device in 0..self.devices.len() {
            self.devices[device].offline_until = 0;
            self.connect(device)?;
        }
        self.settle()?;
        for node in &self.devices {
            let conn = node
                .conn
                .with_context(|| format!("{} lost its connection while healing", node.name))?;
            let c = &self.conns[&conn];
            ensure!(
                c.session.is_in_sync(),
                "{} is not in sync after the network went quiet: {:?}",
                node.name,
                c.session
            );
        }
        Ok(())
    }

    /// Every device closes its connection and opens a new one; the network
    /// drains.
    fn reconnect_all(&mut self) -> Result<()> {
        for device in 0..self.devices.len() {
            if let Some(conn) = self.devices[device].conn {
                self.cut(conn, false);
            }
            self.connect(device)?;
        }
        self.heal()
    }

    /// Documents a device still counts as unacknowledged although the
    /// server holds them at the device's heads: a session that ended with
    /// nothing to exchange, after the change reached the server on an
    /// earlier connection whose `Ack` was lost. Not a loss (the server has
    /// it), but the device only learns it at its next session.
    fn count_late_acknowledgements(&mut self) -> Result<()> {
        for node in &self.devices {
            let store = node.store.as_ref().context("open")?;
            for doc in store.unacknowledged()? {
                let ours = store.heads(doc)?.unwrap_or_default();
                let bytes = self.admin.document_bytes(doc)?.with_context(|| {
                    format!(
                        "{}: unacknowledged {doc} never reached the server",
                        node.name
                    )
                })?;
                let mut on_server = automerge::AutoCommit::load(&bytes)?;
                for head in &ours {
                    ensure!(
                        on_server.get_change_by_hash(head).is_some(),
                        "{}: change {head} of {doc} is on the device only, yet the session is in sync",
                        node.name
                    );
                }
                self.stats.late_acks += 1;
            }
        }
        Ok(())
    }

    // --- checks ----------------------------------------------------------------------

    /// Every acknowledged change is on the server's disk.
    fn check_acknowledged(&self) -> Result<()> {
        let mut stored: HashMap<DocId, automerge::AutoCommit> = HashMap::new();
        let mut held = |doc: DocId| -> Result<Option<automerge::AutoCommit>> {
            if let Some(d) = stored.get(&doc) {
                return Ok(Some(d.clone()));
            }
            let Some(bytes) = self.admin.document_bytes(doc)? else {
                return Ok(None);
            };
            let d = automerge::AutoCommit::load(&bytes)?;
            stored.insert(doc, d.clone());
            Ok(Some(d))
        };
        for (device, doc, heads) in &self.acks {
            let Some(mut on_server) = held(*doc)? else {
                bail!(
                    "{doc}, acknowledged to {}, is gone",
                    self.devices[*device].name
                );
            };
            for head in heads {
                ensure!(
                    on_server.get_change_by_hash(head).is_some(),
                    "change {head} of {doc}, acknowledged to {}, is lost",
                    self.devices[*device].name
                );
            }
        }
        // A document a device counts as acknowledged is on the server at its heads.
        for node in &self.devices {
            let Some(store) = &node.store else { continue };
            for summary in store.documents()? {
                if summary.unacked_changes > 0 {
                    continue;
                }
                let Some(mut on_server) = held(summary.id)? else {
                    bail!(
                        "{} counts {} as acknowledged; the server lacks it",
                        node.name,
                        summary.id
                    );
                };
                for head in &summary.heads {
                    ensure!(
                        on_server.get_change_by_hash(head).is_some(),
                        "{} counts {} as acknowledged; the server lacks change {head}",
                        node.name,
                        summary.id
                    );
                }
            }
        }
        Ok(())
    }

    /// Convergence, scope, queries, nothing unacknowledged.
    fn check_converged(&mut self) -> Result<()> {
        self.check_acknowledged()?;
        let server = self.server.as_ref().context("the server is up")?;
        let mut views: Vec<(
            usize,
            Vec<(branchline_protocol::DocId, branchline_protocol::Heads)>,
        )> = Vec::new();
        for (i, node) in self.devices.iter().enumerate() {
            let c = &self.conns[&node.conn.context("connected")?];
            let peer = c.peer.as_ref().context("welcomed")?;
            let readable: Vec<_> = server
                .readable(peer)
                .iter()
                .map(|e| (e.doc_id, e.heads.clone()))
                .collect();
            let store = node.store.as_ref().context("open")?;
            let held: Vec<_> = store
                .manifest()?
                .iter()
                .map(|e| (e.doc_id, e.heads.clone()))
                .collect();
            let readable_ids: HashSet<_> = readable.iter().map(|(id, _)| *id).collect();
            if let Some((outside, _)) = held.iter().find(|(id, _)| !readable_ids.contains(id)) {
                bail!("{} holds {outside}, which it may not read", node.name);
            }
            if held != readable {
                let differ = readable
                    .iter()
                    .filter(|r| !held.contains(r))
                    .map(|(id, _)| id.to_string())
                    .collect::<Vec<_>>();
                bail!(
                    "{} did not converge: holds {} documents, may read {}; differing: {differ:?}",
                    node.name,
                    held.len(),
                    readable.len()
                );
            }
            let unacked = store.unacknowledged()?;
            ensure!(
                unacked.is_empty(),
                "{} still has unacknowledged changes in {unacked:?}",
                node.name
            );
            views.push((i, readable));
        }
        // Same documents, same answers.
        let today = branchline_core::model::Date::ymd(2026, 6, 1).context("a date")?;
        let answers = |store: &Store| -> Result<String> {
            let mut out = String::new();
            for branch in [self.branches.a, self.branches.b, self.branches.town] {
                out += &format!(
                    "{:?}",
                    store.list_activities(branch, &ActivityFilter::default())?
                );
                out += &format!(
                    "{:?}",
                    store.list_members(branch, &MemberFilter::default())?
                );
                out += &format!(
                    "{:?}",
                    store.list_petitions(branch, &PetitionFilter::default(), today)?
                );
            }
            Ok(out)
        };
        for (i, view) in &views {
            for (j, other) in &views {
                if i < j && view == other {
                    let a = answers(self.devices[*i].store.as_ref().context("open")?)?;
                    let b = answers(self.devices[*j].store.as_ref().context("open")?)?;
                    ensure!(
                        a == b,
                        "{} and {} hold the same documents but answer queries differently",
                        self.devices[*i].name,
                        self.devices[*j].name
                    );
                }
            }
        }
        self.stats.docs = self.admin.document_ids()?.len();
        Ok(())
    }
}

impl DeviceNode {
    fn branch_roster_id(&self) -> Result<DocId> {
        let store = self.store.as_ref().context("open")?;
        Ok(store.branch_document(self.branch, branchline_core::model::DocKind::Roster)?)
    }
}

/// The server core over the SQLite database in `data_dir`.
fn open_server(data_dir: &Path) -> Result<ServerCore> {
    let settings = CoreSettings::new("127.0.0.1:4433".into(), [0; 32]);
    Ok(ServerCore::open_sqlite(data_dir, settings)?)
}

fn push_answer(
    replies: &mut Vec<(StreamKey, Message)>,
    finish: &mut Vec<StreamKey>,
    key: StreamKey,
    answer: Answer,
) {
    replies.extend(answer.messages.into_iter().map(|m| (key, m)));
    if answer.end {
        finish.push(key);
    }
}

fn meeting(n: u64) -> NewActivity {
    NewActivity {
        kind: "branch_meeting".to_owned(),
        title: format!("Meeting {n}"),
        starts_at: "2026-03-10T19:00".parse().ok(),
        ends_at: "2026-03-10T21:00".parse().ok(),
        ..NewActivity::default()
    }
}

fn new_member(n: usize) -> NewMember {
    NewMember {
        name: format!("Member {n}"),
        ..NewMember::default()
    }
}

/// A directory for one seed, in memory where the machine has `/dev/shm`
/// (fsync there is free; the crash model does not depend on it).
fn seed_dir() -> Result<tempfile::TempDir> {
    let shm = Path::new("/dev/shm");
    Ok(if shm.is_dir() {
        tempfile::tempdir_in(shm)?
    } else {
        tempfile::tempdir()?
    })
}

fn run_seed(seed: u64) -> Result<SeedStats> {
    let dir = seed_dir()?;
    let mut world = World::new(seed, dir.path()).context("setting up")?;
    world.faults = true;
    for _ in 0..STEPS {
        world.step()?;
    }
    world.heal()?;
    world.count_late_acknowledgements()?;
    // The next session acknowledges what the last one left marked.
    world.reconnect_all()?;
    world.check_converged()?;
    Ok(world.stats)
}

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.trim().parse().ok())
}

#[test]
fn random_faults_never_lose_acknowledged_changes_and_replicas_converge() {
    branchline_tests::init_tracing();
    let seeds: Vec<u64> = match env_u64("BRANCHLINE_SIM_SEED") {
        Some(seed) => vec![seed],
        None => {
            let first = env_u64("BRANCHLINE_SIM_FIRST_SEED").unwrap_or(0);
            let count = env_u64("BRANCHLINE_SIM_SEEDS").unwrap_or(CI_SEEDS);
            (first..first + count).collect()
        }
    };
    let started = Instant::now();
    let mut total = SeedStats::default();
    let mut failures = Vec::new();
    for &seed in &seeds {
        let outcome = std::panic::catch_unwind(|| run_seed(seed));
        let outcome = match outcome {
            Ok(outcome) => outcome,
            Err(panic) => Err(anyhow::anyhow!(
                "panicked: {}",
                panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                    .unwrap_or_default()
            )),
        };
        match outcome {
            Ok(stats) => {
                total.edits += stats.edits;
                total.delivered += stats.delivered;
                total.cuts += stats.cuts;
                total.partitions += stats.partitions;
                total.server_crashes += stats.server_crashes;
                total.device_crashes += stats.device_crashes;
                total.acks += stats.acks;
                total.late_acks += stats.late_acks;
                total.docs += stats.docs;
            }
            Err(e) => {
                eprintln!(
                    "seed {seed} FAILED: {e:#}\n  replay: BRANCHLINE_SIM_SEED={seed} cargo test -p branchline-tests --test simulation -- --nocapture"
                );
                failures.push(seed);
            }
        }
    }
    let passed = seeds.len() - failures.len();
    println!(
        "simulation: {passed}/{} seeds converged in {:.1?}; {} edits, {} messages, {} acks, {} connection cuts, {} partitions, {} server crashes, {} device crashes, {} documents at the end; {} in-sync documents still marked unacknowledged until the next session",
        seeds.len(),
        started.elapsed(),
        total.edits,
        total.delivered,
        total.acks,
        total.cuts,
        total.partitions,
        total.server_crashes,
        total.device_crashes,
        total.docs,
        total.late_acks
    );
    assert!(failures.is_empty(), "seeds failed: {failures:?}");
}
