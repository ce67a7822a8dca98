//! What the QUIC-level server tests share: a server on 127.0.0.1 with one
//! branch, a TLS 1.3 client that trusts its certificate, frame reading, and
//! one document sync driven by hand as the design describes.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use automerge::AutoCommit;
use automerge::sync::{self, SyncDoc as _};
use branchline_core::model::Level;
use branchline_protocol::{BranchId, Credentials, DeviceId, DocId, FrameCodec, Heads, Message};
use branchline_server::{RunningServer, Server, ServerConfig};
use futures_util::{SinkExt as _, StreamExt as _};
use quinn::{RecvStream, SendStream};
use tokio_util::codec::{FramedRead, FramedWrite};

/// How long any one answer may take.
pub const WAIT: Duration = Duration::from_secs(10);

/// Frames in.
pub type Reader = FramedRead<RecvStream, FrameCodec>;
/// Frames out.
pub type Writer = FramedWrite<SendStream, FrameCodec>;

/// A running server with one branch.
pub struct Harness {
    /// Its data directory, removed when the harness is dropped.
    pub _dir: tempfile::TempDir,
    /// The server.
    pub server: RunningServer,
    cert: rustls::pki_types::CertificateDer<'static>,
    /// Its one branch.
    pub branch: BranchId,
}

/// Starts a server that takes up to `max_connections`, with one branch.
pub async fn start_with(max_connections: usize) -> Harness {
    let dir = tempfile::tempdir().unwrap();
    let mut config = ServerConfig::new(dir.path().to_path_buf(), "127.0.0.1:0".parse().unwrap());
    config.max_connections = max_connections;
    let server = Server::start(config).await.unwrap();
    let branch = server
        .admin()
        .add_branch("城南社区支部", Level::Branch, None)
        .unwrap()
        .into();
    use rustls::pki_types::pem::PemObject as _;
    let cert =
        rustls::pki_types::CertificateDer::from_pem_file(dir.path().join("tls/cert.pem")).unwrap();
    Harness {
        _dir: dir,
        server,
        cert,
        branch,
    }
}

impl Harness {
    /// A client endpoint trusting the server's certificate, offering `alpn`.
    pub fn client(&self, alpn: &[u8]) -> quinn::Endpoint {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.cert.clone()).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        tls.alpn_protocols = vec![alpn.to_vec()];
        let crypto = quinn::crypto::rustls::QuicClientConfig::try_from(tls).unwrap();
        let mut client =
            quinn::Endpoint::client("127.0.0.1:0".parse::<SocketAddr>().unwrap()).unwrap();
        client.set_default_client_config(quinn::ClientConfig::new(Arc::new(crypto)));
        client
    }

    /// Connects from `client`; the error as text.
    pub async fn connect_from(
        &self,
        client: &quinn::Endpoint,
    ) -> Result<quinn::Connection, String> {
        let connecting = client
            .connect(self.server.local_addr(), "localhost")
            .map_err(|e| e.to_string())?;
        tokio::time::timeout(WAIT, connecting)
            .await
            .map_err(|_| "timeout".to_owned())?
            .map_err(|e| e.to_string())
    }
}

/// Enrollment credentials with `code` and a fresh actor id.
pub fn enroll(code: &str) -> Credentials {
    Credentials::Enroll {
        invite_code: code.to_owned(),
        device_name: "老王的手机".to_owned(),
        actor_id: DeviceId::new_random().as_bytes().to_vec(),
    }
}

/// The next message, within [`WAIT`].
pub async fn recv(reader: &mut Reader) -> Message {
    tokio::time::timeout(WAIT, reader.next())
        .await
        .expect("a message in time")
        .expect("the stream is open")
        .expect("a well-formed frame")
}

/// Syncs `doc` over one new document stream of `conn` as the design
/// describes; returns the heads the server acknowledged, or the `Error` or
/// `Rejected` it ended with.
pub async fn sync_doc(
    conn: &quinn::Connection,
    doc_id: DocId,
    doc: &mut AutoCommit,
) -> Result<Option<Heads>, Message> {
    let (send, receive) = conn.open_bi().await.unwrap();
    let mut writer = FramedWrite::new(send, FrameCodec::new());
    let mut reader = FramedRead::new(receive, FrameCodec::new());
    let mut state = sync::State::new();
    let mut acked = None;
    let mut payload = doc
        .sync()
        .generate_sync_message(&mut state)
        .map(sync::Message::encode)
        .unwrap_or_default();
    loop {
        writer
            .send(Message::SyncDoc {
                doc_id,
                payload: payload.clone(),
            })
            .await
            .unwrap();
        let reply = loop {
            match recv(&mut reader).await {
                Message::Ack { doc_id: d, heads } => {
                    assert_eq!(d, doc_id);
                    acked = Some(heads);
                }
                Message::SyncDoc { payload, .. } => break payload,
                end @ (Message::Error { .. } | Message::Rejected { .. }) => return Err(end),
                other => panic!("unexpected {other:?}"),
            }
        };
        if !reply.is_empty() {
            doc.sync()
                .receive_sync_message(&mut state, sync::Message::decode(&reply).unwrap())
                .unwrap();
        }
        match doc.sync().generate_sync_message(&mut state) {
            Some(next) => payload = next.encode(),
            None if reply.is_empty() => break,
            None => payload = Vec::new(),
        }
    }
    writer.get_mut().finish().unwrap();
    Ok(acked)
}
