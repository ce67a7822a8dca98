//! How a server is set up: where it keeps its data, where it listens, and the
//! limits that bound what one connection can make it do.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Residents one submission code registers per hour, by default: enough
/// for a queue at a community event, too few for a script to flood a branch.
pub(crate) const DEFAULT_RESIDENTS_PER_HOUR: u32 = 30;
/// Petitions (and, separately, suggestions) one device may submit in 24
/// hours, by default.
pub(crate) const DEFAULT_SUBMISSIONS_PER_DAY: u32 = 10;

/// Everything [`crate::Server::start`] needs.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// The data directory: database, certificate and key live here.
    pub data_dir: PathBuf,
    /// The UDP address to listen on (port 0 picks a free port).
    pub listen: SocketAddr,
    /// The `host:port` devices reach the server at, written into invite
    /// links; defaults to the listen address (with `localhost` for an
    /// unspecified IP).
    pub public_addr: Option<String>,
    /// Connections beyond this many are refused.
    pub max_connections: usize,
    /// A loaded document unused this long is unloaded from memory.
    pub idle_unload: Duration,
    /// At most this many documents stay loaded; the least recently used
    /// idle ones are unloaded first.
    pub max_loaded_docs: usize,
    /// Check every incoming change against the sender's role (the rule
    /// tables of [`crate::rules`]). Always on in service; turned off only by
    /// benchmarks that measure what the check costs.
    pub validate_changes: bool,
    /// Residents a branch's public submission code may register per hour.
    pub resident_registrations_per_hour: u32,
    /// Petitions or suggestions one device may submit per day.
    pub submissions_per_device_per_day: u32,
}

impl ServerConfig {
    /// A configuration with the default limits.
    pub fn new(data_dir: PathBuf, listen: SocketAddr) -> Self {
        ServerConfig {
            data_dir,
            listen,
            public_addr: None,
            max_connections: 1_000,
            idle_unload: Duration::from_secs(300),
            max_loaded_docs: 1_000,
            validate_changes: true,
            resident_registrations_per_hour: DEFAULT_RESIDENTS_PER_HOUR,
            submissions_per_device_per_day: DEFAULT_SUBMISSIONS_PER_DAY,
        }
    }
}

/// Protocol and transport limits, in one place.
///
/// Worst-case memory for one connection is about
/// `MAX_DOC_STREAMS × MAX_DOC_FRAME` (a frame is buffered whole before it
/// is decoded) plus QUIC's own receive window: 16 × 16 MiB = 256 MiB for a
/// hostile client that fills every stream at once. Honest clients send
/// frames of kilobytes. Together with `max_connections` this is the knob to
/// turn on a small machine.
pub(crate) mod limits {
    use std::time::Duration;

    /// A stream's first message must arrive within this time (design).
    pub const FIRST_MESSAGE: Duration = Duration::from_secs(10);
    /// The control stream must be opened within this time of the handshake.
    pub const CONTROL_STREAM_OPEN: Duration = Duration::from_secs(10);
    /// A document or request stream idle this long between messages is ended.
    pub const STREAM_IDLE: Duration = Duration::from_secs(60);
    /// QUIC idle timeout; clients send keep-alives every 15 s.
    pub const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
    /// Concurrent bidirectional streams a client may have open.
    pub const MAX_STREAMS: u32 = 17;
    /// Largest frame on a document stream (a whole automerge sync message).
    pub const MAX_DOC_FRAME: usize = branchline_protocol::MAX_FRAME_LEN;
    /// Largest frame on the control stream (manifest ranges are small).
    pub const MAX_CONTROL_FRAME: usize = 1024 * 1024;
    /// How long shutdown waits for in-flight streams before closing anyway.
    pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);
    /// How long a refused Hello waits for its Error to reach the client.
    pub const ERROR_FLUSH: Duration = Duration::from_secs(2);
    /// Above this share of `max_connections` (in percent), new clients must
    /// prove their address with a stateless retry first.
    pub const RETRY_THRESHOLD_PERCENT: usize = 80;
    /// The longest an invite made over the network may stay valid.
    pub const MAX_INVITE_VALIDITY: Duration = Duration::from_secs(30 * 24 * 3600);
    /// Longest device name kept, in characters.
    pub const MAX_DEVICE_NAME: usize = 100;
    /// Longest automerge actor id accepted at enrollment, in bytes.
    pub const MAX_ACTOR_ID: usize = 64;
    /// Capacity of the change broadcast; a connection that falls further
    /// behind catches up from the catalog instead.
    pub const BROADCAST_CAPACITY: usize = 4096;
    /// How often the server looks for revocations, new branches and
    /// documents written by the admin CLI, and unloads idle documents.
    pub const POLL_INTERVAL: Duration = Duration::from_secs(1);
}
