//! A device app that only writes, in its own process, so a test can kill it
//! with SIGKILL in the middle of a write.
//!
//! Usage: `branchline-test-writer STORE_PATH`. Opens (or creates) the store,
//! sets up a branch the first time, then loops forever: plans an activity,
//! writes its minutes, signs a member in. After each operation returns `Ok`
//! it prints `committed <doc id> <minutes>` and flushes, so every line the
//! test reads names a write the store reported durable.

use std::io::Write as _;

use anyhow::Context as _;
use branchline_core::model::{Level, NewActivity, NewMember, SignInMode};
use branchline_core::{Store, model::DocKind};

fn main() -> anyhow::Result<()> {
    let path = std::env::args().nth(1).context("usage: STORE_PATH")?;
    let mut store = Store::open(&path).context("open the store")?;
    let branch = match store
        .documents()?
        .iter()
        .find(|d| d.kind == "branch_profile")
    {
        Some(profile) => profile.branch,
        None => store.create_branch("Riverside", Level::Branch, None)?,
    };
    let _ = store.branch_document(branch, DocKind::Roster)?;
    let member = store.add_member(
        branch,
        NewMember {
            name: "Li Wei".to_owned(),
            ..NewMember::default()
        },
    )?;
    let mut stdout = std::io::stdout();
    for n in 0u64.. {
        let activity = store.create_activity(
            branch,
            NewActivity {
                kind: "branch_meeting".to_owned(),
                title: format!("Meeting {n}"),
                starts_at: "2026-11-20T19:00".parse().ok(),
                ends_at: "2026-11-20T21:00".parse().ok(),
                ..NewActivity::default()
            },
        )?;
        // Text of a few hundred bytes: several pages per write, so a kill can land inside one.
        let minutes = format!(
            "Minutes {n}: {}",
            "the branch discussed the roads. ".repeat(8)
        );
        store.write_minutes(activity, &minutes)?;
        store.sign_in(activity, member, SignInMode::OnSite)?;
        writeln!(stdout, "committed {activity} {n}")?;
        stdout.flush()?;
    }
    Ok(())
}
