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
    self, Activity, BranchProfile, DocKind, MemberFile, Meta, Petition, Record, Roster,
    SCHEMA_VERSION,
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
        DocKind::DuesLedger | DocKind::PointsBook | DocKind::Applicant | DocKind::LibraryEntry => {
            Ok(())
        }
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
        DocKind::Activity => &["idx_activities", "idx_activity_branches", "idx_attendance"],
        DocKind::Petition => &["idx_petitions"],
        DocKind::FeedbackBox | DocKind::FeedbackDrafts => &[],
        DocKind::DuesLedger | DocKind::PointsBook | DocKind::Applicant | DocKind::LibraryEntry => {
            &[]
        }
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
