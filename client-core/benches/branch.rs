//! The generated branch on the device: build, save, load, list, report.
//!
//! `cargo bench -p branchline-core --bench branch` prints the figures; add `-- --quick`
//! for a small branch that only checks the benchmark runs (CI). Peak memory comes from
//! a counting allocator, so it is the heap this process asked for, not the RSS.

use std::alloc::{GlobalAlloc, Layout, System};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use automerge::Automerge;
use branchline_core::Store;
use branchline_core::model::{Date, PetitionStatus};
use branchline_core::report::Period;
use branchline_core::store::query::{ActivityFilter, MemberFilter, PetitionFilter};
use branchline_core::workload::{WorkloadSpec, generate};

struct Counting;

static CURRENT: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call is forwarded to the system allocator unchanged; we only count.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            let now = CURRENT.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
            PEAK.fetch_max(now, Ordering::Relaxed);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        CURRENT.fetch_sub(layout.size(), Ordering::Relaxed);
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Peak heap above the current level while `f` runs.
fn peak_during<T>(f: impl FnOnce() -> T) -> (T, usize) {
    let base = CURRENT.load(Ordering::Relaxed);
    PEAK.store(base, Ordering::Relaxed);
    let out = f();
    (out, PEAK.load(Ordering::Relaxed) - base)
}

/// Median time of `runs` runs of `f`.
fn median(runs: usize, mut f: impl FnMut()) -> Duration {
    let mut times: Vec<Duration> = (0..runs)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed()
        })
        .collect();
    times.sort();
    times[times.len() / 2]
}

fn mib(bytes: usize) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let spec = if quick {
        WorkloadSpec {
            members: 20,
            years: 1,
            petitions: 30,
            ..Default::default()
        }
    } else {
        WorkloadSpec::default()
    };
    let runs = if quick { 3 } else { 15 };
    println!(
        "generated branch: {} members, {} years, {} activities/month, {} petitions (seed {})",
        spec.members, spec.years, spec.activities_per_month, spec.petitions, spec.seed
    );

    let t = Instant::now();
    let (branch, build_peak) = peak_during(|| generate(&spec).expect("generate"));
    println!(
        "build (every workflow operation, one change each): {:.2?}, peak heap {:.1} MiB",
        t.elapsed(),
        mib(build_peak)
    );

    let mut by_kind: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    for doc in &branch.documents {
        let entry = by_kind.entry(doc.kind.to_string()).or_default();
        entry.0 += 1;
        entry.1 += doc.bytes.len();
    }
    println!(
        "\n{:<16} {:>6} {:>12} {:>10}",
        "saved size", "docs", "total bytes", "per doc"
    );
    for (kind, (n, bytes)) in &by_kind {
        println!("{kind:<16} {n:>6} {bytes:>12} {:>10}", bytes / n);
    }
    let total: usize = by_kind.values().map(|(_, b)| b).sum();
    println!("{:<16} {:>6} {:>12}", "all", branch.documents.len(), total);

    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("bench.sqlite");
    let mut store = Store::open(&path).expect("open");
    let t = Instant::now();
    store
        .import_all(branch.documents.iter().map(|d| d.bytes.as_slice()))
        .expect("import");
    println!(
        "\nimport into SQLite (one transaction, with index): {:.2?}",
        t.elapsed()
    );
    drop(store);
    let store = Store::open(&path).expect("reopen");

    // Load: the store (SQLite read + automerge load + header check) against a plain
    // automerge load of the very bytes the store holds.
    let stored: Vec<_> = branch
        .documents
        .iter()
        .map(|d| (d.id, store.export(d.id).expect("export")))
        .collect();
    let ours = median(runs, || {
        for (id, _) in &stored {
            store.load_document(*id).expect("load");
        }
    });
    let plain = median(runs, || {
        for (_, bytes) in &stored {
            Automerge::load(bytes).expect("load");
        }
    });
    let (_, load_peak) = peak_during(|| {
        let docs: Vec<_> = stored
            .iter()
            .map(|(id, _)| store.load_document(*id).expect("load"))
            .collect();
        docs.len()
    });
    println!(
        "load all {} documents: store {:.2?}, automerge::Automerge::load {:.2?}, ratio {:.2}x (target ≤ 1.2x); peak heap with all loaded {:.1} MiB",
        stored.len(),
        ours,
        plain,
        ours.as_secs_f64() / plain.as_secs_f64(),
        mib(load_peak)
    );

    let b = branch.branch;
    let today = spec.end();
    let period = Period::new(spec.start, today).expect("period");
    println!(
        "\n{:<44} {:>10} {:>8}",
        "query (index only, median)", "time", "rows"
    );
    let query = |name: &str, f: &mut dyn FnMut() -> usize| {
        let mut rows = 0;
        let time = median(runs, || rows = f());
        println!("{name:<44} {:>10.2?} {rows:>8}", time);
    };
    query("members, all", &mut || {
        store
            .list_members(b, &MemberFilter::default())
            .expect("q")
            .len()
    });
    query("activities, all", &mut || {
        store
            .list_activities(b, &ActivityFilter::default())
            .expect("q")
            .len()
    });
    let month = ActivityFilter {
        from: Date::ymd(2024, 6, 1),
        to: Date::ymd(2024, 6, 30),
        ..Default::default()
    };
    query("activities, one month", &mut || {
        store.list_activities(b, &month).expect("q").len()
    });
    let lectures = ActivityFilter {
        kind: Some("lecture".into()),
        ..Default::default()
    };
    query("activities, one kind", &mut || {
        store.list_activities(b, &lectures).expect("q").len()
    });
    let first = branch.activities[0].meta.id;
    query("attendance of one activity", &mut || {
        store.attendance(first).expect("q").len()
    });
    query("petitions, ledger", &mut || {
        store
            .list_petitions(b, &PetitionFilter::default(), today)
            .expect("q")
            .len()
    });
    let open = PetitionFilter {
        status: Some(PetitionStatus::Assigned),
        ..Default::default()
    };
    query("petitions, open", &mut || {
        store.list_petitions(b, &open, today).expect("q").len()
    });
    let overdue = PetitionFilter {
        overdue_only: true,
        ..Default::default()
    };
    query("petitions, overdue", &mut || {
        store.list_petitions(b, &overdue, today).expect("q").len()
    });
    query("full branch report (2 years)", &mut || {
        store
            .report(b, period, today)
            .expect("report")
            .attendance
            .members
            .len()
    });
}
