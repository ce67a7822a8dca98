//! QUIC smoke tests with a hand-driven client: real TLS on 127.0.0.1, real
//! frames. The full client (sync engine, store) is exercised by the
//! workspace's `tests/`.

use std::time::Duration;

use automerge::transaction::Transactable as _;
use automerge::{ActorId, AutoCommit, ROOT};
use branchline_core::model::{DocKind, Meta};
use branchline_protocol::manifest::split;
use branchline_protocol::{
    BranchId, Credentials, DeviceId, DeviceSecret, DocId, ErrorCode, FrameCodec, InviteLink,
    Message, PROTOCOL_VERSION, RangeSummary, Role,
};
use branchline_server::close_code;
use futures_util::SinkExt as _;
use tokio_util::codec::{FramedRead, FramedWrite};

mod support;

use support::{Harness, Reader, WAIT, Writer, enroll, recv, start_with};

async fn start() -> Harness {
    start_with(50).await
}

impl Harness {
    fn invite(&self, role: Role) -> InviteLink {
        self.server
            .admin()
            .create_invite(self.branch.into(), role, None, Duration::from_secs(600))
            .unwrap()
    }

    async fn connect_with_alpn(&self, alpn: &[u8]) -> Result<quinn::Connection, String> {
        self.connect_from(&self.client(alpn)).await
    }

    async fn connect(&self) -> quinn::Connection {
        self.connect_with_alpn(branchline_protocol::ALPN)
            .await
            .unwrap()
    }

    /// Connects and says Hello; returns the session and the Welcome.
    async fn hello(&self, credentials: Credentials) -> (Session, Message) {
        let conn = self.connect().await;
        let mut session = Session::open(conn).await;
        session
            .send(Message::Hello {
                version: PROTOCOL_VERSION,
                min_version: 1,
                credentials,
            })
            .await;
        let welcome = session.recv().await;
        (session, welcome)
    }

    async fn enroll(&self, role: Role) -> (Session, DeviceId, DeviceSecret) {
        let link = self.invite(role);
        let credentials = enroll(&link.code);
        let Credentials::Enroll { actor_id, .. } = &credentials else {
            unreachable!("enroll() makes enrollment credentials");
        };
        let actor = DeviceId::from_bytes(actor_id.as_slice().try_into().expect("16 bytes"));
        let (mut session, welcome) = self.hello(credentials).await;
        session.actor = actor;
        let Message::Welcome {
            device_id,
            device_secret: Some(secret),
            role: got,
            ..
        } = welcome
        else {
            panic!("expected a Welcome with a secret, got {welcome:?}");
        };
        assert_eq!(got, role);
        let digest = session.recv().await;
        assert!(
            matches!(digest, Message::ManifestDigest { .. }),
            "{digest:?}"
        );
        (session, device_id, secret)
    }
}

/// A connection with its control stream.
struct Session {
    conn: quinn::Connection,
    reader: Reader,
    writer: Writer,
    /// The actor id the device enrolled with, which its changes must carry.
    actor: DeviceId,
}

impl Session {
    async fn open(conn: quinn::Connection) -> Session {
        let (send, recv) = conn.open_bi().await.unwrap();
        Session {
            actor: DeviceId::new_random(),
            conn,
            reader: FramedRead::new(recv, FrameCodec::new()),
            writer: FramedWrite::new(send, FrameCodec::new()),
        }
    }

    async fn send(&mut self, message: Message) {
        self.writer.send(message).await.unwrap();
    }

    async fn recv(&mut self) -> Message {
        recv(&mut self.reader).await
    }

    async fn stream(&self) -> (Writer, Reader) {
        let (send, recv) = self.conn.open_bi().await.unwrap();
        (
            FramedWrite::new(send, FrameCodec::new()),
            FramedRead::new(recv, FrameCodec::new()),
        )
    }

    /// Waits for the connection to close and returns the application code.
    async fn closed_with(&self) -> Option<u64> {
        match tokio::time::timeout(WAIT, self.conn.closed())
            .await
            .unwrap()
        {
            quinn::ConnectionError::ApplicationClosed(close) => Some(close.error_code.into_inner()),
            _ => None,
        }
    }
}

fn error_code(message: &Message) -> ErrorCode {
    match message {
        Message::Error { code, .. } => code.clone(),
        Message::Rejected { rejections, .. } if !rejections.is_empty() => {
            rejections[0].code.clone()
        }
        other => panic!("expected an Error or a rejection, got {other:?}"),
    }
}

/// A new activity document of `branch`, written by `actor`.
fn activity(branch: BranchId, actor: DeviceId) -> (DocId, AutoCommit) {
    let meta = Meta::new(
        DocKind::Activity,
        branchline_core::BranchId::from_bytes(*branch.as_bytes()),
    );
    let id = DocId::from_bytes(*meta.id.as_bytes());
    let mut doc = AutoCommit::new().with_actor(ActorId::from(actor.as_bytes().as_slice()));
    autosurgeon::reconcile_prop(&mut doc, ROOT, "meta", &meta).unwrap();
    doc.put(ROOT, "title", "主题党日").unwrap();
    doc.commit();
    (id, doc)
}

/// Syncs `doc` over one document stream of `session`'s connection.
async fn sync_doc(
    session: &Session,
    doc_id: DocId,
    doc: &mut AutoCommit,
) -> Result<Option<branchline_protocol::Heads>, Message> {
    support::sync_doc(&session.conn, doc_id, doc).await
}

#[tokio::test]
async fn enroll_then_reconnect_with_the_device_secret() {
    let h = start().await;
    let (session, device, secret) = h.enroll(Role::Member).await;
    session.conn.close(0u32.into(), b"");

    let (mut session, welcome) = h
        .hello(Credentials::Device {
            device_id: device,
            secret: secret.clone(),
        })
        .await;
    match welcome {
        Message::Welcome {
            device_id,
            device_secret,
            branch_id,
            role,
            ..
        } => {
            assert_eq!(device_id, device);
            assert_eq!(device_secret, None, "the secret is never sent again");
            assert_eq!(branch_id, h.branch);
            assert_eq!(role, Role::Member);
        }
        other => panic!("{other:?}"),
    }
    // A member reads the branch profile and the roster.
    match session.recv().await {
        Message::ManifestDigest { doc_count, .. } => assert_eq!(doc_count, 2),
        other => panic!("{other:?}"),
    }

    // A wrong secret is refused and the connection closes with code 1.
    let (session, refused) = h
        .hello(Credentials::Device {
            device_id: device,
            secret: DeviceSecret::from_bytes([1; 32]),
        })
        .await;
    assert_eq!(error_code(&refused), ErrorCode::Unauthenticated);
    assert_eq!(
        session.closed_with().await,
        Some(close_code::AUTH_FAILED.into())
    );
    h.server.shutdown().await.unwrap();
}

#[tokio::test]
async fn invites_are_one_time_and_bad_hellos_get_codes() {
    let h = start().await;
    let link = h.invite(Role::Resident);
    assert_eq!(link.cert_sha256, h.server.cert_sha256());
    assert_eq!(link.server, h.server.local_addr().to_string());
    let (_first, welcome) = h.hello(enroll(&link.code)).await;
    assert!(matches!(welcome, Message::Welcome { .. }));
    let (again, refused) = h.hello(enroll(&link.code)).await;
    assert_eq!(error_code(&refused), ErrorCode::InviteUsed);
    assert_eq!(
        again.closed_with().await,
        Some(close_code::AUTH_FAILED.into())
    );
    let (_, refused) = h.hello(enroll("AAAA-BBBB-CCCC-DDDD")).await;
    assert_eq!(error_code(&refused), ErrorCode::InviteInvalid);

    // Versions the server does not speak.
    let mut session = Session::open(h.connect().await).await;
    session
        .send(Message::Hello {
            version: 99,
            min_version: 50,
            credentials: enroll(&h.invite(Role::Member).code),
        })
        .await;
    assert_eq!(
        error_code(&session.recv().await),
        ErrorCode::VersionUnsupported
    );

    // A stream that does not start with Hello.
    let mut session = Session::open(h.connect().await).await;
    session
        .send(Message::SyncDoc {
            doc_id: DocId::new_random(),
            payload: vec![],
        })
        .await;
    assert_eq!(
        error_code(&session.recv().await),
        ErrorCode::Unauthenticated
    );

    // The audit log saw the enrollment and the refusals.
    let audit = h.server.admin().audit(50).unwrap();
    assert!(audit.iter().any(|e| e.event == "device.enrolled"));
    assert!(
        audit
            .iter()
            .any(|e| e.code.as_deref() == Some("auth.invite_used"))
    );
    h.server.shutdown().await.unwrap();
}

#[tokio::test]
async fn garbage_gets_a_code_and_harms_no_one_else() {
    let h = start().await;
    let (mut bystander, _, _) = h.enroll(Role::Secretary).await;

    // Unknown tag.
    let conn = h.connect().await;
    let (mut send, recv) = conn.open_bi().await.unwrap();
    send.write_all(&[0, 0, 0, 3, 0x7e, 1, 2]).await.unwrap();
    let mut reader = FramedRead::new(recv, FrameCodec::new());
    assert_eq!(
        error_code(&recv_msg(&mut reader).await),
        ErrorCode::UnknownMessage
    );

    // An oversized length prefix.
    let conn = h.connect().await;
    let (mut send, recv) = conn.open_bi().await.unwrap();
    send.write_all(&[0xff, 0xff, 0xff, 0xff, 1]).await.unwrap();
    let mut reader = FramedRead::new(recv, FrameCodec::new());
    assert_eq!(
        error_code(&recv_msg(&mut reader).await),
        ErrorCode::FrameTooLarge
    );

    // Random bytes.
    let conn = h.connect().await;
    let (mut send, recv) = conn.open_bi().await.unwrap();
    send.write_all(&[0, 0, 0, 9, 0x01, 0xde, 0xad, 0xbe, 0xef, 9, 9, 9, 9])
        .await
        .unwrap();
    let mut reader = FramedRead::new(recv, FrameCodec::new());
    assert_eq!(
        error_code(&recv_msg(&mut reader).await),
        ErrorCode::Malformed
    );

    // A garbage sync payload on a document stream ends that stream only.
    let roster = h.server.admin().document_ids().unwrap()[0].into();
    let (mut writer, mut reader) = bystander.stream().await;
    writer
        .send(Message::SyncDoc {
            doc_id: roster,
            payload: b"not automerge".to_vec(),
        })
        .await
        .unwrap();
    match recv_msg(&mut reader).await {
        Message::Error { code, doc_id, .. } => {
            assert_eq!(code, ErrorCode::InvalidSyncPayload);
            assert_eq!(doc_id, Some(roster));
        }
        other => panic!("{other:?}"),
    }

    // The bystander's session goes on.
    bystander
        .send(Message::ManifestRanges {
            ranges: vec![RangeSummary {
                start: DocId::MIN,
                end: None,
                doc_count: 0,
                digest: [0; 32],
            }],
        })
        .await;
    match bystander.recv().await {
        Message::ManifestEntries { entries, end, .. } => {
            assert_eq!(entries.len(), 2);
            assert_eq!(end, None);
        }
        other => panic!("{other:?}"),
    }
    match bystander.recv().await {
        Message::ManifestRanges { ranges } => assert!(ranges.is_empty()),
        other => panic!("{other:?}"),
    }
    h.server.shutdown().await.unwrap();
}

async fn recv_msg(reader: &mut Reader) -> Message {
    recv(reader).await
}

#[tokio::test]
async fn wrong_alpn_is_refused_in_the_handshake() {
    let h = start().await;
    assert!(h.connect_with_alpn(b"h3").await.is_err());
    h.server.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_created_document_is_acked_stored_and_announced() {
    let h = start().await;
    let (secretary, _, _) = h.enroll(Role::Secretary).await;
    let (mut member, _, _) = h.enroll(Role::Member).await;

    let (doc_id, mut doc) = activity(h.branch, secretary.actor);
    let acked = sync_doc(&secretary, doc_id, &mut doc).await.unwrap();
    let heads: branchline_protocol::Heads = doc.get_heads().iter().map(|h| h.0).collect();
    assert_eq!(acked, Some(heads.clone()));

    // The member hears about it on the control stream.
    match member.recv().await {
        Message::DocChanged {
            doc_id: changed,
            heads: now,
        } => {
            assert_eq!(changed, doc_id);
            assert_eq!(now, heads);
        }
        other => panic!("{other:?}"),
    }
    // The stored document equals the client's.
    let stored = h
        .server
        .admin()
        .document_bytes(doc_id.into())
        .unwrap()
        .unwrap();
    let mut stored = AutoCommit::load(&stored).unwrap();
    assert_eq!(stored.get_heads(), doc.get_heads());

    // A member may not create an activity: the stream gets the code, the
    // session goes on.
    let (_, mut forbidden) = activity(h.branch, member.actor);
    let forbidden_id = DocId::from_bytes(
        *branchline_core::model::read_meta(&forbidden)
            .unwrap()
            .id
            .as_bytes(),
    );
    let refused = sync_doc(&member, forbidden_id, &mut forbidden)
        .await
        .unwrap_err();
    assert_eq!(error_code(&refused), ErrorCode::InvalidDocument);

    // The member reconciles with the manifest: the new activity is listed.
    let whole = split(DocId::MIN, None).unwrap();
    member
        .send(Message::ManifestRanges {
            ranges: whole
                .iter()
                .map(|&(start, end)| RangeSummary {
                    start,
                    end,
                    doc_count: 0,
                    digest: [0; 32],
                })
                .collect(),
        })
        .await;
    let mut listed = Vec::new();
    loop {
        match member.recv().await {
            Message::ManifestEntries { entries, .. } => listed.extend(entries),
            Message::ManifestRanges { .. } => break,
            Message::DocChanged { .. } => {}
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(listed.len(), 3);
    assert!(
        listed
            .iter()
            .any(|e| e.doc_id == doc_id && e.heads == heads)
    );
    h.server.shutdown().await.unwrap();
}

#[tokio::test]
async fn invites_and_revocation_over_request_streams() {
    let h = start().await;
    let (secretary, _, _) = h.enroll(Role::Secretary).await;
    let (member, member_device, member_secret) = h.enroll(Role::Member).await;

    // A member may not invite.
    let (mut writer, mut reader) = member.stream().await;
    writer
        .send(Message::CreateInvite {
            role: Role::Member,
            member_id: None,
            valid_for_secs: 3600,
        })
        .await
        .unwrap();
    assert_eq!(
        error_code(&recv(&mut reader).await),
        ErrorCode::AccessDenied
    );

    // The secretary may, and the link works.
    let (mut writer, mut reader) = secretary.stream().await;
    writer
        .send(Message::CreateInvite {
            role: Role::Committee,
            member_id: None,
            valid_for_secs: 3600,
        })
        .await
        .unwrap();
    let link: InviteLink = match recv(&mut reader).await {
        Message::InviteCreated { invite, .. } => invite.parse().unwrap(),
        other => panic!("{other:?}"),
    };
    assert_eq!(link.cert_sha256, h.server.cert_sha256());
    let (_, welcome) = h.hello(enroll(&link.code)).await;
    assert!(matches!(
        welcome,
        Message::Welcome {
            role: Role::Committee,
            ..
        }
    ));

    // The secretary revokes the member: its connection closes.
    let (mut writer, mut reader) = secretary.stream().await;
    writer
        .send(Message::RevokeDevice {
            device_id: member_device,
        })
        .await
        .unwrap();
    assert!(matches!(
        recv(&mut reader).await,
        Message::DeviceRevoked { device_id } if device_id == member_device
    ));
    assert_eq!(member.closed_with().await, Some(close_code::REVOKED.into()));
    let (_, refused) = h
        .hello(Credentials::Device {
            device_id: member_device,
            secret: member_secret,
        })
        .await;
    assert_eq!(error_code(&refused), ErrorCode::DeviceRevoked);
    h.server.shutdown().await.unwrap();
}

#[tokio::test]
async fn admin_revocation_closes_live_connections() {
    let h = start().await;
    let (session, device, _) = h.enroll(Role::Member).await;
    h.server.admin().revoke_device(device).unwrap();
    assert_eq!(
        session.closed_with().await,
        Some(close_code::REVOKED.into())
    );
    let devices = h.server.admin().devices(Some(h.branch.into())).unwrap();
    assert!(
        devices
            .iter()
            .any(|d| d.device_id == device && d.revoked_at_ms.is_some())
    );
    h.server.shutdown().await.unwrap();
}

#[tokio::test]
async fn shutdown_closes_connections_with_the_shutdown_code() {
    let h = start().await;
    let (session, _, _) = h.enroll(Role::Member).await;
    let Harness { server, _dir, .. } = h;
    server.shutdown().await.unwrap();
    assert_eq!(
        session.closed_with().await,
        Some(close_code::SHUTDOWN.into())
    );
}

#[tokio::test]
async fn connections_beyond_the_limit_are_refused() {
    let h = start_with(2).await;
    // The second connection is over the retry threshold: the client proves
    // its address with a stateless retry (quinn does this by itself).
    let (_first, _, _) = h.enroll(Role::Member).await;
    let (_second, _, _) = h.enroll(Role::Member).await;
    let third = h.connect_with_alpn(branchline_protocol::ALPN).await;
    assert!(third.is_err(), "a third connection is refused");
    h.server.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_finished_control_stream_leaves_document_streams_working() {
    let h = start().await;
    let (mut secretary, _, _) = h.enroll(Role::Secretary).await;
    secretary.writer.get_mut().finish().unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let (doc_id, mut doc) = activity(h.branch, secretary.actor);
    assert!(
        sync_doc(&secretary, doc_id, &mut doc)
            .await
            .unwrap()
            .is_some()
    );
    h.server.shutdown().await.unwrap();
}

/// Asks for `ids` whole on a new stream; the documents of every bundle, or the
/// error the server ended with.
async fn get_documents(
    session: &Session,
    ids: Vec<DocId>,
) -> Result<Vec<branchline_protocol::bundle::SavedDocument>, Message> {
    let (mut writer, mut reader) = session.stream().await;
    writer
        .send(Message::GetDocuments { doc_ids: ids })
        .await
        .unwrap();
    writer.get_mut().finish().unwrap();
    let mut docs = Vec::new();
    loop {
        let next = tokio::time::timeout(WAIT, futures_util::StreamExt::next(&mut reader))
            .await
            .expect("an answer in time");
        match next {
            None => return Ok(docs),
            Some(Ok(Message::Documents { bundle })) => {
                docs.extend(branchline_protocol::bundle::unpack(&bundle).unwrap());
            }
            Some(Ok(other)) => return Err(other),
            Some(Err(e)) => panic!("{e}"),
        }
    }
}

#[tokio::test]
async fn documents_are_sent_whole_only_to_devices_that_may_read_them() {
    let h = start().await;
    let (secretary, _, _) = h.enroll(Role::Secretary).await;
    let (doc_id, mut doc) = activity(h.branch, secretary.actor);
    sync_doc(&secretary, doc_id, &mut doc).await.unwrap();

    // The secretary gets it; an id the server does not hold is left out.
    let unknown = DocId::from_bytes([9; 16]);
    let docs = get_documents(&secretary, vec![unknown, doc_id])
        .await
        .unwrap();
    assert_eq!(docs.len(), 1);
    assert_eq!(docs[0].doc_id, doc_id);
    let mut whole = AutoCommit::load(&docs[0].data).unwrap();
    assert_eq!(whole.get_heads(), doc.get_heads());

    // The secretary of another branch gets nothing of it.
    let admin = h.server.admin();
    let other = admin
        .add_branch("河西支部", branchline_core::model::Level::Branch, None)
        .unwrap();
    let link = admin
        .create_invite(other, Role::Secretary, None, Duration::from_secs(600))
        .unwrap();
    let (outsider, welcome) = h.hello(enroll(&link.code)).await;
    assert!(matches!(welcome, Message::Welcome { .. }), "{welcome:?}");
    assert!(
        get_documents(&outsider, vec![doc_id])
            .await
            .unwrap()
            .is_empty()
    );

    // Too many ids at once: refused with a code.
    let many = vec![unknown; branchline_protocol::bundle::MAX_DOCS_PER_REQUEST + 1];
    let refused = get_documents(&secretary, many).await.unwrap_err();
    assert_eq!(error_code(&refused), ErrorCode::InvalidRequest);
    h.server.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_protocol_2_device_may_not_ask_for_documents_whole() {
    let h = start().await;
    let link = h.invite(Role::Secretary);
    let conn = h.connect().await;
    let mut session = Session::open(conn).await;
    session
        .send(Message::Hello {
            version: 2,
            min_version: 1,
            credentials: enroll(&link.code),
        })
        .await;
    let welcome = session.recv().await;
    assert!(
        matches!(welcome, Message::Welcome { version: 2, .. }),
        "{welcome:?}"
    );
    let refused = get_documents(&session, vec![DocId::from_bytes([1; 16])])
        .await
        .unwrap_err();
    assert_eq!(error_code(&refused), ErrorCode::Malformed);
    h.server.shutdown().await.unwrap();
}
