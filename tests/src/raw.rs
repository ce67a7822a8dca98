//! A hand-driven connection for tests that play a client the server must
//! not trust: frames in, frames out, nothing checked on this side.

use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use automerge::AutoCommit;
use automerge::sync::{self, SyncDoc as _};
use branchline_protocol::{
    Credentials, DocId, FrameCodec, InviteLink, MIN_SUPPORTED_VERSION, Message, PROTOCOL_VERSION,
    encode,
};
use futures_util::{SinkExt as _, StreamExt as _};
use tokio_util::codec::{FramedRead, FramedWrite};

use crate::{PATIENCE, TestServer};

/// One QUIC connection to the test server, driven frame by frame.
pub struct Raw {
    connection: quinn::Connection,
    _endpoint: quinn::Endpoint,
    /// The control stream's send side, kept open for the connection's life.
    control: Option<quinn::SendStream>,
}

impl Raw {
    /// Connects with the Branchline ALPN.
    pub async fn connect(server: &TestServer) -> Result<Self> {
        Self::connect_with_alpn(server, branchline_protocol::ALPN).await
    }

    /// Connects offering `alpn` instead.
    pub async fn connect_with_alpn(server: &TestServer, alpn: &[u8]) -> Result<Self> {
        let endpoint = quinn::Endpoint::client("127.0.0.1:0".parse()?)?;
        let mut config = branchline_core::net::quic_client_config(server.running().cert_sha256())?;
        if alpn != branchline_protocol::ALPN {
            config = branchline_core::net::quic_client_config_with_alpn(
                server.running().cert_sha256(),
                alpn,
            )?;
        }
        let connection = endpoint
            .connect_with(config, server.running().local_addr(), "branchline.local")?
            .await?;
        Ok(Self {
            connection,
            _endpoint: endpoint,
            control: None,
        })
    }

    /// Connects and enrolls with `invite`, writing changes as `actor`;
    /// returns the connection and the Welcome.
    pub async fn enroll(
        server: &TestServer,
        invite: &InviteLink,
        actor: &[u8],
    ) -> Result<(Self, Message)> {
        let mut raw = Self::connect(server).await?;
        let (control, answer) = raw
            .hello(Credentials::Enroll {
                invite_code: invite.code.clone(),
                device_name: "raw test client".to_owned(),
                actor_id: actor.to_vec(),
            })
            .await?;
        match answer {
            Message::Welcome { .. } => {
                raw.control = Some(control);
                Ok((raw, answer))
            }
            other => bail!("expected Welcome, got {other:?}"),
        }
    }

    /// Opens a stream, writes `bytes`, and reads messages until the server
    /// ends the stream, closes the connection, or goes quiet.
    pub async fn exchange(&self, bytes: &[u8]) -> Result<Vec<Message>> {
        let (mut send, recv) = self.connection.open_bi().await?;
        send.write_all(bytes).await?;
        let mut frames = FramedRead::new(recv, FrameCodec::new());
        let mut messages = Vec::new();
        while let Ok(Some(frame)) =
            tokio::time::timeout(Duration::from_secs(5), frames.next()).await
        {
            match frame {
                Ok(message) => messages.push(message),
                Err(_) => break,
            }
        }
        Ok(messages)
    }

    /// Hello with these credentials; returns the control stream and the
    /// Welcome or the error.
    pub async fn hello(&self, credentials: Credentials) -> Result<(quinn::SendStream, Message)> {
        let (mut send, recv) = self.connection.open_bi().await?;
        let hello = Message::Hello {
            version: PROTOCOL_VERSION,
            min_version: MIN_SUPPORTED_VERSION,
            credentials,
        };
        send.write_all(&encode(&hello)?).await?;
        let mut frames = FramedRead::new(recv, FrameCodec::new());
        let answer = tokio::time::timeout(PATIENCE, frames.next())
            .await?
            .context("no answer to Hello")??;
        Ok((send, answer))
    }

    /// Runs the automerge sync protocol for `doc` over one document
    /// stream, as far as the server lets it: returns every message that was
    /// not a `SyncDoc` (`Ack`, `Rejected`, `Error`), in order.
    pub async fn sync_doc(&self, doc_id: DocId, doc: &mut AutoCommit) -> Result<Vec<Message>> {
        let (send, recv) = self.connection.open_bi().await?;
        let mut writer = FramedWrite::new(send, FrameCodec::new());
        let mut reader = FramedRead::new(recv, FrameCodec::new());
        let mut state = sync::State::new();
        let mut others = Vec::new();
        for _ in 0..50 {
            let next = doc.sync().generate_sync_message(&mut state);
            let said = next.is_some();
            let payload = next.map(sync::Message::encode).unwrap_or_default();
            writer.send(Message::SyncDoc { doc_id, payload }).await?;
            let reply = loop {
                let message = tokio::time::timeout(PATIENCE, reader.next())
                    .await?
                    .context("the server ended the stream")??;
                match message {
                    Message::SyncDoc { payload, .. } => break Some(payload),
                    end @ (Message::Rejected { .. } | Message::Error { .. }) => {
                        others.push(end);
                        break None;
                    }
                    other => others.push(other),
                }
            };
            let Some(reply) = reply else {
                return Ok(others);
            };
            if reply.is_empty() && !said {
                writer.get_mut().finish()?;
                return Ok(others);
            }
            if !reply.is_empty() {
                doc.sync()
                    .receive_sync_message(&mut state, sync::Message::decode(&reply)?)?;
            }
        }
        bail!("the sync of {doc_id} did not end")
    }
}
