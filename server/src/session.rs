//! The QUIC driver of one device's connection over [`ServerCore`].
//!
//! Everything the server answers is decided by the core; this module only
//! moves frames between quinn streams and the core, runs each core call on
//! the blocking pool (the core waits on the store), keeps the clocks (the
//! time passed in, the limits on first messages and idle streams), and
//! registers the connection so a revocation closes it.
//!
//! Every failure a client can cause ends in an `Error` with a stable code on
//! the stream it concerns: a bad document stream ends that stream, a bad
//! control stream ends the connection. Nothing a client sends can end
//! another connection or the server.

use std::sync::Arc;
use std::time::Duration;

use branchline_protocol::{ErrorCode, FrameCodec, Message};
use futures_util::{SinkExt as _, StreamExt as _};
use quinn::{Connection, RecvStream, SendStream};
use tokio::task::JoinSet;
use tokio_util::codec::{FramedRead, FramedWrite};
use tokio_util::sync::CancellationToken;
use tracing::{Instrument as _, debug, info, warn};

use crate::config::limits;
use crate::db;
use crate::endpoint::{ServerState, close_code};
use crate::server_core::{Answer, Peer, ServerCore, Stream, decode_error, error};
use crate::store::NoticeEvent;

type Reader = FramedRead<RecvStream, FrameCodec>;
type Writer = FramedWrite<SendStream, FrameCodec>;

/// A write to the control stream that takes longer than this means the
/// client stopped reading; the connection is closed.
const CONTROL_WRITE_TIMEOUT: Duration = Duration::from_secs(30);

/// What ended the control loop.
enum End {
    /// The server is shutting down.
    Shutdown,
    /// The device was revoked.
    Revoked,
    /// The client broke the protocol; an Error was sent.
    ProtocolError,
    /// The client finished the control stream or closed the connection.
    ClientLeft,
}

/// Serves one accepted connection to its end.
pub(crate) async fn serve_connection(state: Arc<ServerState>, conn: Connection) {
    let span = tracing::info_span!(
        "connection",
        remote = %conn.remote_address(),
        device = tracing::field::Empty,
        branch = tracing::field::Empty,
    );
    serve(state, conn).instrument(span).await;
}

/// Runs `work` on the core, on the blocking pool; `None` if the runtime
/// is shutting down.
async fn on_core<T: Send + 'static>(
    state: &Arc<ServerState>,
    work: impl FnOnce(&ServerCore) -> T + Send + 'static,
) -> Option<T> {
    let state = state.clone();
    tokio::task::spawn_blocking(move || work(&state.core))
        .await
        .ok()
}

async fn serve(state: Arc<ServerState>, conn: Connection) {
    let alpn_ok = conn
        .handshake_data()
        .and_then(|data| data.downcast::<quinn::crypto::rustls::HandshakeData>().ok())
        .and_then(|data| data.protocol)
        .is_some_and(|protocol| protocol == branchline_protocol::ALPN);
    if !alpn_ok {
        conn.close(close_code::PROTOCOL_ERROR.into(), b"wrong ALPN");
        return;
    }
    let opened = tokio::select! {
        opened = tokio::time::timeout(limits::CONTROL_STREAM_OPEN, conn.accept_bi()) => opened,
        () = state.shutdown.cancelled() => {
            conn.close(close_code::SHUTDOWN.into(), b"server shutting down");
            return;
        }
    };
    let (send, recv) = match opened {
        Ok(Ok(streams)) => streams,
        Ok(Err(e)) => {
            debug!(error = %e, "connection ended before the control stream");
            return;
        }
        Err(_) => {
            conn.close(close_code::PROTOCOL_ERROR.into(), b"no control stream");
            return;
        }
    };
    let mut reader = FramedRead::new(
        recv,
        FrameCodec::with_max_frame_len(limits::MAX_CONTROL_FRAME),
    );
    let mut writer = FramedWrite::new(send, FrameCodec::new());

    let said_hello = tokio::select! {
        said = hello(&state, &mut reader, &mut writer) => said,
        () = state.shutdown.cancelled() => {
            conn.close(close_code::SHUTDOWN.into(), b"server shutting down");
            return;
        }
    };
    let Some(mut peer) = said_hello else {
        refuse(&conn, writer, close_code::AUTH_FAILED).await;
        return;
    };
    let principal = peer.principal().clone();
    let span = tracing::Span::current();
    span.record("device", tracing::field::display(principal.device));
    span.record("branch", tracing::field::display(principal.branch));

    // Registered before the core checks the device once more, so a
    // revocation landing between Hello and now is seen by one or the other.
    let id = peer.connection();
    let revoked = state.hub.register(id, principal.device);
    crate::endpoint::catch_up(&state).await;
    let connected = on_core(&state, move |core| {
        let connected = core.connected(&mut peer);
        (peer, connected)
    })
    .await;
    let end = match connected {
        None => End::Shutdown,
        Some((_, Err(_))) => End::Revoked,
        Some((peer, Ok((notices, digest)))) => {
            info!(role = %principal.role, "device connected");
            let session = ControlSession {
                state: &state,
                conn: &conn,
                revoked: &revoked,
                control: ControlState {
                    readable: true,
                    writable: true,
                },
            };
            session
                .run(peer, notices, digest, reader, &mut writer)
                .await
        }
    };
    state.hub.unregister(id);
    match end {
        End::Shutdown => {
            let _ = writer.get_mut().finish();
            conn.close(close_code::SHUTDOWN.into(), b"server shutting down");
        }
        End::Revoked => {
            info!("device revoked; closing its connection");
            let revoked = error(ErrorCode::DeviceRevoked, "this device was revoked", None);
            let _ = tokio::time::timeout(limits::ERROR_FLUSH, writer.send(revoked)).await;
            refuse(&conn, writer, close_code::REVOKED).await;
        }
        End::ProtocolError => refuse(&conn, writer, close_code::PROTOCOL_ERROR).await,
        End::ClientLeft => {
            let _ = writer.get_mut().finish();
            conn.close(close_code::NORMAL.into(), b"bye");
        }
    }
    info!("connection ended");
}

/// Finishes the control stream, gives the last message a moment to reach
/// the client, and closes the connection with `code`.
async fn refuse(conn: &Connection, mut writer: Writer, code: u32) {
    let send = writer.get_mut();
    if send.finish().is_ok() {
        let _ = tokio::time::timeout(limits::ERROR_FLUSH, send.stopped()).await;
    }
    conn.close(code.into(), b"");
}

async fn send_control(writer: &mut Writer, message: Message) -> Result<(), ()> {
    match tokio::time::timeout(CONTROL_WRITE_TIMEOUT, writer.send(message)).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => {
            debug!(error = %e, "control write failed");
            Err(())
        }
        Err(_) => {
            warn!("client stopped reading the control stream");
            Err(())
        }
    }
}

/// Reads `Hello` and sends the core's answer; `None` means an Error was
/// sent (or the client left) and the connection must close.
async fn hello(state: &Arc<ServerState>, reader: &mut Reader, writer: &mut Writer) -> Option<Peer> {
    let first = tokio::time::timeout(limits::FIRST_MESSAGE, reader.next()).await;
    let message = match first {
        Err(_) => {
            let refusal = error(ErrorCode::Unauthenticated, "no Hello within 10 s", None);
            let _ = send_control(writer, refusal).await;
            return None;
        }
        Ok(None) => return None,
        Ok(Some(Err(e))) => {
            let _ = send_control(writer, decode_error(&e, None)).await;
            return None;
        }
        Ok(Some(Ok(message))) => message,
    };
    let answered = on_core(state, move |core| core.hello(db::now_ms(), message)).await;
    match answered {
        Some(Ok((peer, welcome))) => send_control(writer, welcome).await.ok().map(|()| peer),
        Some(Err(refusal)) => {
            let _ = send_control(writer, refusal.into_message()).await;
            None
        }
        None => None,
    }
}

/// Whether the control stream can still be read and written.
struct ControlState {
    readable: bool,
    writable: bool,
}

impl ControlState {
    /// Sends on the control stream unless it failed before; a failure (the
    /// client stopped reading) turns further sends off.
    async fn send(&mut self, writer: &mut Writer, message: Message) {
        if self.writable && send_control(writer, message).await.is_err() {
            self.writable = false;
        }
    }
}

/// The control stream of a connected device.
struct ControlSession<'a> {
    state: &'a Arc<ServerState>,
    conn: &'a Connection,
    revoked: &'a CancellationToken,
    // A client that finishes or stops reading its control stream keeps its
    // document and request streams; it only stops hearing notices.
    control: ControlState,
}

impl ControlSession<'_> {
    /// Runs the control stream after the digest until the connection ends.
    async fn run(
        mut self,
        mut peer: Peer,
        mut notices: crate::store::Notices,
        digest: Message,
        mut reader: Reader,
        writer: &mut Writer,
    ) -> End {
        let state = self.state;
        self.control.send(writer, digest).await;
        let streams_done = CancellationToken::new();
        let mut streams = JoinSet::new();
        let end = loop {
            tokio::select! {
                biased;
                () = state.shutdown.cancelled() => break End::Shutdown,
                () = self.revoked.cancelled() => break End::Revoked,
                Some(_) = streams.join_next(), if !streams.is_empty() => {}
                message = reader.next(), if self.control.readable => match message {
                    None => {
                        debug!("the client finished its control stream");
                        self.control.readable = false;
                    }
                    Some(Err(e)) => {
                        warn!(error = %e, "bad frame on the control stream");
                        self.control.send(writer, decode_error(&e, None)).await;
                        break End::ProtocolError;
                    }
                    Some(Ok(message)) => {
                        let asker = peer.clone();
                        let Some(answer) = on_core(state, move |core| core.control(&asker, message)).await
                        else {
                            break End::Shutdown;
                        };
                        for message in answer.messages {
                            self.control.send(writer, message).await;
                        }
                        if answer.end {
                            break End::ProtocolError;
                        }
                    }
                },
                event = notices.next(), if self.control.writable => {
                    let messages = match event {
                        NoticeEvent::Closed => break End::Shutdown,
                        // Deciding who hears of a change reads only the
                        // notice and the catalog in memory: no blocking.
                        NoticeEvent::Changed(_) => state.core.notices(&mut peer, [event]),
                        // Catching up reads the store: off the executor.
                        NoticeEvent::Missed => {
                            let behind = peer.clone();
                            let Some((caught_up, messages)) = on_core(state, move |core| {
                                let mut behind = behind;
                                let messages = core.notices(&mut behind, [NoticeEvent::Missed]);
                                (behind, messages)
                            })
                            .await
                            else {
                                break End::Shutdown;
                            };
                            peer = caught_up;
                            messages
                        }
                    };
                    for message in messages {
                        self.control.send(writer, message).await;
                    }
                }
                accepted = self.conn.accept_bi() => match accepted {
                    Ok((send, recv)) => {
                        let stream = StreamTask {
                            state: state.clone(),
                            peer: peer.clone(),
                            stop: streams_done.clone(),
                        };
                        streams.spawn(stream.run(send, recv).in_current_span());
                    }
                    Err(_) => break End::ClientLeft,
                },
            }
        };
        // In-flight document steps finish (their changes are stored and
        // acknowledged); streams then stop at their next message.
        streams_done.cancel();
        let drained = tokio::time::timeout(limits::SHUTDOWN_GRACE, async {
            while streams.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            warn!("streams did not finish in time");
            streams.abort_all();
        }
        end
    }
}

/// One document or request stream.
struct StreamTask {
    state: Arc<ServerState>,
    peer: Peer,
    stop: CancellationToken,
}

impl StreamTask {
    async fn run(self, send: SendStream, recv: RecvStream) {
        let mut reader =
            FramedRead::new(recv, FrameCodec::with_max_frame_len(limits::MAX_DOC_FRAME));
        let mut writer = FramedWrite::new(send, FrameCodec::new());
        let first = tokio::select! {
            () = self.stop.cancelled() => return,
            first = tokio::time::timeout(limits::FIRST_MESSAGE, reader.next()) => first,
        };
        let message = match first {
            Err(_) => Some(error(ErrorCode::Malformed, "no message within 10 s", None)),
            Ok(None) => None,
            Ok(Some(Err(e))) => Some(decode_error(&e, None)),
            Ok(Some(Ok(message))) => {
                let span = match &message {
                    Message::SyncDoc { doc_id, .. } => tracing::debug_span!("doc", doc = %doc_id),
                    _ => tracing::debug_span!("request"),
                };
                self.serve(message, &mut reader, &mut writer)
                    .instrument(span)
                    .await;
                None
            }
        };
        if let Some(message) = message {
            let _ = self.send(&mut writer, message).await;
        }
        let _ = writer.get_mut().finish();
    }

    /// Serves a stream from its first message until it ends.
    async fn serve(&self, first: Message, reader: &mut Reader, writer: &mut Writer) {
        let peer = self.peer.clone();
        let opened = on_core(&self.state, move |core| {
            core.open_stream(db::now_ms(), &peer, first)
        })
        .await;
        let Some((stream, answer)) = opened else {
            let _ = self
                .send(
                    writer,
                    error(ErrorCode::Internal, "the server is stopping", None),
                )
                .await;
            return;
        };
        if self.deliver(writer, answer).await.is_err() {
            return;
        }
        match stream {
            None => {}
            Some(Stream::Bundles(mut cursor)) => loop {
                let peer = self.peer.clone();
                let next = on_core(&self.state, move |core| {
                    let bundle = core.next_bundle(&peer, &mut cursor);
                    (cursor, bundle)
                })
                .await;
                let Some((back, Some(bundle))) = next else {
                    break;
                };
                cursor = back;
                let failed = matches!(bundle, Message::Error { .. });
                if self.send(writer, bundle).await.is_err() || failed {
                    break;
                }
            },
            Some(Stream::Doc(mut doc)) => loop {
                let doc_id = doc.doc_id();
                let next = tokio::select! {
                    () = self.stop.cancelled() => return,
                    next = tokio::time::timeout(limits::STREAM_IDLE, reader.next()) => next,
                };
                let message = match next {
                    Err(_) => {
                        let idle =
                            error(ErrorCode::Malformed, "stream idle too long", Some(doc_id));
                        let _ = self.send(writer, idle).await;
                        return;
                    }
                    Ok(None) => {
                        // The client finished: the sync is complete.
                        let peer = self.peer.clone();
                        on_core(&self.state, move |core| core.finish_stream(&peer, doc)).await;
                        return;
                    }
                    Ok(Some(Err(e))) => {
                        let _ = self.send(writer, decode_error(&e, Some(doc_id))).await;
                        return;
                    }
                    Ok(Some(Ok(message))) => message,
                };
                let peer = self.peer.clone();
                let stepped = on_core(&self.state, move |core| {
                    let answer = core.doc_message(&peer, &mut doc, message);
                    (doc, answer)
                })
                .await;
                let Some((back, answer)) = stepped else {
                    let stopping =
                        error(ErrorCode::Internal, "the server is stopping", Some(doc_id));
                    let _ = self.send(writer, stopping).await;
                    return;
                };
                doc = back;
                let end = answer.end;
                if self.deliver(writer, answer).await.is_err() || end {
                    return;
                }
            },
        }
    }

    /// Sends an answer's messages and carries out its revocation.
    async fn deliver(&self, writer: &mut Writer, answer: Answer) -> Result<(), ()> {
        if let Some(device) = answer.revoked {
            let closed = self.state.hub.revoke(device);
            info!(revoked = %device, connections = closed, "revoked device disconnected");
        }
        for message in answer.messages {
            self.send(writer, message).await?;
        }
        Ok(())
    }

    async fn send(&self, writer: &mut Writer, message: Message) -> Result<(), ()> {
        match tokio::time::timeout(limits::STREAM_IDLE, writer.send(message)).await {
            Ok(Ok(())) => Ok(()),
            _ => Err(()),
        }
    }
}
