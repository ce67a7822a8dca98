//! client-core's records and vocabularies, mirrored for Kotlin and Swift.
//!
//! Ids cross the boundary as their hyphenated text, calendar days as `YYYY-MM-DD`,
//! meeting times as `YYYY-MM-DDTHH:MM` (the branch's wall clock), instants as
//! milliseconds since the Unix epoch. Text coming in is parsed here, with
//! client-core's own parsers, so a bad value is an `input.invalid` error naming it.
//! Every conversion is a `From` (or a parse) in this module; the client only calls
//! them.

use std::str::FromStr;

use branchline_core::conflict;
use branchline_core::model;
use branchline_core::net;
use branchline_core::report;
use branchline_core::store::{self, query};
use branchline_protocol as protocol;

use crate::error::{BranchlineError, Result};

/// Parses caller text with client-core's parser for `T` (ids, dates, times).
pub(crate) fn parse<T>(text: &str) -> Result<T>
where
    T: FromStr<Err = branchline_core::Error>,
{
    Ok(text.parse()?)
}

/// Parses optional caller text; `None` stays `None`.
pub(crate) fn parse_opt<T>(text: Option<&str>) -> Result<Option<T>>
where
    T: FromStr<Err = branchline_core::Error>,
{
    text.map(parse).transpose()
}

/// Declares a mirrored vocabulary with `From` both ways.
macro_rules! mirror_enum {
    ($(#[$doc:meta])* $name:ident = $core:path { $($(#[$vdoc:meta])* $variant:ident),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, uniffi::Enum)]
        pub enum $name {
            $($(#[$vdoc])* $variant),+
        }

        impl From<$core> for $name {
            fn from(value: $core) -> Self {
                type Core = $core;
                match value {
                    $(Core::$variant => $name::$variant),+
                }
            }
        }

        impl From<$name> for $core {
            fn from(value: $name) -> Self {
                type Core = $core;
                match value {
                    $($name::$variant => Core::$variant),+
                }
            }
        }
    };
}

mirror_enum! {
    /// What dues may be spent on: branch work only.
    SpendingCategory = model::SpendingCategory {
        /// 党员教育培训.
        Education,
        /// 学习资料.
        StudyMaterials,
        /// 表彰先进.
        Commendation,
        /// 慰问生活困难党员、老党员.
        HardshipSupport,
        /// 支部组织生活与主题党日.
        BranchActivity,
    }
}

mirror_enum! {
    /// A step of the way to membership, in order.
    Stage = model::Stage {
        /// 递交入党申请书.
        Applied,
        /// 确定为入党积极分子.
        Activist,
        /// 确定为发展对象.
        Candidate,
        /// 接收为预备党员.
        Probationary,
        /// 转为正式党员.
        Full,
    }
}

mirror_enum! {
    /// Problem library or case collection.
    Collection = model::Collection {
        /// 问题库.
        Problem,
        /// 案例集.
        Case,
    }
}

mirror_enum! {
    /// A figure the higher committee rates its branches on (星级评定).
    Indicator = model::Indicator {
        /// Required meetings held.
        MeetingCompliance,
        /// Dues collected of dues owed.
        DuesCollection,
        /// Petitions resolved by their deadline.
        PetitionsInTime,
        /// Satisfied ratings.
        Satisfaction,
        /// The committee's term is current.
        TermCurrent,
    }
}

mirror_enum! {
    /// Gender as recorded on the roster.
    Gender = model::Gender {
        /// 男.
        Male,
        /// 女.
        Female,
        /// Not recorded (未登记).
        Unknown,
    }
}

mirror_enum! {
    /// Where a person stands in the membership pipeline.
    Category = model::Category {
        /// 正式党员.
        Full,
        /// 预备党员.
        Probationary,
        /// 发展对象 / 积极分子.
        Activist,
        /// 入党申请人.
        Applicant,
    }
}

mirror_enum! {
    /// Whether a person is still on the branch.
    MemberStatus = model::MemberStatus {
        /// On the branch.
        Active,
        /// Moved to another branch (转出).
        TransferredOut,
        /// Passed away.
        Deceased,
    }
}

mirror_enum! {
    /// Where a branch sits in the organization.
    Level = model::Level {
        /// 党委.
        Committee,
        /// 党总支.
        GeneralBranch,
        /// 党支部.
        Branch,
    }
}

mirror_enum! {
    /// How often an activity kind must be held.
    Frequency = model::Frequency {
        /// Once each calendar month.
        Monthly,
        /// Once each calendar quarter.
        Quarterly,
        /// Once each half year.
        HalfYearly,
        /// Once each calendar year.
        Yearly,
    }
}

mirror_enum! {
    /// Whether an activity still takes sign-ins.
    ActivityStatus = model::ActivityStatus {
        /// Planned or under way.
        Open,
        /// Finished: attendance and minutes are final.
        Closed,
    }
}

mirror_enum! {
    /// Where a member signed in from.
    SignInMode = model::SignInMode {
        /// At the venue.
        OnSite,
        /// From elsewhere (云党日).
        Remote,
    }
}

mirror_enum! {
    /// Where a petition stands.
    PetitionStatus = model::PetitionStatus {
        /// Submitted, nobody owns it yet.
        Open,
        /// An owner works on it.
        Assigned,
        /// Resolved; the submitter may rate it.
        Resolved,
    }
}

mirror_enum! {
    /// What a progress entry of a petition records.
    ProgressKind = model::petition::ProgressKind {
        /// A note on work done.
        Note,
        /// The petition was reopened; the text says why.
        Reopened,
    }
}

mirror_enum! {
    /// The grade of an annual democratic evaluation (民主评议).
    EvaluationGrade = model::EvaluationGrade {
        /// 优秀.
        Excellent,
        /// 合格.
        Qualified,
        /// 基本合格.
        BasicallyQualified,
        /// 不合格.
        Unqualified,
    }
}

mirror_enum! {
    /// What a device's person may do in the branch.
    Role = protocol::Role {
        /// Runs the branch: members, devices and invites.
        Secretary,
        /// Sits on the committee: edits records, sees reports.
        Committee,
        /// A member: signs in, follows petitions.
        Member,
        /// A resident: files and follows petitions.
        Resident,
    }
}

// --- roster ---------------------------------------------------------------------

/// What is needed to add a member to the roster.
#[derive(Clone, Debug, uniffi::Record)]
pub struct NewMember {
    /// Full name.
    pub name: String,
    /// Gender (unknown when not given).
    #[uniffi(default)]
    pub gender: Option<Gender>,
    /// Birth date, `YYYY-MM-DD`.
    #[uniffi(default)]
    pub birth_date: Option<String>,
    /// Date joined, `YYYY-MM-DD`.
    #[uniffi(default)]
    pub joined: Option<String>,
    /// Category (full member when not given).
    #[uniffi(default)]
    pub category: Option<Category>,
    /// Group (党小组).
    #[uniffi(default)]
    pub group: Option<String>,
    /// Post in the branch.
    #[uniffi(default)]
    pub post: Option<String>,
    /// Phone number.
    #[uniffi(default)]
    pub phone: Option<String>,
}

impl TryFrom<NewMember> for model::NewMember {
    type Error = BranchlineError;

    fn try_from(new: NewMember) -> Result<Self> {
        Ok(model::NewMember {
            name: new.name,
            gender: new.gender.map(Into::into),
            birth_date: parse_opt(new.birth_date.as_deref())?,
            joined: parse_opt(new.joined.as_deref())?,
            category: new.category.map(Into::into),
            group: new.group,
            post: new.post,
            phone: new.phone,
        })
    }
}

/// A partial update of a member: absent fields stay as they are; an empty group,
/// post or phone clears it.
#[derive(Clone, Debug, Default, uniffi::Record)]
pub struct MemberUpdate {
    /// New name.
    #[uniffi(default)]
    pub name: Option<String>,
    /// New gender.
    #[uniffi(default)]
    pub gender: Option<Gender>,
    /// New birth date, `YYYY-MM-DD`.
    #[uniffi(default)]
    pub birth_date: Option<String>,
    /// New date joined, `YYYY-MM-DD`.
    #[uniffi(default)]
    pub joined: Option<String>,
    /// New category.
    #[uniffi(default)]
    pub category: Option<Category>,
    /// New group.
    #[uniffi(default)]
    pub group: Option<String>,
    /// New post.
    #[uniffi(default)]
    pub post: Option<String>,
    /// New phone.
    #[uniffi(default)]
    pub phone: Option<String>,
}

impl TryFrom<MemberUpdate> for model::MemberUpdate {
    type Error = BranchlineError;

    fn try_from(update: MemberUpdate) -> Result<Self> {
        Ok(model::MemberUpdate {
            name: update.name,
            gender: update.gender.map(Into::into),
            birth_date: parse_opt(update.birth_date.as_deref())?,
            joined: parse_opt(update.joined.as_deref())?,
            category: update.category.map(Into::into),
            group: update.group,
            post: update.post,
            phone: update.phone,
        })
    }
}

/// A member as listed from the roster.
#[derive(Clone, Debug, PartialEq, Eq, uniffi::Record)]
pub struct MemberRow {
    /// Member id.
    pub id: String,
    /// Their branch.
    pub branch_id: String,
    /// Name.
    pub name: String,
    /// Gender.
    pub gender: Gender,
    /// Birth date, `YYYY-MM-DD`.
    pub birth_date: Option<String>,
    /// Date joined, `YYYY-MM-DD`.
    pub joined: Option<String>,
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

impl From<query::MemberRow> for MemberRow {
    fn from(row: query::MemberRow) -> Self {
        MemberRow {
            id: row.id.to_string(),
            branch_id: row.branch.to_string(),
            name: row.name,
            gender: row.gender.into(),
            birth_date: row.birth_date.map(|d| d.to_string()),
            joined: row.joined.map(|d| d.to_string()),
            category: row.category.into(),
            group: row.group,
            post: row.post,
            phone: row.phone,
            status: row.status.into(),
        }
    }
}

/// Which members to list; absent fields do not filter.
#[derive(Clone, Debug, Default, uniffi::Record)]
pub struct MemberFilter {
    /// Only this category.
    #[uniffi(default)]
    pub category: Option<Category>,
    /// Only this status.
    #[uniffi(default)]
    pub status: Option<MemberStatus>,
    /// Only this group.
    #[uniffi(default)]
    pub group: Option<String>,
    /// Only names containing this text.
    #[uniffi(default)]
    pub name_contains: Option<String>,
}

impl From<MemberFilter> for query::MemberFilter {
    fn from(filter: MemberFilter) -> Self {
        query::MemberFilter {
            category: filter.category.map(Into::into),
            status: filter.status.map(Into::into),
            group: filter.group,
            name_contains: filter.name_contains,
        }
    }
}

// --- member files -----------------------------------------------------------------

/// One training attended.
#[derive(Clone, Debug, PartialEq, uniffi::Record)]
pub struct Training {
    /// The day, `YYYY-MM-DD`.
    pub date: String,
    /// What it was about.
    pub topic: String,
    /// Length in hours.
    pub hours: f64,
}

/// One commendation received.
#[derive(Clone, Debug, PartialEq, Eq, uniffi::Record)]
pub struct Commendation {
    /// The day, `YYYY-MM-DD`.
    pub date: String,
    /// Its title.
    pub title: String,
    /// Who gave it.
    pub issuer: Option<String>,
}

/// One year's democratic evaluation.
#[derive(Clone, Debug, PartialEq, Eq, uniffi::Record)]
pub struct Evaluation {
    /// The year.
    pub year: i32,
    /// The grade.
    pub grade: EvaluationGrade,
    /// A comment.
    pub comment: Option<String>,
}

/// A member's confidential file (党员档案).
#[derive(Clone, Debug, PartialEq, uniffi::Record)]
pub struct MemberFile {
    /// The document's id.
    pub id: String,
    /// Whose file it is.
    pub member_id: String,
    /// National ID number.
    pub id_number: Option<String>,
    /// Home address.
    pub address: Option<String>,
    /// Trainings, in the order recorded.
    pub trainings: Vec<Training>,
    /// Total training hours.
    pub training_hours: f64,
    /// Commendations.
    pub commendations: Vec<Commendation>,
    /// Evaluations, by year.
    pub evaluations: Vec<Evaluation>,
}

impl From<model::MemberFile> for MemberFile {
    fn from(file: model::MemberFile) -> Self {
        MemberFile {
            id: file.meta.id.to_string(),
            member_id: file.member.to_string(),
            training_hours: file.training_hours(),
            id_number: file.id_number,
            address: file.address,
            trainings: file
                .trainings
                .into_iter()
                .map(|t| Training {
                    date: t.date.to_string(),
                    topic: t.topic,
                    hours: t.hours,
                })
                .collect(),
            commendations: file
                .commendations
                .into_iter()
                .map(|c| Commendation {
                    date: c.date.to_string(),
                    title: c.title,
                    issuer: c.issuer,
                })
                .collect(),
            evaluations: file
                .evaluations
                .into_iter()
                .map(|(year, e)| Evaluation {
                    year: year.parse().unwrap_or_default(),
                    grade: e.grade.into(),
                    comment: e.comment,
                })
                .collect(),
        }
    }
}

// --- branch profile ---------------------------------------------------------------

/// The committee's term of office.
#[derive(Clone, Debug, PartialEq, Eq, uniffi::Record)]
pub struct Term {
    /// The day it started, `YYYY-MM-DD`.
    pub start: String,
    /// The day it ends, `YYYY-MM-DD`.
    pub end: String,
}

/// One configured kind of activity.
#[derive(Clone, Debug, PartialEq, Eq, uniffi::Record)]
pub struct ActivityKindRule {
    /// The name people read, e.g. 支委会.
    pub name: String,
    /// How often it must be held, if at all.
    #[uniffi(default)]
    pub frequency: Option<Frequency>,
    /// Points a member earns by attending one.
    pub attendance_points: i64,
}

impl From<ActivityKindRule> for model::ActivityKindRule {
    fn from(rule: ActivityKindRule) -> Self {
        model::ActivityKindRule {
            name: rule.name,
            frequency: rule.frequency.map(Into::into),
            attendance_points: rule.attendance_points,
        }
    }
}

impl From<model::ActivityKindRule> for ActivityKindRule {
    fn from(rule: model::ActivityKindRule) -> Self {
        ActivityKindRule {
            name: rule.name,
            frequency: rule.frequency.map(Into::into),
            attendance_points: rule.attendance_points,
        }
    }
}

/// An activity kind with its stable code.
#[derive(Clone, Debug, PartialEq, Eq, uniffi::Record)]
pub struct ActivityKind {
    /// Stable code, e.g. `committee_meeting`.
    pub code: String,
    /// Its rule.
    pub rule: ActivityKindRule,
}

/// A bonus item of the points system.
#[derive(Clone, Debug, PartialEq, Eq, uniffi::Record)]
pub struct PointRule {
    /// Stable code.
    pub code: String,
    /// What earns the points.
    pub description: String,
    /// How many points.
    pub points: i64,
}

/// A branch's profile: name, hierarchy and rules.
#[derive(Clone, Debug, PartialEq, Eq, uniffi::Record)]
pub struct BranchProfile {
    /// The document's id.
    pub id: String,
    /// The branch.
    pub branch_id: String,
    /// Its name.
    pub name: String,
    /// Its level.
    pub level: Level,
    /// The unit above it.
    pub parent: Option<String>,
    /// Its groups (党小组).
    pub groups: Vec<String>,
    /// The committee's term.
    pub term: Option<Term>,
    /// Activity kinds, by code.
    pub activity_kinds: Vec<ActivityKind>,
    /// Bonus point items, by code.
    pub point_rules: Vec<PointRule>,
    /// Monthly dues per member in fen (0.01 yuan).
    pub monthly_dues_fen: i64,
    /// Attendance rate (per cent) below which a member counts as silent.
    pub silent_threshold_percent: u32,
}

impl From<model::BranchProfile> for BranchProfile {
    fn from(p: model::BranchProfile) -> Self {
        BranchProfile {
            id: p.meta.id.to_string(),
            branch_id: p.meta.branch.to_string(),
            name: p.name,
            level: p.level.into(),
            parent: p.parent.map(|b| b.to_string()),
            groups: p.groups,
            term: p.term.map(|t| Term {
                start: t.start.to_string(),
                end: t.end.to_string(),
            }),
            activity_kinds: p
                .activity_kinds
                .into_iter()
                .map(|(code, rule)| ActivityKind {
                    code,
                    rule: rule.into(),
                })
                .collect(),
            point_rules: p
                .point_rules
                .into_iter()
                .map(|(code, rule)| PointRule {
                    code,
                    description: rule.description,
                    points: rule.points,
                })
                .collect(),
            monthly_dues_fen: p.monthly_dues_fen,
            silent_threshold_percent: p.silent_threshold_percent,
        }
    }
}

// --- activities -----------------------------------------------------------------

/// What is needed to plan an activity.
#[derive(Clone, Debug, uniffi::Record)]
pub struct NewActivity {
    /// Activity kind code, one of the branch profile's kinds.
    pub kind: String,
    /// Title.
    pub title: String,
    /// Start, `YYYY-MM-DDTHH:MM` on the branch's wall clock.
    pub starts_at: String,
    /// End, `YYYY-MM-DDTHH:MM`.
    pub ends_at: String,
    /// Venue.
    #[uniffi(default)]
    pub place: Option<String>,
    /// The organizing member's id.
    #[uniffi(default)]
    pub organizer: Option<String>,
    /// For a group meeting: the group expected.
    #[uniffi(default)]
    pub group: Option<String>,
    /// Agenda.
    #[uniffi(default)]
    pub agenda: Option<String>,
}

impl TryFrom<NewActivity> for model::NewActivity {
    type Error = BranchlineError;

    fn try_from(new: NewActivity) -> Result<Self> {
        Ok(model::NewActivity {
            kind: new.kind,
            title: new.title,
            starts_at: Some(parse(&new.starts_at)?),
            ends_at: Some(parse(&new.ends_at)?),
            place: new.place,
            organizer: parse_opt(new.organizer.as_deref())?,
            group: new.group,
            agenda: new.agenda,
        })
    }
}

/// An activity as listed.
#[derive(Clone, Debug, PartialEq, Eq, uniffi::Record)]
pub struct ActivityRow {
    /// Document id.
    pub id: String,
    /// Owning branch.
    pub branch_id: String,
    /// Kind code.
    pub kind: String,
    /// Title.
    pub title: String,
    /// Start, `YYYY-MM-DDTHH:MM`.
    pub starts_at: String,
    /// End, `YYYY-MM-DDTHH:MM`.
    pub ends_at: String,
    /// Venue.
    pub place: Option<String>,
    /// Open or closed.
    pub status: ActivityStatus,
    /// Members signed in.
    pub sign_ins: u32,
    /// Leave requests.
    pub leaves: u32,
}

impl From<query::ActivityRow> for ActivityRow {
    fn from(row: query::ActivityRow) -> Self {
        ActivityRow {
            id: row.id.to_string(),
            branch_id: row.branch.to_string(),
            kind: row.kind,
            title: row.title,
            starts_at: row.starts_at.to_string(),
            ends_at: row.ends_at.to_string(),
            place: row.place,
            status: row.status.into(),
            sign_ins: row.sign_ins,
            leaves: row.leaves,
        }
    }
}

/// Which activities to list; absent fields do not filter.
#[derive(Clone, Debug, Default, uniffi::Record)]
pub struct ActivityFilter {
    /// Only this kind.
    #[uniffi(default)]
    pub kind: Option<String>,
    /// Only activities starting on or after this day, `YYYY-MM-DD`.
    #[uniffi(default)]
    pub from: Option<String>,
    /// Only activities starting on or before this day, `YYYY-MM-DD`.
    #[uniffi(default)]
    pub to: Option<String>,
    /// Only this status.
    #[uniffi(default)]
    pub status: Option<ActivityStatus>,
}

impl TryFrom<ActivityFilter> for query::ActivityFilter {
    type Error = BranchlineError;

    fn try_from(filter: ActivityFilter) -> Result<Self> {
        Ok(query::ActivityFilter {
            kind: filter.kind,
            from: parse_opt(filter.from.as_deref())?,
            to: parse_opt(filter.to.as_deref())?,
            status: filter.status.map(Into::into),
        })
    }
}

/// One member's sign-in to an activity.
#[derive(Clone, Debug, PartialEq, Eq, uniffi::Record)]
pub struct SignIn {
    /// The member.
    pub member_id: String,
    /// When, in milliseconds since the Unix epoch.
    pub at_ms: i64,
    /// On site or remote.
    pub mode: SignInMode,
}

/// One member's request for leave.
#[derive(Clone, Debug, PartialEq, Eq, uniffi::Record)]
pub struct Leave {
    /// The member.
    pub member_id: String,
    /// When they asked, in milliseconds since the Unix epoch.
    pub at_ms: i64,
    /// Why they cannot attend.
    pub reason: String,
}

/// Bonus points awarded to one member for an activity.
#[derive(Clone, Debug, PartialEq, Eq, uniffi::Record)]
pub struct BonusPoints {
    /// The member.
    pub member_id: String,
    /// Points so far (awards add up across devices).
    pub points: i64,
}

/// An activity with everything recorded about it.
#[derive(Clone, Debug, PartialEq, Eq, uniffi::Record)]
pub struct Activity {
    /// Document id.
    pub id: String,
    /// Owning branch.
    pub branch_id: String,
    /// Kind code.
    pub kind: String,
    /// Title.
    pub title: String,
    /// Start, `YYYY-MM-DDTHH:MM`.
    pub starts_at: String,
    /// End, `YYYY-MM-DDTHH:MM`.
    pub ends_at: String,
    /// Venue.
    pub place: Option<String>,
    /// Organizing member.
    pub organizer: Option<String>,
    /// Group expected, for a group meeting.
    pub group: Option<String>,
    /// Agenda.
    pub agenda: String,
    /// Minutes.
    pub minutes: String,
    /// Open or closed.
    pub status: ActivityStatus,
    /// Sign-ins, by member id.
    pub sign_ins: Vec<SignIn>,
    /// Leave requests, by member id.
    pub leaves: Vec<Leave>,
    /// Bonus points, by member id.
    pub bonus_points: Vec<BonusPoints>,
    /// Partner branches it is shared with.
    pub shared_with: Vec<String>,
}

impl From<model::Activity> for Activity {
    fn from(a: model::Activity) -> Self {
        Activity {
            id: a.meta.id.to_string(),
            branch_id: a.meta.branch.to_string(),
            agenda: a.agenda.as_str().to_owned(),
            minutes: a.minutes.as_str().to_owned(),
            // Awards are entries (older builds kept counters): one line per
            // member, their sum.
            bonus_points: a
                .awards
                .values()
                .map(|award| award.member)
                .chain(a.bonus_points.keys().filter_map(|m| m.parse().ok()))
                .collect::<std::collections::BTreeSet<branchline_core::MemberId>>()
                .into_iter()
                .map(|member| BonusPoints {
                    member_id: member.to_string(),
                    points: a.bonus_points_of(member),
                })
                .collect(),
            kind: a.kind,
            title: a.title,
            starts_at: a.starts_at.to_string(),
            ends_at: a.ends_at.to_string(),
            place: a.place,
            organizer: a.organizer.map(|m| m.to_string()),
            group: a.group,
            status: a.status.into(),
            sign_ins: a
                .sign_ins
                .into_iter()
                .map(|(member_id, s)| SignIn {
                    member_id,
                    at_ms: s.at.0,
                    mode: s.mode.into(),
                })
                .collect(),
            leaves: a
                .leaves
                .into_iter()
                .map(|(member_id, l)| Leave {
                    member_id,
                    at_ms: l.at.0,
                    reason: l.reason,
                })
                .collect(),
            shared_with: a
                .shared_with
                .into_iter()
                .filter(|(_, shared)| *shared)
                .map(|(branch, _)| branch)
                .collect(),
        }
    }
}

/// One member's attendance at an activity.
#[derive(Clone, Debug, PartialEq, Eq, uniffi::Record)]
pub struct AttendanceRow {
    /// The member.
    pub member_id: String,
    /// Their name, if they are on a roster here.
    pub name: Option<String>,
    /// Signed in (`true`) or on leave (`false`).
    pub present: bool,
    /// How they signed in.
    pub mode: Option<SignInMode>,
    /// When they signed in or asked for leave, in milliseconds since the Unix epoch.
    pub at_ms: i64,
}

impl From<query::AttendanceRow> for AttendanceRow {
    fn from(row: query::AttendanceRow) -> Self {
        AttendanceRow {
            member_id: row.member.to_string(),
            name: row.name,
            present: row.present,
            mode: row.mode.map(Into::into),
            at_ms: row.at.0,
        }
    }
}

// --- petitions ------------------------------------------------------------------

/// Who brought a petition; the contact is private to the committee and owner.
#[derive(Clone, Debug, Default, PartialEq, Eq, uniffi::Record)]
pub struct Submitter {
    /// Their name.
    #[uniffi(default)]
    pub name: Option<String>,
    /// Phone or other contact.
    #[uniffi(default)]
    pub contact: Option<String>,
    /// The submitting member's id, when a member submitted it.
    #[uniffi(default)]
    pub member_id: Option<String>,
}

/// What is needed to submit a petition.
#[derive(Clone, Debug, uniffi::Record)]
pub struct NewPetition {
    /// Category, e.g. 环境卫生.
    pub category: String,
    /// Short title.
    pub title: String,
    /// Full description.
    pub description: String,
    /// Where the problem is.
    #[uniffi(default)]
    pub location: Option<String>,
    /// Who submits it.
    pub submitter: Submitter,
}

impl TryFrom<NewPetition> for model::NewPetition {
    type Error = BranchlineError;

    fn try_from(new: NewPetition) -> Result<Self> {
        Ok(model::NewPetition {
            category: new.category,
            title: new.title,
            description: new.description,
            location: new.location,
            submitter: model::Submitter {
                name: new.submitter.name,
                contact: new.submitter.contact,
                member: parse_opt(new.submitter.member_id.as_deref())?,
            },
        })
    }
}

/// A petition as listed in the ledger (台账); no private contact.
#[derive(Clone, Debug, PartialEq, Eq, uniffi::Record)]
pub struct PetitionRow {
    /// Document id.
    pub id: String,
    /// Branch.
    pub branch_id: String,
    /// Category.
    pub category: String,
    /// Title.
    pub title: String,
    /// Status.
    pub status: PetitionStatus,
    /// Owner's member id.
    pub owner: Option<String>,
    /// Deadline, `YYYY-MM-DD`.
    pub deadline: Option<String>,
    /// When submitted, in milliseconds since the Unix epoch.
    pub submitted_at_ms: i64,
    /// When resolved, in milliseconds since the Unix epoch.
    pub resolved_at_ms: Option<i64>,
    /// Satisfaction rating, 1 to 5.
    pub rating: Option<u8>,
    /// Progress notes so far.
    pub progress_notes: u32,
    /// Past its deadline and unresolved on the day asked about.
    pub overdue: bool,
}

impl From<query::PetitionRow> for PetitionRow {
    fn from(row: query::PetitionRow) -> Self {
        PetitionRow {
            id: row.id.to_string(),
            branch_id: row.branch.to_string(),
            category: row.category,
            title: row.title,
            status: row.status.into(),
            owner: row.owner.map(|m| m.to_string()),
            deadline: row.deadline.map(|d| d.to_string()),
            submitted_at_ms: row.submitted_at.0,
            resolved_at_ms: row.resolved_at.map(|t| t.0),
            rating: row.rating,
            progress_notes: row.progress_notes,
            overdue: row.overdue,
        }
    }
}

/// Which petitions to list; absent fields do not filter.
#[derive(Clone, Debug, Default, uniffi::Record)]
pub struct PetitionFilter {
    /// Only this status.
    #[uniffi(default)]
    pub status: Option<PetitionStatus>,
    /// Only petitions this member owns.
    #[uniffi(default)]
    pub owner: Option<String>,
    /// Only overdue petitions.
    #[uniffi(default)]
    pub overdue_only: bool,
}

impl TryFrom<PetitionFilter> for query::PetitionFilter {
    type Error = BranchlineError;

    fn try_from(filter: PetitionFilter) -> Result<Self> {
        Ok(query::PetitionFilter {
            status: filter.status.map(Into::into),
            owner: parse_opt(filter.owner.as_deref())?,
            overdue_only: filter.overdue_only,
        })
    }
}

/// One entry of a petition's progress log.
#[derive(Clone, Debug, PartialEq, Eq, uniffi::Record)]
pub struct ProgressNote {
    /// When, in milliseconds since the Unix epoch.
    pub at_ms: i64,
    /// Who wrote it.
    pub author: Option<String>,
    /// Note or reopening.
    pub kind: ProgressKind,
    /// What happened.
    pub text: String,
}

/// How a petition was resolved.
#[derive(Clone, Debug, PartialEq, Eq, uniffi::Record)]
pub struct Resolution {
    /// When, in milliseconds since the Unix epoch.
    pub at_ms: i64,
    /// By whom.
    pub by: Option<String>,
    /// What was done.
    pub summary: String,
}

/// The submitter's rating of a resolution.
#[derive(Clone, Debug, PartialEq, Eq, uniffi::Record)]
pub struct Rating {
    /// 1 (very unsatisfied) to 5 (very satisfied).
    pub score: u8,
    /// A comment.
    pub comment: Option<String>,
    /// When, in milliseconds since the Unix epoch.
    pub at_ms: i64,
}

/// A petition with its whole history.
#[derive(Clone, Debug, PartialEq, Eq, uniffi::Record)]
pub struct Petition {
    /// Document id.
    pub id: String,
    /// Branch.
    pub branch_id: String,
    /// Category.
    pub category: String,
    /// Title.
    pub title: String,
    /// Description.
    pub description: String,
    /// Location.
    pub location: Option<String>,
    /// Submitter, with the private contact.
    pub submitter: Submitter,
    /// When submitted, in milliseconds since the Unix epoch.
    pub submitted_at_ms: i64,
    /// Status.
    pub status: PetitionStatus,
    /// Owner's member id.
    pub owner: Option<String>,
    /// Deadline, `YYYY-MM-DD`.
    pub deadline: Option<String>,
    /// Progress log.
    pub progress: Vec<ProgressNote>,
    /// The resolution, once resolved.
    pub resolution: Option<Resolution>,
    /// The rating, once rated.
    pub rating: Option<Rating>,
}

impl From<model::Petition> for Petition {
    fn from(p: model::Petition) -> Self {
        Petition {
            id: p.meta.id.to_string(),
            branch_id: p.meta.branch.to_string(),
            description: p.description.as_str().to_owned(),
            category: p.category,
            title: p.title,
            location: p.location,
            submitter: Submitter {
                name: p.submitter.name,
                contact: p.submitter.contact,
                member_id: p.submitter.member.map(|m| m.to_string()),
            },
            submitted_at_ms: p.submitted_at.0,
            status: p.status.into(),
            owner: p.owner.map(|m| m.to_string()),
            deadline: p.deadline.map(|d| d.to_string()),
            progress: p
                .progress
                .into_iter()
                .map(|n| ProgressNote {
                    at_ms: n.at.0,
                    author: n.author.map(|m| m.to_string()),
                    kind: n.kind.into(),
                    text: n.text,
                })
                .collect(),
            resolution: p.resolution.map(|r| Resolution {
                at_ms: r.at.0,
                by: r.by.map(|m| m.to_string()),
                summary: r.summary,
            }),
            rating: p.rating.map(|r| Rating {
                score: r.score,
                comment: r.comment,
                at_ms: r.at.0,
            }),
        }
    }
}

// --- feedback box ------------------------------------------------------------------

/// The branch's answer to a suggestion.
#[derive(Clone, Debug, PartialEq, Eq, uniffi::Record)]
pub struct SuggestionAnswer {
    /// The answer.
    pub text: String,
    /// The member who answered, if known.
    pub by: Option<String>,
    /// When, in milliseconds since the Unix epoch.
    pub at_ms: i64,
    /// Whether the answer is on the branch's public board (a new answer is not,
    /// until someone publishes it).
    pub published: bool,
}

impl From<model::Answer> for SuggestionAnswer {
    fn from(a: model::Answer) -> Self {
        SuggestionAnswer {
            text: a.text,
            by: a.by.map(|m| m.to_string()),
            at_ms: a.at.0,
            published: a.published,
        }
    }
}

/// One suggestion in the feedback box (意见箱).
#[derive(Clone, Debug, PartialEq, Eq, uniffi::Record)]
pub struct Suggestion {
    /// Suggestion id.
    pub id: String,
    /// What the member suggests.
    pub text: String,
    /// The day it was made, `YYYY-MM-DD` (no time of day is kept).
    pub on: String,
    /// The member who made it; none when they chose to stay anonymous.
    pub author: Option<String>,
    /// The branch's answer, once answered.
    pub answer: Option<SuggestionAnswer>,
}

/// A branch's feedback box: members' suggestions and the branch's answers.
#[derive(Clone, Debug, PartialEq, Eq, uniffi::Record)]
pub struct FeedbackBox {
    /// Document id.
    pub id: String,
    /// Branch.
    pub branch_id: String,
    /// Every suggestion, oldest day first (ties in id order); members see the
    /// answers whose `published` is set on the public board.
    pub suggestions: Vec<Suggestion>,
}

impl From<model::FeedbackBox> for FeedbackBox {
    fn from(b: model::FeedbackBox) -> Self {
        // The map gives them in id order; a stable sort by day keeps that for ties.
        let mut by_day: Vec<(String, model::Suggestion)> = b.suggestions.into_iter().collect();
        by_day.sort_by_key(|(_, s)| s.on);
        let suggestions = by_day
            .into_iter()
            .map(|(id, s)| Suggestion {
                id,
                text: s.text.as_str().to_owned(),
                on: s.on.to_string(),
                author: s.author.map(|m| m.to_string()),
                answer: s.answer.map(Into::into),
            })
            .collect();
        FeedbackBox {
            id: b.meta.id.to_string(),
            branch_id: b.meta.branch.to_string(),
            suggestions,
        }
    }
}

// --- refused changes ---------------------------------------------------------------

/// A change of this device the server refused, dropped from the device: what the
/// app shows the person whose edit it was ("your rating was refused:
/// rule.submitter_only").
#[derive(Clone, Debug, PartialEq, Eq, uniffi::Record)]
pub struct Rejection {
    /// The record's id, increasing; pass the last one seen to `rejections` to get
    /// only newer ones.
    pub id: i64,
    /// The document the change was made to.
    pub doc_id: String,
    /// The document's kind (`petition`, `activity`, …), kept because the document
    /// may be gone.
    pub kind: String,
    /// The refused change's hash, in hex.
    pub change: String,
    /// The server's stable reason code (`rule.submitter_only`, `access.denied`, …).
    pub code: String,
    /// The server's explanation, in English, for logs.
    pub message: String,
    /// When the device dropped the change, in milliseconds since the Unix epoch.
    pub at_ms: i64,
    /// Changes dropped because of this one: itself and every local change made after
    /// it in the same document.
    pub dropped_changes: u64,
    /// How many of the changes made after it were sent again as new changes.
    pub replayed_changes: u64,
    /// The refused change created the document, which is therefore gone.
    pub document_removed: bool,
    /// Why it was refused, in English words a person reads (from client-core's
    /// shared refusal table, the same the desktop shows); none for a code the
    /// table has no words for (one a newer server invented): show `message` then.
    pub reason_english: Option<String>,
    /// The same in Chinese.
    pub reason_chinese: Option<String>,
}

impl From<store::Rejection> for Rejection {
    fn from(r: store::Rejection) -> Self {
        let words = branchline_core::refusal::explain(&r.code);
        Rejection {
            reason_english: words.map(|w| w.english.to_owned()),
            reason_chinese: words.map(|w| w.chinese.to_owned()),
            id: r.id,
            doc_id: r.doc_id.to_string(),
            kind: r.kind,
            change: r.change.to_string(),
            code: r.code,
            message: r.message,
            at_ms: r.at.0,
            dropped_changes: r.dropped_changes as u64,
            replayed_changes: r.replayed_changes as u64,
            document_removed: r.document_removed,
        }
    }
}

// --- documents and conflicts -------------------------------------------------------

/// A document as stored on this device.
#[derive(Clone, Debug, PartialEq, Eq, uniffi::Record)]
pub struct DocumentSummary {
    /// Document id.
    pub id: String,
    /// Its kind (`roster`, `activity`, …; possibly a kind from a newer version).
    pub kind: String,
    /// Its owning branch.
    pub branch_id: String,
    /// Bytes on disk.
    pub stored_bytes: u64,
    /// Local changes no server has acknowledged yet.
    pub unacked_changes: u64,
}

impl From<store::DocSummary> for DocumentSummary {
    fn from(doc: store::DocSummary) -> Self {
        DocumentSummary {
            id: doc.id.to_string(),
            kind: doc.kind,
            branch_id: doc.branch.to_string(),
            stored_bytes: doc.stored_bytes as u64,
            unacked_changes: doc.unacked_changes as u64,
        }
    }
}

/// A field edited concurrently on two devices, for a person to settle.
#[derive(Clone, Debug, PartialEq, Eq, uniffi::Record)]
pub struct Conflict {
    /// The document.
    pub doc_id: String,
    /// The field, as `/`-separated keys (e.g. `members/<id>/phone`).
    pub path: String,
    /// Every value, in a stable order; settle by index into this list.
    pub values: Vec<ConflictValue>,
}

/// One of the concurrent values of a field.
#[derive(Clone, Debug, PartialEq, Eq, uniffi::Record)]
pub struct ConflictValue {
    /// The value, rendered for people.
    pub value: String,
    /// The device (store device id) that wrote it, when known.
    pub device_id: Option<String>,
    /// Whether this value is the one currently shown.
    pub winner: bool,
}

impl From<conflict::Conflict> for Conflict {
    fn from(c: conflict::Conflict) -> Self {
        Conflict {
            doc_id: c.doc.to_string(),
            path: c.path,
            values: c
                .values
                .into_iter()
                .map(|v| ConflictValue {
                    value: v.value,
                    device_id: v.device.map(|d| d.to_string()),
                    winner: v.winner,
                })
                .collect(),
        }
    }
}

// --- reports --------------------------------------------------------------------

/// One member's attendance over a period.
#[derive(Clone, Debug, PartialEq, uniffi::Record)]
pub struct MemberAttendance {
    /// The member.
    pub member_id: String,
    /// Their name.
    pub name: String,
    /// Activities they were expected at.
    pub expected: u32,
    /// Of those, attended.
    pub attended: u32,
    /// Of those, on leave.
    pub on_leave: u32,
    /// `attended ÷ expected`, if expected at all.
    pub rate: Option<f64>,
    /// Points earned by attending.
    pub attendance_points: i64,
    /// Points earned otherwise: awards and thought reports on time.
    pub other_points: i64,
    /// Below the branch's threshold and no other points: someone to talk with.
    pub silent: bool,
}

/// Attendance at one kind of activity over a period.
#[derive(Clone, Debug, PartialEq, uniffi::Record)]
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
#[derive(Clone, Debug, PartialEq, uniffi::Record)]
pub struct AttendanceReport {
    /// Per member, by name.
    pub members: Vec<MemberAttendance>,
    /// Per activity kind, by code.
    pub kinds: Vec<KindAttendance>,
    /// The silent threshold used, per cent.
    pub silent_threshold_percent: u32,
}

impl From<report::AttendanceReport> for AttendanceReport {
    fn from(r: report::AttendanceReport) -> Self {
        AttendanceReport {
            members: r
                .members
                .into_iter()
                .map(|m| MemberAttendance {
                    member_id: m.member.to_string(),
                    name: m.name,
                    expected: m.expected,
                    attended: m.attended,
                    on_leave: m.on_leave,
                    rate: m.rate,
                    attendance_points: m.attendance_points,
                    other_points: m.other_points,
                    silent: m.silent,
                })
                .collect(),
            kinds: r
                .kinds
                .into_iter()
                .map(|k| KindAttendance {
                    kind: k.kind,
                    activities: k.activities,
                    expected: k.expected,
                    attended: k.attended,
                    rate: k.rate,
                })
                .collect(),
            silent_threshold_percent: r.silent_threshold_percent,
        }
    }
}

/// Petitions submitted in a period.
#[derive(Clone, Debug, PartialEq, uniffi::Record)]
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
    /// Of the resolved, rated.
    pub rated: u32,
    /// Of the rated, satisfied (4 or 5).
    pub satisfied: u32,
    /// Mean rating of the rated.
    pub average_satisfaction: Option<f64>,
}

impl From<report::PetitionReport> for PetitionReport {
    fn from(r: report::PetitionReport) -> Self {
        PetitionReport {
            submitted: r.submitted,
            open: r.open,
            overdue: r.overdue,
            resolved: r.resolved,
            resolved_in_time: r.resolved_in_time,
            rated: r.rated,
            satisfied: r.satisfied,
            average_satisfaction: r.average_satisfaction,
        }
    }
}

/// Activities of a kind held in one calendar period.
#[derive(Clone, Debug, PartialEq, Eq, uniffi::Record)]
pub struct PeriodCount {
    /// First day of the calendar period, `YYYY-MM-DD`.
    pub start: String,
    /// Activities held in it.
    pub held: u32,
    /// Whether at least one was held.
    pub met: bool,
}

/// How often one required kind of activity was held.
#[derive(Clone, Debug, PartialEq, Eq, uniffi::Record)]
pub struct KindCompliance {
    /// Kind code.
    pub kind: String,
    /// Required frequency.
    pub frequency: Frequency,
    /// Each calendar period touching the report's period.
    pub periods: Vec<PeriodCount>,
}

impl From<report::KindCompliance> for KindCompliance {
    fn from(k: report::KindCompliance) -> Self {
        KindCompliance {
            kind: k.kind,
            frequency: k.frequency.into(),
            periods: k
                .periods
                .into_iter()
                .map(|p| PeriodCount {
                    start: p.start.to_string(),
                    held: p.held,
                    met: p.met,
                })
                .collect(),
        }
    }
}

/// The committee's term and whether renewal (换届) is due.
#[derive(Clone, Debug, PartialEq, Eq, uniffi::Record)]
pub struct TermReminder {
    /// The day the term ends, `YYYY-MM-DD`.
    pub ends: String,
    /// Days left (negative once past).
    pub days_left: i64,
    /// Due: within six months of the end, or past it.
    pub due: bool,
}

impl From<report::TermReminder> for TermReminder {
    fn from(t: report::TermReminder) -> Self {
        TermReminder {
            ends: t.ends.to_string(),
            days_left: t.days_left,
            due: t.due,
        }
    }
}

/// Members in one age band.
#[derive(Clone, Debug, PartialEq, Eq, uniffi::Record)]
pub struct AgeBand {
    /// The band, e.g. `31-40`, or `unknown`.
    pub band: String,
    /// Members in it.
    pub members: u32,
}

/// Age bands of the membership.
#[derive(Clone, Debug, PartialEq, uniffi::Record)]
pub struct AgeStructure {
    /// Members per band.
    pub bands: Vec<AgeBand>,
    /// Mean age of members with a birth date.
    pub average_age: Option<f64>,
}

impl From<report::AgeStructure> for AgeStructure {
    fn from(a: report::AgeStructure) -> Self {
        AgeStructure {
            bands: a
                .bands
                .into_iter()
                .map(|(band, members)| AgeBand { band, members })
                .collect(),
            average_age: a.average_age,
        }
    }
}

/// Every report of a branch for a period.
#[derive(Clone, Debug, PartialEq, uniffi::Record)]
pub struct BranchReport {
    /// First day of the period, `YYYY-MM-DD`.
    pub from: String,
    /// Last day of the period, `YYYY-MM-DD`.
    pub to: String,
    /// The day taken as today, `YYYY-MM-DD`.
    pub as_of: String,
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

impl From<report::BranchReport> for BranchReport {
    fn from(r: report::BranchReport) -> Self {
        BranchReport {
            from: r.period.from.to_string(),
            to: r.period.to.to_string(),
            as_of: r.as_of.to_string(),
            attendance: r.attendance.into(),
            petitions: r.petitions.into(),
            compliance: r.compliance.into_iter().map(Into::into).collect(),
            term: r.term.map(Into::into),
            ages: r.ages.into(),
        }
    }
}

/// A report period from caller text.
pub(crate) fn period(from: &str, to: &str) -> Result<report::Period> {
    Ok(report::Period::new(parse(from)?, parse(to)?)?)
}

// --- account and sync -----------------------------------------------------------

/// Who this device is on its branch server.
#[derive(Clone, Debug, PartialEq, Eq, uniffi::Record)]
pub struct AccountInfo {
    /// The server's address, `host:port`.
    pub server: String,
    /// The id the server gave this device (what a secretary revokes).
    pub device_id: String,
    /// The branch whose records the device syncs.
    pub branch_id: String,
    /// The member the device belongs to (none for a resident).
    pub member_id: Option<String>,
    /// What the device's person may do, as of the last connection.
    pub role: Role,
    /// The name the device enrolled under.
    pub device_name: String,
    /// The branch's name, as the server told it at the last connection (none from
    /// a server older than protocol version 4).
    pub branch_name: Option<String>,
}

impl From<store::Account> for AccountInfo {
    fn from(a: store::Account) -> Self {
        AccountInfo {
            server: a.server,
            device_id: a.device_id.to_string(),
            branch_id: a.branch.to_string(),
            member_id: a.member.map(|m| m.to_string()),
            role: a.role.into(),
            device_name: a.device_name,
            branch_name: a.branch_name,
        }
    }
}

/// A one-time invite made by this device.
#[derive(Clone, Debug, PartialEq, Eq, uniffi::Record)]
pub struct Invite {
    /// The link to hand over (as text or a QR code).
    pub link: String,
    /// When it expires, in milliseconds since the Unix epoch.
    pub expires_at_ms: i64,
}

/// What background sync is doing.
#[derive(Clone, Debug, PartialEq, Eq, uniffi::Enum)]
pub enum SyncState {
    /// Not running: not enrolled yet, cancelled, shut down, or failed.
    Stopped {
        /// The stable code of the failure that stopped sync (`net.task_failed`);
        /// none when it was never started, cancelled or shut down.
        failure: Option<String>,
    },
    /// The app said there is no network.
    Offline,
    /// Opening a connection.
    Connecting,
    /// Connected; documents are being reconciled or synced.
    Syncing,
    /// Connected and in sync with the server.
    Idle,
    /// The last attempt failed; the next starts after this delay (or at `sync_now`).
    Waiting {
        /// Milliseconds until the next attempt.
        retry_in_ms: u64,
    },
    /// The server refused this device for good; it will not retry.
    Refused {
        /// The server's error code, e.g. `auth.device_revoked`.
        code: String,
    },
}

impl From<net::Status> for SyncState {
    fn from(status: net::Status) -> Self {
        match status {
            net::Status::Offline => SyncState::Offline,
            net::Status::Connecting => SyncState::Connecting,
            net::Status::Syncing => SyncState::Syncing,
            net::Status::InSync => SyncState::Idle,
            net::Status::Waiting { retry_in } => SyncState::Waiting {
                retry_in_ms: u64::try_from(retry_in.as_millis()).unwrap_or(u64::MAX),
            },
            net::Status::Refused { code } => SyncState::Refused {
                code: code.as_str().to_owned(),
            },
            net::Status::Stopped => SyncState::Stopped { failure: None },
        }
    }
}

/// The status line of the app: what sync does, what waits, when it last synced.
#[derive(Clone, Debug, PartialEq, Eq, uniffi::Record)]
pub struct SyncStatus {
    /// What background sync is doing.
    pub state: SyncState,
    /// Local changes no server has acknowledged yet.
    pub pending_changes: u64,
    /// When this client was last in sync with the server (milliseconds since the Unix
    /// epoch), if it has been since it was opened.
    pub last_sync_ms: Option<i64>,
    /// When this device heard the server revoked it (milliseconds since the Unix
    /// epoch), kept across restarts until it enrolls again. A revoked device still
    /// reads its records; every edit fails with `auth.device_revoked`.
    pub revoked_at_ms: Option<i64>,
}

/// Figures for the current (or last) connection.
#[derive(Clone, Debug, Default, PartialEq, Eq, uniffi::Record)]
pub struct SyncReport {
    /// Milliseconds from dialling to the server's welcome.
    pub handshake_ms: u64,
    /// Milliseconds from dialling to being in sync.
    pub to_in_sync_ms: u64,
    /// Manifest round trips (1 when nothing changed).
    pub manifest_round_trips: u32,
    /// Documents synced on their own stream.
    pub docs_synced: u32,
    /// UDP payload bytes sent.
    pub bytes_sent: u64,
    /// UDP payload bytes received.
    pub bytes_received: u64,
    /// Connections opened so far.
    pub connections: u32,
}

impl From<net::SessionReport> for SyncReport {
    fn from(r: net::SessionReport) -> Self {
        let millis = |d: std::time::Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        SyncReport {
            handshake_ms: millis(r.handshake),
            to_in_sync_ms: millis(r.to_in_sync),
            manifest_round_trips: r.manifest_round_trips,
            docs_synced: r.docs_synced,
            bytes_sent: r.udp_bytes_sent,
            bytes_received: r.udp_bytes_received,
            connections: r.connections,
        }
    }
}
