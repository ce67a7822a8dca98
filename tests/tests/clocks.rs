//! A phone whose clock is years off (common on cheap phones after a battery
//! change) syncs through a real server: it takes the server's time from the
//! Welcome, stamps its records by it, and its deadlines and overdue flags agree
//! with everyone else's.

use anyhow::{Context as _, Result};
use branchline_core::model::{Date, NewMember, NewPetition, Petition, Submitter, Timestamp};
use branchline_core::store::CLOCK_TOLERANCE_MS;
use branchline_core::store::query::PetitionFilter;
use branchline_protocol::Role;
use branchline_tests::TestServer;

const TWO_YEARS_MS: i64 = 2 * 365 * 24 * 3600 * 1000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_phone_two_years_ahead_files_a_request_the_committee_can_give_a_deadline() -> Result<()> {
    let server = TestServer::start().await?;
    let branch = server.branch("Riverside")?;
    let secretary = server
        .device("secretary phone", branch, Role::Secretary, None)
        .await?;
    let owner = secretary.store().add_member(
        branch,
        NewMember {
            name: "Li Qiang".into(),
            ..Default::default()
        },
    )?;
    let mut phone = server
        .device("member phone", branch, Role::Committee, None)
        .await?;
    assert_eq!(
        phone.store().clock_offset(),
        None,
        "a right clock is left alone"
    );

    // The phone's date jumps two years ahead; the app is opened again.
    phone
        .store()
        .set_clock(Box::new(|| Timestamp(Timestamp::now().0 + TWO_YEARS_MS)));
    phone.reopen().await?;
    let offset = phone
        .store()
        .clock_offset()
        .context("the offset is noticed")?;
    assert!(
        (offset + TWO_YEARS_MS).abs() < CLOCK_TOLERANCE_MS,
        "the phone is two years ahead: {offset} ms"
    );

    let petition = phone.store().submit_petition(
        branch,
        NewPetition {
            category: "道路交通".into(),
            title: "路灯损坏".into(),
            description: "北门路灯不亮".into(),
            submitter: Submitter::default(),
            ..Default::default()
        },
    )?;
    phone.wait_in_sync().await?;
    secretary
        .eventually("the request arrives", |s| {
            s.get::<Petition>(petition).is_ok()
        })
        .await?;
    let submitted = secretary.store().get::<Petition>(petition)?.submitted_at;
    assert!(
        (submitted.0 - Timestamp::now().0).abs() < CLOCK_TOLERANCE_MS,
        "stamped by the server's time, not two years on"
    );

    // The committee gives it a deadline today, by the right clock. Had the
    // phone stamped its own date, the deadline would come before the
    // submission and be refused.
    let today = Timestamp::now().utc_date();
    secretary.store().assign_petition(petition, owner, today)?;
    secretary.wait_in_sync().await?;
    phone
        .eventually("the deadline arrives", |s| {
            s.get::<Petition>(petition)
                .is_ok_and(|p| p.deadline.is_some())
        })
        .await?;
    let overdue = |store: &branchline_core::Store, day: Date| -> Result<usize> {
        let filter = PetitionFilter {
            overdue_only: true,
            ..Default::default()
        };
        Ok(store.list_petitions(branch, &filter, day)?.len())
    };
    let store = phone.store();
    assert_eq!(overdue(&store, store.today())?, 0, "due today, not late");
    let phone_date = Timestamp(Timestamp::now().0 + TWO_YEARS_MS).utc_date();
    assert_eq!(
        overdue(&store, phone_date)?,
        1,
        "by the phone's own date it would show as two years late"
    );
    Ok(())
}
