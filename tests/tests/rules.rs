//! The server checks every change against the sender's role: a hostile
//! client speaking the raw protocol tries each forbidden edit, gets each
//! refused with its code, nobody else ever sees them, and its honest
//! changes afterwards go through. Ordinary devices editing the committee's
//! books (dues, points, applicant files, the problem library) through their
//! store are refused the same way.

use anyhow::{Context as _, Result, bail};
use automerge::{ActorId, AutoCommit, ChangeHash};
use branchline_core::model::{
    self, Activity, Applicant, Collection, Date, DocKind, DuesLedger, LibraryEntry,
    NewLibraryEntry, NewMember, NewPetition, Petition, PointsBook, Record, Roster, SignInMode,
    Stage, Submitter, Timestamp,
};
use branchline_core::{BranchId, DocId, MemberId};
use branchline_protocol::{ErrorCode, Message, Role};
use branchline_tests::raw::Raw;
use branchline_tests::{Backend, Device, TestServer, init_tracing};

/// A client that follows the protocol but not the rules.
struct Hostile {
    raw: Raw,
    actor: ActorId,
}

impl Hostile {
    async fn enroll(
        server: &TestServer,
        branch: BranchId,
        role: Role,
        member: Option<MemberId>,
    ) -> Result<Self> {
        let actor = ActorId::random();
        let invite = server.invite(branch, role, member)?;
        let (raw, _) = Raw::enroll(server, &invite, actor.to_bytes()).await?;
        Ok(Hostile { raw, actor })
    }

    /// The server's copy of `doc`, written to from here on as this device.
    async fn fetch(&self, doc: DocId) -> Result<AutoCommit> {
        let mut copy = AutoCommit::new().with_actor(self.actor.clone());
        let said = self.raw.sync_doc(doc.into(), &mut copy).await?;
        if let Some(refused) = said.iter().find(|m| !matches!(m, Message::Ack { .. })) {
            bail!("fetching {doc}: {refused:?}");
        }
        Ok(copy)
    }

    /// Makes one edit on `copy` and sends it; returns the change and what
    /// the server said.
    async fn try_edit<R: Record>(
        &self,
        doc: DocId,
        copy: &mut AutoCommit,
        op: impl FnOnce(&mut R) -> branchline_core::Result<()>,
    ) -> Result<(ChangeHash, Vec<Message>)> {
        model::edit(copy, op)?;
        copy.commit();
        let hash = *copy.get_heads().first().context("no change made")?;
        let said = self.raw.sync_doc(doc.into(), copy).await?;
        Ok((hash, said))
    }
}

/// The code a `Rejected` gave `change`, if it was refused.
fn refusal(said: &[Message], change: ChangeHash) -> Option<ErrorCode> {
    said.iter().find_map(|m| match m {
        Message::Rejected { rejections, .. } => rejections
            .iter()
            .find(|r| r.change == change.0)
            .map(|r| r.code.clone()),
        Message::Error { code, .. } => Some(code.clone()),
        _ => None,
    })
}

fn accepted(said: &[Message]) -> bool {
    said.iter().any(|m| matches!(m, Message::Ack { .. }))
        && !said
            .iter()
            .any(|m| matches!(m, Message::Rejected { .. } | Message::Error { .. }))
}

/// Whether the server stored `change` in `doc`.
fn on_server(server: &TestServer, doc: DocId, change: ChangeHash) -> Result<bool> {
    let Some(bytes) = server.admin().document_bytes(doc)? else {
        return Ok(false);
    };
    Ok(AutoCommit::load(&bytes)?
        .get_change_by_hash(&change)
        .is_some())
}

async fn every_forbidden_edit_is_refused_with_its_code_and_reaches_nobody(
    backend: Backend,
) -> Result<()> {
    init_tracing();
    let server = TestServer::on(backend).await?;
    let branch: BranchId = server.branch("幸福里支部")?;
    let elsewhere: BranchId = server.branch("光明路支部")?;
    let secretary = server
        .device("secretary", branch, Role::Secretary, None)
        .await?;
    let (honest, hostile_member, owner) = {
        let mut store = secretary.store();
        let mut add = |name: &str| {
            store.add_member(
                branch,
                NewMember {
                    name: name.into(),
                    ..Default::default()
                },
            )
        };
        (add("李明")?, add("赵强")?, add("王芳")?)
    };
    let meeting = secretary.store().create_activity(
        branch,
        branchline_tests::meeting("branch_meeting", "三月支部党员大会", "2026-03-01"),
    )?;
    secretary.wait_in_sync().await?;

    let member = server
        .device("member", branch, Role::Member, Some(honest))
        .await?;
    // A request the honest member filed, given to the hostile member to
    // handle and already resolved.
    let theirs = member.store().submit_petition(
        branch,
        NewPetition {
            category: "环境卫生".into(),
            title: "楼道堆放杂物".into(),
            description: "三单元楼道堆满杂物".into(),
            submitter: Submitter {
                member: Some(honest),
                ..Default::default()
            },
            ..Default::default()
        },
    )?;
    member.wait_in_sync().await?;
    secretary
        .eventually("the member's petition", |s| {
            s.get::<Petition>(theirs).is_ok()
        })
        .await?;
    {
        let mut store = secretary.store();
        store.assign_petition(theirs, hostile_member, "2026-12-31".parse()?)?;
        store.resolve_petition(theirs, None, "已清理")?;
    }
    secretary.wait_in_sync().await?;

    let hostile = Hostile::enroll(&server, branch, Role::Member, Some(hostile_member)).await?;
    let mut cases: Vec<(&str, DocId, ChangeHash, ErrorCode)> = Vec::new();

    // Someone else's sign-in.
    let mut copy = hostile.fetch(meeting).await?;
    let (change, said) = hostile
        .try_edit(meeting, &mut copy, |a: &mut Activity| {
            a.sign_in(honest, Timestamp(1_772_355_600_000), SignInMode::OnSite)
        })
        .await?;
    cases.push((
        "someone else's sign-in",
        meeting,
        change,
        ErrorCode::NotOwnEntry,
    ));
    assert_eq!(
        refusal(&said, change),
        Some(ErrorCode::NotOwnEntry),
        "{said:?}"
    );

    // The roster, as a member.
    let roster = secretary.store().branch_document(branch, DocKind::Roster)?;
    let mut copy = hostile.fetch(roster).await?;
    let (change, said) = hostile
        .try_edit(roster, &mut copy, |r: &mut Roster| {
            r.add_member(NewMember {
                name: "冒名顶替".into(),
                ..Default::default()
            })
            .map(|_| ())
        })
        .await?;
    // Members may only read the roster, so access control refuses it before
    // the rules are asked.
    cases.push((
        "the roster as a member",
        roster,
        change,
        ErrorCode::ReadOnly,
    ));
    assert_eq!(
        refusal(&said, change),
        Some(ErrorCode::ReadOnly),
        "{said:?}"
    );

    // A rating by the owner, who did not submit the request.
    let mut copy = hostile.fetch(theirs).await?;
    let (change, said) = hostile
        .try_edit(theirs, &mut copy, |p: &mut Petition| {
            p.rate(5, Some("自己给自己打分"), Timestamp(0))
        })
        .await?;
    cases.push((
        "a rating by a non-submitter",
        theirs,
        change,
        ErrorCode::SubmitterOnly,
    ));
    assert_eq!(
        refusal(&said, change),
        Some(ErrorCode::SubmitterOnly),
        "{said:?}"
    );

    // Progress on the hostile member's own request, owned by someone else.
    let mut own = Petition::submit(
        branch,
        NewPetition {
            category: "道路交通".into(),
            title: "路灯不亮".into(),
            description: "小区东门路灯坏了".into(),
            submitter: Submitter {
                member: Some(hostile_member),
                ..Default::default()
            },
            ..Default::default()
        },
        Timestamp(1_772_355_600_000),
    )?;
    own.meta.id = branchline_core::DocId::random();
    let mine = own.meta.id;
    let mut copy = model::create_document(&own, hostile.actor.clone())?;
    let said = hostile.raw.sync_doc(mine.into(), &mut copy).await?;
    assert!(accepted(&said), "a fresh petition of one's own: {said:?}");
    secretary
        .eventually("the hostile member's petition", |s| {
            s.get::<Petition>(mine).is_ok()
        })
        .await?;
    secretary
        .store()
        .assign_petition(mine, owner, "2026-12-31".parse()?)?;
    secretary.wait_in_sync().await?;
    let mut copy = hostile.fetch(mine).await?;
    let (change, said) = hostile
        .try_edit(mine, &mut copy, |p: &mut Petition| {
            p.add_progress(Some(hostile_member), "我自己处理完了", Timestamp(0))
        })
        .await?;
    cases.push((
        "progress by a non-owner",
        mine,
        change,
        ErrorCode::OwnerOnly,
    ));
    assert_eq!(
        refusal(&said, change),
        Some(ErrorCode::OwnerOnly),
        "{said:?}"
    );

    // A resident who filed a request marks it resolved.
    let resident = Hostile::enroll(&server, branch, Role::Resident, None).await?;
    let mut request = Petition::submit(
        branch,
        NewPetition {
            category: "环境卫生".into(),
            title: "垃圾桶满了".into(),
            description: "三号楼垃圾桶没人清".into(),
            ..Default::default()
        },
        Timestamp(1_772_355_600_000),
    )?;
    request.meta.id = branchline_core::DocId::random();
    let filed = request.meta.id;
    let mut copy = model::create_document(&request, resident.actor.clone())?;
    let said = resident.raw.sync_doc(filed.into(), &mut copy).await?;
    assert!(
        accepted(&said),
        "a resident files a fresh request: {said:?}"
    );
    let (change, said) = resident
        .try_edit(filed, &mut copy, |p: &mut Petition| {
            p.status = model::PetitionStatus::Resolved;
            Ok(())
        })
        .await?;
    cases.push(("a write by a resident", filed, change, ErrorCode::OwnerOnly));
    assert_eq!(
        refusal(&said, change),
        Some(ErrorCode::OwnerOnly),
        "{said:?}"
    );

    // A document of another branch.
    let foreign = Activity::new(
        elsewhere,
        branchline_tests::meeting("theme_day", "别的支部的活动", "2026-03-05"),
    )?;
    let foreign_id = foreign.meta.id;
    let mut copy = model::create_document(&foreign, hostile.actor.clone())?;
    let change = *copy.get_heads().first().context("a change")?;
    let said = hostile.raw.sync_doc(foreign_id.into(), &mut copy).await?;
    cases.push((
        "a write to another branch",
        foreign_id,
        change,
        ErrorCode::InvalidDocument,
    ));
    assert_eq!(
        refusal(&said, change),
        Some(ErrorCode::InvalidDocument),
        "{said:?}"
    );

    // Nobody else ever sees any of them.
    secretary.wait_in_sync().await?;
    member.wait_in_sync().await?;
    for (what, doc, change, _) in &cases {
        assert!(
            !on_server(&server, *doc, *change)?,
            "{what}: stored on the server"
        );
        for device in [&secretary, &member] {
            if let Ok(mut held) = device.store().load_document(*doc) {
                assert!(
                    held.get_change_by_hash(change).is_none(),
                    "{what}: reached {}",
                    device.name
                );
            }
        }
    }

    // The refusals are in the audit log, with their codes.
    let audit = server.admin().audit(1_000)?;
    for (what, _, change, code) in &cases {
        assert!(
            audit
                .iter()
                .any(|entry| entry.code.as_deref() == Some(code.as_str())
                    && entry.detail.contains(&change.to_string())),
            "{what}: not audited"
        );
    }

    // A forbidden edit with an honest one on top: the honest one cannot be
    // stored without it, so it is held back, and only the forbidden one is
    // named.
    let mut copy = hostile.fetch(meeting).await?;
    model::edit(&mut copy, |a: &mut Activity| {
        a.title = "我改的标题".into();
        Ok(())
    })?;
    copy.commit();
    let forbidden = *copy.get_heads().first().context("a change")?;
    let (on_top, said) = hostile
        .try_edit(meeting, &mut copy, |a: &mut Activity| {
            a.sign_in(
                hostile_member,
                Timestamp(1_772_355_700_000),
                SignInMode::OnSite,
            )
        })
        .await?;
    let named: Vec<[u8; 32]> = said
        .iter()
        .flat_map(|m| match m {
            Message::Rejected { rejections, .. } => rejections.iter().map(|r| r.change).collect(),
            _ => Vec::new(),
        })
        .collect();
    assert_eq!(named, vec![forbidden.0], "{said:?}");
    assert!(!on_server(&server, meeting, on_top)?);

    // Its honest changes made afterwards, on what the server holds, go through.
    let mut copy = hostile.fetch(meeting).await?;
    let (change, said) = hostile
        .try_edit(meeting, &mut copy, |a: &mut Activity| {
            a.sign_in(
                hostile_member,
                Timestamp(1_772_355_700_000),
                SignInMode::OnSite,
            )
        })
        .await?;
    assert!(accepted(&said), "{said:?}");
    assert!(on_server(&server, meeting, change)?);
    secretary
        .eventually("the hostile member's own sign-in", |s| {
            s.get::<Activity>(meeting)
                .is_ok_and(|a| a.signed_in(hostile_member))
        })
        .await?;
    Ok(())
}

/// Syncs `device` and waits until it recorded the server's refusal of its
/// change to `doc`; returns the code the server sent.
async fn refusal_recorded(device: &Device, doc: DocId) -> Result<String> {
    device.client().sync_now();
    let mut code = None;
    device
        .eventually("the server's refusal", |s| {
            code = s
                .rejections(None)
                .ok()
                .and_then(|all| all.into_iter().find(|r| r.doc_id == doc))
                .map(|r| r.code);
            code.is_some()
        })
        .await?;
    code.context("a refusal")
}

/// The server's heads of `doc`.
fn server_heads(server: &TestServer, doc: DocId) -> Result<Vec<ChangeHash>> {
    server.heads(doc)?.context("the server holds the document")
}

/// The dues ledger, the points book, an applicant file and the problem
/// library are the committee's: a member's edits to each are refused with
/// the code the server sends and never stored, a committee sharing an entry
/// with a branch outside its alliances is refused, and the committee's own
/// edits are kept and reach the members.
async fn members_read_the_committees_books_and_sharing_stays_among_allies(
    backend: Backend,
) -> Result<()> {
    init_tracing();
    let server = TestServer::on(backend).await?;
    let branch: BranchId = server.branch("幸福里支部")?;
    let ally: BranchId = server.branch("光明路支部")?;
    let stranger: BranchId = server.branch("向阳村支部")?;
    server
        .admin()
        .add_alliance("幸福里党建联盟", &[branch, ally])?;
    let secretary = server
        .device("secretary", branch, Role::Secretary, None)
        .await?;
    let day: Date = "2026-04-02".parse()?;
    let (member_id, applicant_id) = {
        let mut store = secretary.store();
        let mut add = |name: &str| {
            store.add_member(
                branch,
                NewMember {
                    name: name.into(),
                    ..Default::default()
                },
            )
        };
        (add("李明")?, add("赵强")?)
    };
    let (ledger, book, file, entry) = {
        let mut store = secretary.store();
        store.record_dues_payment(branch, member_id, 2026, 1..=3, Some(300), day)?;
        store.award(branch, member_id, None, Some(5), Some("志愿服务"), day)?;
        let file = store.add_applicant(branch, applicant_id, "2026-01-05".parse()?)?;
        let entry = store.write_library_entry(
            branch,
            NewLibraryEntry {
                collection: Collection::Problem,
                title: "路灯坏了没人管".into(),
                problem: "老旧小区路灯长期不亮".into(),
                solution: "联系街道维修".into(),
                tags: vec!["路灯".into()],
                written_on: day,
            },
        )?;
        (
            store.dues_ledger(branch, 2026)?,
            store.points_book(branch, 2026)?,
            file,
            entry,
        )
    };
    secretary.wait_in_sync().await?;
    let member = server
        .device("member", branch, Role::Member, Some(member_id))
        .await?;
    let applicant = server
        .device("applicant", branch, Role::Member, Some(applicant_id))
        .await?;
    for doc in [ledger, book, entry] {
        assert!(member.store().load_document(doc).is_ok(), "members read it");
    }
    assert!(applicant.store().get::<Applicant>(file).is_ok());
    assert!(
        member.store().load_document(file).is_err(),
        "another member's applicant file stays with the committee"
    );

    // Each forbidden edit: the device makes it locally, the server refuses
    // it with the code it sends, and keeps none of it.
    let before = server_heads(&server, ledger)?;
    member
        .store()
        .record_dues_payment(branch, member_id, 2026, 4..=6, Some(300), day)?;
    assert_eq!(
        refusal_recorded(&member, ledger).await?,
        ErrorCode::ReadOnly.as_str(),
        "a member records a dues payment"
    );
    assert_eq!(server_heads(&server, ledger)?, before);

    let before = server_heads(&server, book)?;
    member
        .store()
        .award(branch, member_id, None, Some(50), Some("自己加分"), day)?;
    assert_eq!(
        refusal_recorded(&member, book).await?,
        ErrorCode::ReadOnly.as_str(),
        "a member awards points"
    );
    assert_eq!(server_heads(&server, book)?, before);

    let before = server_heads(&server, entry)?;
    member
        .store()
        .revise_library_entry(entry, None, None, Some("我觉得应该这样"))?;
    assert_eq!(
        refusal_recorded(&member, entry).await?,
        ErrorCode::ReadOnly.as_str(),
        "a member edits a library entry"
    );
    assert_eq!(server_heads(&server, entry)?, before);

    let before = server_heads(&server, file)?;
    applicant.store().update(file, |a: &mut Applicant| {
        a.record_stage(Stage::Activist, day, Some("自己记的"))
    })?;
    assert_eq!(
        refusal_recorded(&applicant, file).await?,
        ErrorCode::ReadOnly.as_str(),
        "an applicant edits their own file"
    );
    assert_eq!(server_heads(&server, file)?, before);

    let before = server_heads(&server, entry)?;
    secretary.store().share_library_entry(entry, stranger)?;
    assert_eq!(
        refusal_recorded(&secretary, entry).await?,
        ErrorCode::NotAllied.as_str(),
        "the committee shares an entry with a branch outside its alliances"
    );
    assert_eq!(server_heads(&server, entry)?, before);
    assert!(
        secretary
            .store()
            .get::<LibraryEntry>(entry)?
            .shared_with
            .is_empty(),
        "the device dropped the refused share"
    );

    // The committee's own edits are kept and reach the member devices.
    {
        let mut store = secretary.store();
        store.record_dues_payment(branch, member_id, 2026, 4..=6, Some(300), day)?;
        store.award(branch, member_id, None, Some(3), Some("党课主讲"), day)?;
        store.revise_library_entry(entry, None, None, Some("联系街道，结对单位出资修好"))?;
        store.share_library_entry(entry, ally)?;
        store.record_applicant_stage(applicant_id, Stage::Activist, day, None)?;
    }
    secretary.wait_in_sync().await?;
    assert_eq!(
        secretary.store().rejections(None)?.len(),
        1,
        "only the share with a stranger was refused"
    );
    member
        .eventually("the committee's edits", |s| {
            s.get::<DuesLedger>(ledger)
                .is_ok_and(|l| l.payments.len() == 2)
                && s.get::<PointsBook>(book).is_ok_and(|b| b.awards.len() == 2)
                && s.get::<LibraryEntry>(entry)
                    .is_ok_and(|e| e.solution.as_str() == "联系街道，结对单位出资修好")
        })
        .await?;
    applicant
        .eventually("the step the committee recorded", |s| {
            s.get::<Applicant>(file)
                .is_ok_and(|a| a.stage() == Stage::Activist)
        })
        .await?;
    assert_eq!(
        member.store().rejections(None)?.len(),
        3,
        "the member's three refusals, and nothing else"
    );
    Ok(())
}

branchline_tests::on_both_backends!(
    every_forbidden_edit_is_refused_with_its_code_and_reaches_nobody,
    members_read_the_committees_books_and_sharing_stays_among_allies
);
