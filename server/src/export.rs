//! `branchline-server export`: a branch's roster, attendance and petition
//! ledger as CSV files and one XLSX workbook, the tables a secretary hands
//! to the higher committee (part of the `branchline-server` binary).
//!
//! What goes in each table:
//! - **Roster** (花名册): everyone on the branch's roster, active or not,
//!   ordered by name.
//! - **Attendance** (考勤): one row per activity × member of this branch, for
//!   the activities of the branch and those partner branches shared with it
//!   (joint activities of an alliance), as the branch's reports count them.
//!   A member gets a row when they were expected (a full or probationary
//!   member who had joined by the activity's day, was still on the branch
//!   that day and, for a group meeting, is in the group: the definition of
//!   `branchline_core::report`) or when they signed in or asked for leave
//!   anyway (an activist who came). `--from`/`--to` keep activities whose
//!   day falls in the range.
//! - **Petitions** (问题台账): the published ledger: owner, deadline, dates,
//!   rating, and whether it is overdue today. The submitter's contact is
//!   private and never exported.
//!
//! - **Dues** (党费): every payment of the branch's ledgers, voided ones marked,
//!   and every spending, amounts in yuan.
//! - **Points** (积分): every award (of the points books and at activities) and
//!   every thought report received, on time or late.
//! - **Applicants** (入党流程): each person's steps with their days, and the
//!   introducers.
//! - **Library** (问题库 / 案例集): the branch's own entries.
//!
//! Submission and resolution days are UTC days, as in the reports.
//! Everything is written into a staging directory inside the output
//! directory and renamed into place only when every file is complete, so a
//! failure leaves no half-written file behind.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use branchline_core::BranchId;
use branchline_core::model::{
    Activity, Applicant, Award, BranchProfile, Category, Collection, Date, DocKind, DuesLedger,
    Gender, LibraryEntry, Member, MemberStatus, Payment, Petition, PetitionStatus, PointsBook,
    Roster, SignInMode, Spending, SpendingCategory, Stage, ThoughtReport,
};
use branchline_server::Admin;
use branchline_server::admin::AllianceInfo;
use rust_xlsxwriter::{ExcelDateTime, Format, Workbook};

use crate::{Failure, Lang};

/// The CSV file names and the workbook's.
pub const ROSTER_CSV: &str = "roster.csv";
/// Attendance, one row per activity and member.
pub const ATTENDANCE_CSV: &str = "attendance.csv";
/// The petition ledger.
pub const PETITIONS_CSV: &str = "petitions.csv";
/// Dues payments.
pub const DUES_CSV: &str = "dues.csv";
/// Dues spending.
pub const SPENDING_CSV: &str = "dues_spending.csv";
/// Points awards.
pub const AWARDS_CSV: &str = "points.csv";
/// Thought reports received.
pub const THOUGHT_REPORTS_CSV: &str = "thought_reports.csv";
/// The applicant pipeline.
pub const APPLICANTS_CSV: &str = "applicants.csv";
/// The problem library and case collection.
pub const LIBRARY_CSV: &str = "library.csv";
/// The workbook with every table.
pub const WORKBOOK: &str = "branchline-export.xlsx";

/// Which files to write.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ExportFormat {
    /// The three CSV files.
    Csv,
    /// The XLSX workbook.
    Xlsx,
    /// Both.
    All,
}

/// What to export, and how.
#[derive(Debug, Clone)]
pub struct ExportRequest {
    /// The branch.
    pub branch: BranchId,
    /// The directory to write into (created if missing).
    pub out: PathBuf,
    /// Which files.
    pub format: ExportFormat,
    /// Start the CSV files with a UTF-8 byte order mark, for Excel.
    pub bom: bool,
    /// Only activities on or after this day.
    pub from: Option<Date>,
    /// Only activities on or before this day.
    pub to: Option<Date>,
    /// Today, for overdue petitions.
    pub today: Date,
    /// The language of headers and values.
    pub lang: Lang,
}

/// What an export wrote.
#[derive(Debug, Clone)]
pub struct ExportSummary {
    /// The branch's name.
    pub branch_name: String,
    /// The files written, in the output directory.
    pub files: Vec<PathBuf>,
    /// Members on the roster.
    pub members: usize,
    /// Activities exported.
    pub activities: usize,
    /// Of those, shared by partner branches.
    pub shared_activities: usize,
    /// Attendance rows.
    pub attendance_rows: usize,
    /// Petitions.
    pub petitions: usize,
    /// Dues payments.
    pub payments: usize,
    /// Applicants.
    pub applicants: usize,
    /// Documents left out because they could not be read with this build.
    pub skipped: usize,
    /// The alliances the branch belongs to.
    pub alliances: Vec<AllianceInfo>,
}

/// One cell: text, a calendar day, or a number.
#[derive(Debug, Clone, PartialEq)]
enum Cell {
    Text(String),
    Day(Date),
    Number(f64),
    Empty,
}

impl Cell {
    fn text(value: impl Into<String>) -> Cell {
        Cell::Text(value.into())
    }

    fn opt_text(value: Option<&str>) -> Cell {
        value.map_or(Cell::Empty, Cell::text)
    }

    fn opt_day(value: Option<Date>) -> Cell {
        value.map_or(Cell::Empty, Cell::Day)
    }

    /// The cell as CSV text: days as `YYYY-MM-DD`.
    fn csv(&self) -> String {
        match self {
            Cell::Text(text) => text.clone(),
            Cell::Day(day) => day.to_string(),
            Cell::Number(n) => n.to_string(),
            Cell::Empty => String::new(),
        }
    }
}

/// One table: a CSV file and a worksheet.
#[derive(Debug, Clone)]
struct Table {
    file: &'static str,
    sheet: &'static str,
    /// Headers with column widths (in characters).
    columns: Vec<(&'static str, f64)>,
    rows: Vec<Vec<Cell>>,
}

/// Words for people, in both languages.
fn t(lang: Lang, en: &'static str, zh: &'static str) -> &'static str {
    match lang {
        Lang::En => en,
        Lang::Zh => zh,
    }
}

fn gender(lang: Lang, g: Gender) -> &'static str {
    match g {
        Gender::Male => t(lang, "male", "男"),
        Gender::Female => t(lang, "female", "女"),
        Gender::Unknown => t(lang, "unknown", "未登记"),
    }
}

fn category(lang: Lang, c: Category) -> &'static str {
    match c {
        Category::Full => t(lang, "full member", "正式党员"),
        Category::Probationary => t(lang, "probationary member", "预备党员"),
        Category::Activist => t(lang, "activist", "积极分子"),
        Category::Applicant => t(lang, "applicant", "入党申请人"),
    }
}

fn member_status(lang: Lang, s: MemberStatus) -> &'static str {
    match s {
        MemberStatus::Active => t(lang, "active", "正常"),
        MemberStatus::TransferredOut => t(lang, "transferred out", "已转出"),
        MemberStatus::Deceased => t(lang, "deceased", "已故"),
    }
}

fn petition_status(lang: Lang, s: PetitionStatus) -> &'static str {
    match s {
        PetitionStatus::Open => t(lang, "open", "待处理"),
        PetitionStatus::Assigned => t(lang, "assigned", "办理中"),
        PetitionStatus::Resolved => t(lang, "resolved", "已办结"),
    }
}

fn yes_no(lang: Lang, yes: bool) -> &'static str {
    if yes {
        t(lang, "yes", "是")
    } else {
        t(lang, "no", "否")
    }
}

/// The report's rule: whether `member` was expected at an activity on `day`
/// for `group` (see `branchline_core::report`).
fn expected_at(member: &Member, day: Date, group: Option<&str>) -> bool {
    member.category.is_member()
        && member.joined.is_none_or(|j| j <= day)
        && (member.status == MemberStatus::Active || member.status_since.is_some_and(|s| s > day))
        && group.is_none_or(|g| member.group.as_deref() == Some(g))
}

/// The branch's records as the server stores them.
struct BranchRecords {
    profile: BranchProfile,
    roster: Roster,
    activities: Vec<Activity>,
    petitions: Vec<Petition>,
    ledgers: Vec<DuesLedger>,
    books: Vec<PointsBook>,
    applicants: Vec<Applicant>,
    library: Vec<LibraryEntry>,
    skipped: usize,
}

fn load(admin: &Admin, branch: BranchId) -> anyhow::Result<BranchRecords> {
    let profile = admin.profile(branch)?;
    let roster = admin.roster(branch)?;
    let mut activities = Vec::new();
    let mut petitions = Vec::new();
    let (mut ledgers, mut books, mut applicants, mut library) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut skipped = 0;
    for (doc, kind) in admin.branch_documents(branch)? {
        // Partners' documents reach this list only as shared activities.
        let own = |b: BranchId| b == branch;
        let loaded = if kind == DocKind::DuesLedger.as_str() {
            admin
                .hydrate::<DuesLedger>(doc)
                .map(|l| ledgers.extend(own(l.meta.branch).then_some(l)))
        } else if kind == DocKind::PointsBook.as_str() {
            admin
                .hydrate::<PointsBook>(doc)
                .map(|b| books.extend(own(b.meta.branch).then_some(b)))
        } else if kind == DocKind::Applicant.as_str() {
            admin
                .hydrate::<Applicant>(doc)
                .map(|a| applicants.extend(own(a.meta.branch).then_some(a)))
        } else if kind == DocKind::LibraryEntry.as_str() {
            admin
                .hydrate::<LibraryEntry>(doc)
                .map(|e| library.extend(own(e.meta.branch).then_some(e)))
        } else if kind == DocKind::Activity.as_str() {
            admin.hydrate::<Activity>(doc).map(|a| activities.push(a))
        } else if kind == DocKind::Petition.as_str() {
            admin.hydrate::<Petition>(doc).map(|p| {
                // Only the branch's own petitions are its ledger.
                if p.meta.branch == branch {
                    petitions.push(p);
                }
            })
        } else {
            Ok(())
        };
        if let Err(e) = loaded {
            tracing::warn!(%doc, error = %e, "document left out of the export");
            skipped += 1;
        }
    }
    activities.sort_by_key(|a| (a.starts_at, a.meta.id));
    petitions.sort_by_key(|p| (p.submitted_at, p.meta.id));
    ledgers.sort_by_key(|l| (l.year, l.meta.id));
    books.sort_by_key(|b| (b.year, b.meta.id));
    library.sort_by_key(|e| (e.written_on, e.meta.id));
    Ok(BranchRecords {
        profile,
        roster,
        activities,
        petitions,
        ledgers,
        books,
        applicants,
        library,
        skipped,
    })
}

/// Members ordered by name, then id.
fn members_by_name(roster: &Roster) -> Vec<&Member> {
    let mut members: Vec<&Member> = roster.members.values().collect();
    members.sort_by(|a, b| (&a.name, a.id).cmp(&(&b.name, b.id)));
    members
}

fn roster_table(lang: Lang, roster: &Roster) -> Table {
    let rows = members_by_name(roster)
        .into_iter()
        .map(|m| {
            vec![
                Cell::text(m.id.to_string()),
                Cell::text(&m.name),
                Cell::text(gender(lang, m.gender)),
                Cell::opt_day(m.birth_date),
                Cell::opt_day(m.joined),
                Cell::text(category(lang, m.category)),
                Cell::opt_text(m.group.as_deref()),
                Cell::opt_text(m.post.as_deref()),
                Cell::opt_text(m.phone.as_deref()),
                Cell::text(member_status(lang, m.status)),
                Cell::opt_day(m.status_since),
            ]
        })
        .collect();
    Table {
        file: ROSTER_CSV,
        sheet: t(lang, "Roster", "花名册"),
        columns: vec![
            (t(lang, "Member ID", "编号"), 38.0),
            (t(lang, "Name", "姓名"), 14.0),
            (t(lang, "Gender", "性别"), 8.0),
            (t(lang, "Birth date", "出生日期"), 12.0),
            (t(lang, "Joined", "入党日期"), 12.0),
            (t(lang, "Category", "类别"), 20.0),
            (t(lang, "Group", "党小组"), 14.0),
            (t(lang, "Post", "职务"), 12.0),
            (t(lang, "Phone", "联系电话"), 14.0),
            (t(lang, "Status", "状态"), 16.0),
            (t(lang, "Status since", "状态变更日期"), 14.0),
        ],
        rows,
    }
}

fn attendance_table(
    lang: Lang,
    branch: BranchId,
    records: &BranchRecords,
    activities: &[&Activity],
    branch_names: &HashMap<BranchId, String>,
    kind_names: &HashMap<(BranchId, String), String>,
) -> Table {
    let members = members_by_name(&records.roster);
    let mut rows = Vec::new();
    for activity in activities {
        let day = activity.starts_at.date();
        let host = activity.meta.branch;
        let host_name = branch_names
            .get(&host)
            .cloned()
            .unwrap_or_else(|| host.to_string());
        let kind = kind_names
            .get(&(host, activity.kind.clone()))
            .cloned()
            .unwrap_or_else(|| activity.kind.clone());
        // A partner's group meeting names the partner's groups, not ours.
        let group = if host == branch {
            activity.group.as_deref()
        } else {
            None
        };
        for member in &members {
            let key = member.id.to_string();
            let sign_in = activity.sign_ins.get(&key);
            let leave = activity.leaves.get(&key);
            let expected = expected_at(member, day, group);
            if !expected && sign_in.is_none() && leave.is_none() {
                continue;
            }
            let (state, mode) = match (sign_in, leave) {
                (Some(s), _) => (
                    t(lang, "signed in", "已签到"),
                    match s.mode {
                        SignInMode::OnSite => t(lang, "on site", "现场"),
                        SignInMode::Remote => t(lang, "remote", "线上"),
                    },
                ),
                (None, Some(_)) => (t(lang, "on leave", "请假"), ""),
                (None, None) => (t(lang, "absent", "缺席"), ""),
            };
            rows.push(vec![
                Cell::Day(day),
                Cell::text(activity.starts_at.0.format("%H:%M").to_string()),
                Cell::text(&kind),
                Cell::text(&activity.title),
                Cell::text(&host_name),
                Cell::text(&key),
                Cell::text(&member.name),
                Cell::opt_text(member.group.as_deref()),
                Cell::text(state),
                if mode.is_empty() {
                    Cell::Empty
                } else {
                    Cell::text(mode)
                },
                Cell::opt_text(
                    leave
                        .map(|l| l.reason.as_str())
                        .filter(|_| sign_in.is_none()),
                ),
                Cell::text(yes_no(lang, expected)),
            ]);
        }
    }
    Table {
        file: ATTENDANCE_CSV,
        sheet: t(lang, "Attendance", "考勤"),
        columns: vec![
            (t(lang, "Date", "活动日期"), 12.0),
            (t(lang, "Start", "开始时间"), 8.0),
            (t(lang, "Kind", "类型"), 16.0),
            (t(lang, "Title", "标题"), 30.0),
            (t(lang, "Host branch", "主办组织"), 24.0),
            (t(lang, "Member ID", "编号"), 38.0),
            (t(lang, "Member", "姓名"), 14.0),
            (t(lang, "Group", "党小组"), 14.0),
            (t(lang, "Attendance", "出勤"), 12.0),
            (t(lang, "Sign-in mode", "签到方式"), 12.0),
            (t(lang, "Leave reason", "请假事由"), 24.0),
            (t(lang, "Expected", "应到"), 10.0),
        ],
        rows,
    }
}

fn petition_table(lang: Lang, records: &BranchRecords, today: Date) -> Table {
    let owner_name = |p: &Petition| {
        p.owner.map(|owner| {
            records
                .roster
                .member(owner)
                .map_or_else(|_| owner.to_string(), |m| m.name.clone())
        })
    };
    let rows = records
        .petitions
        .iter()
        .map(|p| {
            vec![
                Cell::text(p.meta.id.to_string()),
                Cell::text(&p.category),
                Cell::text(&p.title),
                Cell::opt_text(p.location.as_deref()),
                Cell::text(petition_status(lang, p.status)),
                Cell::opt_text(owner_name(p).as_deref()),
                Cell::opt_day(p.deadline),
                Cell::Day(p.submitted_at.utc_date()),
                Cell::opt_day(p.resolution.as_ref().map(|r| r.at.utc_date())),
                p.rating
                    .as_ref()
                    .map_or(Cell::Empty, |r| Cell::Number(f64::from(r.score))),
                Cell::text(yes_no(lang, p.is_overdue(today))),
                Cell::Number(p.progress.len() as f64),
            ]
        })
        .collect();
    Table {
        file: PETITIONS_CSV,
        sheet: t(lang, "Petitions", "问题台账"),
        columns: vec![
            (t(lang, "Petition ID", "编号"), 38.0),
            (t(lang, "Category", "类别"), 14.0),
            (t(lang, "Title", "标题"), 30.0),
            (t(lang, "Location", "地点"), 20.0),
            (t(lang, "Status", "状态"), 12.0),
            (t(lang, "Owner", "责任人"), 14.0),
            (t(lang, "Deadline", "时限"), 12.0),
            (t(lang, "Submitted", "提交日期"), 12.0),
            (t(lang, "Resolved", "办结日期"), 12.0),
            (t(lang, "Rating", "满意度"), 10.0),
            (t(lang, "Overdue", "超期"), 10.0),
            (t(lang, "Progress notes", "进展记录数"), 14.0),
        ],
        rows,
    }
}

/// Fen as yuan, for a spreadsheet.
fn yuan(fen: i64) -> Cell {
    Cell::Number(fen as f64 / 100.0)
}

/// A member's name from the roster, else the id.
fn name_of(roster: &Roster, member: branchline_core::MemberId) -> String {
    roster
        .member(member)
        .map_or_else(|_| member.to_string(), |m| m.name.clone())
}

fn dues_tables(lang: Lang, records: &BranchRecords) -> [Table; 2] {
    let mut payments: Vec<(i64, &String, &Payment)> = records
        .ledgers
        .iter()
        .flat_map(|l| l.payments.iter().map(move |(id, p)| (l.year, id, p)))
        .collect();
    payments.sort_by(|a, b| (a.0, a.2.paid_on, a.1).cmp(&(b.0, b.2.paid_on, b.1)));
    let payment_rows = payments
        .into_iter()
        .map(|(year, id, p)| {
            vec![
                Cell::text(id),
                Cell::Number(year as f64),
                Cell::text(name_of(&records.roster, p.member)),
                Cell::Number(f64::from(p.first_month)),
                Cell::Number(f64::from(p.last_month)),
                yuan(p.amount_fen),
                Cell::Day(p.paid_on),
                Cell::opt_day(p.void.as_ref().map(|v| v.on)),
                Cell::opt_text(p.void.as_ref().map(|v| v.reason.as_str())),
            ]
        })
        .collect();
    let mut spending: Vec<(&String, &Spending)> =
        records.ledgers.iter().flat_map(|l| &l.spending).collect();
    spending.sort_by(|a, b| (a.1.spent_on, a.0).cmp(&(b.1.spent_on, b.0)));
    let spending_rows = spending
        .into_iter()
        .map(|(id, s)| {
            vec![
                Cell::text(id),
                Cell::Day(s.spent_on),
                yuan(s.amount_fen),
                Cell::text(spending_category(lang, s.category)),
                Cell::text(&s.purpose),
                Cell::text(&s.approved_by),
            ]
        })
        .collect();
    [
        Table {
            file: DUES_CSV,
            sheet: t(lang, "Dues", "党费收缴"),
            columns: vec![
                (t(lang, "Entry", "编号"), 38.0),
                (t(lang, "Year", "年度"), 8.0),
                (t(lang, "Member", "党员"), 14.0),
                (t(lang, "From month", "起始月"), 10.0),
                (t(lang, "To month", "截止月"), 10.0),
                (t(lang, "Amount (yuan)", "金额（元）"), 12.0),
                (t(lang, "Paid on", "缴纳日期"), 12.0),
                (t(lang, "Voided on", "作废日期"), 12.0),
                (t(lang, "Void reason", "作废原因"), 20.0),
            ],
            rows: payment_rows,
        },
        Table {
            file: SPENDING_CSV,
            sheet: t(lang, "Dues spending", "党费使用"),
            columns: vec![
                (t(lang, "Entry", "编号"), 38.0),
                (t(lang, "Date", "日期"), 12.0),
                (t(lang, "Amount (yuan)", "金额（元）"), 12.0),
                (t(lang, "Category", "类别"), 16.0),
                (t(lang, "Purpose", "用途"), 30.0),
                (t(lang, "Approved by", "审批"), 14.0),
            ],
            rows: spending_rows,
        },
    ]
}

fn spending_category(lang: Lang, c: SpendingCategory) -> &'static str {
    match c {
        SpendingCategory::Education => t(lang, "education", "党员教育培训"),
        SpendingCategory::StudyMaterials => t(lang, "study materials", "学习资料"),
        SpendingCategory::Commendation => t(lang, "commendation", "表彰先进"),
        SpendingCategory::HardshipSupport => t(lang, "hardship support", "慰问困难党员"),
        SpendingCategory::BranchActivity => t(lang, "branch activity", "组织生活"),
    }
}

fn points_tables(lang: Lang, records: &BranchRecords) -> [Table; 2] {
    let mut awards: Vec<(&String, &Award, Option<&str>)> = records
        .books
        .iter()
        .flat_map(|b| b.awards.iter().map(|(id, a)| (id, a, None)))
        .chain(records.activities.iter().flat_map(|act| {
            act.awards
                .iter()
                .map(move |(id, a)| (id, a, Some(act.title.as_str())))
        }))
        .collect();
    awards.sort_by(|a, b| (a.1.on, a.0).cmp(&(b.1.on, b.0)));
    let rule_name = |code: &str| {
        records
            .profile
            .point_rules
            .get(code)
            .map_or_else(|| code.to_owned(), |r| r.description.clone())
    };
    let award_rows = awards
        .into_iter()
        .map(|(id, a, activity)| {
            vec![
                Cell::text(id),
                Cell::Day(a.on),
                Cell::text(name_of(&records.roster, a.member)),
                Cell::Number(a.points as f64),
                Cell::opt_text(a.rule.as_deref().map(rule_name).as_deref()),
                Cell::opt_text(a.reason.as_deref()),
                Cell::opt_text(activity),
            ]
        })
        .collect();
    let mut reports: Vec<(&String, &ThoughtReport)> = records
        .books
        .iter()
        .flat_map(|b| &b.thought_reports)
        .collect();
    reports.sort_by(|a, b| (a.1.received, a.0).cmp(&(b.1.received, b.0)));
    let report_rows = reports
        .into_iter()
        .map(|(id, r)| {
            vec![
                Cell::text(id),
                Cell::text(name_of(&records.roster, r.member)),
                Cell::Day(r.due),
                Cell::Day(r.received),
                Cell::text(yes_no(lang, r.on_time())),
            ]
        })
        .collect();
    [
        Table {
            file: AWARDS_CSV,
            sheet: t(lang, "Points", "积分"),
            columns: vec![
                (t(lang, "Entry", "编号"), 38.0),
                (t(lang, "Date", "日期"), 12.0),
                (t(lang, "Member", "党员"), 14.0),
                (t(lang, "Points", "分值"), 8.0),
                (t(lang, "Item", "积分项目"), 20.0),
                (t(lang, "Reason", "事由"), 24.0),
                (t(lang, "Activity", "活动"), 24.0),
            ],
            rows: award_rows,
        },
        Table {
            file: THOUGHT_REPORTS_CSV,
            sheet: t(lang, "Thought reports", "思想汇报"),
            columns: vec![
                (t(lang, "Entry", "编号"), 38.0),
                (t(lang, "Member", "姓名"), 14.0),
                (t(lang, "Due", "应交日期"), 12.0),
                (t(lang, "Received", "提交日期"), 12.0),
                (t(lang, "On time", "按时"), 8.0),
            ],
            rows: report_rows,
        },
    ]
}

fn applicant_table(lang: Lang, records: &BranchRecords) -> Table {
    let mut applicants: Vec<&Applicant> = records.applicants.iter().collect();
    applicants.sort_by_key(|a| (a.date_of(Stage::Applied), a.member));
    let rows = applicants
        .into_iter()
        .map(|a| {
            let mut row = vec![Cell::text(name_of(&records.roster, a.member))];
            row.extend(Stage::ALL.iter().map(|s| Cell::opt_day(a.date_of(*s))));
            let introducers: Vec<String> = a
                .introducers()
                .into_iter()
                .map(|m| name_of(&records.roster, m))
                .collect();
            row.push(Cell::text(introducers.join("、")));
            row
        })
        .collect();
    Table {
        file: APPLICANTS_CSV,
        sheet: t(lang, "Applicants", "入党流程"),
        columns: vec![
            (t(lang, "Name", "姓名"), 14.0),
            (t(lang, "Applied", "递交申请"), 12.0),
            (t(lang, "Activist", "确定积极分子"), 14.0),
            (t(lang, "Candidate", "确定发展对象"), 14.0),
            (t(lang, "Probationary", "接收预备党员"), 14.0),
            (t(lang, "Full member", "转为正式党员"), 14.0),
            (t(lang, "Introducers", "入党介绍人"), 20.0),
        ],
        rows,
    }
}

fn library_table(lang: Lang, records: &BranchRecords) -> Table {
    let rows = records
        .library
        .iter()
        .map(|e| {
            vec![
                Cell::text(e.meta.id.to_string()),
                Cell::text(match e.collection {
                    Collection::Problem => t(lang, "problem", "问题库"),
                    Collection::Case => t(lang, "case", "案例集"),
                }),
                Cell::text(&e.title),
                Cell::Day(e.written_on),
                Cell::text(e.problem.as_str()),
                Cell::text(e.solution.as_str()),
                Cell::text(e.tags().join("、")),
                Cell::text(yes_no(lang, e.shared_down)),
            ]
        })
        .collect();
    Table {
        file: LIBRARY_CSV,
        sheet: t(lang, "Library", "问题库与案例集"),
        columns: vec![
            (t(lang, "Entry", "编号"), 38.0),
            (t(lang, "Collection", "类别"), 10.0),
            (t(lang, "Title", "标题"), 30.0),
            (t(lang, "Written", "日期"), 12.0),
            (t(lang, "Problem", "问题"), 40.0),
            (t(lang, "Solution", "做法"), 40.0),
            (t(lang, "Tags", "标签"), 20.0),
            (t(lang, "Shared down", "向下共享"), 10.0),
        ],
        rows,
    }
}

/// Exports a branch as `request` says, and returns what was written.
pub fn export(admin: &Admin, request: &ExportRequest) -> anyhow::Result<ExportSummary> {
    if let (Some(from), Some(to)) = (request.from, request.to)
        && to < from
    {
        return Err(Failure::new(
            "input.invalid",
            format!("--to {to} is before --from {from}"),
        )
        .into());
    }
    let lang = request.lang;
    let branch = request.branch;
    let records = load(admin, branch)?;
    let branch_names: HashMap<BranchId, String> = admin
        .branches()?
        .into_iter()
        .map(|b| (b.branch, b.name))
        .collect();
    let activities: Vec<&Activity> = records
        .activities
        .iter()
        .filter(|a| {
            let day = a.starts_at.date();
            request.from.is_none_or(|from| from <= day) && request.to.is_none_or(|to| day <= to)
        })
        .collect();
    // Kind names come from the profile of the branch that holds the activity.
    let mut profiles: BTreeMap<BranchId, Option<BranchProfile>> = BTreeMap::new();
    profiles.insert(branch, Some(records.profile.clone()));
    for a in &activities {
        profiles
            .entry(a.meta.branch)
            .or_insert_with(|| admin.profile(a.meta.branch).ok());
    }
    let kind_names: HashMap<(BranchId, String), String> = profiles
        .iter()
        .filter_map(|(b, p)| p.as_ref().map(|p| (b, p)))
        .flat_map(|(b, p)| {
            p.activity_kinds
                .iter()
                .map(move |(code, rule)| ((*b, code.clone()), rule.name.clone()))
        })
        .collect();

    let [dues, spending] = dues_tables(lang, &records);
    let [awards, reports] = points_tables(lang, &records);
    let tables = [
        roster_table(lang, &records.roster),
        attendance_table(
            lang,
            branch,
            &records,
            &activities,
            &branch_names,
            &kind_names,
        ),
        petition_table(lang, &records, request.today),
        dues,
        spending,
        awards,
        reports,
        applicant_table(lang, &records),
        library_table(lang, &records),
    ];
    let files = write_all(&tables, request)?;
    Ok(ExportSummary {
        branch_name: records.profile.name.clone(),
        files,
        members: records.roster.members.len(),
        activities: activities.len(),
        shared_activities: activities
            .iter()
            .filter(|a| a.meta.branch != branch)
            .count(),
        attendance_rows: tables[1].rows.len(),
        petitions: records.petitions.len(),
        payments: tables[3].rows.len(),
        applicants: records.applicants.len(),
        skipped: records.skipped,
        alliances: admin.alliances(Some(branch))?,
    })
}

/// Writes every file into a staging directory inside `out`, then renames
/// them into place.
fn write_all(tables: &[Table], request: &ExportRequest) -> anyhow::Result<Vec<PathBuf>> {
    let out = &request.out;
    std::fs::create_dir_all(out)
        .with_context(|| format!("creating the output directory {}", out.display()))?;
    let staging = tempfile::Builder::new()
        .prefix(".branchline-export-")
        .tempdir_in(out)
        .with_context(|| format!("writing into {}", out.display()))?;
    let mut names = Vec::new();
    if matches!(request.format, ExportFormat::Csv | ExportFormat::All) {
        for table in tables {
            write_csv(&staging.path().join(table.file), table, request.bom)
                .with_context(|| format!("writing {}", table.file))?;
            names.push(table.file);
        }
    }
    if matches!(request.format, ExportFormat::Xlsx | ExportFormat::All) {
        write_xlsx(&staging.path().join(WORKBOOK), tables)
            .with_context(|| format!("writing {WORKBOOK}"))?;
        names.push(WORKBOOK);
    }
    let mut written = Vec::new();
    for name in names {
        let target = out.join(name);
        std::fs::rename(staging.path().join(name), &target)
            .with_context(|| format!("moving {name} into {}", out.display()))?;
        written.push(target);
    }
    Ok(written)
}

fn write_csv(path: &Path, table: &Table, bom: bool) -> anyhow::Result<()> {
    let mut file = File::create(path)?;
    if bom {
        file.write_all(b"\xEF\xBB\xBF")?;
    }
    let mut writer = csv::Writer::from_writer(file);
    writer.write_record(table.columns.iter().map(|(header, _)| *header))?;
    for row in &table.rows {
        writer.write_record(row.iter().map(Cell::csv))?;
    }
    let file = writer.into_inner().map_err(|e| e.into_error())?;
    file.sync_all()?;
    Ok(())
}

fn write_xlsx(path: &Path, tables: &[Table]) -> anyhow::Result<()> {
    let mut workbook = Workbook::new();
    let bold = Format::new().set_bold();
    let day = Format::new().set_num_format("yyyy-mm-dd");
    for table in tables {
        let sheet = workbook.add_worksheet();
        sheet.set_name(table.sheet)?;
        for (col, (header, width)) in table.columns.iter().enumerate() {
            let col = u16::try_from(col)?;
            sheet.write_string_with_format(0, col, *header, &bold)?;
            sheet.set_column_width(col, *width)?;
        }
        sheet.set_freeze_panes(1, 0)?;
        for (r, row) in table.rows.iter().enumerate() {
            let r = u32::try_from(r + 1)?;
            for (col, cell) in row.iter().enumerate() {
                let col = u16::try_from(col)?;
                match cell {
                    Cell::Text(text) => {
                        sheet.write_string(r, col, text)?;
                    }
                    Cell::Day(d) => {
                        let date = ExcelDateTime::from_ymd(
                            u16::try_from(chrono::Datelike::year(&d.0))?,
                            u8::try_from(chrono::Datelike::month(&d.0))?,
                            u8::try_from(chrono::Datelike::day(&d.0))?,
                        )?;
                        sheet.write_datetime_with_format(r, col, &date, &day)?;
                    }
                    Cell::Number(n) => {
                        sheet.write_number(r, col, *n)?;
                    }
                    Cell::Empty => {}
                }
            }
        }
    }
    workbook.save(path)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use branchline_core::MemberId;

    fn member(category: Category, joined: &str, group: Option<&str>) -> Member {
        Member {
            id: MemberId::random(),
            name: "王芳".into(),
            gender: Gender::Female,
            birth_date: None,
            joined: joined.parse().ok(),
            category,
            group: group.map(str::to_owned),
            post: None,
            phone: None,
            status: MemberStatus::Active,
            status_since: None,
        }
    }

    #[test]
    fn expected_follows_the_report_definition() {
        let day: Date = "2025-03-01".parse().unwrap();
        let full = member(Category::Full, "2020-01-01", Some("第一党小组"));
        assert!(expected_at(&full, day, None));
        assert!(expected_at(&full, day, Some("第一党小组")));
        assert!(!expected_at(&full, day, Some("第二党小组")));
        let later = member(Category::Full, "2025-06-01", None);
        assert!(!expected_at(&later, day, None));
        let activist = member(Category::Activist, "2020-01-01", None);
        assert!(!expected_at(&activist, day, None));
        let mut left = member(Category::Probationary, "2020-01-01", None);
        left.status = MemberStatus::TransferredOut;
        left.status_since = "2025-04-01".parse().ok();
        assert!(expected_at(&left, day, None));
        left.status_since = "2025-02-01".parse().ok();
        assert!(!expected_at(&left, day, None));
    }

    #[test]
    fn csv_cells_write_days_as_iso_text() {
        assert_eq!(Cell::Day("2025-03-01".parse().unwrap()).csv(), "2025-03-01");
        assert_eq!(Cell::Number(4.0).csv(), "4");
        assert_eq!(Cell::Empty.csv(), "");
    }
}
