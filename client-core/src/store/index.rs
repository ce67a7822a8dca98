//! The query index: plain SQLite rows derived from documents.
//!
//! Lists and reports read these rows and never parse a document. Each write to a
//! document rewrites its rows in the same transaction, so the index is never behind.
//! Documents of kinds or schema versions this build does not know have no rows.

use std::str::FromStr;

use automerge::AutoCommit;
use rusqlite::{Transaction, params};

use crate::conflict;
use crate::error::Result;
use crate::model::{
    self, Activity, Applicant, Award, BranchProfile, DocKind, DuesLedger, LibraryEntry, MemberFile,
    Meta, Petition, PointsBook, Record, Roster, SCHEMA_VERSION,
};

/// Rewrites the index rows of one document.
pub(super) fn reindex(tx: &Transaction, meta: &Meta, doc: &AutoCommit) -> Result<()> {
    let id = meta.id.to_string();
    let Ok(kind) = DocKind::from_str(&meta.kind) else {
        return Ok(());
    };
    if meta.schema > SCHEMA_VERSION {
        return Ok(());
    }
    clear(tx, kind, &id)?;
    let written = match kind {
        DocKind::BranchProfile => hydrate(doc).and_then(|p| profile(tx, &p)),
        DocKind::Roster => hydrate(doc).and_then(|r| roster(tx, &r)),
        DocKind::MemberFile => hydrate(doc).and_then(|f| member_file(tx, &f)),
        DocKind::Activity => hydrate(doc).and_then(|a| activity(tx, &a)),
        DocKind::Petition => hydrate(doc).and_then(|p| petition(tx, &p)),
        // No rows: the store reads the one box of a branch straight from its
        // document. Its conflicts are still indexed below.
        DocKind::FeedbackBox | DocKind::FeedbackDrafts => Ok(()),
        DocKind::DuesLedger => hydrate(doc).and_then(|l| dues_ledger(tx, &l)),
        DocKind::PointsBook => hydrate(doc).and_then(|b| points_book(tx, &b)),
        DocKind::Applicant => hydrate(doc).and_then(|a| applicant(tx, &a)),
        DocKind::LibraryEntry => hydrate(doc).and_then(|e| library_entry(tx, &e)),
    };
    if let Err(e) = written {
        // A document that does not hydrate (written by a buggy or hostile peer) is
        // kept, so nothing is lost, but stays out of lists until it is fixed.
        tracing::warn!(doc = %id, error = %e, "document left out of the index");
        clear(tx, kind, &id)?;
    }
    let mut stmt = tx.prepare_cached("INSERT INTO idx_conflicts (doc_id, path) VALUES (?1, ?2)")?;
    for c in conflict::find(meta.id, doc) {
        stmt.execute(params![id, c.path])?;
    }
    Ok(())
}

fn hydrate<R: Record>(doc: &AutoCommit) -> Result<R> {
    model::hydrate(doc)
}

fn clear(tx: &Transaction, kind: DocKind, id: &str) -> Result<()> {
    let tables: &[&str] = match kind {
        DocKind::BranchProfile => &["idx_profiles", "idx_activity_kinds"],
        DocKind::Roster => &["idx_members"],
        DocKind::MemberFile => &["idx_member_files"],
        DocKind::Activity => &[
            "idx_activities",
            "idx_activity_branches",
            "idx_attendance",
            "idx_awards",
        ],
        DocKind::Petition => &["idx_petitions"],
        DocKind::FeedbackBox | DocKind::FeedbackDrafts => &[],
        DocKind::DuesLedger => &[
            "idx_yearly",
            "idx_dues_monthly",
            "idx_dues_payments",
            "idx_dues_spending",
        ],
        DocKind::PointsBook => &["idx_yearly", "idx_awards", "idx_thought_reports"],
        DocKind::Applicant => &["idx_applicants"],
        DocKind::LibraryEntry => &["idx_library"],
    };
    for table in tables.iter().chain(&["idx_conflicts"]) {
        tx.prepare_cached(&format!("DELETE FROM {table} WHERE doc_id = ?1"))?
            .execute([id])?;
    }
    Ok(())
}

fn opt<T: ToString>(value: &Option<T>) -> Option<String> {
    value.as_ref().map(ToString::to_string)
}

fn profile(tx: &Transaction, p: &BranchProfile) -> Result<()> {
    let branch = p.meta.branch.to_string();
    tx.execute(
        "INSERT OR REPLACE INTO idx_profiles
         (branch_id, doc_id, name, level, parent, term_start, term_end, silent_threshold)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        params![
            branch,
            p.meta.id.to_string(),
            p.name,
            p.level.as_str(),
            opt(&p.parent),
            opt(&p.term.as_ref().map(|t| t.start)),
            opt(&p.term.as_ref().map(|t| t.end)),
            p.silent_threshold_percent,
        ],
    )?;
    let mut stmt = tx.prepare_cached(
        "INSERT OR REPLACE INTO idx_activity_kinds
         (branch_id, code, doc_id, name, frequency, attendance_points)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?;
    for (code, rule) in &p.activity_kinds {
        stmt.execute(params![
            branch,
            code,
            p.meta.id.to_string(),
            rule.name,
            rule.frequency.map(|f| f.as_str()),
            rule.attendance_points
        ])?;
    }
    Ok(())
}

fn roster(tx: &Transaction, r: &Roster) -> Result<()> {
    let mut stmt = tx.prepare_cached(
        "INSERT OR REPLACE INTO idx_members
         (member_id, branch_id, doc_id, name, gender, birth_date, joined, category,
          group_name, post, phone, status, status_since)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
    )?;
    let branch = r.meta.branch.to_string();
    let doc = r.meta.id.to_string();
    for m in r.members.values() {
        stmt.execute(params![
            m.id.to_string(),
            branch,
            doc,
            m.name,
            m.gender.as_str(),
            opt(&m.birth_date),
            opt(&m.joined),
            m.category.as_str(),
            m.group,
            m.post,
            m.phone,
            m.status.as_str(),
            opt(&m.status_since),
        ])?;
    }
    Ok(())
}

fn member_file(tx: &Transaction, f: &MemberFile) -> Result<()> {
    tx.execute(
        "INSERT OR REPLACE INTO idx_member_files (doc_id, branch_id, member_id) VALUES (?1, ?2, ?3)",
        params![f.meta.id.to_string(), f.meta.branch.to_string(), f.member.to_string()],
    )?;
    Ok(())
}

fn activity(tx: &Transaction, a: &Activity) -> Result<()> {
    let doc = a.meta.id.to_string();
    tx.prepare_cached(
        "INSERT OR REPLACE INTO idx_activities
         (doc_id, branch_id, kind, title, starts_at, ends_at, place, organizer, group_name,
          status, sign_ins, leaves)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
    )?
    .execute(params![
        doc,
        a.meta.branch.to_string(),
        a.kind,
        a.title,
        a.starts_at.to_string(),
        a.ends_at.to_string(),
        a.place,
        opt(&a.organizer),
        a.group,
        a.status.as_str(),
        a.sign_ins.len() as i64,
        a.leaves.len() as i64,
    ])?;
    let mut branches = tx.prepare_cached(
        "INSERT OR IGNORE INTO idx_activity_branches (branch_id, doc_id) VALUES (?1, ?2)",
    )?;
    branches.execute(params![a.meta.branch.to_string(), doc])?;
    for (partner, shared) in &a.shared_with {
        if *shared {
            branches.execute(params![partner, doc])?;
        }
    }
    let mut attendance = tx.prepare_cached(
        "INSERT OR REPLACE INTO idx_attendance (doc_id, member_id, state, mode, at)
         VALUES (?1, ?2, ?3, ?4, ?5)",
    )?;
    for (member, leave) in &a.leaves {
        attendance.execute(params![doc, member, "leave", None::<String>, leave.at.0])?;
    }
    let legacy: Vec<(String, Award)> = a
        .bonus_points
        .iter()
        .filter_map(|(member, counter)| {
            Some((
                format!("counter:{member}"),
                Award {
                    member: member.parse().ok()?,
                    points: counter.value(),
                    rule: None,
                    reason: Some(a.title.clone()),
                    on: a.starts_at.date(),
                },
            ))
        })
        .filter(|(_, award)| award.points != 0)
        .collect();
    awards(
        tx,
        &a.meta,
        a.awards.iter().chain(legacy.iter().map(|(k, v)| (k, v))),
    )?;
    for (member, sign_in) in &a.sign_ins {
        attendance.execute(params![
            doc,
            member,
            "present",
            sign_in.mode.as_str(),
            sign_in.at.0
        ])?;
    }
    Ok(())
}

/// Awards, of a points book or of an activity (where a build before awards were
/// entries kept counters: each member's counter is one award, on the activity's day).
fn awards<'a>(
    tx: &Transaction,
    meta: &Meta,
    entries: impl Iterator<Item = (&'a String, &'a Award)>,
) -> Result<()> {
    let mut stmt = tx.prepare_cached(
        "INSERT OR REPLACE INTO idx_awards
         (doc_id, entry_id, branch_id, member_id, points, rule, reason, on_day)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )?;
    for (entry, a) in entries {
        stmt.execute(params![
            meta.id.to_string(),
            entry,
            meta.branch.to_string(),
            a.member.to_string(),
            a.points,
            a.rule,
            a.reason,
            a.on.to_string(),
        ])?;
    }
    Ok(())
}

fn yearly(tx: &Transaction, meta: &Meta, year: i64) -> Result<()> {
    tx.prepare_cached(
        "INSERT OR REPLACE INTO idx_yearly (doc_id, kind, branch_id, year) VALUES (?1, ?2, ?3, ?4)",
    )?
    .execute(params![
        meta.id.to_string(),
        meta.kind,
        meta.branch.to_string(),
        year
    ])?;
    Ok(())
}

fn dues_ledger(tx: &Transaction, l: &DuesLedger) -> Result<()> {
    yearly(tx, &l.meta, l.year)?;
    let doc = l.meta.id.to_string();
    let branch = l.meta.branch.to_string();
    let mut monthly = tx.prepare_cached(
        "INSERT OR REPLACE INTO idx_dues_monthly (doc_id, member_id, fen) VALUES (?1, ?2, ?3)",
    )?;
    for (member, fen) in &l.monthly_fen {
        monthly.execute(params![doc, member, fen])?;
    }
    let mut payments = tx.prepare_cached(
        "INSERT OR REPLACE INTO idx_dues_payments
         (doc_id, entry_id, branch_id, year, member_id, first_month, last_month, amount_fen,
          paid_on, voided_on, void_reason)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
    )?;
    for (entry, p) in &l.payments {
        payments.execute(params![
            doc,
            entry,
            branch,
            l.year,
            p.member.to_string(),
            p.first_month,
            p.last_month,
            p.amount_fen,
            p.paid_on.to_string(),
            opt(&p.void.as_ref().map(|v| v.on)),
            p.void.as_ref().map(|v| v.reason.as_str()),
        ])?;
    }
    let mut spending = tx.prepare_cached(
        "INSERT OR REPLACE INTO idx_dues_spending
         (doc_id, entry_id, branch_id, year, amount_fen, category, purpose, approved_by, spent_on)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
    )?;
    for (entry, s) in &l.spending {
        spending.execute(params![
            doc,
            entry,
            branch,
            l.year,
            s.amount_fen,
            s.category.as_str(),
            s.purpose,
            s.approved_by,
            s.spent_on.to_string(),
        ])?;
    }
    Ok(())
}

fn points_book(tx: &Transaction, b: &PointsBook) -> Result<()> {
    yearly(tx, &b.meta, b.year)?;
    awards(tx, &b.meta, b.awards.iter())?;
    let mut reports = tx.prepare_cached(
        "INSERT OR REPLACE INTO idx_thought_reports
         (doc_id, entry_id, branch_id, member_id, due, received)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?;
    for (entry, r) in &b.thought_reports {
        reports.execute(params![
            b.meta.id.to_string(),
            entry,
            b.meta.branch.to_string(),
            r.member.to_string(),
            r.due.to_string(),
            r.received.to_string(),
        ])?;
    }
    Ok(())
}

fn applicant(tx: &Transaction, a: &Applicant) -> Result<()> {
    let stage = a.stage();
    let introducers: Vec<String> = a.introducers().iter().map(ToString::to_string).collect();
    tx.prepare_cached(
        "INSERT OR REPLACE INTO idx_applicants
         (doc_id, branch_id, member_id, stage, stage_on, introducers)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?
    .execute(params![
        a.meta.id.to_string(),
        a.meta.branch.to_string(),
        a.member.to_string(),
        stage.as_str(),
        opt(&a.date_of(stage)),
        introducers.join(","),
    ])?;
    Ok(())
}

fn library_entry(tx: &Transaction, e: &LibraryEntry) -> Result<()> {
    tx.prepare_cached(
        "INSERT OR REPLACE INTO idx_library
         (doc_id, branch_id, collection, title, written_on, tags, shared_down)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?
    .execute(params![
        e.meta.id.to_string(),
        e.meta.branch.to_string(),
        e.collection.as_str(),
        e.title,
        e.written_on.to_string(),
        e.tags().join("\n"),
        e.shared_down,
    ])?;
    Ok(())
}

fn petition(tx: &Transaction, p: &Petition) -> Result<()> {
    tx.prepare_cached(
        "INSERT OR REPLACE INTO idx_petitions
         (doc_id, branch_id, category, title, status, owner, deadline, submitted_at,
          resolved_at, rating, progress_count)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
    )?
    .execute(params![
        p.meta.id.to_string(),
        p.meta.branch.to_string(),
        p.category,
        p.title,
        p.status.as_str(),
        opt(&p.owner),
        opt(&p.deadline),
        p.submitted_at.0,
        p.resolution.as_ref().map(|r| r.at.0),
        p.rating.as_ref().map(|r| r.score),
        p.progress.len() as i64,
    ])?;
    Ok(())
}

/// Rebuilds every index row from the documents (after a migration that changed the
/// index's shape).
pub(super) fn rebuild_all(tx: &Transaction) -> Result<()> {
    let ids: Vec<String> = tx
        .prepare("SELECT doc_id FROM documents ORDER BY doc_id")?
        .query_map([], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    tracing::info!(documents = ids.len(), "rebuilding the query index");
    for id in ids {
        // Each document once: not worth keeping parsed.
        let loaded = super::load(tx, &super::cache::DocCache::default(), id.parse()?, None)?;
        reindex(tx, &loaded.meta, &loaded.doc)?;
    }
    Ok(())
}
