//! What checking every change against the sender's role costs the server.
//!
//! Replays the generated two-year branch's traffic change by change, each
//! as the device that made it (secretary, member or resident), and times the
//! server's work on it with and without the rules: applying the change to
//! the document, then (with validation) working out what it did and checking
//! every modified path. Storage (the fsync before an `Ack`) is the same
//! either way and is left out, so the ratio is the worst case.
//!
//! `cargo bench -p branchline-server --bench validation` (add `-- --quick`
//! for a smaller branch).

use std::time::{Duration, Instant};

use anyhow::{Result, ensure};
use automerge::{Automerge, Change};
use branchline_core::workload::{Author, GeneratedBranch, WorkloadSpec, generate};
use branchline_protocol::{BranchId, DeviceId, MemberId, Role};
use branchline_server::access::{DocAttributes, Principal};
use branchline_server::rules::{Subject, check_change};

/// Time spent per document kind: applying, and checking.
#[derive(Default)]
struct Tally {
    changes: usize,
    apply: Duration,
    check: Duration,
    refused: usize,
}

fn principal(branch: &GeneratedBranch, change: &Change) -> Principal {
    let device = DeviceId::from_bytes(
        change
            .actor_id()
            .to_bytes()
            .try_into()
            .expect("generated actors are device ids"),
    );
    let core_device = branchline_core::DeviceId::from_bytes(*device.as_bytes());
    let (role, member) = match branch.authors.get(&core_device) {
        Some(Author::Secretary) => (Role::Secretary, None),
        Some(Author::Member(member)) => (Role::Member, Some(MemberId::from(*member))),
        Some(Author::Resident) | None => (Role::Resident, None),
    };
    Principal {
        device,
        role,
        branch: BranchId::from(branch.branch),
        member,
    }
}

fn replay(branch: &GeneratedBranch, bytes: &[u8], kind: &str, tally: &mut Tally) -> Result<()> {
    let full = Automerge::load(bytes)?;
    let changes = full.get_changes(&[]);
    let mut doc = Automerge::new();
    let mut stored: Option<DocAttributes> = None;
    for change in changes {
        let who = principal(branch, &change);
        let started = Instant::now();
        doc.apply_changes([change.clone()])?;
        tally.apply += started.elapsed();

        let device = who.device;
        let own = move |actor: &[u8]| actor == device.as_bytes().as_slice();
        let subject = Subject {
            who: &who,
            actor_is_senders: &own,
            stored: stored.as_ref(),
            kind,
            // The generated branch shares nothing.
            allied: &|_| false,
        };
        let started = Instant::now();
        let verdict = check_change(&doc, &change, &subject);
        tally.check += started.elapsed();
        if let Err(violation) = verdict {
            tally.refused += 1;
            eprintln!("refused {kind} change by {}: {violation:?}", who.role);
        }
        tally.changes += 1;
        stored.get_or_insert_with(|| {
            let mut attrs = DocAttributes::new(kind, who.branch);
            attrs.creator = Some(who.device);
            attrs
        });
    }
    Ok(())
}

fn main() -> Result<()> {
    let quick = std::env::args().any(|arg| arg == "--quick");
    let spec = if quick {
        WorkloadSpec {
            members: 20,
            years: 1,
            activities_per_month: 2,
            petitions: 40,
            ..WorkloadSpec::default()
        }
    } else {
        WorkloadSpec::default()
    };
    let branch = generate(&spec)?;
    println!(
        "generated branch: {} documents ({} members, {} years, {} petitions){}",
        branch.documents.len(),
        spec.members,
        spec.years,
        spec.petitions,
        if quick { ", quick" } else { "" }
    );
    let mut kinds: Vec<(&str, Tally)> = Vec::new();
    for doc in &branch.documents {
        let kind = doc.kind.as_str();
        let at = match kinds.iter().position(|(k, _)| *k == kind) {
            Some(at) => at,
            None => {
                kinds.push((kind, Tally::default()));
                kinds.len() - 1
            }
        };
        replay(&branch, &doc.bytes, kind, &mut kinds[at].1)?;
    }
    println!(
        "{:<16} {:>8} {:>14} {:>14} {:>10} {:>8}",
        "kind", "changes", "apply µs/chg", "check µs/chg", "with/without", "refused"
    );
    let mut total = Tally::default();
    for (kind, tally) in &kinds {
        print_row(kind, tally);
        total.changes += tally.changes;
        total.apply += tally.apply;
        total.check += tally.check;
        total.refused += tally.refused;
    }
    print_row("all", &total);
    ensure!(
        total.refused == 0,
        "{} honest changes of the generated branch were refused",
        total.refused
    );
    Ok(())
}

fn print_row(kind: &str, tally: &Tally) {
    let per = |d: Duration| d.as_secs_f64() * 1e6 / tally.changes.max(1) as f64;
    let apply = per(tally.apply);
    let check = per(tally.check);
    println!(
        "{kind:<16} {:>8} {apply:>14.1} {check:>14.1} {:>10.2} {:>8}",
        tally.changes,
        (apply + check) / apply.max(f64::MIN_POSITIVE),
        tally.refused
    );
}
