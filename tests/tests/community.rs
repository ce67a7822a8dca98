//! Community input and refused edits, end to end with real devices: a
//! resident files a request through the branch's public code and follows it
//! to its rating; an anonymous suggestion reaches the committee with no
//! trace of its author; a device's refused edit is dropped while its later
//! honest edit arrives.

use anyhow::{Context as _, Result};
use branchline_core::model::{Activity, NewMember, NewPetition, Petition, Submitter};
use branchline_core::net::ClientEvent;
use branchline_core::sync::SyncEvent;
use branchline_core::{BranchId, MemberId};
use branchline_protocol::Role;
use branchline_tests::{Device, TestServer, init_tracing, meeting};

async fn branch_with_secretary(server: &TestServer) -> Result<(BranchId, Device)> {
    let branch = server.branch("幸福里社区支部")?;
    let secretary = server
        .device("secretary", branch, Role::Secretary, None)
        .await?;
    Ok((branch, secretary))
}

fn add_member(secretary: &Device, branch: BranchId, name: &str) -> Result<MemberId> {
    Ok(secretary.store().add_member(
        branch,
        NewMember {
            name: name.into(),
            ..Default::default()
        },
    )?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resident_files_a_request_follows_it_and_rates_the_result() -> Result<()> {
    init_tracing();
    let server = TestServer::start().await?;
    let (branch, secretary) = branch_with_secretary(&server).await?;
    let owner = add_member(&secretary, branch, "王芳")?;
    secretary.wait_in_sync().await?;

    // The secretary's phone shows the branch's public code; a resident scans it.
    let link = secretary.client().submission_link().await?;
    let resident = Device::join("resident", link).await?;
    assert!(
        resident.store().documents()?.is_empty(),
        "a resident sees nothing of the branch"
    );
    let blank = resident
        .client()
        .submit_petition(&NewPetition {
            category: "道路交通".into(),
            title: "  ".into(),
            description: "x".into(),
            ..Default::default()
        })
        .await
        .expect_err("a blank title is refused on the phone");
    assert_eq!(blank.code(), "input.empty");
    let petition = resident
        .client()
        .submit_petition(&NewPetition {
            category: "道路交通".into(),
            title: "东门路灯不亮".into(),
            description: "小区东门的路灯坏了一个星期，晚上很黑。".into(),
            location: Some("东门".into()),
            submitter: Submitter {
                name: Some("陈阿姨".into()),
                contact: Some("13800000000".into()),
                member: None,
            },
        })
        .await?;
    resident
        .eventually("its own request", |s| s.get::<Petition>(petition).is_ok())
        .await?;

    // The committee assigns and resolves it.
    secretary
        .eventually("the resident's request", |s| {
            s.get::<Petition>(petition).is_ok()
        })
        .await?;
    {
        let mut store = secretary.store();
        store.assign_petition(petition, owner, "2026-12-31".parse()?)?;
        store.resolve_petition(petition, None, "已更换灯泡")?;
    }
    secretary.wait_in_sync().await?;

    // The resident sees the resolution and rates it.
    resident
        .eventually("the resolution", |s| {
            s.get::<Petition>(petition)
                .is_ok_and(|p| p.resolution.is_some())
        })
        .await?;
    resident
        .store()
        .rate_petition(petition, 5, Some("很快就修好了"))?;
    resident.wait_in_sync().await?;
    secretary
        .eventually("the rating", |s| {
            s.get::<Petition>(petition)
                .is_ok_and(|p| p.rating.as_ref().is_some_and(|r| r.score == 5))
        })
        .await?;
    assert!(resident.store().rejections(None)?.is_empty());

    // And it never saw anything else of the branch.
    let held: Vec<_> = resident
        .store()
        .documents()?
        .into_iter()
        .map(|d| d.id)
        .collect();
    assert_eq!(held, vec![petition]);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_anonymous_suggestion_reaches_the_committee_without_its_author() -> Result<()> {
    init_tracing();
    let server = TestServer::start().await?;
    let (branch, secretary) = branch_with_secretary(&server).await?;
    let member_id = add_member(&secretary, branch, "李明")?;
    secretary.wait_in_sync().await?;
    let member = server
        .device("member", branch, Role::Member, Some(member_id))
        .await?;
    let device = member.store().device_id();

    let (feedback_box, suggestion) = member
        .client()
        .submit_suggestion("希望周末也能开放活动室", true)
        .await?;
    secretary
        .eventually("the suggestion", |s| {
            s.feedback_box(branch)
                .ok()
                .flatten()
                .is_some_and(|(_, b)| b.suggestion(suggestion).is_some())
        })
        .await?;
    let (_, seen) = secretary
        .store()
        .feedback_box(branch)?
        .context("the branch's feedback box")?;
    let entry = seen.suggestion(suggestion).context("the suggestion")?;
    assert_eq!(entry.author, None);

    // No trace of the member in the document's history…
    let bytes = server
        .admin()
        .document_bytes(feedback_box)?
        .context("the box on the server")?;
    let mut history = automerge::AutoCommit::load(&bytes)?;
    for change in history.get_changes(&[]) {
        assert_ne!(change.actor_id().to_bytes(), device.as_bytes().as_slice());
    }
    // …nor in the audit log.
    for entry in server.admin().audit(10_000)? {
        if entry.doc == Some(feedback_box) {
            assert_eq!(entry.device, None, "{entry:?}");
            assert_eq!(entry.member, None, "{entry:?}");
            assert_eq!(entry.actor, None, "{entry:?}");
        }
    }

    // A named one carries its author.
    let (_, named) = member
        .client()
        .submit_suggestion("建议增加党员学习资料", false)
        .await?;
    secretary
        .eventually("the named suggestion", |s| {
            s.feedback_box(branch).ok().flatten().is_some_and(|(_, b)| {
                b.suggestion(named)
                    .is_some_and(|n| n.author == Some(member_id))
            })
        })
        .await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_edit_is_dropped_on_the_device_and_its_later_edits_still_arrive() -> Result<()> {
    init_tracing();
    let server = TestServer::start().await?;
    let (branch, secretary) = branch_with_secretary(&server).await?;
    let member_id = add_member(&secretary, branch, "赵强")?;
    let meeting = secretary.store().create_activity(
        branch,
        meeting("branch_meeting", "四月支部党员大会", "2026-04-01"),
    )?;
    secretary.wait_in_sync().await?;
    let member = server
        .device("member", branch, Role::Member, Some(member_id))
        .await?;
    let mut events = member.client().subscribe();

    // Offline, the member renames the meeting (only its organizer or the
    // committee may), then signs in, which is theirs to do.
    member.go_offline().await?;
    member.store().update(meeting, |a: &mut Activity| {
        a.title = "我改的标题".into();
        Ok(())
    })?;
    member.store().sign_in(
        meeting,
        member_id,
        branchline_core::model::SignInMode::OnSite,
    )?;
    member.go_online().await?;

    member
        .eventually("the refusal recorded", |s| {
            s.rejections(None).is_ok_and(|r| r.len() == 1)
        })
        .await?;
    member.wait_in_sync().await?;
    let rejections = member.store().rejections(None)?;
    assert_eq!(rejections[0].code, "rule.organizer_only");
    assert_eq!(rejections[0].doc_id, meeting);

    // The device dropped the rename and kept the sign-in…
    let local = member.store().get::<Activity>(meeting)?;
    assert_eq!(local.title, "四月支部党员大会");
    assert!(local.signed_in(member_id));
    assert_eq!(member.store().pending_changes()?, 0);
    // …the committee got the sign-in and never the rename…
    secretary
        .eventually("the member's sign-in", |s| {
            s.get::<Activity>(meeting)
                .is_ok_and(|a| a.signed_in(member_id))
        })
        .await?;
    assert_eq!(
        secretary.store().get::<Activity>(meeting)?.title,
        "四月支部党员大会"
    );
    // …and the app heard about it.
    let mut heard = false;
    while let Ok(event) = events.try_recv() {
        if let ClientEvent::Sync(SyncEvent::Rejected(rejection)) = event {
            heard |= rejection.code == "rule.organizer_only";
        }
    }
    assert!(heard, "no Rejected event reached the app");
    branchline_tests::assert_converged(&server, &[&secretary, &member])?;
    Ok(())
}

/// A committee member's draft answer never reaches a member's phone: drafts
/// are a document only the committee receives, and the answer reaches the
/// feedback box, and members, when it is published.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unpublished_answers_never_reach_members() -> Result<()> {
    init_tracing();
    let server = TestServer::start().await?;
    let (branch, secretary) = branch_with_secretary(&server).await?;
    let wang = add_member(&secretary, branch, "王芳")?;
    secretary.wait_in_sync().await?;
    let member = server
        .device("member", branch, Role::Member, Some(wang))
        .await?;
    let (_, suggestion) = member
        .client()
        .submit_suggestion("希望周末也能开放活动室", false)
        .await?;
    secretary
        .eventually("the suggestion", |s| {
            s.feedback_box(branch)
                .ok()
                .flatten()
                .is_some_and(|(_, fb)| fb.suggestion(suggestion).is_some())
        })
        .await?;

    secretary
        .store()
        .answer_suggestion(branch, suggestion, "草稿：下月试行")?;
    secretary.wait_in_sync().await?;
    member.client().sync_now();
    member.wait_in_sync().await?;
    let kinds: Vec<String> = member
        .store()
        .documents()?
        .into_iter()
        .map(|d| d.kind)
        .collect();
    assert!(
        !kinds.iter().any(|k| k == "feedback_drafts"),
        "a member's phone holds no drafts: {kinds:?}"
    );
    let (box_id, fb) = member.store().feedback_box(branch)?.context("the box")?;
    assert!(
        fb.suggestion(suggestion)
            .context("the suggestion")?
            .answer
            .is_none()
    );
    let history = member.store().export(box_id)?;
    assert!(
        !String::from_utf8_lossy(&history).contains("草稿"),
        "nor anywhere in the box's history"
    );

    secretary.store().publish_answer(branch, suggestion, true)?;
    member
        .eventually("the published answer", |s| {
            s.feedback_box(branch)
                .ok()
                .flatten()
                .is_some_and(|(_, fb)| {
                    fb.published().any(|(_, s)| {
                        s.answer
                            .as_ref()
                            .is_some_and(|a| a.text == "草稿：下月试行")
                    })
                })
        })
        .await?;
    Ok(())
}
