//! The community requests over real QUIC on 127.0.0.1: a branch's public
//! submission code, residents registering with it and submitting petitions
//! the server writes for them, and the feedback box.

use std::time::Duration;

use automerge::{ActorId, AutoCommit, Automerge};
use branchline_core::MemberId;
use branchline_core::model::{self, FeedbackBox, NewMember, Petition, Roster};
use branchline_protocol::{
    Credentials, DeviceId, DeviceSecret, DocId, ErrorCode, FrameCodec, InviteLink, Message,
    PROTOCOL_VERSION, Role,
};
use futures_util::SinkExt as _;
use tokio_util::codec::{FramedRead, FramedWrite};

mod support;

use support::{Harness, Reader, Writer, enroll, recv};

async fn start() -> Harness {
    support::start_with(50).await
}

/// A connection with its control stream, after Welcome.
struct Session {
    conn: quinn::Connection,
    reader: Reader,
    _writer: Writer,
    device: DeviceId,
    secret: Option<DeviceSecret>,
    /// The automerge actor it enrolled with (unknown after a reconnect).
    actor: Option<Vec<u8>>,
    /// The documents the server's first `ManifestDigest` counted.
    manifest_docs: u64,
}

impl Harness {
    /// Connects and says Hello; returns the session, or the Error that
    /// refused it.
    async fn hello(&self, credentials: Credentials) -> Result<Session, ErrorCode> {
        let actor = match &credentials {
            Credentials::Enroll { actor_id, .. } => Some(actor_id.clone()),
            Credentials::Device { .. } => None,
        };
        let conn = self
            .connect_from(&self.client(branchline_protocol::ALPN))
            .await
            .unwrap();
        let (send, recv_stream) = conn.open_bi().await.unwrap();
        let mut writer = FramedWrite::new(send, FrameCodec::new());
        let mut reader = FramedRead::new(recv_stream, FrameCodec::new());
        writer
            .send(Message::Hello {
                version: PROTOCOL_VERSION,
                min_version: 1,
                credentials,
            })
            .await
            .unwrap();
        let (device, secret) = match recv(&mut reader).await {
            Message::Welcome {
                device_id,
                device_secret,
                ..
            } => (device_id, device_secret),
            Message::Error { code, .. } => return Err(code),
            other => panic!("expected Welcome, got {other:?}"),
        };
        let Message::ManifestDigest { doc_count, .. } = recv(&mut reader).await else {
            panic!("expected the manifest digest");
        };
        Ok(Session {
            conn,
            reader,
            _writer: writer,
            device,
            secret,
            actor,
            manifest_docs: doc_count,
        })
    }

    async fn enroll(&self, role: Role) -> Session {
        let link = self
            .server
            .admin()
            .create_invite(self.branch.into(), role, None, Duration::from_secs(600))
            .unwrap();
        self.hello(enroll(&link.code)).await.unwrap()
    }

    async fn reconnect(&self, session: &Session) -> Session {
        self.hello(Credentials::Device {
            device_id: session.device,
            secret: session.secret.clone().unwrap(),
        })
        .await
        .unwrap()
    }

    fn submission_code(&self, rotate: bool) -> String {
        self.server
            .admin()
            .submission_code(self.branch.into(), rotate)
            .unwrap()
    }
}

impl Session {
    /// Sends one request on its own stream and returns the answer.
    async fn request(&self, message: Message) -> Message {
        let (send, recv_stream) = self.conn.open_bi().await.unwrap();
        let mut writer = FramedWrite::new(send, FrameCodec::new());
        let mut reader = FramedRead::new(recv_stream, FrameCodec::new());
        writer.send(message).await.unwrap();
        recv(&mut reader).await
    }

    /// Waits for a `DocChanged` about `doc_id` on the control stream.
    async fn doc_changed(&mut self, doc_id: DocId) {
        loop {
            if let Message::DocChanged { doc_id: d, .. } = recv(&mut self.reader).await
                && d == doc_id
            {
                return;
            }
        }
    }

    /// Fetches a document over a document stream into an empty replica.
    async fn fetch(&self, doc_id: DocId) -> Result<AutoCommit, ErrorCode> {
        let mut doc = AutoCommit::new();
        self.sync(doc_id, &mut doc).await?;
        Ok(doc)
    }

    /// Syncs `doc` both ways over one document stream.
    async fn sync(&self, doc_id: DocId, doc: &mut AutoCommit) -> Result<(), ErrorCode> {
        support::sync_doc(&self.conn, doc_id, doc)
            .await
            .map(|_| ())
            .map_err(|end| error_code(&end))
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

fn petition(title: &str) -> Message {
    Message::SubmitPetition {
        category: "环境卫生".into(),
        title: title.into(),
        description: "三号楼旁的垃圾站一周没有清运，气味很大。".into(),
        location: Some("三号楼".into()),
        name: Some("王阿姨".into()),
        contact: Some("138 0000 0000".into()),
    }
}

/// The actors that wrote a stored document, as the admin reads it.
fn actors_of(h: &Harness, doc: DocId) -> Vec<Vec<u8>> {
    let bytes = h
        .server
        .admin()
        .document_bytes(doc.into())
        .unwrap()
        .expect("the document is stored");
    let doc = Automerge::load(&bytes).unwrap();
    let mut actors: Vec<Vec<u8>> = doc
        .get_changes(&[])
        .iter()
        .map(|change| change.actor_id().to_bytes().to_vec())
        .collect();
    actors.sort();
    actors.dedup();
    actors
}

/// The branch's one document of `kind` (profile or roster).
fn branch_doc(h: &Harness, kind: &str) -> DocId {
    let (doc, _) = h
        .server
        .admin()
        .branch_documents(h.branch.into())
        .unwrap()
        .into_iter()
        .find(|(_, found)| found == kind)
        .unwrap();
    doc.into()
}

/// The server's own actor: the one that wrote the branch profile.
/// Whether every change of `doc_id` is the server's own: one actor, which
/// starts with the database's server actor (the admin CLI's, which wrote the
/// branch profile) followed by the serving process's own suffix.
fn written_by_the_server(h: &Harness, doc_id: DocId) -> bool {
    let base = actors_of(h, branch_doc(h, "branch_profile"));
    let actors = actors_of(h, doc_id);
    actors.len() == 1 && base.len() == 1 && actors[0].starts_with(&base[0]) && actors[0] != base[0]
}

#[tokio::test]
async fn the_submission_code_comes_from_the_admin_and_committee_devices_only() {
    let h = start().await;
    let code = h.submission_code(false);
    assert!(code.starts_with("P-"), "{code}");
    assert_eq!(h.submission_code(false), code, "stable until rotated");

    let secretary = h.enroll(Role::Secretary).await;
    let committee = h.enroll(Role::Committee).await;
    let member = h.enroll(Role::Member).await;
    for device in [&secretary, &committee] {
        let Message::SubmissionCode { link } = device.request(Message::GetSubmissionCode).await
        else {
            panic!("expected the submission link");
        };
        let link: InviteLink = link.parse().unwrap();
        assert_eq!(link.code, code);
        assert_eq!(link.cert_sha256, h.server.cert_sha256());
        assert_eq!(link.server, h.server.public_addr());
    }
    let refused = member.request(Message::GetSubmissionCode).await;
    assert_eq!(error_code(&refused), ErrorCode::AccessDenied);

    let admin_link = h
        .server
        .admin()
        .submission_link(h.branch.into(), false)
        .unwrap();
    assert_eq!(admin_link.code, code);

    // Rotation: the committee sees the new code; the old one registers
    // no one any more.
    let rotated = h.submission_code(true);
    assert_ne!(rotated, code);
    let Message::SubmissionCode { link } = committee.request(Message::GetSubmissionCode).await
    else {
        panic!("expected the submission link");
    };
    assert_eq!(link.parse::<InviteLink>().unwrap().code, rotated);
    assert_eq!(
        h.hello(enroll(&code)).await.err(),
        Some(ErrorCode::InviteInvalid)
    );
    let resident = h.hello(enroll(&rotated.to_lowercase())).await.unwrap();
    assert_eq!(resident.manifest_docs, 0);
    h.server.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_resident_registers_submits_and_sees_only_their_own_petition() {
    let h = start().await;
    let mut committee = h.enroll(Role::Committee).await;
    assert_eq!(committee.manifest_docs, 2, "profile and roster");
    let code = h.submission_code(false);

    let credentials = enroll(&code);
    let Credentials::Enroll { actor_id, .. } = &credentials else {
        unreachable!()
    };
    let resident_actor = actor_id.clone();
    let resident = h.hello(credentials).await.unwrap();
    // Nothing of the branch: no profile, no roster.
    assert_eq!(resident.manifest_docs, 0);
    let devices = h.server.admin().devices(Some(h.branch.into())).unwrap();
    let stored = devices
        .iter()
        .find(|d| d.device_id == resident.device)
        .unwrap();
    assert_eq!((stored.role, stored.member), (Role::Resident, None));

    let Message::PetitionSubmitted { doc_id } = resident.request(petition("垃圾站满了")).await
    else {
        panic!("expected PetitionSubmitted");
    };
    // The committee's connected device hears of it at once.
    committee.doc_changed(doc_id).await;

    // After reconnecting, the resident's manifest holds exactly that petition.
    let again = h.reconnect(&resident).await;
    assert_eq!(again.manifest_docs, 1);
    let doc = again.fetch(doc_id).await.unwrap();
    let stored: Petition = model::hydrate(&doc).unwrap();
    assert_eq!(stored.title, "垃圾站满了");
    assert_eq!(stored.category, "环境卫生");
    assert_eq!(stored.submitter.name.as_deref(), Some("王阿姨"));
    assert_eq!(stored.submitter.member, None);
    assert_eq!(stored.submitter.contact.as_deref(), Some("138 0000 0000"));

    // Written by the server's own actor, not the resident's.
    let actors = actors_of(&h, doc_id);
    assert!(written_by_the_server(&h, doc_id), "{actors:?}");
    assert!(!actors.contains(&resident_actor));

    // Another resident sees nothing of it.
    let other = h.hello(enroll(&code)).await.unwrap();
    assert_eq!(other.manifest_docs, 0);
    assert_eq!(
        other.fetch(doc_id).await.err(),
        Some(ErrorCode::AccessDenied)
    );

    let audit = h.server.admin().audit(50).unwrap();
    let submitted = audit
        .iter()
        .find(|e| e.event == "petition.submitted")
        .unwrap();
    assert_eq!(submitted.device, Some(resident.device));
    assert_eq!(submitted.doc, Some(doc_id.into()));
    let registered: Vec<_> = audit
        .iter()
        .filter(|e| e.event == "resident.registered")
        .collect();
    assert_eq!(registered.len(), 2);
    assert!(
        registered
            .iter()
            .all(|e| e.detail.is_empty() && e.actor.is_none() && e.member.is_none())
    );
    h.server.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_code_registers_at_most_thirty_residents_an_hour() {
    let h = start().await;
    let code = h.submission_code(false);
    for _ in 0..30 {
        h.hello(enroll(&code)).await.unwrap();
    }
    assert_eq!(
        h.hello(enroll(&code)).await.err(),
        Some(ErrorCode::RateLimited)
    );
    // Invites are not affected.
    h.enroll(Role::Member).await;
    // A rotated code starts afresh; the old one stops working.
    let rotated = h.submission_code(true);
    h.hello(enroll(&rotated)).await.unwrap();
    assert_eq!(
        h.hello(enroll(&code)).await.err(),
        Some(ErrorCode::InviteInvalid)
    );
    let refused = h.server.admin().audit(20).unwrap();
    assert!(refused.iter().any(|e| e.event == "auth.refused"
        && e.code.as_deref() == Some("request.rate_limited")));
    h.server.shutdown().await.unwrap();
}

#[tokio::test]
async fn petitions_are_validated_and_limited_per_device() {
    let h = start().await;
    let code = h.submission_code(false);
    let resident = h.hello(enroll(&code)).await.unwrap();

    let invalid = [
        Message::SubmitPetition {
            category: "  ".into(),
            title: "t".into(),
            description: "d".into(),
            location: None,
            name: None,
            contact: None,
        },
        Message::SubmitPetition {
            category: "c".into(),
            title: "长".repeat(201),
            description: "d".into(),
            location: None,
            name: None,
            contact: None,
        },
        Message::SubmitPetition {
            category: "c".into(),
            title: "t".into(),
            description: "d".repeat(5001),
            location: None,
            name: None,
            contact: None,
        },
        Message::SubmitPetition {
            category: "c".into(),
            title: "t".into(),
            description: "d".into(),
            location: None,
            name: None,
            contact: Some("1".repeat(101)),
        },
    ];
    for message in invalid {
        assert_eq!(
            error_code(&resident.request(message).await),
            ErrorCode::InvalidRequest
        );
    }
    // Invalid requests do not use up the day's submissions.
    for i in 0..10 {
        let answer = resident.request(petition(&format!("第{i}件"))).await;
        assert!(
            matches!(answer, Message::PetitionSubmitted { .. }),
            "{answer:?}"
        );
    }
    assert_eq!(
        error_code(&resident.request(petition("第十一件")).await),
        ErrorCode::RateLimited
    );
    // The limit is the device's, not the branch's; and members may submit too.
    let member = h.enroll(Role::Member).await;
    assert!(matches!(
        member.request(petition("路灯坏了")).await,
        Message::PetitionSubmitted { .. }
    ));
    // The limit survives a restart: it is counted from the database.
    let again = h.reconnect(&resident).await;
    assert_eq!(again.manifest_docs, 10);
    assert_eq!(
        error_code(&again.request(petition("第十二件")).await),
        ErrorCode::RateLimited
    );
    h.server.shutdown().await.unwrap();
}

/// Puts a member on the branch's roster through a committee device and
/// enrolls a member device for them.
async fn enroll_member(h: &Harness, committee: &Session, name: &str) -> (Session, MemberId) {
    let roster_id = branch_doc(h, "roster");
    let mut roster = committee.fetch(roster_id).await.unwrap();
    roster.set_actor(ActorId::from(committee.actor.clone().unwrap()));
    let member = model::edit(&mut roster, |r: &mut Roster| {
        r.add_member(NewMember {
            name: name.into(),
            ..Default::default()
        })
    })
    .unwrap();
    committee.sync(roster_id, &mut roster).await.unwrap();
    let link = h
        .server
        .admin()
        .create_invite(
            h.branch.into(),
            Role::Member,
            Some(member),
            Duration::from_secs(600),
        )
        .unwrap();
    (h.hello(enroll(&link.code)).await.unwrap(), member)
}

#[tokio::test]
async fn suggestions_go_into_the_feedback_box_anonymous_ones_without_a_trace() {
    let h = start().await;
    let committee = h.enroll(Role::Committee).await;
    let (member, member_id) = enroll_member(&h, &committee, "李明").await;

    // Anonymous: the first suggestion also creates the branch's box.
    let Message::SuggestionSubmitted {
        doc_id,
        suggestion_id,
    } = member
        .request(Message::SubmitSuggestion {
            text: " 希望组织生活多安排在周末 ".into(),
            anonymous: true,
        })
        .await
    else {
        panic!("expected SuggestionSubmitted");
    };
    let Message::SuggestionSubmitted {
        doc_id: same_box,
        suggestion_id: named_id,
    } = member
        .request(Message::SubmitSuggestion {
            text: "党费收缴可以用手机".into(),
            anonymous: false,
        })
        .await
    else {
        panic!("expected SuggestionSubmitted");
    };
    assert_eq!(same_box, doc_id, "one box per branch");

    // Members read the box; the anonymous suggestion has no author, the
    // named one carries the member.
    let doc = member.fetch(doc_id).await.unwrap();
    let feedback: FeedbackBox = model::hydrate(&doc).unwrap();
    assert_eq!(feedback.suggestions.len(), 2);
    let anonymous = &feedback.suggestions[&suggestion_id];
    assert_eq!(anonymous.text.as_str(), "希望组织生活多安排在周末");
    assert_eq!(anonymous.author, None);
    assert_eq!(feedback.suggestions[&named_id].author, Some(member_id));

    // Every change is the server's, with no time on it.
    assert!(written_by_the_server(&h, doc_id));
    let stored = Automerge::load(
        &h.server
            .admin()
            .document_bytes(doc_id.into())
            .unwrap()
            .unwrap(),
    )
    .unwrap();
    assert!(stored.get_changes(&[]).iter().all(|c| c.timestamp() == 0));

    // The audit log: the anonymous one names the branch and box only.
    let audit = h.server.admin().audit(100).unwrap();
    let anonymous_rows: Vec<_> = audit
        .iter()
        .filter(|e| e.event == "suggestion.anonymous_accepted")
        .collect();
    assert_eq!(anonymous_rows.len(), 1);
    let row = anonymous_rows[0];
    assert_eq!(row.doc, Some(doc_id.into()));
    assert_eq!(row.branch, Some(h.branch.into()));
    assert_eq!((row.device, row.member, &row.actor), (None, None, &None));
    assert!(row.detail.is_empty());
    let named = audit
        .iter()
        .find(|e| e.event == "suggestion.accepted")
        .unwrap();
    assert_eq!(named.device, Some(member.device));
    assert_eq!(named.member, Some(member_id));
    // Nothing else about the box names the member's device.
    assert!(
        audit
            .iter()
            .filter(|e| e.doc == Some(doc_id.into()))
            .all(|e| e.event != "suggestion.anonymous_accepted" || e.device.is_none())
    );
    let by_member = audit
        .iter()
        .filter(|e| e.device == Some(member.device) && e.doc == Some(doc_id.into()))
        .count();
    assert_eq!(by_member, 1, "only the named suggestion");
    h.server.shutdown().await.unwrap();
}

#[tokio::test]
async fn suggestions_are_for_members_and_limited_per_device() {
    let h = start().await;
    let code = h.submission_code(false);
    let resident = h.hello(enroll(&code)).await.unwrap();
    let refused = resident
        .request(Message::SubmitSuggestion {
            text: "意见".into(),
            anonymous: true,
        })
        .await;
    assert_eq!(error_code(&refused), ErrorCode::AccessDenied);

    let member = h.enroll(Role::Member).await;
    let blank = member
        .request(Message::SubmitSuggestion {
            text: "  ".into(),
            anonymous: true,
        })
        .await;
    assert_eq!(error_code(&blank), ErrorCode::InvalidRequest);
    // A device with no member cannot sign a suggestion.
    let unsigned = member
        .request(Message::SubmitSuggestion {
            text: "意见".into(),
            anonymous: false,
        })
        .await;
    assert_eq!(error_code(&unsigned), ErrorCode::InvalidRequest);
    for i in 0..10 {
        let answer = member
            .request(Message::SubmitSuggestion {
                text: format!("第{i}条意见"),
                anonymous: true,
            })
            .await;
        assert!(
            matches!(answer, Message::SuggestionSubmitted { .. }),
            "{answer:?}"
        );
    }
    let limited = member
        .request(Message::SubmitSuggestion {
            text: "第十一条".into(),
            anonymous: true,
        })
        .await;
    assert_eq!(error_code(&limited), ErrorCode::RateLimited);
    // Refusals of anonymous suggestions are not audited with the device;
    // the refused signed one is.
    let audit = h.server.admin().audit(100).unwrap();
    let refusals = audit
        .iter()
        .filter(|e| e.device == Some(member.device) && e.event == "request.refused")
        .count();
    assert_eq!(refusals, 1);
    h.server.shutdown().await.unwrap();
}
