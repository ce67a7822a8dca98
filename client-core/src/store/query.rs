//! Lists read from the query index, never from documents.
//!
//! Listing a year of activities or the whole petition ledger touches only index rows,
//! so it costs the same whether the documents are small or large.

use rusqlite::types::ToSql;
use rusqlite::{Connection, OptionalExtension, Row, params};
use serde::Serialize;

use super::Store;
use crate::error::{Error, Result};
use crate::ids::{BranchId, DocId, MemberId};
use crate::model::{
    ActivityStatus, Category, Date, Gender, LocalDateTime, MemberStatus, PetitionStatus,
    SignInMode, Timestamp,
};

/// A member as listed from the roster index.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct MemberRow {
    /// Member id.
    pub id: MemberId,
    /// Their branch.
    pub branch: BranchId,
    /// Name.
    pub name: String,
    /// Gender.
    pub gender: Gender,
    /// Birth date.
    pub birth_date: Option<Date>,
    /// Date joined.
    pub joined: Option<Date>,
    /// Category.
    pub category: Category,
    /// Group.
    pub group: Option<String>,
    /// Post.
    pub post: Option<String>,
    /// Phone.
    pub phone: Option<String>,
    /// Status.
    pub status: MemberStatus,
}

/// Which members to list.
#[derive(Clone, Debug, Default)]
pub struct MemberFilter {
    /// Only this category.
    pub category: Option<Category>,
    /// Only this status (all statuses when `None`).
    pub status: Option<MemberStatus>,
    /// Only this group.
    pub group: Option<String>,
    /// Only names containing this text.
    pub name_contains: Option<String>,
}

/// An activity as listed from the index.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ActivityRow {
    /// Document id.
    pub id: DocId,
    /// Owning branch.
    pub branch: BranchId,
    /// Kind code.
    pub kind: String,
    /// Title.
    pub title: String,
    /// Start.
    pub starts_at: LocalDateTime,
    /// End.
    pub ends_at: LocalDateTime,
    /// Venue.
    pub place: Option<String>,
    /// Open or closed.
    pub status: ActivityStatus,
    /// Members signed in.
    pub sign_ins: u32,
    /// Leave requests.
    pub leaves: u32,
}

/// Which activities to list.
#[derive(Clone, Debug, Default)]
pub struct ActivityFilter {
    /// Only this kind.
    pub kind: Option<String>,
    /// Only activities starting on or after this day.
    pub from: Option<Date>,
    /// Only activities starting on or before this day.
    pub to: Option<Date>,
    /// Only this status.
    pub status: Option<ActivityStatus>,
}

/// One member's attendance at an activity.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct AttendanceRow {
    /// The member.
    pub member: MemberId,
    /// Their name, if they are on a roster here.
    pub name: Option<String>,
    /// Signed in (`true`) or on leave (`false`).
    pub present: bool,
    /// How they signed in.
    pub mode: Option<SignInMode>,
    /// When they signed in or asked for leave.
    pub at: Timestamp,
}

/// A petition as listed in the ledger (台账). The submitter's contact is not here:
/// the ledger is published to the branch.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PetitionRow {
    /// Document id.
    pub id: DocId,
    /// Branch.
    pub branch: BranchId,
    /// Category.
    pub category: String,
    /// Title.
    pub title: String,
    /// Status.
    pub status: PetitionStatus,
    /// Owner.
    pub owner: Option<MemberId>,
    /// Deadline.
    pub deadline: Option<Date>,
    /// When submitted.
    pub submitted_at: Timestamp,
    /// When resolved.
    pub resolved_at: Option<Timestamp>,
    /// Satisfaction rating.
    pub rating: Option<u8>,
    /// Progress notes so far.
    pub progress_notes: u32,
    /// Past its deadline and unresolved, on the day the list was asked for.
    pub overdue: bool,
}

/// Which petitions to list.
#[derive(Clone, Debug, Default)]
pub struct PetitionFilter {
    /// Only this status.
    pub status: Option<PetitionStatus>,
    /// Only petitions this member owns.
    pub owner: Option<MemberId>,
    /// Only overdue petitions.
    pub overdue_only: bool,
}

fn parse<T: std::str::FromStr<Err = Error>>(value: String) -> Result<T> {
    value.parse()
}

fn parse_opt<T: std::str::FromStr<Err = Error>>(value: Option<String>) -> Result<Option<T>> {
    value.map(parse).transpose()
}

/// Builds a `WHERE` clause from optional conditions.
#[derive(Default)]
struct Conditions {
    sql: Vec<&'static str>,
    values: Vec<Box<dyn ToSql>>,
}

impl Conditions {
    fn push(&mut self, sql: &'static str, value: impl ToSql + 'static) {
        self.sql.push(sql);
        self.values.push(Box::new(value));
    }

    fn clause(&self) -> String {
        self.sql.join(" AND ")
    }

    fn params(&self) -> Vec<&dyn ToSql> {
        self.values.iter().map(|v| v.as_ref()).collect()
    }
}

impl Store {
    /// Members of `branch` matching `filter`, by name.
    pub fn list_members(&self, branch: BranchId, filter: &MemberFilter) -> Result<Vec<MemberRow>> {
        let mut c = Conditions::default();
        c.push("branch_id = ?", branch.to_string());
        if let Some(category) = filter.category {
            c.push("category = ?", category.as_str());
        }
        if let Some(status) = filter.status {
            c.push("status = ?", status.as_str());
        }
        if let Some(group) = &filter.group {
            c.push("group_name = ?", group.clone());
        }
        if let Some(name) = &filter.name_contains {
            c.push("instr(name, ?) > 0", name.clone());
        }
        let sql = format!(
            "SELECT member_id, branch_id, name, gender, birth_date, joined, category, group_name,
                    post, phone, status
             FROM idx_members WHERE {} ORDER BY name, member_id",
            c.clause()
        );
        let mut stmt = self.conn.prepare(&sql)?;
        let rows = stmt.query_map(c.params().as_slice(), member_columns)?;
        rows.map(|r| member_row(r?)).collect()
    }

    /// Activities visible to `branch` (its own and those shared with it), by start.
    pub fn list_activities(
        &self,
        branch: BranchId,
        filter: &ActivityFilter,
    ) -> Result<Vec<ActivityRow>> {
        let mut c = Conditions::default();
        c.push("b.branch_id = ?", branch.to_string());
        if let Some(kind) = &filter.kind {
            c.push("a.kind = ?", kind.clone());
        }
        if let Some(from) = filter.from {
            c.push("a.starts_at >= ?", from.to_string());
        }
        if let Some(to) = filter.to {
            // Every start on that day sorts before the next day.
            let next =
                to.0.succ_opt()
                    .map_or_else(|| "9999".to_owned(), |d| Date(d).to_string());
            c.push("a.starts_at < ?", next);
        }
        if let Some(status) = filter.status {
            c.push("a.status = ?", status.as_str());
        }
        let sql = format!(
            "SELECT a.doc_id, a.branch_id, a.kind, a.title, a.starts_at, a.ends_at, a.place,
                    a.status, a.sign_ins, a.leaves
             FROM idx_activity_branches b JOIN idx_activities a ON a.doc_id = b.doc_id
             WHERE {} ORDER BY a.starts_at, a.doc_id",
            c.clause()
        );
        let mut stmt = self.conn.prepare(&sql)?;
        let rows = stmt.query_map(c.params().as_slice(), |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, String>(4)?,
                r.get::<_, String>(5)?,
                r.get::<_, Option<String>>(6)?,
                r.get::<_, String>(7)?,
                r.get::<_, u32>(8)?,
                r.get::<_, u32>(9)?,
            ))
        })?;
        rows.map(|r| {
            let (id, branch, kind, title, starts, ends, place, status, sign_ins, leaves) = r?;
            Ok(ActivityRow {
                id: parse(id)?,
                branch: parse(branch)?,
                kind,
                title,
                starts_at: parse(starts)?,
                ends_at: parse(ends)?,
                place,
                status: parse(status)?,
                sign_ins,
                leaves,
            })
        })
        .collect()
    }

    /// Who signed in to (or asked leave from) an activity, by time.
    pub fn attendance(&self, activity: DocId) -> Result<Vec<AttendanceRow>> {
        let mut stmt = self.conn.prepare(
            "SELECT t.member_id, m.name, t.state, t.mode, t.at
             FROM idx_attendance t LEFT JOIN idx_members m ON m.member_id = t.member_id
             WHERE t.doc_id = ?1 ORDER BY t.at, t.member_id",
        )?;
        let rows = stmt.query_map([activity.to_string()], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, Option<String>>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, Option<String>>(3)?,
                r.get::<_, i64>(4)?,
            ))
        })?;
        rows.map(|r| {
            let (member, name, state, mode, at) = r?;
            Ok(AttendanceRow {
                member: parse(member)?,
                name,
                present: state == "present",
                mode: parse_opt(mode)?,
                at: Timestamp(at),
            })
        })
        .collect()
    }

    /// The petition ledger of `branch`, most urgent deadline first; `today` decides
    /// what is overdue.
    pub fn list_petitions(
        &self,
        branch: BranchId,
        filter: &PetitionFilter,
        today: Date,
    ) -> Result<Vec<PetitionRow>> {
        let mut c = Conditions::default();
        c.push("branch_id = ?", branch.to_string());
        if let Some(status) = filter.status {
            c.push("status = ?", status.as_str());
        }
        if let Some(owner) = filter.owner {
            c.push("owner = ?", owner.to_string());
        }
        if filter.overdue_only {
            c.push("status != 'resolved' AND deadline < ?", today.to_string());
        }
        let sql = format!(
            "SELECT doc_id, branch_id, category, title, status, owner, deadline, submitted_at,
                    resolved_at, rating, progress_count
             FROM idx_petitions WHERE {}
             ORDER BY deadline IS NULL, deadline, submitted_at, doc_id",
            c.clause()
        );
        let mut stmt = self.conn.prepare(&sql)?;
        let rows = stmt.query_map(c.params().as_slice(), |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, String>(4)?,
                r.get::<_, Option<String>>(5)?,
                r.get::<_, Option<String>>(6)?,
                r.get::<_, i64>(7)?,
                r.get::<_, Option<i64>>(8)?,
                r.get::<_, Option<u8>>(9)?,
                r.get::<_, u32>(10)?,
            ))
        })?;
        rows.map(|r| {
            let (
                id,
                branch,
                category,
                title,
                status,
                owner,
                deadline,
                submitted,
                resolved,
                rating,
                notes,
            ) = r?;
            let status: PetitionStatus = parse(status)?;
            let deadline: Option<Date> = parse_opt(deadline)?;
            Ok(PetitionRow {
                id: parse(id)?,
                branch: parse(branch)?,
                category,
                title,
                overdue: status != PetitionStatus::Resolved && deadline.is_some_and(|d| d < today),
                status,
                owner: parse_opt(owner)?,
                deadline,
                submitted_at: Timestamp(submitted),
                resolved_at: resolved.map(Timestamp),
                rating,
                progress_notes: notes,
            })
        })
        .collect()
    }
}

type MemberColumns = (
    String,
    String,
    String,
    String,
    Option<String>,
    Option<String>,
    String,
    Option<String>,
    Option<String>,
    Option<String>,
    String,
);

fn member_columns(r: &Row<'_>) -> rusqlite::Result<MemberColumns> {
    Ok((
        r.get(0)?,
        r.get(1)?,
        r.get(2)?,
        r.get(3)?,
        r.get(4)?,
        r.get(5)?,
        r.get(6)?,
        r.get(7)?,
        r.get(8)?,
        r.get(9)?,
        r.get(10)?,
    ))
}

fn member_row(columns: MemberColumns) -> Result<MemberRow> {
    let (id, branch, name, gender, birth, joined, category, group, post, phone, status) = columns;
    Ok(MemberRow {
        id: parse(id)?,
        branch: parse(branch)?,
        name,
        gender: parse(gender)?,
        birth_date: parse_opt(birth)?,
        joined: parse_opt(joined)?,
        category: parse(category)?,
        group,
        post,
        phone,
        status: parse(status)?,
    })
}

/// The branch and status of a member, from the roster index.
pub(crate) fn member_status(
    conn: &Connection,
    member: MemberId,
) -> Result<Option<(BranchId, MemberStatus)>> {
    let row: Option<(String, String)> = conn
        .query_row(
            "SELECT branch_id, status FROM idx_members WHERE member_id = ?1",
            [member.to_string()],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    row.map(|(branch, status)| Ok((parse(branch)?, parse(status)?)))
        .transpose()
}

/// The branches an activity belongs to: its owner and the partners it is shared with.
pub(crate) fn activity_branches(conn: &Connection, activity: DocId) -> Result<Vec<BranchId>> {
    let mut stmt =
        conn.prepare_cached("SELECT branch_id FROM idx_activity_branches WHERE doc_id = ?1")?;
    let rows = stmt.query_map(params![activity.to_string()], |r| r.get::<_, String>(0))?;
    rows.map(|r| parse(r?)).collect()
}

/// The branch of a petition, from the index.
pub(crate) fn petition_branch(conn: &Connection, petition: DocId) -> Result<Option<BranchId>> {
    let branch: Option<String> = conn
        .query_row(
            "SELECT branch_id FROM idx_petitions WHERE doc_id = ?1",
            [petition.to_string()],
            |r| r.get(0),
        )
        .optional()?;
    parse_opt(branch)
}
