//! The branch's reports, computed on the device from the query index, offline.
//!
//! Definitions (the same ones a secretary applies by hand):
//! - **Expected attendance.** An activity of the branch (or shared with it) expects
//!   each full or probationary member who had joined by its day, was still on the
//!   branch that day (active, or left later), and, for a group meeting, belongs to the
//!   group. Activists and applicants are welcome but not expected.
//! - **Attendance rate** = sign-ins of expected members ÷ expected attendances.
//!   Leave is reported apart; it does not count as attending.
//! - **Silent member**: expected at least once, attending below the branch's
//!   threshold (per cent, in the branch profile), and earning no points otherwise
//!   in the period (no award, no thought report on time): someone who misses
//!   meetings while taking on a major task is not silent. Everyone else is active.
//! - **Petitions** are those submitted in the period (by UTC day). Resolved in time:
//!   resolved on or before the deadline's day (or with no deadline set). Overdue:
//!   unresolved with a deadline before `as_of`.
//! - **Meeting compliance** counts the branch's own activities of each required kind
//!   per calendar month, quarter, half year or year touching the period.
//! - **Term renewal** is due from six months before the committee's term ends.
//! - **Age structure** covers active full and probationary members, ages on `as_of`.

use std::collections::{BTreeMap, HashMap};

use chrono::{Datelike, Months, NaiveDate};
use rusqlite::{OptionalExtension, params};
use serde::Serialize;

use crate::error::{Error, Result};
use crate::ids::{BranchId, DocId, MemberId};
use crate::model::{Category, Date, Frequency, MemberStatus};
use crate::store::Store;

/// A closed range of days.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Period {
    /// First day.
    pub from: Date,
    /// Last day.
    pub to: Date,
}

impl Period {
    /// The period from `from` to `to`, both included.
    pub fn new(from: Date, to: Date) -> Result<Self> {
        if to < from {
            return Err(Error::invalid(
                "period (end before start)",
                format!("{from}..{to}"),
            ));
        }
        Ok(Period { from, to })
    }

    /// Whether `day` falls in the period.
    pub fn contains(&self, day: Date) -> bool {
        self.from <= day && day <= self.to
    }
}

/// One member's attendance over a period.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct MemberAttendance {
    /// The member.
    pub member: MemberId,
    /// Their name.
    pub name: String,
    /// Activities they were expected at.
    pub expected: u32,
    /// Of those, how many they signed in to.
    pub attended: u32,
    /// Of those, how many they asked leave from.
    pub on_leave: u32,
    /// `attended ÷ expected`, if they were expected at all.
    pub rate: Option<f64>,
    /// Points earned by attending (by the branch's rule per activity kind).
    pub attendance_points: i64,
    /// Points earned otherwise: awards and thought reports on time.
    pub other_points: i64,
    /// Below the branch's threshold and no other points: someone the secretary
    /// should talk with.
    pub silent: bool,
}

/// Attendance at one kind of activity over a period.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct KindAttendance {
    /// Kind code.
    pub kind: String,
    /// Activities held.
    pub activities: u32,
    /// Expected attendances.
    pub expected: u32,
    /// Sign-ins of expected members.
    pub attended: u32,
    /// `attended ÷ expected`.
    pub rate: Option<f64>,
}

/// Attendance over a period.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct AttendanceReport {
    /// Per member, by name.
    pub members: Vec<MemberAttendance>,
    /// Per activity kind, by code.
    pub kinds: Vec<KindAttendance>,
    /// The silent threshold used, per cent.
    pub silent_threshold_percent: u32,
}

/// Petitions submitted in a period.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PetitionReport {
    /// Submitted in the period.
    pub submitted: u32,
    /// Of those, not resolved yet.
    pub open: u32,
    /// Of those, unresolved past their deadline.
    pub overdue: u32,
    /// Of those, resolved.
    pub resolved: u32,
    /// Of the resolved, resolved by their deadline.
    pub resolved_in_time: u32,
    /// Of the resolved, rated by the submitter.
    pub rated: u32,
    /// Of the rated, satisfied (a rating of 4 or 5).
    pub satisfied: u32,
    /// Mean rating (1 to 5) of the rated.
    pub average_satisfaction: Option<f64>,
}

/// How often one required kind of activity was held.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct KindCompliance {
    /// Kind code.
    pub kind: String,
    /// Required frequency.
    pub frequency: Frequency,
    /// Each calendar period touching the report's period.
    pub periods: Vec<PeriodCount>,
}

/// Activities of a kind held in one calendar period.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PeriodCount {
    /// First day of the calendar period.
    pub start: Date,
    /// Activities held in it.
    pub held: u32,
    /// Whether at least one was held.
    pub met: bool,
}

/// The committee's term and whether renewal (换届) preparation is due.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TermReminder {
    /// The day the term ends.
    pub ends: Date,
    /// Days from `as_of` to the end (negative once past).
    pub days_left: i64,
    /// Due: within six months of the end, or past it.
    pub due: bool,
}

/// Age bands of the membership.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct AgeStructure {
    /// Members per band, e.g. `"31-40"`; `"unknown"` for no birth date.
    pub bands: BTreeMap<String, u32>,
    /// Mean age of members with a birth date.
    pub average_age: Option<f64>,
}

/// Every report of a branch for a period.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct BranchReport {
    /// The period covered.
    pub period: Period,
    /// The day "today" for overdue items, reminders and ages.
    pub as_of: Date,
    /// Attendance.
    pub attendance: AttendanceReport,
    /// Petitions.
    pub petitions: PetitionReport,
    /// Meeting compliance per required kind.
    pub compliance: Vec<KindCompliance>,
    /// Term renewal, if a term is set.
    pub term: Option<TermReminder>,
    /// Age structure.
    pub ages: AgeStructure,
}

struct RosterEntry {
    id: MemberId,
    name: String,
    birth: Option<Date>,
    joined: Option<Date>,
    category: Category,
    group: Option<String>,
    status: MemberStatus,
    status_since: Option<Date>,
}

impl RosterEntry {
    fn expected_at(&self, day: Date, group: Option<&str>) -> bool {
        self.category.is_member()
            && self.joined.is_none_or(|j| j <= day)
            && (self.status == MemberStatus::Active || self.status_since.is_some_and(|s| s > day))
            && group.is_none_or(|g| self.group.as_deref() == Some(g))
    }
}

struct ActivityEntry {
    id: DocId,
    kind: String,
    day: Date,
    group: Option<String>,
}

impl Store {
    /// Every report of `branch` over `period`, with `as_of` as today.
    pub fn report(&self, branch: BranchId, period: Period, as_of: Date) -> Result<BranchReport> {
        Ok(BranchReport {
            period,
            as_of,
            attendance: self.attendance_report(branch, period)?,
            petitions: self.petition_report(branch, period, as_of)?,
            compliance: self.compliance_report(branch, period)?,
            term: self.term_reminder(branch, as_of)?,
            ages: self.age_structure(branch, as_of)?,
        })
    }

    fn roster_entries(&self, branch: BranchId) -> Result<Vec<RosterEntry>> {
        let mut stmt = self.conn().prepare(
            "SELECT member_id, name, birth_date, joined, category, group_name, status, status_since
             FROM idx_members WHERE branch_id = ?1 ORDER BY name, member_id",
        )?;
        let rows = stmt.query_map([branch.to_string()], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, Option<String>>(2)?,
                r.get::<_, Option<String>>(3)?,
                r.get::<_, String>(4)?,
                r.get::<_, Option<String>>(5)?,
                r.get::<_, String>(6)?,
                r.get::<_, Option<String>>(7)?,
            ))
        })?;
        rows.map(|r| {
            let (id, name, birth, joined, category, group, status, since) = r?;
            Ok(RosterEntry {
                id: id.parse()?,
                name,
                birth: birth.map(|b| b.parse()).transpose()?,
                joined: joined.map(|j| j.parse()).transpose()?,
                category: category.parse()?,
                group,
                status: status.parse()?,
                status_since: since.map(|s| s.parse()).transpose()?,
            })
        })
        .collect()
    }

    fn threshold(&self, branch: BranchId) -> Result<u32> {
        self.conn()
            .query_row(
                "SELECT silent_threshold FROM idx_profiles WHERE branch_id = ?1",
                [branch.to_string()],
                |r| r.get(0),
            )
            .optional()?
            .ok_or(Error::MissingBranchDocument("branch_profile"))
    }

    fn attendance_points(&self, branch: BranchId) -> Result<HashMap<String, i64>> {
        let mut stmt = self.conn().prepare(
            "SELECT code, attendance_points FROM idx_activity_kinds WHERE branch_id = ?1",
        )?;
        let rows = stmt.query_map([branch.to_string()], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Attendance per member and per activity kind over `period`.
    pub fn attendance_report(&self, branch: BranchId, period: Period) -> Result<AttendanceReport> {
        let threshold = self.threshold(branch)?;
        let points = self.attendance_points(branch)?;
        let roster = self.roster_entries(branch)?;
        let earned = self.points_besides_attendance(branch, period)?;
        let activities = self.activities_in(branch, period, false)?;
        let mut presence: HashMap<(String, String), bool> = HashMap::new();
        {
            let mut stmt = self.conn().prepare(
                "SELECT t.doc_id, t.member_id, t.state
                 FROM idx_attendance t JOIN idx_activity_branches b ON b.doc_id = t.doc_id
                 JOIN idx_activities a ON a.doc_id = t.doc_id
                 WHERE b.branch_id = ?1 AND a.starts_at >= ?2 AND a.starts_at < ?3",
            )?;
            let (from, until) = bounds(period);
            let rows = stmt.query_map(params![branch.to_string(), from, until], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                ))
            })?;
            for row in rows {
                let (doc, member, state) = row?;
                presence.insert((doc, member), state == "present");
            }
        }
        let mut kinds: BTreeMap<String, KindAttendance> = BTreeMap::new();
        let mut members = Vec::with_capacity(roster.len());
        for entry in &roster {
            let mut m = MemberAttendance {
                member: entry.id,
                name: entry.name.clone(),
                expected: 0,
                attended: 0,
                on_leave: 0,
                rate: None,
                attendance_points: 0,
                other_points: earned.get(&entry.id).map_or(0, |(r, a)| r + a),
                silent: false,
            };
            for a in &activities {
                if !entry.expected_at(a.day, a.group.as_deref()) {
                    continue;
                }
                m.expected += 1;
                let kind = kinds
                    .entry(a.kind.clone())
                    .or_insert_with(|| KindAttendance {
                        kind: a.kind.clone(),
                        activities: 0,
                        expected: 0,
                        attended: 0,
                        rate: None,
                    });
                kind.expected += 1;
                match presence.get(&(a.id.to_string(), entry.id.to_string())) {
                    Some(true) => {
                        m.attended += 1;
                        kind.attended += 1;
                        m.attendance_points += points.get(&a.kind).copied().unwrap_or(0);
                    }
                    Some(false) => m.on_leave += 1,
                    None => {}
                }
            }
            m.rate = ratio(m.attended, m.expected);
            m.silent =
                m.rate.is_some_and(|r| r * 100.0 < f64::from(threshold)) && m.other_points <= 0;
            members.push(m);
        }
        for a in &activities {
            if let Some(kind) = kinds.get_mut(&a.kind) {
                kind.activities += 1;
            }
        }
        for kind in kinds.values_mut() {
            kind.rate = ratio(kind.attended, kind.expected);
        }
        Ok(AttendanceReport {
            members,
            kinds: kinds.into_values().collect(),
            silent_threshold_percent: threshold,
        })
    }

    /// Activities of the branch in `period`; `own_only` leaves out shared ones.
    fn activities_in(
        &self,
        branch: BranchId,
        period: Period,
        own_only: bool,
    ) -> Result<Vec<ActivityEntry>> {
        let sql = if own_only {
            "SELECT a.doc_id, a.kind, a.starts_at, a.group_name FROM idx_activities a
             WHERE a.branch_id = ?1 AND a.starts_at >= ?2 AND a.starts_at < ?3
             ORDER BY a.starts_at"
        } else {
            "SELECT a.doc_id, a.kind, a.starts_at, a.group_name
             FROM idx_activity_branches b JOIN idx_activities a ON a.doc_id = b.doc_id
             WHERE b.branch_id = ?1 AND a.starts_at >= ?2 AND a.starts_at < ?3
             ORDER BY a.starts_at"
        };
        let (from, until) = bounds(period);
        let mut stmt = self.conn().prepare(sql)?;
        let rows = stmt.query_map(params![branch.to_string(), from, until], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, Option<String>>(3)?,
            ))
        })?;
        rows.map(|r| {
            let (id, kind, starts, group) = r?;
            let starts: crate::model::LocalDateTime = starts.parse()?;
            Ok(ActivityEntry {
                id: id.parse()?,
                kind,
                day: starts.date(),
                group,
            })
        })
        .collect()
    }

    /// Petitions submitted in `period`, with `as_of` deciding what is overdue.
    pub fn petition_report(
        &self,
        branch: BranchId,
        period: Period,
        as_of: Date,
    ) -> Result<PetitionReport> {
        let from = day_start_ms(period.from);
        let until = day_start_ms(next_day(period.to));
        let mut stmt = self.conn().prepare(
            "SELECT status, deadline, resolved_at, rating FROM idx_petitions
             WHERE branch_id = ?1 AND submitted_at >= ?2 AND submitted_at < ?3",
        )?;
        let rows = stmt.query_map(params![branch.to_string(), from, until], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, Option<String>>(1)?,
                r.get::<_, Option<i64>>(2)?,
                r.get::<_, Option<u8>>(3)?,
            ))
        })?;
        let mut report = PetitionReport {
            submitted: 0,
            open: 0,
            overdue: 0,
            resolved: 0,
            resolved_in_time: 0,
            rated: 0,
            satisfied: 0,
            average_satisfaction: None,
        };
        let mut rating_sum = 0u32;
        for row in rows {
            let (status, deadline, resolved_at, rating) = row?;
            let deadline: Option<Date> = deadline.map(|d| d.parse()).transpose()?;
            report.submitted += 1;
            if status == "resolved" {
                report.resolved += 1;
                let day = crate::model::Timestamp(resolved_at.unwrap_or_default()).utc_date();
                if deadline.is_none_or(|d| day <= d) {
                    report.resolved_in_time += 1;
                }
                if let Some(score) = rating {
                    report.rated += 1;
                    report.satisfied += u32::from(score >= 4);
                    rating_sum += u32::from(score);
                }
            } else {
                report.open += 1;
                if deadline.is_some_and(|d| d < as_of) {
                    report.overdue += 1;
                }
            }
        }
        report.average_satisfaction =
            (report.rated > 0).then(|| f64::from(rating_sum) / f64::from(report.rated));
        Ok(report)
    }

    /// For each required activity kind, how many were held per calendar period.
    pub fn compliance_report(
        &self,
        branch: BranchId,
        period: Period,
    ) -> Result<Vec<KindCompliance>> {
        let mut stmt = self.conn().prepare(
            "SELECT code, frequency FROM idx_activity_kinds
             WHERE branch_id = ?1 AND frequency IS NOT NULL ORDER BY code",
        )?;
        let required = stmt
            .query_map([branch.to_string()], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        let mut out = Vec::with_capacity(required.len());
        for (kind, frequency) in required {
            let frequency: Frequency = frequency.parse()?;
            let mut periods = Vec::new();
            let mut start = period_start(period.from, frequency);
            while start <= period.to {
                let next = Date(start.0 + Months::new(frequency.months()));
                let bucket = Period {
                    from: start,
                    to: Date(next.0.pred_opt().unwrap_or(next.0)),
                };
                let held = self
                    .activities_in(branch, bucket, true)?
                    .iter()
                    .filter(|a| a.kind == kind)
                    .count() as u32;
                periods.push(PeriodCount {
                    start,
                    held,
                    met: held > 0,
                });
                start = next;
            }
            out.push(KindCompliance {
                kind,
                frequency,
                periods,
            });
        }
        Ok(out)
    }

    /// The term-renewal reminder, if the branch has a term set.
    pub fn term_reminder(&self, branch: BranchId, as_of: Date) -> Result<Option<TermReminder>> {
        let end: Option<String> = self
            .conn()
            .query_row(
                "SELECT term_end FROM idx_profiles WHERE branch_id = ?1",
                [branch.to_string()],
                |r| r.get(0),
            )
            .optional()?
            .ok_or(Error::MissingBranchDocument("branch_profile"))?;
        let Some(end) = end else { return Ok(None) };
        let ends: Date = end.parse()?;
        let warn_from = ends.0.checked_sub_months(Months::new(6)).unwrap_or(ends.0);
        Ok(Some(TermReminder {
            ends,
            days_left: (ends.0 - as_of.0).num_days(),
            due: as_of.0 >= warn_from,
        }))
    }

    /// Age bands of the branch's active full and probationary members.
    pub fn age_structure(&self, branch: BranchId, as_of: Date) -> Result<AgeStructure> {
        let mut bands: BTreeMap<String, u32> = BTreeMap::new();
        let (mut sum, mut known) = (0u32, 0u32);
        for m in self.roster_entries(branch)? {
            if m.status != MemberStatus::Active || !m.category.is_member() {
                continue;
            }
            let band = match m.birth {
                Some(birth) => {
                    let age = age_on(birth, as_of);
                    sum += age;
                    known += 1;
                    age_band(age)
                }
                None => "unknown",
            };
            *bands.entry(band.to_owned()).or_default() += 1;
        }
        Ok(AgeStructure {
            bands,
            average_age: (known > 0).then(|| f64::from(sum) / f64::from(known)),
        })
    }
}

fn ratio(part: u32, whole: u32) -> Option<f64> {
    (whole > 0).then(|| f64::from(part) / f64::from(whole))
}

fn next_day(day: Date) -> Date {
    Date(day.0.succ_opt().unwrap_or(day.0))
}

/// `starts_at` bounds of a period, as text comparable with `YYYY-MM-DDTHH:MM`.
fn bounds(period: Period) -> (String, String) {
    (period.from.to_string(), next_day(period.to).to_string())
}

fn day_start_ms(day: Date) -> i64 {
    day.0
        .and_hms_opt(0, 0, 0)
        .map_or(0, |t| t.and_utc().timestamp_millis())
}

/// The first day of the calendar month, quarter, half or year containing `day`.
pub fn period_start(day: Date, frequency: Frequency) -> Date {
    let months = frequency.months();
    let month0 = (day.0.month0() / months) * months;
    Date(NaiveDate::from_ymd_opt(day.0.year(), month0 + 1, 1).unwrap_or(day.0))
}

/// Whole years of age on `on` for someone born on `birth`.
pub fn age_on(birth: Date, on: Date) -> u32 {
    on.0.years_since(birth.0).unwrap_or(0)
}

/// The age band of an age, as reports show it.
pub fn age_band(age: u32) -> &'static str {
    match age {
        0..=30 => "≤30",
        31..=40 => "31-40",
        41..=50 => "41-50",
        51..=60 => "51-60",
        61..=70 => "61-70",
        _ => ">70",
    }
}
