//! The access matrix, end to end: for every role and document kind, what a
//! device receives and whether the server keeps its edits; other branches'
//! documents stay out of reach, alliance documents reach every partner, a
//! library entry shared down reaches the branches below and no others, and
//! a revoked device is cut off.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{Context as _, Result};
use branchline_core::model::{
    Activity, BranchProfile, Collection, DocKind, Level, MemberFile, NewActivity, NewLibraryEntry,
    NewMember, NewPetition, Petition, Roster, SignInMode, Submitter,
};
use branchline_core::net::{ClientEvent, Status};
use branchline_core::store::branch_work::LibraryFilter;
use branchline_core::sync::SyncEvent;
use branchline_core::{BranchId, DocId, MemberId};
use branchline_protocol::{ErrorCode, Role};
use branchline_tests::{Backend, Device, PATIENCE, TestServer};

fn meeting(title: &str) -> NewActivity {
    NewActivity {
        kind: "branch_meeting".to_owned(),
        title: title.to_owned(),
        starts_at: "2026-11-20T19:00".parse().ok(),
        ends_at: "2026-11-20T21:00".parse().ok(),
        ..NewActivity::default()
    }
}

fn petition(title: &str, member: Option<MemberId>) -> NewPetition {
    NewPetition {
        category: "roads".to_owned(),
        title: title.to_owned(),
        description: format!("{title}, please"),
        submitter: Submitter {
            member,
            ..Submitter::default()
        },
        ..NewPetition::default()
    }
}

/// What a device may do with a document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Access {
    None,
    Read,
    Write,
}

use Access::{None as N, Read as R, Write as W};

/// Who is editing, for picking an edit the rules let them make.
#[derive(Clone, Copy)]
struct Editor {
    committee: bool,
    member: Option<MemberId>,
}

/// Makes a small edit of the right kind to `doc` on `device`: one its role
/// may make inside the document wherever it may write it (access decides
/// whether the server keeps it; `rules.rs` decides which parts).
fn edit(device: &Device, who: Editor, kind: &str, doc: DocId, owner: MemberId) -> Result<()> {
    let mut store = device.store();
    let now = store.now();
    match kind {
        "profile" => store.update(doc, |p: &mut BranchProfile| {
            p.name.push('!');
            Ok(())
        })?,
        "roster" => store.update(doc, |r: &mut Roster| {
            r.add_member(NewMember {
                name: format!("added by {}", device.name),
                ..NewMember::default()
            })
            .map(|_| ())
        })?,
        "member_file" => store.update(doc, |f: &mut MemberFile| {
            f.add_training("2026-11-01".parse()?, "Party history", 2.0)
        })?,
        "activity" | "partner_activity" | "b_activity" => match who.member {
            Some(member) if !who.committee => store.update(doc, |a: &mut Activity| {
                a.sign_in(member, now, SignInMode::OnSite)
            })?,
            _ => store.update(doc, |a: &mut Activity| {
                a.title.push('!');
                Ok(())
            })?,
        },
        "petition" | "resident_petition" => {
            if who.committee {
                store.update(doc, |p: &mut Petition| {
                    p.title.push('!');
                    Ok(())
                })?
            } else if who.member == Some(owner) {
                store.update(doc, |p: &mut Petition| {
                    p.reopen(who.member, "not fixed", now)
                })?
            } else {
                store.update(doc, |p: &mut Petition| p.rate(4, None, now))?
            }
        }
        other => anyhow::bail!("no edit for {other}"),
    }
    Ok(())
}

async fn every_role_sees_and_changes_exactly_what_it_should(backend: Backend) -> Result<()> {
    let server = TestServer::on(backend).await?;
    let town = server.root("Town committee", Level::Committee)?;
    let general = server.child_branch("East general branch", Level::GeneralBranch, town)?;
    let a = server.child_branch("Riverside", Level::Branch, general)?;
    let b = server.branch("Hillside")?;
    let partner = server.branch("Factory branch")?;
    server
        .admin()
        .add_alliance("Riverside and Factory", &[a, partner])?;

    // The secretary of A sets the branch up.
    let secretary = server
        .device("A secretary", a, Role::Secretary, None)
        .await?;
    let (m1, m2) = {
        let mut store = secretary.store();
        let m1 = store.add_member(
            a,
            NewMember {
                name: "Wang Fang".into(),
                ..Default::default()
            },
        )?;
        let m2 = store.add_member(
            a,
            NewMember {
                name: "Li Na".into(),
                ..Default::default()
            },
        )?;
        (m1, m2)
    };
    let member_file = secretary.store().member_file(m1)?;
    let activity = secretary
        .store()
        .create_activity(a, meeting("Joint clean-up"))?;
    secretary.store().share_activity(activity, partner)?;
    secretary.wait_in_sync().await?;

    let committee = server
        .device("A committee", a, Role::Committee, None)
        .await?;
    let member1 = server
        .device("A member 1", a, Role::Member, Some(m1))
        .await?;
    let member2 = server
        .device("A member 2", a, Role::Member, Some(m2))
        .await?;
    let resident = server.device("A resident", a, Role::Resident, None).await?;
    let b_secretary = server
        .device("B secretary", b, Role::Secretary, None)
        .await?;
    // The partner branch's secretary puts one of its members on its roster.
    let partner_secretary = server
        .device("Partner secretary", partner, Role::Secretary, None)
        .await?;
    let partner_id = partner_secretary.store().add_member(
        partner,
        NewMember {
            name: "Zhou Min".into(),
            ..Default::default()
        },
    )?;
    partner_secretary.wait_in_sync().await?;
    let partner_member = server
        .device("Partner member", partner, Role::Member, Some(partner_id))
        .await?;
    let overseer = server
        .device("Town committee", town, Role::Committee, None)
        .await?;

    // Member 2 submits a petition; the secretary makes member 1 its owner.
    let petition_doc = member2
        .store()
        .submit_petition(a, petition("Street light", Some(m2)))?;
    member2.wait_in_sync().await?;
    secretary
        .eventually("member 2's petition", |s| {
            s.get::<Petition>(petition_doc).is_ok()
        })
        .await?;
    secretary
        .store()
        .assign_petition(petition_doc, m1, "2026-12-31".parse()?)?;
    secretary.wait_in_sync().await?;
    // A resident submits one of their own.
    let resident_doc = resident
        .store()
        .submit_petition(a, petition("Noise at night", None))?;
    resident.wait_in_sync().await?;
    // Both are handled, so their submitters have something to rate.
    secretary
        .eventually("the resident's petition", |s| {
            s.get::<Petition>(resident_doc).is_ok()
        })
        .await?;
    {
        let mut store = secretary.store();
        // Its owner has no device here, so the matrix rows stay as they are.
        let m3 = store.add_member(
            a,
            NewMember {
                name: "Zhao Lei".into(),
                ..Default::default()
            },
        )?;
        store.assign_petition(resident_doc, m3, "2026-12-31".parse()?)?;
        store.resolve_petition(petition_doc, None, "fixed")?;
        store.resolve_petition(resident_doc, None, "quiet now")?;
    }
    secretary.wait_in_sync().await?;
    let b_activity = b_secretary
        .store()
        .create_activity(b, meeting("Hillside meeting"))?;
    b_secretary.wait_in_sync().await?;

    let profile = secretary
        .store()
        .branch_document(a, DocKind::BranchProfile)?;
    let roster = secretary.store().branch_document(a, DocKind::Roster)?;
    let docs: BTreeMap<&str, DocId> = BTreeMap::from([
        ("profile", profile),
        ("roster", roster),
        ("member_file", member_file),
        ("activity", activity),
        ("petition", petition_doc),
        ("resident_petition", resident_doc),
        ("b_activity", b_activity),
    ]);

    // Expected access, per device, in the order of `docs` above
    // (activity, b_activity, member_file, petition, profile, resident_petition, roster).
    // Member 2 rates the petition before member 1, its owner, reopens it.
    let committee_role = |member| Editor {
        committee: true,
        member,
    };
    let member_role = |member| Editor {
        committee: false,
        member,
    };
    let devices: Vec<(&Device, Editor, [Access; 7])> = vec![
        (&secretary, committee_role(None), [W, N, W, W, W, W, W]),
        (&committee, committee_role(None), [W, N, W, W, W, W, W]),
        (&member2, member_role(Some(m2)), [W, N, N, W, R, N, R]),
        (&member1, member_role(Some(m1)), [W, N, R, W, R, N, R]),
        (&resident, member_role(None), [N, N, N, N, N, W, N]),
        (&b_secretary, committee_role(None), [N, W, N, N, N, N, N]),
        (
            &partner_member,
            member_role(Some(partner_id)),
            [W, N, N, N, N, N, N],
        ),
        (&overseer, committee_role(None), [R, N, N, R, R, R, R]),
    ];

    for (device, _, expected) in &devices {
        device.client().sync_now();
        device.wait_in_sync().await?;
        for ((kind, doc), want) in docs.iter().zip(expected) {
            let held = device.store().load_document(*doc).is_ok();
            assert_eq!(
                held,
                *want != N,
                "{} {} {kind}",
                device.name,
                if held { "holds" } else { "lacks" }
            );
        }
    }

    // Writes: each device edits every document it holds; the server keeps
    // the edit exactly where the device may write.
    for (device, who, expected) in &devices {
        let mut events = device.client().subscribe();
        for ((kind, doc), want) in docs.iter().zip(expected) {
            if *want == N {
                continue;
            }
            let before = server.heads(*doc)?.context("server copy")?;
            edit(device, *who, kind, *doc, m1)
                .with_context(|| format!("{} editing {kind}", device.name))?;
            device.client().sync_now();
            if *want == W {
                device.wait_in_sync().await?;
                let after = server.heads(*doc)?.context("server copy")?;
                assert_ne!(before, after, "{} may write {kind}", device.name);
            } else {
                let refused = wait_for_refusal(&mut events, *doc).await;
                assert_eq!(
                    refused,
                    Some(ErrorCode::ReadOnly),
                    "{} may only read {kind}",
                    device.name
                );
                assert_eq!(
                    server.heads(*doc)?.context("server copy")?,
                    before,
                    "{}'s edit to {kind} must not be kept",
                    device.name
                );
                assert!(
                    device
                        .store()
                        .rejections(None)?
                        .iter()
                        .any(|r| r.doc_id == *doc && r.code == "access.read_only"),
                    "{}'s refused edit to {kind} is recorded on the device",
                    device.name
                );
            }
        }
    }
    Ok(())
}

async fn wait_for_refusal(
    events: &mut tokio::sync::broadcast::Receiver<ClientEvent>,
    doc: DocId,
) -> Option<ErrorCode> {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let event = tokio::time::timeout_at(deadline, events.recv())
            .await
            .ok()?
            .ok()?;
        match event {
            ClientEvent::Sync(SyncEvent::DocFailed {
                doc: failed, code, ..
            }) if failed == doc => return Some(code),
            // Changes the server refused arrive as rejections.
            ClientEvent::Sync(SyncEvent::Rejected(rejection)) if rejection.doc_id == doc => {
                return Some(ErrorCode::from_code(&rejection.code));
            }
            _ => {}
        }
    }
}

async fn a_revoked_device_is_disconnected_and_refused(backend: Backend) -> Result<()> {
    let server = TestServer::on(backend).await?;
    let branch = server.branch("Riverside")?;
    let secretary = server
        .device("secretary", branch, Role::Secretary, None)
        .await?;
    let lost = server
        .device("lost phone", branch, Role::Member, None)
        .await?;
    let lost_id = lost
        .store()
        .account()?
        .context("the lost phone has an account")?
        .device_id;

    secretary.client().revoke_device(lost_id).await?;
    let status = lost
        .client()
        .wait_for_status(PATIENCE, |s| matches!(s, Status::Refused { .. }))
        .await?;
    assert_eq!(
        status,
        Status::Refused {
            code: ErrorCode::DeviceRevoked
        }
    );
    assert!(
        lost.store().account()?.is_none(),
        "the revoked account is forgotten"
    );

    // A secretary can still invite; a member cannot.
    let (link, _) = secretary
        .client()
        .create_invite(Role::Member, None, Duration::from_secs(600))
        .await?;
    let newcomer = Device::join("newcomer", link).await?;
    let refused = newcomer
        .client()
        .create_invite(Role::Secretary, None, Duration::from_secs(600))
        .await;
    assert_eq!(
        refused.map(|_| ()).map_err(|e| e.code().to_owned()),
        Err("access.denied".to_owned())
    );

    // Revocation from the admin CLI reaches a live connection too.
    let newcomer_id = newcomer.store().account()?.context("account")?.device_id;
    server.admin().revoke_device(newcomer_id)?;
    newcomer
        .client()
        .wait_for_status(PATIENCE, |s| matches!(s, Status::Refused { .. }))
        .await?;
    let audit = server.admin().audit(100)?;
    assert!(
        audit
            .iter()
            .filter(|e| format!("{e:?}").contains("revok"))
            .count()
            >= 2,
        "both revocations are audited: {audit:?}"
    );
    let _: BranchId = branch;
    Ok(())
}

/// A library entry reaches the members of its branch, of an allied branch
/// it is shared with and, once shared down, of the branches below its own,
/// who read it but may not change it; an unrelated branch and the higher
/// committee never receive it.
async fn a_library_entry_shared_down_reaches_the_branches_below_only(
    backend: Backend,
) -> Result<()> {
    let server = TestServer::on(backend).await?;
    let town = server.root("Town committee", Level::Committee)?;
    let general = server.child_branch("East general branch", Level::GeneralBranch, town)?;
    let below = server.child_branch("Riverside", Level::Branch, general)?;
    let unrelated = server.branch("Hillside")?;
    let partner = server.branch("Factory branch")?;
    server
        .admin()
        .add_alliance("East and Factory", &[general, partner])?;
    let secretary = server
        .device("East secretary", general, Role::Secretary, None)
        .await?;
    let entry = secretary.store().write_library_entry(
        general,
        NewLibraryEntry {
            collection: Collection::Case,
            title: "Evening sign-in for shift workers".into(),
            problem: "Members on night shifts missed every meeting".into(),
            solution: "A second, evening session with remote sign-in".into(),
            tags: vec!["attendance".into()],
            written_on: "2026-05-01".parse()?,
        },
    )?;
    secretary.store().share_library_entry(entry, partner)?;
    secretary.wait_in_sync().await?;

    let home_member = server
        .device("East member", general, Role::Member, None)
        .await?;
    let below_member = server
        .device("Riverside member", below, Role::Member, None)
        .await?;
    let unrelated_member = server
        .device("Hillside member", unrelated, Role::Member, None)
        .await?;
    let partner_member = server
        .device("Factory member", partner, Role::Member, None)
        .await?;
    let overseer = server
        .device("Town committee", town, Role::Committee, None)
        .await?;
    let holds = |device: &Device| device.store().load_document(entry).is_ok();
    assert!(holds(&home_member), "its own branch reads it");
    assert!(
        holds(&partner_member),
        "the allied branch it is shared with"
    );
    assert!(!holds(&below_member), "not shared down yet");

    secretary.store().share_library_entry_down(entry, true)?;
    secretary.wait_in_sync().await?;
    below_member
        .eventually("the entry shared down", |s| {
            s.library(&LibraryFilter::default())
                .is_ok_and(|rows| rows.iter().any(|r| r.id == entry && r.shared_down))
        })
        .await?;
    for device in [&unrelated_member, &overseer] {
        device.client().sync_now();
        device.wait_in_sync().await?;
        assert!(!holds(device), "{} must not receive it", device.name);
    }

    // Reading is all the branches below may do.
    let mut events = below_member.client().subscribe();
    let before = server.heads(entry)?.context("server copy")?;
    below_member
        .store()
        .revise_library_entry(entry, Some("Ours now"), None, None)?;
    below_member.client().sync_now();
    assert_eq!(
        wait_for_refusal(&mut events, entry).await,
        Some(ErrorCode::ReadOnly)
    );
    assert_eq!(server.heads(entry)?.context("server copy")?, before);
    Ok(())
}

branchline_tests::on_both_backends!(
    every_role_sees_and_changes_exactly_what_it_should,
    a_revoked_device_is_disconnected_and_refused,
    a_library_entry_shared_down_reaches_the_branches_below_only
);
