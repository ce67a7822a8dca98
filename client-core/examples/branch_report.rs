//! Generates a realistic two-year branch into a SQLite store and prints its reports,
//! computed offline on the device, as a secretary would see them.
//!
//! `cargo run --release -p branchline-core --example branch_report [STORE.sqlite]`

use branchline_core::Store;
use branchline_core::report::Period;
use branchline_core::store::query::{MemberFilter, PetitionFilter};
use branchline_core::workload::{WorkloadSpec, generate};

fn main() -> anyhow::Result<()> {
    let path = std::env::args()
        .nth(1)
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::env::temp_dir().join("branchline-example.sqlite"));
    let _ = std::fs::remove_file(&path);
    let spec = WorkloadSpec::default();
    println!(
        "Generating a branch: {} members, {} years, {} petitions…",
        spec.members, spec.years, spec.petitions
    );
    let generated = generate(&spec)?;
    let mut store = Store::open(&path)?;
    store.import_all(generated.documents.iter().map(|d| d.bytes.as_slice()))?;
    println!(
        "Stored {} documents in {}\n",
        generated.documents.len(),
        path.display()
    );

    let branch = generated.branch;
    let today = spec.end();
    let profile = store.profile(branch)?;
    let report = store.report(branch, Period::new(spec.start, today)?, today)?;
    println!("{} — report {} to {}", profile.name, spec.start, today);

    let members = store.list_members(branch, &MemberFilter::default())?;
    println!("\nRoster: {} people", members.len());
    for (band, n) in &report.ages.bands {
        println!("  age {band:>6}: {n}");
    }

    println!("\nAttendance by activity kind:");
    for kind in &report.attendance.kinds {
        let name = profile
            .activity_kinds
            .get(&kind.kind)
            .map_or(kind.kind.as_str(), |k| k.name.as_str());
        println!(
            "  {name:<10} {:>3} held, {:>5.1}% attended",
            kind.activities,
            kind.rate.unwrap_or(0.0) * 100.0
        );
    }
    let silent: Vec<_> = report
        .attendance
        .members
        .iter()
        .filter(|m| m.silent)
        .collect();
    println!(
        "\nSilent members (attending under {}%): {}",
        report.attendance.silent_threshold_percent,
        if silent.is_empty() {
            "none".to_owned()
        } else {
            silent
                .iter()
                .map(|m| m.name.as_str())
                .collect::<Vec<_>>()
                .join("、")
        }
    );

    let p = &report.petitions;
    println!(
        "\nPetitions: {} submitted, {} resolved ({} in time), {} open, {} overdue; satisfaction {:.2}/5 from {} ratings",
        p.submitted,
        p.resolved,
        p.resolved_in_time,
        p.open,
        p.overdue,
        p.average_satisfaction.unwrap_or(0.0),
        p.rated
    );
    for row in store
        .list_petitions(
            branch,
            &PetitionFilter {
                overdue_only: true,
                ..Default::default()
            },
            today,
        )?
        .iter()
        .take(3)
    {
        println!(
            "  overdue: {} (deadline {})",
            row.title,
            row.deadline.map(|d| d.to_string()).unwrap_or_default()
        );
    }

    println!("\nMeeting compliance:");
    for kind in &report.compliance {
        let met = kind.periods.iter().filter(|b| b.met).count();
        println!(
            "  {:<18} {} {met}/{} periods met",
            kind.kind,
            kind.frequency,
            kind.periods.len()
        );
    }
    if let Some(term) = &report.term {
        println!(
            "\nCommittee term ends {} ({} days){}",
            term.ends,
            term.days_left,
            if term.due {
                ": renewal preparation is due"
            } else {
                ""
            }
        );
    }
    Ok(())
}
