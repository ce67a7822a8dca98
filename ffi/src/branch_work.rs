//! The branch work for the apps: the dues ledger, points and rankings, the
//! applicant pipeline, the problem library and case collection, the higher
//! committee's roll-up, and the clock correction a server made.
//!
//! As everywhere in the library: ids are their hyphenated text, days
//! `YYYY-MM-DD`, amounts whole fen (0.01 yuan). Every call runs client-core's own
//! operation, so its validation and error codes are the library's.

use branchline_core::model;
use branchline_core::rollup;
use branchline_core::store::branch_work as work;
use branchline_core::{BranchId, DocId, EntryId, MemberId};

use crate::client::BranchlineClient;
use crate::error::{BranchlineError, Result};
use crate::records::{
    self, Collection, Indicator, KindCompliance, PetitionReport, SpendingCategory, Stage,
    TermReminder, parse,
};

fn months(first: u32, last: u32) -> Result<std::ops::RangeInclusive<u32>> {
    if !(1..=12).contains(&first) || !(first..=12).contains(&last) {
        return Err(BranchlineError::invalid(
            "months (1-12)",
            format!("{first}-{last}"),
        ));
    }
    Ok(first..=last)
}

/// The most a member's monthly dues may be, in fen: client-core's cap on a
/// payment (ten million yuan). client-core multiplies and sums monthly amounts
/// unchecked, so an app's typo of `i64::MAX` would overflow there (a panic holding
/// the store's lock in a debug build, nonsense totals in a release one).
const MAX_MONTHLY_FEN: i64 = 1_000_000_000;

/// The most points one award or point rule may give or take: far above any real
/// item, far below what a year of such awards could overflow when summed.
pub(crate) const MAX_POINTS: i64 = 1_000_000;

fn monthly_fen(fen: i64) -> Result<i64> {
    if (0..=MAX_MONTHLY_FEN).contains(&fen) {
        Ok(fen)
    } else {
        Err(BranchlineError::invalid("monthly amount in fen", fen))
    }
}

/// `points` if its size is within [`MAX_POINTS`] (zero is client-core's to refuse).
pub(crate) fn check_points(points: i64) -> Result<i64> {
    if (-MAX_POINTS..=MAX_POINTS).contains(&points) {
        Ok(points)
    } else {
        Err(BranchlineError::invalid("points", points))
    }
}

/// A dues payment to record.
#[derive(Clone, Debug, PartialEq, Eq, uniffi::Record)]
pub struct DuesPayment {
    /// Who paid.
    pub member_id: String,
    /// The year paid for.
    pub year: i64,
    /// First month paid for (1-12).
    pub first_month: u32,
    /// Last month paid for.
    pub last_month: u32,
    /// Amount in fen; `None` for the member's monthly amount times the months.
    pub amount_fen: Option<i64>,
    /// Day paid.
    pub paid_on: String,
}

/// One payment of the public dues ledger.
#[derive(Clone, Debug, PartialEq, Eq, uniffi::Record)]
pub struct PaymentRow {
    /// The entry, to void it by.
    pub entry_id: String,
    /// Who paid.
    pub member_id: String,
    /// Their name.
    pub name: String,
    /// First month paid for (1-12).
    pub first_month: u32,
    /// Last month paid for.
    pub last_month: u32,
    /// Amount in fen.
    pub amount_fen: i64,
    /// Day paid.
    pub paid_on: String,
    /// Day voided, if it was.
    pub voided_on: Option<String>,
    /// Why.
    pub void_reason: Option<String>,
}

/// One spending of the dues.
#[derive(Clone, Debug, PartialEq, Eq, uniffi::Record)]
pub struct SpendingRow {
    /// The entry.
    pub entry_id: String,
    /// Amount in fen.
    pub amount_fen: i64,
    /// What kind of branch work.
    pub category: SpendingCategory,
    /// What exactly.
    pub purpose: String,
    /// Who approved it.
    pub approved_by: String,
    /// Day spent.
    pub spent_on: String,
}

/// The public dues ledger of a branch and year.
#[derive(Clone, Debug, PartialEq, Eq, uniffi::Record)]
pub struct DuesLedger {
    /// The year.
    pub year: i64,
    /// What a member pays a month unless set otherwise, in fen.
    pub monthly_default_fen: i64,
    /// Payments, by day.
    pub payments: Vec<PaymentRow>,
    /// Spending, by day.
    pub spending: Vec<SpendingRow>,
    /// Collected (voided payments left out), in fen.
    pub collected_fen: i64,
    /// Spent, in fen.
    pub spent_fen: i64,
    /// Collected less spent, in fen.
    pub balance_fen: i64,
}

/// One member's dues for a year.
#[derive(Clone, Debug, PartialEq, Eq, uniffi::Record)]
pub struct MemberDues {
    /// The member.
    pub member_id: String,
    /// Their name.
    pub name: String,
    /// What they pay a month, in fen.
    pub monthly_fen: i64,
    /// Months they owe dues for this year.
    pub owing_months: Vec<u32>,
    /// Months paid for.
    pub paid_months: Vec<u32>,
    /// Months past and unpaid.
    pub overdue_months: Vec<u32>,
    /// What the overdue months come to, in fen.
    pub owed_fen: i64,
    /// Paid this year, in fen.
    pub paid_fen: i64,
}

impl From<work::MemberDues> for MemberDues {
    fn from(m: work::MemberDues) -> Self {
        MemberDues {
            member_id: m.member.to_string(),
            name: m.name,
            monthly_fen: m.monthly_fen,
            owing_months: m.owing_months,
            paid_months: m.paid_months,
            overdue_months: m.overdue_months,
            owed_fen: m.owed_fen,
            paid_fen: m.paid_fen,
        }
    }
}

/// Dues collection as of a day.
#[derive(Clone, Debug, PartialEq, uniffi::Record)]
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

impl From<work::DuesCollection> for DuesCollection {
    fn from(d: work::DuesCollection) -> Self {
        DuesCollection {
            due_fen: d.due_fen,
            collected_fen: d.collected_fen,
            rate: d.rate,
            overdue_members: d.overdue_members,
        }
    }
}

/// One line of a points ranking.
#[derive(Clone, Debug, PartialEq, Eq, uniffi::Record)]
pub struct RankRow {
    /// Place; equal totals share it (1, 2, 2, 4).
    pub rank: u32,
    /// The person.
    pub member_id: String,
    /// Their name.
    pub name: String,
    /// Points from attending.
    pub attendance_points: i64,
    /// Points from thought reports on time.
    pub report_points: i64,
    /// Points from awards.
    pub award_points: i64,
    /// The sum.
    pub total: i64,
}

/// An award.
#[derive(Clone, Debug, PartialEq, Eq, uniffi::Record)]
pub struct AwardRow {
    /// The entry, to withdraw it by.
    pub entry_id: String,
    /// The points book or activity holding it.
    pub doc_id: String,
    /// Who received it.
    pub member_id: String,
    /// Points.
    pub points: i64,
    /// The point rule, if any.
    pub rule: Option<String>,
    /// Why.
    pub reason: Option<String>,
    /// The day it counts for.
    pub on: String,
}

/// A thought report received.
#[derive(Clone, Debug, PartialEq, Eq, uniffi::Record)]
pub struct ThoughtReportRow {
    /// The entry.
    pub entry_id: String,
    /// Who wrote it.
    pub member_id: String,
    /// Due day.
    pub due: String,
    /// Day received.
    pub received: String,
    /// By its due day.
    pub on_time: bool,
}

/// A span of calendar days, both included (`YYYY-MM-DD`), to pass as `from` and
/// `to`.
#[derive(Clone, Debug, PartialEq, Eq, uniffi::Record)]
pub struct Period {
    /// First day.
    pub from: String,
    /// Last day.
    pub to: String,
}

impl From<branchline_core::report::Period> for Period {
    fn from(p: branchline_core::report::Period) -> Self {
        Period {
            from: p.from.to_string(),
            to: p.to.to_string(),
        }
    }
}

/// The next step of an applicant.
#[derive(Clone, Debug, PartialEq, Eq, uniffi::Record)]
pub struct NextStep {
    /// The step.
    pub stage: Stage,
    /// The first day it may be taken.
    pub from: String,
    /// Whether it is due by then (a reminder) rather than only allowed.
    pub due: bool,
}

/// One person in the applicant pipeline.
#[derive(Clone, Debug, PartialEq, Eq, uniffi::Record)]
pub struct ApplicantRow {
    /// The person.
    pub member_id: String,
    /// Their name.
    pub name: String,
    /// The furthest step taken.
    pub stage: Stage,
    /// Its day.
    pub stage_on: String,
    /// Introducers named.
    pub introducer_ids: Vec<String>,
    /// Thought reports received.
    pub thought_reports: u32,
    /// The last one's day.
    pub last_report: Option<String>,
    /// The next step.
    pub next: Option<NextStep>,
}

/// A reminder about one applicant: a step (`stage` set) or a thought report.
#[derive(Clone, Debug, PartialEq, Eq, uniffi::Record)]
pub struct ApplicantReminder {
    /// The person.
    pub member_id: String,
    /// Their name.
    pub name: String,
    /// The step due; `None` for a thought report.
    pub stage: Option<Stage>,
    /// Since when.
    pub since: String,
}

/// A library entry as listed.
#[derive(Clone, Debug, PartialEq, Eq, uniffi::Record)]
pub struct LibraryRow {
    /// The entry's document.
    pub id: String,
    /// The branch that wrote it.
    pub branch_id: String,
    /// That branch's name, if known here.
    pub branch_name: Option<String>,
    /// Problem or case.
    pub collection: Collection,
    /// Title.
    pub title: String,
    /// The day written.
    pub written_on: String,
    /// Tags.
    pub tags: Vec<String>,
    /// Shared down the hierarchy.
    pub shared_down: bool,
}

/// A library entry, whole.
#[derive(Clone, Debug, PartialEq, Eq, uniffi::Record)]
pub struct LibraryEntry {
    /// The entry's document.
    pub id: String,
    /// The branch that wrote it.
    pub branch_id: String,
    /// Problem or case.
    pub collection: Collection,
    /// Title.
    pub title: String,
    /// The problem.
    pub problem: String,
    /// The solution.
    pub solution: String,
    /// Tags.
    pub tags: Vec<String>,
    /// The day written.
    pub written_on: String,
    /// Allied branches it is shared with.
    pub shared_with: Vec<String>,
    /// Shared down the hierarchy.
    pub shared_down: bool,
}

/// A new library entry.
#[derive(Clone, Debug, PartialEq, Eq, uniffi::Record)]
pub struct NewLibraryEntry {
    /// Problem or case.
    pub collection: Collection,
    /// Title.
    pub title: String,
    /// The problem.
    pub problem: String,
    /// The solution.
    pub solution: String,
    /// Tags.
    pub tags: Vec<String>,
    /// The day written.
    pub written_on: String,
}

/// How one indicator counts in a roll-up, as the parent configured it.
#[derive(Clone, Debug, PartialEq, Eq, uniffi::Record)]
pub struct IndicatorWeight {
    /// The indicator.
    pub indicator: Indicator,
    /// Its share of the score.
    pub weight: u32,
    /// The value (percent) that earns the whole weight.
    pub target_percent: u32,
}

/// One indicator of one branch in a roll-up.
#[derive(Clone, Debug, PartialEq, uniffi::Record)]
pub struct IndicatorValue {
    /// The indicator.
    pub indicator: Indicator,
    /// Its value, 0 to 1, when there is something to measure.
    pub value: Option<f64>,
    /// The part of its weight it earned.
    pub earned: f64,
}

/// One branch below the parent in a roll-up.
#[derive(Clone, Debug, PartialEq, uniffi::Record)]
pub struct BranchRollup {
    /// The branch.
    pub branch_id: String,
    /// Its name.
    pub name: String,
    /// Its level (a general branch, a branch, a group).
    pub level: records::Level,
    /// Levels below the parent (1 for its children).
    pub depth: u32,
    /// The branch above it.
    pub parent_id: Option<String>,
    /// Required meetings and how often they were held.
    pub compliance: Vec<KindCompliance>,
    /// Share of required periods met.
    pub meeting_compliance: Option<f64>,
    /// Dues collection.
    pub dues: DuesCollection,
    /// Petitions submitted in the period.
    pub petitions: PetitionReport,
    /// The committee's term, if set.
    pub term: Option<TermReminder>,
    /// Each indicator's value.
    pub indicators: Vec<IndicatorValue>,
    /// Score, 0 to 100.
    pub score: f64,
    /// Stars, 0 to 5.
    pub stars: u8,
}

/// Every branch below a parent, rated.
#[derive(Clone, Debug, PartialEq, uniffi::Record)]
pub struct Rollup {
    /// The branch whose committee reads it.
    pub parent_id: String,
    /// First day of the period, `YYYY-MM-DD`.
    pub from: String,
    /// Last day of the period.
    pub to: String,
    /// The day taken as today for overdue items and reminders.
    pub as_of: String,
    /// The indicators in force, with their weights and targets: what a score is
    /// made of.
    pub indicators: Vec<IndicatorWeight>,
    /// The score (percent) one to five stars need.
    pub star_thresholds: Vec<u32>,
    /// The branches, each after its parent.
    pub branches: Vec<BranchRollup>,
}

impl From<rollup::Rollup> for Rollup {
    fn from(r: rollup::Rollup) -> Self {
        Rollup {
            parent_id: r.parent.to_string(),
            from: r.period.from.to_string(),
            to: r.period.to.to_string(),
            as_of: r.as_of.to_string(),
            indicators: r
                .indicators
                .into_iter()
                .map(|w| IndicatorWeight {
                    indicator: w.indicator.into(),
                    weight: w.weight,
                    target_percent: w.target_percent,
                })
                .collect(),
            star_thresholds: r.star_thresholds.to_vec(),
            branches: r
                .branches
                .into_iter()
                .map(|b| BranchRollup {
                    branch_id: b.branch.to_string(),
                    name: b.name,
                    level: b.level.into(),
                    depth: b.depth,
                    parent_id: b.parent.map(|p| p.to_string()),
                    compliance: b.compliance.into_iter().map(Into::into).collect(),
                    meeting_compliance: b.meeting_compliance,
                    dues: b.dues.into(),
                    petitions: b.petitions.into(),
                    term: b.term.map(Into::into),
                    indicators: b
                        .indicators
                        .into_iter()
                        .map(|i| IndicatorValue {
                            indicator: i.indicator.into(),
                            value: i.value,
                            earned: i.earned,
                        })
                        .collect(),
                    score: b.score,
                    stars: b.stars,
                })
                .collect(),
        }
    }
}

fn next_step(n: model::NextStep) -> NextStep {
    NextStep {
        stage: n.stage.into(),
        from: n.from.to_string(),
        due: n.due,
    }
}

// --- dues -------------------------------------------------------------------------

#[uniffi::export]
impl BranchlineClient {
    /// Records a dues payment; without an amount, it is the member's monthly
    /// amount times the months. Returns the entry id.
    pub async fn record_dues_payment(
        &self,
        branch_id: String,
        payment: DuesPayment,
    ) -> Result<String> {
        let branch: BranchId = parse(&branch_id)?;
        let member: MemberId = parse(&payment.member_id)?;
        let months = months(payment.first_month, payment.last_month)?;
        let paid_on = parse(&payment.paid_on)?;
        let (year, amount) = (payment.year, payment.amount_fen);
        let entry = self
            .write(move |store| {
                store.record_dues_payment(branch, member, year, months, amount, paid_on)
            })
            .await?;
        Ok(entry.to_string())
    }

    /// Voids a payment recorded by mistake; it stays in the ledger, marked.
    pub async fn void_dues_payment(
        &self,
        entry_id: String,
        reason: String,
        on: String,
    ) -> Result<()> {
        let entry: EntryId = parse(&entry_id)?;
        let on = parse(&on)?;
        self.write(move |store| store.void_dues_payment(entry, &reason, on))
            .await
    }

    /// Sets the branch's monthly dues per member, in fen.
    pub async fn set_monthly_dues(&self, branch_id: String, fen: i64) -> Result<()> {
        let branch: BranchId = parse(&branch_id)?;
        let fen = monthly_fen(fen)?;
        self.write(move |store| {
            store.update_profile(branch, |p| {
                p.monthly_dues_fen = fen;
                Ok(())
            })
        })
        .await
    }

    /// Sets what one member pays a month in `year`, in fen; `None` goes back to the
    /// branch's amount.
    pub async fn set_member_dues(
        &self,
        branch_id: String,
        member_id: String,
        year: i64,
        fen: Option<i64>,
    ) -> Result<()> {
        let branch: BranchId = parse(&branch_id)?;
        let member: MemberId = parse(&member_id)?;
        let fen = fen.map(monthly_fen).transpose()?;
        self.write(move |store| store.set_member_dues(branch, member, year, fen))
            .await
    }

    /// Records money spent from the dues on branch work; returns the entry id.
    pub async fn record_dues_spending(
        &self,
        branch_id: String,
        amount_fen: i64,
        category: SpendingCategory,
        purpose: String,
        approved_by: String,
        spent_on: String,
    ) -> Result<String> {
        let branch: BranchId = parse(&branch_id)?;
        let spent_on = parse(&spent_on)?;
        let entry = self
            .write(move |store| {
                store.record_dues_spending(
                    branch,
                    amount_fen,
                    category.into(),
                    &purpose,
                    &approved_by,
                    spent_on,
                )
            })
            .await?;
        Ok(entry.to_string())
    }

    /// The public dues ledger of a branch for `year`.
    pub async fn dues_ledger(&self, branch_id: String, year: i64) -> Result<DuesLedger> {
        let branch: BranchId = parse(&branch_id)?;
        let v = self
            .read(move |store| store.dues_ledger_view(branch, year))
            .await?;
        Ok(DuesLedger {
            year: v.year,
            monthly_default_fen: v.monthly_default_fen,
            payments: v
                .payments
                .into_iter()
                .map(|p| PaymentRow {
                    entry_id: p.entry.to_string(),
                    member_id: p.member.to_string(),
                    name: p.name,
                    first_month: p.first_month,
                    last_month: p.last_month,
                    amount_fen: p.amount_fen,
                    paid_on: p.paid_on.to_string(),
                    voided_on: p.voided_on.map(|d| d.to_string()),
                    void_reason: p.void_reason,
                })
                .collect(),
            spending: v
                .spending
                .into_iter()
                .map(|s| SpendingRow {
                    entry_id: s.entry.to_string(),
                    amount_fen: s.amount_fen,
                    category: s.category.into(),
                    purpose: s.purpose,
                    approved_by: s.approved_by,
                    spent_on: s.spent_on.to_string(),
                })
                .collect(),
            collected_fen: v.collected_fen,
            spent_fen: v.spent_fen,
            balance_fen: v.balance_fen,
        })
    }

    /// Every member's dues of `year` as of `as_of`.
    pub async fn dues_overview(
        &self,
        branch_id: String,
        year: i64,
        as_of: String,
    ) -> Result<Vec<MemberDues>> {
        let branch: BranchId = parse(&branch_id)?;
        let as_of = parse(&as_of)?;
        let rows = self
            .read(move |store| store.dues_overview(branch, year, as_of))
            .await?;
        Ok(rows.into_iter().map(Into::into).collect())
    }

    /// The reminder list: members behind with their dues on `as_of`.
    pub async fn overdue_dues(&self, branch_id: String, as_of: String) -> Result<Vec<MemberDues>> {
        let branch: BranchId = parse(&branch_id)?;
        let as_of = parse(&as_of)?;
        let rows = self
            .read(move |store| store.overdue_dues(branch, as_of))
            .await?;
        Ok(rows.into_iter().map(Into::into).collect())
    }

    /// The dues collection of `year` as of `as_of`.
    pub async fn dues_collection(
        &self,
        branch_id: String,
        year: i64,
        as_of: String,
    ) -> Result<DuesCollection> {
        let branch: BranchId = parse(&branch_id)?;
        let as_of = parse(&as_of)?;
        Ok(self
            .read(move |store| store.dues_collection(branch, year, as_of))
            .await?
            .into())
    }
}

// --- points ------------------------------------------------------------------------

#[uniffi::export]
impl BranchlineClient {
    /// Adds or replaces a point item of the branch (a base item if `base`).
    pub async fn set_point_rule(
        &self,
        branch_id: String,
        code: String,
        description: String,
        points: i64,
        base: bool,
    ) -> Result<()> {
        let branch: BranchId = parse(&branch_id)?;
        let points = check_points(points)?;
        self.write(move |store| {
            store.update_profile(branch, |p| {
                p.set_point_rule(
                    &code,
                    model::PointRule {
                        description,
                        points,
                        base,
                    },
                )
            })
        })
        .await
    }

    /// Awards points: by a point rule (its points unless `points` says otherwise)
    /// or `points` for `reason`. Returns the entry id.
    pub async fn award(
        &self,
        branch_id: String,
        member_id: String,
        rule: Option<String>,
        points: Option<i64>,
        reason: Option<String>,
        on: String,
    ) -> Result<String> {
        let branch: BranchId = parse(&branch_id)?;
        let member: MemberId = parse(&member_id)?;
        let points = points.map(check_points).transpose()?;
        let on = parse(&on)?;
        let entry = self
            .write(move |store| {
                store.award(
                    branch,
                    member,
                    rule.as_deref(),
                    points,
                    reason.as_deref(),
                    on,
                )
            })
            .await?;
        Ok(entry.to_string())
    }

    /// Takes back an award recorded by mistake.
    pub async fn withdraw_award(&self, entry_id: String) -> Result<()> {
        let entry: EntryId = parse(&entry_id)?;
        self.write(move |store| store.withdraw_award(entry)).await
    }

    /// Records a thought report handed in on `received`, due on `due`.
    pub async fn record_thought_report(
        &self,
        branch_id: String,
        member_id: String,
        due: String,
        received: String,
    ) -> Result<String> {
        let branch: BranchId = parse(&branch_id)?;
        let member: MemberId = parse(&member_id)?;
        let (due, received) = (parse(&due)?, parse(&received)?);
        let entry = self
            .write(move |store| store.record_thought_report(branch, member, due, received))
            .await?;
        Ok(entry.to_string())
    }

    /// Awards to members of a branch counting in `from`..=`to`.
    pub async fn awards(
        &self,
        branch_id: String,
        from: String,
        to: String,
    ) -> Result<Vec<AwardRow>> {
        let branch: BranchId = parse(&branch_id)?;
        let period = records::period(&from, &to)?;
        let rows = self.read(move |store| store.awards(branch, period)).await?;
        Ok(rows
            .into_iter()
            .map(|a| AwardRow {
                entry_id: a.entry.to_string(),
                doc_id: a.doc.to_string(),
                member_id: a.member.to_string(),
                points: a.points,
                rule: a.rule,
                reason: a.reason,
                on: a.on.to_string(),
            })
            .collect())
    }

    /// Thought reports of a member, by day received.
    pub async fn thought_reports(&self, member_id: String) -> Result<Vec<ThoughtReportRow>> {
        let member: MemberId = parse(&member_id)?;
        let rows = self
            .read(move |store| store.thought_reports(member))
            .await?;
        Ok(rows
            .into_iter()
            .map(|r| ThoughtReportRow {
                entry_id: r.entry.to_string(),
                member_id: r.member.to_string(),
                due: r.due.to_string(),
                received: r.received.to_string(),
                on_time: r.on_time,
            })
            .collect())
    }

    /// The days of quarter `quarter` (1-4) of `year`, for the quarterly ranking.
    /// Plain: it reads nothing.
    pub fn quarter(&self, year: i32, quarter: u32) -> Result<Period> {
        Ok(work::quarter(year, quarter)?.into())
    }

    /// The days of `year`, for the yearly ranking and reports. Plain: it reads
    /// nothing.
    pub fn whole_year(&self, year: i32) -> Result<Period> {
        Ok(work::whole_year(year)?.into())
    }

    /// The points ranking of a branch over `from`..=`to` (a quarter, a year).
    pub async fn ranking(
        &self,
        branch_id: String,
        from: String,
        to: String,
    ) -> Result<Vec<RankRow>> {
        let branch: BranchId = parse(&branch_id)?;
        let period = records::period(&from, &to)?;
        let rows = self
            .read(move |store| store.ranking(branch, period))
            .await?;
        Ok(rows
            .into_iter()
            .map(|r| RankRow {
                rank: r.rank,
                member_id: r.member.to_string(),
                name: r.name,
                attendance_points: r.attendance_points,
                report_points: r.report_points,
                award_points: r.award_points,
                total: r.total,
            })
            .collect())
    }
}

// --- applicants --------------------------------------------------------------------

#[uniffi::export]
impl BranchlineClient {
    /// Opens the applicant file of a person on the roster who applied on `applied`.
    pub async fn add_applicant(
        &self,
        branch_id: String,
        member_id: String,
        applied: String,
    ) -> Result<String> {
        let branch: BranchId = parse(&branch_id)?;
        let member: MemberId = parse(&member_id)?;
        let applied = parse(&applied)?;
        let doc = self
            .write(move |store| store.add_applicant(branch, member, applied))
            .await?;
        Ok(doc.to_string())
    }

    /// Records a step of a person's way to membership (their roster category moves
    /// along).
    pub async fn record_applicant_stage(
        &self,
        member_id: String,
        stage: Stage,
        on: String,
        note: Option<String>,
    ) -> Result<()> {
        let member: MemberId = parse(&member_id)?;
        let on = parse(&on)?;
        self.write(move |store| {
            store.record_applicant_stage(member, stage.into(), on, note.as_deref())
        })
        .await
    }

    /// Names an introducer (an active full member of the branch).
    pub async fn add_introducer(&self, member_id: String, introducer_id: String) -> Result<()> {
        let member: MemberId = parse(&member_id)?;
        let introducer: MemberId = parse(&introducer_id)?;
        self.write(move |store| store.add_introducer(member, introducer))
            .await
    }

    /// Everyone in the pipeline of a branch, furthest along first.
    pub async fn applicants(&self, branch_id: String) -> Result<Vec<ApplicantRow>> {
        let branch: BranchId = parse(&branch_id)?;
        let rows = self.read(move |store| store.applicants(branch)).await?;
        Ok(rows
            .into_iter()
            .map(|a| ApplicantRow {
                member_id: a.member.to_string(),
                name: a.name,
                stage: a.stage.into(),
                stage_on: a.stage_on.to_string(),
                introducer_ids: a.introducers.iter().map(ToString::to_string).collect(),
                thought_reports: a.thought_reports,
                last_report: a.last_report.map(|d| d.to_string()),
                next: a.next.map(next_step),
            })
            .collect())
    }

    /// What is due in the pipeline on `as_of`.
    pub async fn applicant_reminders(
        &self,
        branch_id: String,
        as_of: String,
    ) -> Result<Vec<ApplicantReminder>> {
        let branch: BranchId = parse(&branch_id)?;
        let as_of = parse(&as_of)?;
        let rows = self
            .read(move |store| store.applicant_reminders(branch, as_of))
            .await?;
        Ok(rows
            .into_iter()
            .map(|r| ApplicantReminder {
                member_id: r.member.to_string(),
                name: r.name,
                stage: match r.due {
                    work::ApplicantDue::Step(stage) => Some(stage.into()),
                    work::ApplicantDue::ThoughtReport => None,
                },
                since: r.since.to_string(),
            })
            .collect())
    }
}

// --- the problem library -------------------------------------------------------------

#[uniffi::export]
impl BranchlineClient {
    /// Writes a new library entry; returns its id.
    pub async fn write_library_entry(
        &self,
        branch_id: String,
        entry: NewLibraryEntry,
    ) -> Result<String> {
        let branch: BranchId = parse(&branch_id)?;
        let new = model::NewLibraryEntry {
            collection: entry.collection.into(),
            title: entry.title,
            problem: entry.problem,
            solution: entry.solution,
            tags: entry.tags,
            written_on: parse(&entry.written_on)?,
        };
        let id = self
            .write(move |store| store.write_library_entry(branch, new))
            .await?;
        Ok(id.to_string())
    }

    /// Revises an entry; `None` leaves a text as it is.
    pub async fn revise_library_entry(
        &self,
        entry_id: String,
        title: Option<String>,
        problem: Option<String>,
        solution: Option<String>,
    ) -> Result<()> {
        let id: DocId = parse(&entry_id)?;
        self.write(move |store| {
            store.revise_library_entry(
                id,
                title.as_deref(),
                problem.as_deref(),
                solution.as_deref(),
            )
        })
        .await
    }

    /// Adds tags to an entry.
    pub async fn tag_library_entry(&self, entry_id: String, tags: Vec<String>) -> Result<()> {
        let id: DocId = parse(&entry_id)?;
        self.write(move |store| store.tag_library_entry(id, &tags))
            .await
    }

    /// Shares an entry with an allied branch (the server checks the alliance).
    pub async fn share_library_entry(&self, entry_id: String, partner_id: String) -> Result<()> {
        let id: DocId = parse(&entry_id)?;
        let partner: BranchId = parse(&partner_id)?;
        self.write(move |store| store.share_library_entry(id, partner))
            .await
    }

    /// Shares an entry with every branch below its author's, or stops.
    pub async fn share_library_entry_down(&self, entry_id: String, shared: bool) -> Result<()> {
        let id: DocId = parse(&entry_id)?;
        self.write(move |store| store.share_library_entry_down(id, shared))
            .await
    }

    /// Library entries on this device, newest first.
    pub async fn library(
        &self,
        collection: Option<Collection>,
        tag: Option<String>,
        title_contains: Option<String>,
    ) -> Result<Vec<LibraryRow>> {
        let filter = work::LibraryFilter {
            collection: collection.map(Into::into),
            tag,
            title_contains,
        };
        let rows = self.read(move |store| store.library(&filter)).await?;
        Ok(rows
            .into_iter()
            .map(|r| LibraryRow {
                id: r.id.to_string(),
                branch_id: r.branch.to_string(),
                branch_name: r.branch_name,
                collection: r.collection.into(),
                title: r.title,
                written_on: r.written_on.to_string(),
                tags: r.tags,
                shared_down: r.shared_down,
            })
            .collect())
    }

    /// One library entry, whole.
    pub async fn library_entry(&self, entry_id: String) -> Result<LibraryEntry> {
        let id: DocId = parse(&entry_id)?;
        let e = self.read(move |store| store.library_entry(id)).await?;
        Ok(LibraryEntry {
            id: e.meta.id.to_string(),
            branch_id: e.meta.branch.to_string(),
            collection: e.collection.into(),
            title: e.title.clone(),
            problem: e.problem.as_str().to_owned(),
            solution: e.solution.as_str().to_owned(),
            tags: e.tags(),
            written_on: e.written_on.to_string(),
            shared_with: e
                .shared_with
                .iter()
                .filter(|(_, on)| **on)
                .map(|(b, _)| b.clone())
                .collect(),
            shared_down: e.shared_down,
        })
    }
}

// --- the committee's roll-up and the clock -----------------------------------------------

#[uniffi::export]
impl BranchlineClient {
    /// Sets how an indicator counts when this branch rates the branches below it.
    pub async fn set_indicator(
        &self,
        branch_id: String,
        indicator: Indicator,
        weight: u32,
        target_percent: u32,
    ) -> Result<()> {
        let branch: BranchId = parse(&branch_id)?;
        self.write(move |store| {
            store.update_profile(branch, |p| {
                p.set_indicator(
                    indicator.into(),
                    model::IndicatorRule {
                        weight,
                        target_percent,
                    },
                )
            })
        })
        .await
    }

    /// Sets the score (percent) one to five stars need: five rising numbers.
    pub async fn set_stars(&self, branch_id: String, thresholds: Vec<u32>) -> Result<()> {
        let branch: BranchId = parse(&branch_id)?;
        let thresholds: [u32; 5] = thresholds.clone().try_into().map_err(|_| {
            BranchlineError::invalid("star thresholds (five)", format!("{thresholds:?}"))
        })?;
        self.write(move |store| store.update_profile(branch, |p| p.set_stars(thresholds)))
            .await
    }

    /// The roll-up of every branch below `parent_id` over `from`..=`to`, as of
    /// `as_of`, rated by the parent's indicators.
    pub async fn rollup(
        &self,
        parent_id: String,
        from: String,
        to: String,
        as_of: String,
    ) -> Result<Rollup> {
        let parent: BranchId = parse(&parent_id)?;
        let period = records::period(&from, &to)?;
        let as_of = parse(&as_of)?;
        Ok(self
            .read(move |store| store.rollup(parent, period, as_of))
            .await?
            .into())
    }

    /// How far (ms) this phone's clock is behind the server's (negative when
    /// ahead), if a server found it off by more than a minute: records are then
    /// stamped by the server's time, and the app should ask the person to set the
    /// date.
    pub async fn clock_offset_ms(&self) -> Result<Option<i64>> {
        self.read(|store| Ok(store.clock_offset())).await
    }

    /// Today (`YYYY-MM-DD`, the phone's time zone) by the corrected clock: what
    /// overdue flags and reminders should count from.
    pub async fn today(&self) -> Result<String> {
        self.read(|store| Ok(store.today().to_string())).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn months_out_of_range_are_the_callers_to_fix() {
        assert!(months(1, 3).is_ok());
        for (a, b) in [(0, 3), (4, 3), (1, 13)] {
            assert_eq!(months(a, b).unwrap_err().code(), "input.invalid");
        }
    }

    #[test]
    fn amounts_client_core_would_overflow_on_are_refused_here() {
        assert_eq!(monthly_fen(0).unwrap(), 0);
        assert_eq!(monthly_fen(MAX_MONTHLY_FEN).unwrap(), MAX_MONTHLY_FEN);
        assert_eq!(check_points(-MAX_POINTS).unwrap(), -MAX_POINTS);
        for fen in [-1, MAX_MONTHLY_FEN + 1, i64::MAX, i64::MIN] {
            assert_eq!(monthly_fen(fen).unwrap_err().code(), "input.invalid");
        }
        for points in [MAX_POINTS + 1, -MAX_POINTS - 1, i64::MAX, i64::MIN] {
            assert_eq!(check_points(points).unwrap_err().code(), "input.invalid");
        }
    }
}
