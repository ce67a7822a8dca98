//! Bad input from the network gets a clear error code, and the server keeps
//! serving everyone else.

use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use automerge::sync::SyncDoc as _;
use branchline_core::model::DocKind;
use branchline_protocol::{
    Credentials, DocId, ErrorCode, InviteLink, MIN_SUPPORTED_VERSION, Message, PROTOCOL_VERSION,
    Role, encode,
};
use branchline_tests::TestServer;
use branchline_tests::raw::Raw;

fn enroll(code: &str) -> Credentials {
    Credentials::Enroll {
        invite_code: code.to_owned(),
        device_name: "raw test client".to_owned(),
        actor_id: vec![0x42; 16],
    }
}

fn error_code(messages: &[Message]) -> Option<ErrorCode> {
    messages.iter().find_map(|m| match m {
        Message::Error { code, .. } => Some(code.clone()),
        _ => None,
    })
}

fn frame(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut out = u32::try_from(body.len() + 1)
        .unwrap()
        .to_be_bytes()
        .to_vec();
    out.push(tag);
    out.extend_from_slice(body);
    out
}

/// A device of `branch` enrolled by hand; returns its connection.
async fn enrolled(server: &TestServer, invite: &InviteLink) -> Result<Raw> {
    let raw = Raw::connect(server).await?;
    let (_control, answer) = raw.hello(enroll(&invite.code)).await?;
    match answer {
        Message::Welcome { .. } => Ok(raw),
        other => bail!("expected Welcome, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_frames_get_error_codes_and_the_server_keeps_serving() -> Result<()> {
    let server = TestServer::start().await?;
    let branch = server.branch("Riverside")?;

    let cases: Vec<(&str, Vec<u8>, ErrorCode)> = vec![
        (
            "garbage body",
            frame(0x01, &[0xff, 0xff, 0xff]),
            ErrorCode::Malformed,
        ),
        ("unknown tag", frame(0x7f, b""), ErrorCode::UnknownMessage),
        (
            "oversized frame",
            [0x7f, 0xff, 0xff, 0xff, 0x01].to_vec(),
            ErrorCode::FrameTooLarge,
        ),
        (
            "wrong version",
            encode(&Message::Hello {
                version: 99,
                min_version: 90,
                credentials: enroll("whatever"),
            })?,
            ErrorCode::VersionUnsupported,
        ),
        (
            "no Hello first",
            encode(&Message::ManifestDigest {
                doc_count: 0,
                digest: [0; 32],
            })?,
            ErrorCode::Unauthenticated,
        ),
        (
            "unknown invite",
            encode(&Message::Hello {
                version: PROTOCOL_VERSION,
                min_version: MIN_SUPPORTED_VERSION,
                credentials: enroll("NO-SUCH-CODE"),
            })?,
            ErrorCode::InviteInvalid,
        ),
    ];
    for (what, bytes, expected) in cases {
        let raw = Raw::connect(&server).await?;
        let answer = raw.exchange(&bytes).await?;
        assert_eq!(error_code(&answer), Some(expected), "{what}: {answer:?}");
    }

    // A wrong ALPN fails in the TLS handshake.
    assert!(
        Raw::connect_with_alpn(&server, b"http/1.1").await.is_err(),
        "a wrong ALPN must be refused"
    );

    // After all that, a real device still enrolls and syncs.
    let device = server
        .device("phone", branch, Role::Secretary, None)
        .await?;
    assert_eq!(device.store().documents()?.len(), 2, "profile and roster");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_and_reused_invites_are_refused() -> Result<()> {
    let server = TestServer::start().await?;
    let branch = server.branch("Riverside")?;

    let invite = server.invite(branch, Role::Member, None)?;
    enrolled(&server, &invite).await?;
    let again = Raw::connect(&server).await?;
    let (_, answer) = again.hello(enroll(&invite.code)).await?;
    assert!(
        matches!(
            &answer,
            Message::Error {
                code: ErrorCode::InviteUsed,
                ..
            }
        ),
        "{answer:?}"
    );

    let short = server
        .admin()
        .create_invite(branch, Role::Member, None, Duration::from_secs(1))?;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let late = Raw::connect(&server).await?;
    let (_, answer) = late.hello(enroll(&short.code)).await?;
    assert!(
        matches!(
            &answer,
            Message::Error {
                code: ErrorCode::InviteExpired,
                ..
            }
        ),
        "{answer:?}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_sync_bytes_and_out_of_scope_documents_are_refused_per_document() -> Result<()> {
    let server = TestServer::start().await?;
    let ours = server.branch("Riverside")?;
    let theirs = server.branch("Hillside")?;
    let their_device = server
        .device("their phone", theirs, Role::Secretary, None)
        .await?;
    let their_roster: DocId = their_device
        .store()
        .branch_document(theirs, DocKind::Roster)?
        .into();

    let invite = server.invite(ours, Role::Secretary, None)?;
    let raw = enrolled(&server, &invite).await?;
    let our_device = server
        .device("our phone", ours, Role::Secretary, None)
        .await?;
    let our_roster: DocId = our_device
        .store()
        .branch_document(ours, DocKind::Roster)?
        .into();

    let garbage = encode(&Message::SyncDoc {
        doc_id: our_roster,
        payload: b"definitely not automerge".to_vec(),
    })?;
    let answer = raw.exchange(&garbage).await?;
    assert_eq!(
        error_code(&answer),
        Some(ErrorCode::InvalidSyncPayload),
        "{answer:?}"
    );

    let mut state = automerge::sync::State::new();
    let probe = automerge::AutoCommit::new()
        .sync()
        .generate_sync_message(&mut state)
        .context("a first sync message")?
        .encode();
    let outside = encode(&Message::SyncDoc {
        doc_id: their_roster,
        payload: probe,
    })?;
    let answer = raw.exchange(&outside).await?;
    assert_eq!(
        error_code(&answer),
        Some(ErrorCode::AccessDenied),
        "{answer:?}"
    );

    // The connection itself is still usable after per-document errors.
    let answer = raw.exchange(&garbage).await?;
    assert_eq!(error_code(&answer), Some(ErrorCode::InvalidSyncPayload));
    Ok(())
}

/// An invite whose pinned certificate is not the server's fails at once with
/// its own code, instead of retrying until the person gives up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_other_than_the_pinned_one_is_refused_at_once() -> Result<()> {
    let server = TestServer::start().await?;
    let branch = server.branch("Riverside")?;
    let mut invite = server.invite(branch, Role::Secretary, None)?;
    invite.cert_sha256[0] ^= 0xff;
    let device =
        branchline_tests::Device::start("phone", invite, branchline_tests::client_config())?;
    let mut status = device.client().status_updates();
    let refused = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            if let branchline_core::net::Status::Refused { code } =
                status.borrow_and_update().clone()
            {
                return code;
            }
            status.changed().await.expect("the client keeps its status");
        }
    })
    .await
    .context("no refusal within 10 s")?;
    assert_eq!(refused, ErrorCode::CertificateMismatch);
    assert_eq!(refused.as_str(), "tls.certificate_mismatch");
    Ok(())
}
