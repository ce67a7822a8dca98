//! A UDP impairment proxy: sits between one client and the server on
//! 127.0.0.1 and makes the path look like a rural mobile link.
//!
//! The kernels these tests run on have no `netem`, so the impairment is done
//! here, in user space, on every datagram (this is what runs in CI and in
//! the benchmark). Each direction is a link with its own rate:
//!
//! - **rate limit**: a serializing link (a token bucket with a one-packet
//!   burst): a datagram leaves when the previous one has been clocked out at
//!   the link rate; a queue longer than [`Profile::queue`] drops at its tail,
//!   as a modem's buffer does;
//! - **delay with jitter**: one-way delay drawn uniformly from
//!   `delay ± jitter`, per datagram, so jitter also reorders;
//! - **reordering**: some datagrams are held back an extra delay;
//! - **loss**: uniform, or bursty with the Gilbert–Elliott two-state model
//!   (a good and a bad state, each with its own loss rate);
//! - **duplication**: some datagrams are delivered twice;
//! - **blackouts**: nothing passes, either on a schedule or on demand;
//! - **address change**: [`Proxy::change_address`] moves the proxy's
//!   outward socket to a new port, so the server sees the client's packets
//!   come from a new address, as after a phone's switch from one network to
//!   another; QUIC treats it as a migration.
//!
//! The random choices come from a seeded generator. Counters record the
//! bytes each side sent (what the link had to carry, retransmissions
//! included) and what was dropped.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::{RngExt as _, SeedableRng as _};
use rand_chacha::ChaCha8Rng;
use tokio::net::UdpSocket;
use tokio::sync::watch;
use tokio::time::Instant;

/// How datagrams get lost.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Loss {
    /// Each datagram independently, with this probability.
    Uniform(f64),
    /// Gilbert–Elliott: a two-state chain moved once per datagram.
    Bursty {
        /// Probability of going from the good to the bad state.
        to_bad: f64,
        /// Probability of going from the bad to the good state.
        to_good: f64,
        /// Loss probability in the good state.
        loss_good: f64,
        /// Loss probability in the bad state.
        loss_bad: f64,
    },
}

impl Loss {
    /// The long-run loss rate.
    pub fn mean(&self) -> f64 {
        match *self {
            Loss::Uniform(p) => p,
            Loss::Bursty {
                to_bad,
                to_good,
                loss_good,
                loss_bad,
            } => {
                let bad = to_bad / (to_bad + to_good);
                bad * loss_bad + (1.0 - bad) * loss_good
            }
        }
    }
}

/// A network profile: one link each way.
#[derive(Debug, Clone)]
pub struct Profile {
    /// A name for reports.
    pub name: &'static str,
    /// Client → server rate, bits per second.
    pub up_bps: u64,
    /// Server → client rate, bits per second.
    pub down_bps: u64,
    /// One-way delay (half the round trip).
    pub delay: Duration,
    /// The one-way delay varies uniformly by this much either way.
    pub jitter: Duration,
    /// Loss model, the same both ways.
    pub loss: Loss,
    /// Probability a datagram is delivered twice.
    pub duplicate: f64,
    /// Probability a datagram is held back an extra `delay / 2`.
    pub reorder: f64,
    /// The longest queue a link holds, in time to drain it.
    pub queue: Duration,
    /// Scheduled blackouts: `(every, lasting)`.
    pub blackouts: Option<(Duration, Duration)>,
}

impl Profile {
    /// A perfect link: no delay, no loss, no limit.
    pub fn clear() -> Profile {
        Profile {
            name: "loopback",
            up_bps: 0,
            down_bps: 0,
            delay: Duration::ZERO,
            jitter: Duration::ZERO,
            loss: Loss::Uniform(0.0),
            duplicate: 0.0,
            reorder: 0.0,
            queue: Duration::from_secs(10),
            blackouts: None,
        }
    }

    /// GPRS: 80 kb/s down, 20 kb/s up, 650 ms ± 100 ms round trip, 1 % loss.
    pub fn gprs() -> Profile {
        Profile {
            name: "GPRS",
            up_bps: 20_000,
            down_bps: 80_000,
            delay: Duration::from_millis(325),
            jitter: Duration::from_millis(50),
            loss: Loss::Uniform(0.01),
            duplicate: 0.001,
            reorder: 0.005,
            queue: Duration::from_secs(4),
            blackouts: None,
        }
    }

    /// EDGE: 200 kb/s down, 260 kb/s up (as specified), 650 ms round trip, 1 % loss.
    pub fn edge() -> Profile {
        Profile {
            name: "EDGE",
            up_bps: 260_000,
            down_bps: 200_000,
            delay: Duration::from_millis(325),
            jitter: Duration::from_millis(10),
            loss: Loss::Uniform(0.01),
            duplicate: 0.001,
            reorder: 0.005,
            queue: Duration::from_secs(3),
            blackouts: None,
        }
    }

    /// 3G: 1.2 Mb/s both ways, 250 ms round trip, 0.5 % loss.
    pub fn umts() -> Profile {
        Profile {
            name: "3G",
            up_bps: 1_200_000,
            down_bps: 1_200_000,
            delay: Duration::from_millis(125),
            jitter: Duration::from_millis(10),
            loss: Loss::Uniform(0.005),
            duplicate: 0.001,
            reorder: 0.005,
            queue: Duration::from_secs(2),
            blackouts: None,
        }
    }

    /// Flaky: EDGE rates and delay, bursty loss averaging 5 %, and a 10 s
    /// blackout every `every`.
    pub fn flaky(every: Duration) -> Profile {
        Profile {
            name: "flaky",
            loss: Loss::Bursty {
                to_bad: 0.02,
                to_good: 0.25,
                loss_good: 0.01,
                loss_bad: 0.55,
            },
            duplicate: 0.005,
            reorder: 0.02,
            blackouts: Some((every, Duration::from_secs(10))),
            ..Profile::edge()
        }
    }

    /// The round trip time without jitter or queueing.
    pub fn rtt(&self) -> Duration {
        self.delay * 2
    }
}

/// What crossed the proxy.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    /// Bytes the client sent (client → server), dropped ones included.
    pub up_bytes: u64,
    /// Bytes the server sent (server → client), dropped ones included.
    pub down_bytes: u64,
    /// Datagrams sent each way, summed.
    pub datagrams: u64,
    /// Datagrams dropped (loss, blackout, full queue).
    pub dropped: u64,
    /// Datagrams delivered twice.
    pub duplicated: u64,
}

#[derive(Default)]
struct Shared {
    up_bytes: AtomicU64,
    down_bytes: AtomicU64,
    datagrams: AtomicU64,
    dropped: AtomicU64,
    duplicated: AtomicU64,
    blackout: AtomicBool,
}

/// One direction's link state.
struct Link {
    bps: u64,
    free_at: Instant,
    bad: bool,
}

/// The impairment decisions for both directions.
struct Impairment {
    profile: Profile,
    rng: ChaCha8Rng,
    up: Link,
    down: Link,
    started: Instant,
}

impl Impairment {
    /// When the datagram arrives at the other side (one or two copies), or
    /// nothing if it is lost.
    fn schedule(&mut self, up: bool, len: usize, blackout: bool) -> Vec<Instant> {
        let now = Instant::now();
        if blackout || self.scheduled_blackout(now) {
            return Vec::new();
        }
        let profile = &self.profile;
        let link = if up { &mut self.up } else { &mut self.down };
        let lost = match profile.loss {
            Loss::Uniform(p) => self.rng.random_bool(p),
            Loss::Bursty {
                to_bad,
                to_good,
                loss_good,
                loss_bad,
            } => {
                let flip = if link.bad { to_good } else { to_bad };
                if self.rng.random_bool(flip) {
                    link.bad = !link.bad;
                }
                self.rng
                    .random_bool(if link.bad { loss_bad } else { loss_good })
            }
        };
        // A lost datagram still took its time on the sender's link.
        let start = link.free_at.max(now);
        if start.duration_since(now) > profile.queue {
            return Vec::new();
        }
        let on_wire = if link.bps == 0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64((len as f64 + 28.0) * 8.0 / link.bps as f64)
        };
        link.free_at = start + on_wire;
        if lost {
            return Vec::new();
        }
        let jitter = profile.jitter.as_secs_f64();
        let mut one_way = profile.delay.as_secs_f64();
        if jitter > 0.0 {
            one_way += self.rng.random_range(-jitter..jitter);
        }
        if self.rng.random_bool(profile.reorder) {
            one_way += profile.delay.as_secs_f64() / 2.0;
        }
        let arrive = link.free_at + Duration::from_secs_f64(one_way.max(0.0));
        if self.rng.random_bool(profile.duplicate) {
            vec![
                arrive,
                arrive + Duration::from_millis(self.rng.random_range(1..30)),
            ]
        } else {
            vec![arrive]
        }
    }

    fn scheduled_blackout(&self, now: Instant) -> bool {
        let Some((every, lasting)) = self.profile.blackouts else {
            return false;
        };
        let since = now.duration_since(self.started).as_secs_f64();
        let phase = since % every.as_secs_f64();
        // The first blackout comes after one full period.
        since >= every.as_secs_f64() && phase < lasting.as_secs_f64()
    }
}

/// A running proxy for one client; stops when dropped.
pub struct Proxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
    impairment: Arc<Mutex<Impairment>>,
    rebind: watch::Sender<u64>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Proxy {
    /// Starts a proxy in front of `server`; clients connect to
    /// [`Proxy::addr`].
    pub async fn start(server: SocketAddr, profile: Profile, seed: u64) -> std::io::Result<Proxy> {
        let inside = Arc::new(UdpSocket::bind("127.0.0.1:0").await?);
        let addr = inside.local_addr()?;
        let shared = Arc::new(Shared::default());
        let now = Instant::now();
        let impairment = Arc::new(Mutex::new(Impairment {
            up: Link {
                bps: profile.up_bps,
                free_at: now,
                bad: false,
            },
            down: Link {
                bps: profile.down_bps,
                free_at: now,
                bad: false,
            },
            profile,
            rng: ChaCha8Rng::seed_from_u64(seed),
            started: now,
        }));
        let (rebind, rebinds) = watch::channel(0u64);
        let client: Arc<Mutex<Option<SocketAddr>>> = Arc::default();
        let outside: Arc<Mutex<Arc<UdpSocket>>> =
            Arc::new(Mutex::new(Arc::new(UdpSocket::bind("127.0.0.1:0").await?)));
        let up = tokio::spawn(pump_up(
            inside.clone(),
            outside.clone(),
            server,
            client.clone(),
            impairment.clone(),
            shared.clone(),
        ));
        let down = tokio::spawn(pump_down(
            inside,
            outside,
            rebinds,
            client,
            impairment.clone(),
            shared.clone(),
        ));
        Ok(Proxy {
            addr,
            shared,
            impairment,
            rebind,
            tasks: vec![up, down],
        })
    }

    /// Where clients send their datagrams.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Bytes and datagrams so far.
    pub fn counters(&self) -> Counters {
        let s = &self.shared;
        Counters {
            up_bytes: s.up_bytes.load(Ordering::Relaxed),
            down_bytes: s.down_bytes.load(Ordering::Relaxed),
            datagrams: s.datagrams.load(Ordering::Relaxed),
            dropped: s.dropped.load(Ordering::Relaxed),
            duplicated: s.duplicated.load(Ordering::Relaxed),
        }
    }

    /// Switches to another profile from the next datagram on (queues
    /// drain at the new rates; scheduled blackouts count from now).
    pub fn set_profile(&self, profile: Profile) {
        let mut impairment = self.impairment.lock().expect("impairment lock");
        let now = Instant::now();
        impairment.up.bps = profile.up_bps;
        impairment.down.bps = profile.down_bps;
        impairment.started = now;
        impairment.profile = profile;
    }

    /// Starts or ends a blackout: nothing passes either way.
    pub fn set_blackout(&self, on: bool) {
        self.shared.blackout.store(on, Ordering::Relaxed);
    }

    /// Moves the outward socket to a new port: the server sees the client
    /// at a new address from the next datagram on.
    pub fn change_address(&self) {
        self.rebind.send_modify(|n| *n += 1);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// Sends `bytes` on `socket` to `to` at each of `times`.
fn deliver(socket: Arc<UdpSocket>, to: SocketAddr, bytes: Vec<u8>, times: Vec<Instant>) {
    for at in times {
        let socket = socket.clone();
        let bytes = bytes.clone();
        tokio::spawn(async move {
            tokio::time::sleep_until(at).await;
            let _ = socket.send_to(&bytes, to).await;
        });
    }
}

fn account(shared: &Shared, up: bool, len: usize, copies: usize) {
    let bytes = if up {
        &shared.up_bytes
    } else {
        &shared.down_bytes
    };
    bytes.fetch_add(len as u64, Ordering::Relaxed);
    shared.datagrams.fetch_add(1, Ordering::Relaxed);
    match copies {
        0 => {
            shared.dropped.fetch_add(1, Ordering::Relaxed);
        }
        1 => {}
        _ => {
            shared.duplicated.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Client → server.
async fn pump_up(
    inside: Arc<UdpSocket>,
    outside: Arc<Mutex<Arc<UdpSocket>>>,
    server: SocketAddr,
    client: Arc<Mutex<Option<SocketAddr>>>,
    impairment: Arc<Mutex<Impairment>>,
    shared: Arc<Shared>,
) {
    let mut buf = vec![0u8; 65_536];
    loop {
        let Ok((len, from)) = inside.recv_from(&mut buf).await else {
            return;
        };
        *client.lock().expect("client lock") = Some(from);
        let blackout = shared.blackout.load(Ordering::Relaxed);
        let times = impairment
            .lock()
            .expect("impairment lock")
            .schedule(true, len, blackout);
        account(&shared, true, len, times.len());
        let socket = outside.lock().expect("socket lock").clone();
        deliver(socket, server, buf[..len].to_vec(), times);
    }
}

/// Server → client, following the outward socket when it moves.
async fn pump_down(
    inside: Arc<UdpSocket>,
    outside: Arc<Mutex<Arc<UdpSocket>>>,
    mut rebinds: watch::Receiver<u64>,
    client: Arc<Mutex<Option<SocketAddr>>>,
    impairment: Arc<Mutex<Impairment>>,
    shared: Arc<Shared>,
) {
    let mut buf = vec![0u8; 65_536];
    loop {
        let socket = outside.lock().expect("socket lock").clone();
        tokio::select! {
            changed = rebinds.changed() => {
                if changed.is_err() {
                    return;
                }
                let Ok(fresh) = UdpSocket::bind("127.0.0.1:0").await else { return };
                *outside.lock().expect("socket lock") = Arc::new(fresh);
                // Datagrams the server still sends to the old address are lost,
                // as on a real network after the switch.
            }
            received = socket.recv_from(&mut buf) => {
                let Ok((len, _)) = received else { return };
                let Some(to) = *client.lock().expect("client lock") else { continue };
                let blackout = shared.blackout.load(Ordering::Relaxed);
                let times = impairment
                    .lock()
                    .expect("impairment lock")
                    .schedule(false, len, blackout);
                account(&shared, false, len, times.len());
                deliver(inside.clone(), to, buf[..len].to_vec(), times);
            }
        }
    }
}
