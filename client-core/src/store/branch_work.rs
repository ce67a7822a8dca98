//! The branch work beyond meetings and petitions: the dues ledger, points and
//! rankings, the applicant pipeline and the problem library.
//!
//! Writes go through the typed records (`model::dues`, `points`, `applicant`,
//! `library`); reads come from the query index. A year's ledger or points book is
//! the union of every document of that year of the branch (two devices may each have
//! opened the year offline); new entries go to the first, by document id.

use std::collections::{BTreeSet, HashMap};
use std::ops::RangeInclusive;

use chrono::Datelike;
use rusqlite::{OptionalExtension, params};
use serde::Serialize;

use super::Store;
use super::query::MemberFilter;
use crate::error::{Error, Result};
use crate::ids::{BranchId, DocId, EntryId, MemberId};
use crate::model::{
    Applicant, Category, Collection, Date, DocKind, DuesLedger, LibraryEntry, MemberStatus,
    NewLibraryEntry, NextStep, PointsBook, SpendingCategory, Stage, THOUGHT_REPORT_RULE,
};
use crate::report::Period;

/// One payment as the public ledger shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PaymentRow {
    /// The entry, to void it by.
    pub entry: EntryId,
    /// Who paid.
    pub member: MemberId,
    /// Their name, as the roster has it.
    pub name: String,
    /// First month paid for.
    pub first_month: u32,
    /// Last month paid for.
    pub last_month: u32,
    /// Amount in fen.
    pub amount_fen: i64,
    /// Day paid.
    pub paid_on: Date,
    /// Day voided, if it was.
    pub voided_on: Option<Date>,
    /// Why it was voided.
    pub void_reason: Option<String>,
}

/// One spending as the public ledger shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SpendingRow {
    /// The entry.
    pub entry: EntryId,
    /// Amount in fen.
    pub amount_fen: i64,
    /// What kind of branch work.
    pub category: SpendingCategory,
    /// What exactly.
    pub purpose: String,
    /// Who approved it.
    pub approved_by: String,
    /// Day spent.
    pub spent_on: Date,
}

/// The public dues ledger of one branch and year (党费公示).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct DuesLedgerView {
    /// The year.
    pub year: i64,
    /// What a member pays a month unless set otherwise, in fen.
    pub monthly_default_fen: i64,
    /// Payments, by day.
    pub payments: Vec<PaymentRow>,
    /// Spending, by day.
    pub spending: Vec<SpendingRow>,
    /// Collected this year (voided payments left out), in fen.
    pub collected_fen: i64,
    /// Spent this year, in fen.
    pub spent_fen: i64,
    /// Collected less spent, in fen.
    pub balance_fen: i64,
}

/// One member's dues for a year, as of a day.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct MemberDues {
    /// The member.
    pub member: MemberId,
    /// Their name.
    pub name: String,
    /// What they pay a month, in fen.
    pub monthly_fen: i64,
    /// Months they owe dues for at all this year (as a member, on the branch).
    pub owing_months: Vec<u32>,
    /// Months paid for.
    pub paid_months: Vec<u32>,
    /// Months past and unpaid.
    pub overdue_months: Vec<u32>,
    /// What the overdue months come to, in fen.
    pub owed_fen: i64,
    /// What they paid this year, in fen.
    pub paid_fen: i64,
}

/// The dues collection of a branch for a year, as of a day.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DuesCollection {
    /// Dues of months already past, in fen.
    pub due_fen: i64,
    /// Of those, paid, in fen.
    pub collected_fen: i64,
    /// `collected ÷ due`, if anything was due.
    pub rate: Option<f64>,
    /// Members with overdue months.
    pub overdue_members: u32,
}

/// One line of a points ranking.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RankRow {
    /// Place; people with equal points share it (1, 2, 2, 4).
    pub rank: u32,
    /// The person.
    pub member: MemberId,
    /// Their name.
    pub name: String,
    /// Points from attending.
    pub attendance_points: i64,
    /// Points from thought reports handed in on time.
    pub report_points: i64,
    /// Points from awards (bonus and base items, awards at activities).
    pub award_points: i64,
    /// The sum.
    pub total: i64,
}

/// An award as listed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct AwardRow {
    /// The entry, to withdraw it by.
    pub entry: EntryId,
    /// The document holding it (a points book or an activity).
    pub doc: DocId,
    /// Who received it.
    pub member: MemberId,
    /// Points.
    pub points: i64,
    /// The point rule, if any.
    pub rule: Option<String>,
    /// Why.
    pub reason: Option<String>,
    /// The day it counts for.
    pub on: Date,
}

/// A thought report as listed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ThoughtReportRow {
    /// The entry.
    pub entry: EntryId,
    /// Who wrote it.
    pub member: MemberId,
    /// Due day.
    pub due: Date,
    /// Day received.
    pub received: Date,
    /// Received by its due day.
    pub on_time: bool,
}

/// One person in the applicant pipeline.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ApplicantRow {
    /// The applicant's file.
    pub doc: DocId,
    /// The person.
    pub member: MemberId,
    /// Their name.
    pub name: String,
    /// The furthest step taken.
    pub stage: Stage,
    /// Its day.
    pub stage_on: Date,
    /// Introducers named.
    pub introducers: Vec<MemberId>,
    /// Thought reports received so far.
    pub thought_reports: u32,
    /// The last one's day.
    pub last_report: Option<Date>,
    /// The next step, from when.
    pub next: Option<NextStep>,
}

/// What is due in the applicant pipeline.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "what", content = "stage", rename_all = "snake_case")]
pub enum ApplicantDue {
    /// A step of the process.
    Step(Stage),
    /// A thought report (one a quarter from activist to full member).
    ThoughtReport,
}

/// A reminder for the committee about one applicant.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ApplicantReminder {
    /// The person.
    pub member: MemberId,
    /// Their name.
    pub name: String,
    /// What is due.
    pub due: ApplicantDue,
    /// Since when.
    pub since: Date,
}

/// A problem-library or case-collection entry as listed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct LibraryRow {
    /// The entry's document.
    pub id: DocId,
    /// The branch that wrote it.
    pub branch: BranchId,
    /// That branch's name, if its profile is on the device.
    pub branch_name: Option<String>,
    /// Problem or case.
    pub collection: Collection,
    /// Title.
    pub title: String,
    /// The day it was written.
    pub written_on: Date,
    /// Tags.
    pub tags: Vec<String>,
    /// Shared down the hierarchy.
    pub shared_down: bool,
}

/// Which library entries to list.
#[derive(Clone, Debug, Default)]
pub struct LibraryFilter {
    /// Only this collection.
    pub collection: Option<Collection>,
    /// Only entries with this tag.
    pub tag: Option<String>,
    /// Only titles containing this text.
    pub title_contains: Option<String>,
}

/// Months a thought report is due in, from activist to full member.
const REPORT_EVERY_MONTHS: u32 = 3;

fn year_of(day: Date) -> i64 {
    i64::from(day.0.year())
}

fn add_months(day: Date, months: u32) -> Date {
    Date(
        day.0
            .checked_add_months(chrono::Months::new(months))
            .unwrap_or(day.0),
    )
}

/// The months of `year` a person owes dues for: a full or probationary member,
/// from the month they joined (if this year) to the month they left (if this year).
fn owing_months(
    year: i64,
    category: Category,
    joined: Option<Date>,
    status: MemberStatus,
    since: Option<Date>,
) -> RangeInclusive<u32> {
    #[allow(clippy::reversed_empty_ranges)]
    const NONE: RangeInclusive<u32> = 1..=0;
    if !category.is_member() {
        return NONE;
    }
    let first = match joined {
        Some(j) if year_of(j) > year => return NONE,
        Some(j) if year_of(j) == year => j.0.month(),
        _ => 1,
    };
    let last = match (status, since) {
        (MemberStatus::Active, _) | (_, None) => 12,
        (_, Some(s)) if year_of(s) < year => return NONE,
        (_, Some(s)) if year_of(s) == year => s.0.month(),
        _ => 12,
    };
    first..=last
}

/// The last month of `year` whose dues are late when unpaid on `as_of`: dues are
/// paid during their month, so on 10 May the months up to April are late.
fn elapsed_months(year: i64, as_of: Date) -> u32 {
    match year_of(as_of).cmp(&year) {
        std::cmp::Ordering::Greater => 12,
        std::cmp::Ordering::Equal => as_of.0.month() - 1,
        std::cmp::Ordering::Less => 0,
    }
}

/// Gives equal totals the same place, and the next total the place after all of
/// them (1, 2, 2, 4); `rows` must be sorted by total, highest first.
fn assign_ranks(rows: &mut [RankRow]) {
    let mut previous = None;
    let mut rank = 0;
    for (i, row) in rows.iter_mut().enumerate() {
        if previous != Some(row.total) {
            rank = i as u32 + 1;
            previous = Some(row.total);
        }
        row.rank = rank;
    }
}

impl Store {
    // --- yearly documents ----------------------------------------------------------

    /// The year's documents of `kind` of a branch, first by id.
    fn yearly_docs(&self, branch: BranchId, kind: DocKind, year: i64) -> Result<Vec<DocId>> {
        let mut stmt = self.conn().prepare_cached(
            "SELECT doc_id FROM idx_yearly WHERE branch_id = ?1 AND kind = ?2 AND year = ?3
             ORDER BY doc_id",
        )?;
        let rows = stmt.query_map(params![branch.to_string(), kind.as_str(), year], |r| {
            r.get::<_, String>(0)
        })?;
        rows.map(|r| r?.parse()).collect()
    }

    /// The branch's dues ledger of `year`, created empty if there is none.
    pub fn dues_ledger(&mut self, branch: BranchId, year: i64) -> Result<DocId> {
        match self.yearly_docs(branch, DocKind::DuesLedger, year)?.first() {
            Some(id) => Ok(*id),
            None => {
                self.profile(branch)?;
                self.create(&DuesLedger::new(branch, year))
            }
        }
    }

    /// The branch's points book of `year`, created empty if there is none.
    pub fn points_book(&mut self, branch: BranchId, year: i64) -> Result<DocId> {
        match self.yearly_docs(branch, DocKind::PointsBook, year)?.first() {
            Some(id) => Ok(*id),
            None => {
                self.profile(branch)?;
                self.create(&PointsBook::new(branch, year))
            }
        }
    }

    /// Fails unless `member` is on the roster of `branch` (in any status: someone who
    /// left may still settle what they owe).
    fn check_on_roster(&self, member: MemberId, branch: BranchId) -> Result<()> {
        match super::query::member_status(self.conn(), member)? {
            Some((b, _)) if b == branch => Ok(()),
            _ => Err(Error::UnknownMember(member)),
        }
    }

    // --- dues ------------------------------------------------------------------------

    /// Records dues `member` paid on `paid_on` for `months` of `year`. Without an
    /// amount, it is the member's monthly amount times the months.
    pub fn record_dues_payment(
        &mut self,
        branch: BranchId,
        member: MemberId,
        year: i64,
        months: RangeInclusive<u32>,
        amount_fen: Option<i64>,
        paid_on: Date,
    ) -> Result<EntryId> {
        self.check_on_roster(member, branch)?;
        let amount = match amount_fen {
            Some(fen) => fen,
            None => {
                let monthly = self.monthly_dues_of(branch, member, year)?;
                let count = months.clone().count() as i64;
                if monthly == 0 {
                    return Err(Error::EmptyField {
                        field: "amount (the branch sets no monthly dues)",
                    });
                }
                monthly * count
            }
        };
        let ledger = self.dues_ledger(branch, year)?;
        let id = EntryId::random();
        self.update(ledger, |l: &mut DuesLedger| {
            l.record_payment(id, member, months, amount, paid_on)
        })?;
        Ok(id)
    }

    /// Voids a payment recorded by mistake; it stays in the ledger, marked.
    pub fn void_dues_payment(&mut self, entry: EntryId, reason: &str, on: Date) -> Result<()> {
        let doc: Option<String> = self
            .conn()
            .query_row(
                "SELECT doc_id FROM idx_dues_payments WHERE entry_id = ?1",
                [entry.to_string()],
                |r| r.get(0),
            )
            .optional()?;
        let doc: DocId = doc.ok_or(Error::UnknownEntry(entry))?.parse()?;
        self.update(doc, |l: &mut DuesLedger| l.void_payment(entry, reason, on))
    }

    /// Sets what `member` pays a month in `year`, in fen; `None` goes back to the
    /// branch's amount.
    pub fn set_member_dues(
        &mut self,
        branch: BranchId,
        member: MemberId,
        year: i64,
        fen: Option<i64>,
    ) -> Result<()> {
        self.check_on_roster(member, branch)?;
        let ledger = self.dues_ledger(branch, year)?;
        self.update(ledger, |l: &mut DuesLedger| l.set_monthly(member, fen))?;
        // A second ledger of the year may hold an older amount; clear it there.
        for other in self.yearly_docs(branch, DocKind::DuesLedger, year)? {
            if other != ledger && self.member_dues_in(other, member)?.is_some() {
                self.update(other, |l: &mut DuesLedger| l.set_monthly(member, None))?;
            }
        }
        Ok(())
    }

    /// Records money spent from the dues on branch work.
    pub fn record_dues_spending(
        &mut self,
        branch: BranchId,
        amount_fen: i64,
        category: SpendingCategory,
        purpose: &str,
        approved_by: &str,
        spent_on: Date,
    ) -> Result<EntryId> {
        let ledger = self.dues_ledger(branch, year_of(spent_on))?;
        let id = EntryId::random();
        self.update(ledger, |l: &mut DuesLedger| {
            l.record_spending(id, amount_fen, category, purpose, approved_by, spent_on)
        })?;
        Ok(id)
    }

    fn member_dues_in(&self, doc: DocId, member: MemberId) -> Result<Option<i64>> {
        Ok(self
            .conn()
            .query_row(
                "SELECT fen FROM idx_dues_monthly WHERE doc_id = ?1 AND member_id = ?2",
                params![doc.to_string(), member.to_string()],
                |r| r.get(0),
            )
            .optional()?)
    }

    fn monthly_default(&self, branch: BranchId) -> Result<i64> {
        Ok(self.profile(branch)?.monthly_dues_fen)
    }

    fn monthly_overrides(&self, branch: BranchId, year: i64) -> Result<HashMap<String, i64>> {
        let mut out = HashMap::new();
        // The first ledger's amount wins, as the store writes there.
        for doc in self
            .yearly_docs(branch, DocKind::DuesLedger, year)?
            .iter()
            .rev()
        {
            let mut stmt = self
                .conn()
                .prepare_cached("SELECT member_id, fen FROM idx_dues_monthly WHERE doc_id = ?1")?;
            let rows = stmt.query_map([doc.to_string()], |r| Ok((r.get(0)?, r.get(1)?)))?;
            for row in rows {
                let (member, fen): (String, i64) = row?;
                out.insert(member, fen);
            }
        }
        Ok(out)
    }

    fn monthly_dues_of(&self, branch: BranchId, member: MemberId, year: i64) -> Result<i64> {
        let overrides = self.monthly_overrides(branch, year)?;
        match overrides.get(&member.to_string()) {
            Some(fen) => Ok(*fen),
            None => self.monthly_default(branch),
        }
    }

    fn payment_rows(&self, branch: BranchId, year: i64) -> Result<Vec<PaymentRow>> {
        let mut stmt = self.conn().prepare_cached(
            "SELECT p.entry_id, p.member_id, m.name, p.first_month, p.last_month, p.amount_fen,
                    p.paid_on, p.voided_on, p.void_reason
             FROM idx_dues_payments p LEFT JOIN idx_members m ON m.member_id = p.member_id
             WHERE p.branch_id = ?1 AND p.year = ?2
             ORDER BY p.paid_on, p.entry_id",
        )?;
        let rows = stmt.query_map(params![branch.to_string(), year], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, Option<String>>(2)?,
                r.get::<_, u32>(3)?,
                r.get::<_, u32>(4)?,
                r.get::<_, i64>(5)?,
                r.get::<_, String>(6)?,
                r.get::<_, Option<String>>(7)?,
                r.get::<_, Option<String>>(8)?,
            ))
        })?;
        rows.map(|r| {
            let (entry, member, name, first, last, amount, paid_on, voided_on, reason) = r?;
            Ok(PaymentRow {
                entry: entry.parse()?,
                member: member.parse()?,
                name: name.unwrap_or_default(),
                first_month: first,
                last_month: last,
                amount_fen: amount,
                paid_on: paid_on.parse()?,
                voided_on: voided_on.map(|d| d.parse()).transpose()?,
                void_reason: reason,
            })
        })
        .collect()
    }

    /// The public dues ledger of `branch` for `year`: payments, spending, balance.
    pub fn dues_ledger_view(&self, branch: BranchId, year: i64) -> Result<DuesLedgerView> {
        let payments = self.payment_rows(branch, year)?;
        let mut stmt = self.conn().prepare_cached(
            "SELECT entry_id, amount_fen, category, purpose, approved_by, spent_on
             FROM idx_dues_spending WHERE branch_id = ?1 AND year = ?2
             ORDER BY spent_on, entry_id",
        )?;
        let spending = stmt
            .query_map(params![branch.to_string(), year], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, String>(3)?,
                    r.get::<_, String>(4)?,
                    r.get::<_, String>(5)?,
                ))
            })?
            .map(|r| {
                let (entry, amount, category, purpose, approved_by, spent_on) = r?;
                Ok(SpendingRow {
                    entry: entry.parse()?,
                    amount_fen: amount,
                    category: category.parse()?,
                    purpose,
                    approved_by,
                    spent_on: spent_on.parse()?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let collected_fen = payments
            .iter()
            .filter(|p| p.voided_on.is_none())
            .map(|p| p.amount_fen)
            .sum();
        let spent_fen = spending.iter().map(|s| s.amount_fen).sum();
        Ok(DuesLedgerView {
            year,
            monthly_default_fen: self.monthly_default(branch)?,
            payments,
            spending,
            collected_fen,
            spent_fen,
            balance_fen: collected_fen - spent_fen,
        })
    }

    /// Every member's dues of `year` as of `as_of`, by name: who paid which months
    /// and who is behind. Members and the committee read it offline.
    pub fn dues_overview(
        &self,
        branch: BranchId,
        year: i64,
        as_of: Date,
    ) -> Result<Vec<MemberDues>> {
        let default = self.monthly_default(branch)?;
        let overrides = self.monthly_overrides(branch, year)?;
        let elapsed = elapsed_months(year, as_of);
        let mut paid: HashMap<String, (BTreeSet<u32>, i64)> = HashMap::new();
        for p in self.payment_rows(branch, year)? {
            if p.voided_on.is_some() {
                continue;
            }
            let slot = paid.entry(p.member.to_string()).or_default();
            slot.0.extend(p.first_month..=p.last_month);
            slot.1 += p.amount_fen;
        }
        let mut out = Vec::new();
        for m in self.list_members(branch, &MemberFilter::default())? {
            let (since, joined) = self.member_dates(m.id)?;
            let owing = owing_months(year, m.category, joined, m.status, since);
            let key = m.id.to_string();
            let (months_paid, paid_fen) = paid.remove(&key).unwrap_or_default();
            if owing.is_empty() && months_paid.is_empty() {
                continue;
            }
            let monthly_fen = overrides.get(&key).copied().unwrap_or(default).max(0);
            let overdue_months: Vec<u32> = if monthly_fen == 0 {
                Vec::new()
            } else {
                owing
                    .clone()
                    .filter(|month| *month <= elapsed && !months_paid.contains(month))
                    .collect()
            };
            out.push(MemberDues {
                member: m.id,
                name: m.name,
                monthly_fen,
                owing_months: owing.collect(),
                paid_months: months_paid.into_iter().collect(),
                owed_fen: monthly_fen * overdue_months.len() as i64,
                overdue_months,
                paid_fen,
            });
        }
        Ok(out)
    }

    /// The reminder list: members behind with their dues on `as_of` (in its year),
    /// most months behind first.
    pub fn overdue_dues(&self, branch: BranchId, as_of: Date) -> Result<Vec<MemberDues>> {
        let mut behind: Vec<MemberDues> = self
            .dues_overview(branch, year_of(as_of), as_of)?
            .into_iter()
            .filter(|m| !m.overdue_months.is_empty())
            .collect();
        behind.sort_by(|a, b| {
            b.overdue_months
                .len()
                .cmp(&a.overdue_months.len())
                .then_with(|| a.name.cmp(&b.name))
                .then_with(|| a.member.cmp(&b.member))
        });
        Ok(behind)
    }

    /// The dues collection rate of `branch` in `year` as of `as_of`: dues of the
    /// months already past, and how much of them was paid.
    pub fn dues_collection(
        &self,
        branch: BranchId,
        year: i64,
        as_of: Date,
    ) -> Result<DuesCollection> {
        let elapsed = elapsed_months(year, as_of);
        let (mut due_fen, mut collected_fen, mut overdue_members) = (0, 0, 0);
        for m in self.dues_overview(branch, year, as_of)? {
            let due: Vec<u32> = m
                .owing_months
                .iter()
                .copied()
                .filter(|x| *x <= elapsed)
                .collect();
            due_fen += m.monthly_fen * due.len() as i64;
            collected_fen += m.monthly_fen * (due.len() - m.overdue_months.len()) as i64;
            overdue_members += u32::from(!m.overdue_months.is_empty());
        }
        Ok(DuesCollection {
            due_fen,
            collected_fen,
            rate: (due_fen > 0).then(|| collected_fen as f64 / due_fen as f64),
            overdue_members,
        })
    }

    fn member_dates(&self, member: MemberId) -> Result<(Option<Date>, Option<Date>)> {
        let (since, joined): (Option<String>, Option<String>) = self.conn().query_row(
            "SELECT status_since, joined FROM idx_members WHERE member_id = ?1",
            [member.to_string()],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        Ok((
            since.map(|d| d.parse()).transpose()?,
            joined.map(|d| d.parse()).transpose()?,
        ))
    }

    // --- points ------------------------------------------------------------------------

    /// Awards points to `member`: by one of the branch's point rules (its points
    /// unless `points` says otherwise) or, without a rule, `points` for `reason`.
    pub fn award(
        &mut self,
        branch: BranchId,
        member: MemberId,
        rule: Option<&str>,
        points: Option<i64>,
        reason: Option<&str>,
        on: Date,
    ) -> Result<EntryId> {
        self.check_on_roster(member, branch)?;
        let points = match (rule, points) {
            (_, Some(points)) => {
                if let Some(rule) = rule {
                    self.profile(branch)?.point_rule(rule)?;
                }
                points
            }
            (Some(rule), None) => self.profile(branch)?.point_rule(rule)?.points,
            (None, None) => return Err(Error::EmptyField { field: "points" }),
        };
        let book = self.points_book(branch, year_of(on))?;
        let id = EntryId::random();
        self.update(book, |b: &mut PointsBook| {
            b.award(id, member, points, rule, reason, on)
        })?;
        Ok(id)
    }

    /// Takes back an award of a points book recorded by mistake.
    pub fn withdraw_award(&mut self, entry: EntryId) -> Result<()> {
        let doc: Option<String> = self
            .conn()
            .query_row(
                "SELECT a.doc_id FROM idx_awards a JOIN idx_yearly y ON y.doc_id = a.doc_id
                 WHERE a.entry_id = ?1",
                [entry.to_string()],
                |r| r.get(0),
            )
            .optional()?;
        let doc: DocId = doc.ok_or(Error::UnknownEntry(entry))?.parse()?;
        self.update(doc, |b: &mut PointsBook| {
            b.withdraw_award(entry).map(|_| ())
        })
    }

    /// Records a thought report `member` handed in on `received`, due on `due`.
    pub fn record_thought_report(
        &mut self,
        branch: BranchId,
        member: MemberId,
        due: Date,
        received: Date,
    ) -> Result<EntryId> {
        self.check_on_roster(member, branch)?;
        let book = self.points_book(branch, year_of(received))?;
        let id = EntryId::random();
        self.update(book, |b: &mut PointsBook| {
            b.receive_thought_report(id, member, due, received)
        })?;
        Ok(id)
    }

    /// Awards to members of `branch` counting in `period` (from points books and
    /// activities), by day.
    pub fn awards(&self, branch: BranchId, period: Period) -> Result<Vec<AwardRow>> {
        let mut stmt = self.conn().prepare_cached(
            "SELECT a.entry_id, a.doc_id, a.member_id, a.points, a.rule, a.reason, a.on_day
             FROM idx_awards a JOIN idx_members m ON m.member_id = a.member_id
             WHERE m.branch_id = ?1 AND a.on_day >= ?2 AND a.on_day <= ?3
             ORDER BY a.on_day, a.entry_id",
        )?;
        let rows = stmt.query_map(
            params![
                branch.to_string(),
                period.from.to_string(),
                period.to.to_string()
            ],
            |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, i64>(3)?,
                    r.get::<_, Option<String>>(4)?,
                    r.get::<_, Option<String>>(5)?,
                    r.get::<_, String>(6)?,
                ))
            },
        )?;
        rows.map(|r| {
            let (entry, doc, member, points, rule, reason, on) = r?;
            Ok(AwardRow {
                // A counter of an older build is not an entry id; it is shown, and
                // cannot be withdrawn.
                entry: entry
                    .parse()
                    .unwrap_or_else(|_| EntryId::from_bytes([0; 16])),
                doc: doc.parse()?,
                member: member.parse()?,
                points,
                rule,
                reason,
                on: on.parse()?,
            })
        })
        .collect()
    }

    /// Thought reports of `member`, by day received.
    pub fn thought_reports(&self, member: MemberId) -> Result<Vec<ThoughtReportRow>> {
        let mut stmt = self.conn().prepare_cached(
            "SELECT entry_id, member_id, due, received FROM idx_thought_reports
             WHERE member_id = ?1 ORDER BY received, entry_id",
        )?;
        let rows = stmt.query_map([member.to_string()], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, String>(3)?,
            ))
        })?;
        rows.map(|r| {
            let (entry, member, due, received) = r?;
            let (due, received): (Date, Date) = (due.parse()?, received.parse()?);
            Ok(ThoughtReportRow {
                entry: entry.parse()?,
                member: member.parse()?,
                due,
                received,
                on_time: received <= due,
            })
        })
        .collect()
    }

    /// Points members of `branch` earned in `period` other than by attending: from
    /// thought reports on time (by the branch's `thought_report` rule) and from
    /// awards, as `(reports, awards)`.
    pub(crate) fn points_besides_attendance(
        &self,
        branch: BranchId,
        period: Period,
    ) -> Result<HashMap<MemberId, (i64, i64)>> {
        let per_report = self
            .profile(branch)?
            .point_rules
            .get(THOUGHT_REPORT_RULE)
            .map_or(0, |r| r.points);
        let mut out: HashMap<MemberId, (i64, i64)> = HashMap::new();
        for a in self.awards(branch, period)? {
            out.entry(a.member).or_default().1 += a.points;
        }
        let mut stmt = self.conn().prepare_cached(
            "SELECT t.member_id, count(*) FROM idx_thought_reports t
             JOIN idx_members m ON m.member_id = t.member_id
             WHERE m.branch_id = ?1 AND t.received >= ?2 AND t.received <= ?3
               AND t.received <= t.due
             GROUP BY t.member_id",
        )?;
        let rows = stmt.query_map(
            params![
                branch.to_string(),
                period.from.to_string(),
                period.to.to_string()
            ],
            |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)),
        )?;
        for row in rows {
            let (member, count) = row?;
            out.entry(member.parse()?).or_default().0 += count * per_report;
        }
        Ok(out)
    }

    /// Points of every active person on the roster of `branch` earned in `period`,
    /// ranked: attendance (by the branch's points per activity kind), thought reports
    /// on time (by its `thought_report` rule) and awards.
    pub fn ranking(&self, branch: BranchId, period: Period) -> Result<Vec<RankRow>> {
        let attendance: HashMap<MemberId, i64> = self
            .attendance_report(branch, period)?
            .members
            .into_iter()
            .map(|m| (m.member, m.attendance_points))
            .collect();
        let earned = self.points_besides_attendance(branch, period)?;
        let filter = MemberFilter {
            status: Some(MemberStatus::Active),
            ..MemberFilter::default()
        };
        let mut rows: Vec<RankRow> = self
            .list_members(branch, &filter)?
            .into_iter()
            .map(|m| {
                let attendance_points = attendance.get(&m.id).copied().unwrap_or(0);
                let (report_points, award_points) = earned.get(&m.id).copied().unwrap_or_default();
                RankRow {
                    rank: 0,
                    member: m.id,
                    name: m.name,
                    attendance_points,
                    report_points,
                    award_points,
                    total: attendance_points + report_points + award_points,
                }
            })
            .collect();
        rows.sort_by(|a, b| {
            b.total
                .cmp(&a.total)
                .then_with(|| a.name.cmp(&b.name))
                .then_with(|| a.member.cmp(&b.member))
        });
        assign_ranks(&mut rows);
        Ok(rows)
    }

    // --- applicants --------------------------------------------------------------------

    /// Opens the file of `member` (on the roster of `branch`), who applied on
    /// `applied`. A person has one file.
    pub fn add_applicant(
        &mut self,
        branch: BranchId,
        member: MemberId,
        applied: Date,
    ) -> Result<DocId> {
        self.check_on_roster(member, branch)?;
        if let Some(existing) = self.applicant_doc(member)? {
            return Err(Error::ApplicantExists(existing));
        }
        self.create(&Applicant::new(branch, member, applied))
    }

    fn applicant_doc(&self, member: MemberId) -> Result<Option<DocId>> {
        let doc: Option<String> = self
            .conn()
            .query_row(
                "SELECT doc_id FROM idx_applicants WHERE member_id = ?1 ORDER BY doc_id LIMIT 1",
                [member.to_string()],
                |r| r.get(0),
            )
            .optional()?;
        doc.map(|d| d.parse()).transpose()
    }

    fn applicant_doc_or_err(&self, member: MemberId) -> Result<DocId> {
        self.applicant_doc(member)?
            .ok_or(Error::NotAnApplicant(member))
    }

    /// The applicant file of `member`.
    pub fn applicant(&self, member: MemberId) -> Result<Applicant> {
        self.get(self.applicant_doc_or_err(member)?)
    }

    /// Records a step of `member`'s way to membership, and moves their roster
    /// category along with it (activist, probationary, full).
    pub fn record_applicant_stage(
        &mut self,
        member: MemberId,
        stage: Stage,
        on: Date,
        note: Option<&str>,
    ) -> Result<()> {
        let doc = self.applicant_doc_or_err(member)?;
        self.update(doc, |a: &mut Applicant| a.record_stage(stage, on, note))?;
        let category = match stage {
            Stage::Applied => Category::Applicant,
            Stage::Activist | Stage::Candidate => Category::Activist,
            Stage::Probationary => Category::Probationary,
            Stage::Full => Category::Full,
        };
        let current: Option<String> = self
            .conn()
            .query_row(
                "SELECT category FROM idx_members WHERE member_id = ?1",
                [member.to_string()],
                |r| r.get(0),
            )
            .optional()?;
        if current.as_deref() != Some(category.as_str()) {
            let mut update = crate::model::MemberUpdate {
                category: Some(category),
                ..Default::default()
            };
            if stage == Stage::Probationary {
                update.joined = Some(on);
            }
            self.update_member(member, update)?;
        }
        Ok(())
    }

    /// Names `introducer`, an active full member of the applicant's branch.
    pub fn add_introducer(&mut self, member: MemberId, introducer: MemberId) -> Result<()> {
        let doc = self.applicant_doc_or_err(member)?;
        let applicant: Applicant = self.get(doc)?;
        let branch = applicant.meta.branch;
        let full = self.list_members(
            branch,
            &MemberFilter {
                category: Some(Category::Full),
                status: Some(MemberStatus::Active),
                ..MemberFilter::default()
            },
        )?;
        if !full.iter().any(|m| m.id == introducer) {
            return Err(Error::invalid(
                "introducer (an active full member of the branch)",
                introducer.to_string(),
            ));
        }
        self.update(doc, |a: &mut Applicant| a.add_introducer(introducer))
    }

    /// Everyone in the pipeline of `branch`, furthest along first.
    pub fn applicants(&self, branch: BranchId) -> Result<Vec<ApplicantRow>> {
        let mut stmt = self.conn().prepare_cached(
            "SELECT a.doc_id, a.member_id, m.name, a.stage, a.stage_on, a.introducers
             FROM idx_applicants a LEFT JOIN idx_members m ON m.member_id = a.member_id
             WHERE a.branch_id = ?1 ORDER BY a.stage_on, a.member_id, a.doc_id",
        )?;
        let rows = stmt
            .query_map([branch.to_string()], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, Option<String>>(2)?,
                    r.get::<_, String>(3)?,
                    r.get::<_, String>(4)?,
                    r.get::<_, String>(5)?,
                ))
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        let mut out = Vec::with_capacity(rows.len());
        for (doc, member, name, stage, stage_on, introducers) in rows {
            let member: MemberId = member.parse()?;
            let reports = self.thought_reports(member)?;
            let file: Applicant = self.get(doc.parse()?)?;
            out.push(ApplicantRow {
                doc: doc.parse()?,
                member,
                name: name.unwrap_or_default(),
                stage: stage.parse()?,
                stage_on: stage_on.parse()?,
                introducers: introducers
                    .split(',')
                    .filter(|s| !s.is_empty())
                    .map(str::parse)
                    .collect::<Result<_>>()?,
                thought_reports: reports.len() as u32,
                last_report: reports.last().map(|r| r.received),
                next: file.next_step(),
            });
        }
        // A total order: two replicas list the same rows the same way, even two files
        // for one member made offline on two devices.
        out.sort_by(|a, b| {
            b.stage
                .cmp(&a.stage)
                .then_with(|| a.name.cmp(&b.name))
                .then_with(|| a.member.cmp(&b.member))
                .then_with(|| a.doc.cmp(&b.doc))
        });
        Ok(out)
    }

    /// What is due in the pipeline of `branch` on `as_of`: steps the process sets a
    /// time for, and thought reports (one a quarter from activist on).
    pub fn applicant_reminders(
        &self,
        branch: BranchId,
        as_of: Date,
    ) -> Result<Vec<ApplicantReminder>> {
        let mut out = Vec::new();
        for row in self.applicants(branch)? {
            if let Some(next) = row.next.filter(|n| n.due && n.from <= as_of) {
                out.push(ApplicantReminder {
                    member: row.member,
                    name: row.name.clone(),
                    due: ApplicantDue::Step(next.stage),
                    since: next.from,
                });
            }
            if matches!(
                row.stage,
                Stage::Activist | Stage::Candidate | Stage::Probationary
            ) {
                let file = self.applicant(row.member)?;
                let started = file.date_of(Stage::Activist).unwrap_or(row.stage_on);
                let last = row.last_report.map_or(started, |r| r.max(started));
                let due = add_months(last, REPORT_EVERY_MONTHS);
                if due <= as_of {
                    out.push(ApplicantReminder {
                        member: row.member,
                        name: row.name,
                        due: ApplicantDue::ThoughtReport,
                        since: due,
                    });
                }
            }
        }
        // Stable, and ties keep the applicants' total order.
        out.sort_by(|a, b| {
            a.since
                .cmp(&b.since)
                .then_with(|| a.name.cmp(&b.name))
                .then_with(|| a.member.cmp(&b.member))
        });
        Ok(out)
    }

    // --- the problem library -------------------------------------------------------------

    /// Writes a new entry of the problem library or the case collection.
    pub fn write_library_entry(&mut self, branch: BranchId, new: NewLibraryEntry) -> Result<DocId> {
        self.profile(branch)?;
        let entry = LibraryEntry::new(branch, new)?;
        self.create(&entry)
    }

    /// Revises an entry's title, problem or solution; `None` leaves one as it is.
    pub fn revise_library_entry(
        &mut self,
        id: DocId,
        title: Option<&str>,
        problem: Option<&str>,
        solution: Option<&str>,
    ) -> Result<()> {
        self.update(id, |e: &mut LibraryEntry| {
            e.revise(title, problem, solution)
        })
    }

    /// Adds tags to an entry.
    pub fn tag_library_entry(&mut self, id: DocId, tags: &[String]) -> Result<()> {
        self.update(id, |e: &mut LibraryEntry| {
            e.tag(tags);
            Ok(())
        })
    }

    /// Shares an entry with an allied branch.
    pub fn share_library_entry(&mut self, id: DocId, partner: BranchId) -> Result<()> {
        self.update(id, |e: &mut LibraryEntry| e.share_with(partner))
    }

    /// Shares an entry with every branch below its author's, or stops.
    pub fn share_library_entry_down(&mut self, id: DocId, shared: bool) -> Result<()> {
        self.update(id, |e: &mut LibraryEntry| {
            e.share_down(shared);
            Ok(())
        })
    }

    /// Library entries on this device (the branch's own and those shared with it),
    /// newest first.
    pub fn library(&self, filter: &LibraryFilter) -> Result<Vec<LibraryRow>> {
        let mut stmt = self.conn().prepare_cached(
            "SELECT l.doc_id, l.branch_id, p.name, l.collection, l.title, l.written_on, l.tags,
                    l.shared_down
             FROM idx_library l LEFT JOIN idx_profiles p ON p.branch_id = l.branch_id
             ORDER BY l.written_on DESC, l.doc_id",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, Option<String>>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, String>(4)?,
                r.get::<_, String>(5)?,
                r.get::<_, String>(6)?,
                r.get::<_, bool>(7)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (id, branch, branch_name, collection, title, written_on, tags, shared_down) = row?;
            let collection: Collection = collection.parse()?;
            let tags: Vec<String> = tags
                .split('\n')
                .filter(|t| !t.is_empty())
                .map(str::to_owned)
                .collect();
            if filter.collection.is_some_and(|c| c != collection)
                || filter.tag.as_ref().is_some_and(|t| !tags.contains(t))
                || filter
                    .title_contains
                    .as_ref()
                    .is_some_and(|t| !title.contains(t.as_str()))
            {
                continue;
            }
            out.push(LibraryRow {
                id: id.parse()?,
                branch: branch.parse()?,
                branch_name,
                collection,
                title,
                written_on: written_on.parse()?,
                tags,
                shared_down,
            });
        }
        Ok(out)
    }

    /// One library entry, whole.
    pub fn library_entry(&self, id: DocId) -> Result<LibraryEntry> {
        self.get(id)
    }
}

/// The quarter (1 to 4) of `year` as a period.
pub fn quarter(year: i32, quarter: u32) -> Result<Period> {
    if !(1..=4).contains(&quarter) {
        return Err(Error::invalid("quarter (1-4)", quarter.to_string()));
    }
    let from = Date::ymd(year, (quarter - 1) * 3 + 1, 1)
        .ok_or_else(|| Error::invalid("year", year.to_string()))?;
    let to = add_months(from, 3).0.pred_opt().map(Date).unwrap_or(from);
    Period::new(from, to)
}

/// The calendar year as a period.
pub fn whole_year(year: i32) -> Result<Period> {
    let from = Date::ymd(year, 1, 1).ok_or_else(|| Error::invalid("year", year.to_string()))?;
    let to = Date::ymd(year, 12, 31).ok_or_else(|| Error::invalid("year", year.to_string()))?;
    Period::new(from, to)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_totals_share_a_place() {
        let row = |total| RankRow {
            rank: 0,
            member: MemberId::random(),
            name: String::new(),
            attendance_points: 0,
            report_points: 0,
            award_points: 0,
            total,
        };
        let mut rows = vec![row(9), row(7), row(7), row(3)];
        assign_ranks(&mut rows);
        let ranks: Vec<u32> = rows.iter().map(|r| r.rank).collect();
        assert_eq!(ranks, vec![1, 2, 2, 4]);
    }

    #[test]
    fn dues_are_owed_by_members_while_on_the_branch() {
        let day = |t: &str| t.parse::<Date>().unwrap();
        let active = MemberStatus::Active;
        assert_eq!(
            owing_months(2026, Category::Full, None, active, None),
            1..=12
        );
        assert!(owing_months(2026, Category::Applicant, None, active, None).is_empty());
        assert_eq!(
            owing_months(
                2026,
                Category::Probationary,
                Some(day("2026-04-10")),
                active,
                None
            ),
            4..=12
        );
        assert!(
            owing_months(2026, Category::Full, Some(day("2027-01-01")), active, None).is_empty()
        );
        let gone = MemberStatus::TransferredOut;
        assert_eq!(
            owing_months(2026, Category::Full, None, gone, Some(day("2026-06-15"))),
            1..=6
        );
        assert!(owing_months(2026, Category::Full, None, gone, Some(day("2025-06-15"))).is_empty());
        assert_eq!(elapsed_months(2026, day("2026-05-10")), 4);
        assert_eq!(elapsed_months(2025, day("2026-05-10")), 12);
        assert_eq!(elapsed_months(2027, day("2026-05-10")), 0);
        assert_eq!(quarter(2026, 2).unwrap().to, day("2026-06-30"));
        assert_eq!(quarter(2026, 5).unwrap_err().code(), "input.invalid");
    }
}
