//! `BranchProfile`: one per branch, its place in the hierarchy and its own rules.
//!
//! Branches differ (rural, community, enterprise, institution), so the activity kinds
//! they must hold, how often, and the points each is worth are data here rather than
//! code. [`BranchProfile::new`] starts a branch with the usual 三会一课 set.

use std::collections::BTreeMap;

use autosurgeon::{Hydrate, Reconcile};

use super::scalar::{Date, vocabulary};
use super::{DocKind, FieldPath, Meta, Record, required};
use crate::error::{Error, Result};
use crate::ids::BranchId;

vocabulary! {
    /// Where a branch sits in the organization.
    Level, "branch level" {
        /// 党委: a committee over general branches and branches.
        Committee = "committee",
        /// 党总支: a general branch over branches.
        GeneralBranch = "general_branch",
        /// 党支部: a branch, which has members and groups.
        Branch = "branch",
    }
}

vocabulary! {
    /// How often an activity kind must be held.
    Frequency, "frequency" {
        /// At least once each calendar month.
        Monthly = "monthly",
        /// At least once each calendar quarter.
        Quarterly = "quarterly",
        /// At least once each half year.
        HalfYearly = "half_yearly",
        /// At least once each calendar year.
        Yearly = "yearly",
    }
}

impl Frequency {
    /// Months in one period of this frequency.
    pub fn months(self) -> u32 {
        match self {
            Frequency::Monthly => 1,
            Frequency::Quarterly => 3,
            Frequency::HalfYearly => 6,
            Frequency::Yearly => 12,
        }
    }
}

/// The committee's term of office (换届): a reminder is due six months before `end`.
#[derive(Clone, Debug, PartialEq, Eq, Hydrate, Reconcile)]
pub struct Term {
    /// The day the current committee took office.
    pub start: Date,
    /// The day its term ends.
    pub end: Date,
}

/// One configured kind of activity.
#[derive(Clone, Debug, PartialEq, Eq, Hydrate, Reconcile)]
pub struct ActivityKindRule {
    /// The name people read, e.g. 支委会.
    pub name: String,
    /// How often it must be held, if it is required at all.
    #[autosurgeon(missing = "Default::default")]
    pub frequency: Option<Frequency>,
    /// Points a member earns by attending one.
    pub attendance_points: i64,
}

/// A bonus item of the points system (先锋岗积分), e.g. a major task.
#[derive(Clone, Debug, PartialEq, Eq, Hydrate, Reconcile)]
pub struct PointRule {
    /// What earns the points.
    pub description: String,
    /// How many points it is worth.
    pub points: i64,
}

/// One per branch: its name, hierarchy and configurable rules.
#[derive(Clone, Debug, PartialEq, Hydrate, Reconcile)]
pub struct BranchProfile {
    /// Document header.
    pub meta: Meta,
    /// The branch's name.
    pub name: String,
    /// Its level in the organization.
    pub level: Level,
    /// The committee or general branch above it.
    #[autosurgeon(missing = "Default::default")]
    pub parent: Option<BranchId>,
    /// Names of its groups (党小组).
    #[autosurgeon(missing = "Default::default")]
    pub groups: Vec<String>,
    /// The committee's current term.
    #[autosurgeon(missing = "Default::default")]
    pub term: Option<Term>,
    /// Activity kinds by stable code (e.g. `committee_meeting`).
    pub activity_kinds: BTreeMap<String, ActivityKindRule>,
    /// Bonus point items by stable code.
    #[autosurgeon(missing = "Default::default")]
    pub point_rules: BTreeMap<String, PointRule>,
    /// Monthly dues per member, in fen (0.01 yuan).
    #[autosurgeon(missing = "Default::default")]
    pub monthly_dues_fen: i64,
    /// Attendance rate (percent) below which a member counts as silent.
    pub silent_threshold_percent: u32,
}

impl Record for BranchProfile {
    const KIND: DocKind = DocKind::BranchProfile;
    // Only the header is read by path; everything else is the committee's (rules.rs).
    const PATHS: &'static [FieldPath] = &[];

    fn meta(&self) -> &Meta {
        &self.meta
    }
}

/// The usual activity kinds of a branch: 三会一课, theme days, service and training.
pub fn default_activity_kinds() -> BTreeMap<String, ActivityKindRule> {
    let rule = |name: &str, frequency, points| ActivityKindRule {
        name: name.to_owned(),
        frequency,
        attendance_points: points,
    };
    BTreeMap::from([
        (
            "branch_meeting".to_owned(),
            rule("支部党员大会", Some(Frequency::Quarterly), 3),
        ),
        (
            "committee_meeting".to_owned(),
            rule("支委会", Some(Frequency::Monthly), 2),
        ),
        (
            "group_meeting".to_owned(),
            rule("党小组会", Some(Frequency::Monthly), 2),
        ),
        (
            "lecture".to_owned(),
            rule("党课", Some(Frequency::Quarterly), 3),
        ),
        (
            "theme_day".to_owned(),
            rule("主题党日", Some(Frequency::Monthly), 2),
        ),
        ("volunteer".to_owned(), rule("志愿服务", None, 3)),
        ("training".to_owned(), rule("学习培训", None, 2)),
        ("joint".to_owned(), rule("联建共建活动", None, 3)),
    ])
}

impl BranchProfile {
    /// A new profile for a branch named `name`, with the usual activity kinds.
    pub fn new(
        branch: BranchId,
        name: &str,
        level: Level,
        parent: Option<BranchId>,
    ) -> Result<Self> {
        Ok(BranchProfile {
            meta: Meta::new(DocKind::BranchProfile, branch),
            name: required("name", name)?,
            level,
            parent,
            groups: Vec::new(),
            term: None,
            activity_kinds: default_activity_kinds(),
            point_rules: BTreeMap::new(),
            monthly_dues_fen: 0,
            silent_threshold_percent: 50,
        })
    }

    /// Sets the committee's term; the end must come after the start.
    pub fn set_term(&mut self, start: Date, end: Date) -> Result<()> {
        if end <= start {
            return Err(Error::invalid(
                "term (end must follow start)",
                format!("{start}..{end}"),
            ));
        }
        self.term = Some(Term { start, end });
        Ok(())
    }

    /// Adds a group (党小组) if it is not there yet.
    pub fn add_group(&mut self, name: &str) -> Result<()> {
        let name = required("group", name)?;
        if !self.groups.contains(&name) {
            self.groups.push(name);
        }
        Ok(())
    }

    /// Adds or replaces an activity kind.
    pub fn set_activity_kind(&mut self, code: &str, rule: ActivityKindRule) -> Result<()> {
        let code = required("activity kind code", code)?;
        required("activity kind name", &rule.name)?;
        self.activity_kinds.insert(code, rule);
        Ok(())
    }

    /// The rule for an activity kind, or [`Error::UnknownActivityKind`].
    pub fn activity_kind(&self, code: &str) -> Result<&ActivityKindRule> {
        self.activity_kinds
            .get(code)
            .ok_or_else(|| Error::UnknownActivityKind(code.to_owned()))
    }

    /// Sets the attendance rate (percent) below which a member counts as silent.
    pub fn set_silent_threshold(&mut self, percent: u32) -> Result<()> {
        if percent > 100 {
            return Err(Error::invalid("percentage", percent.to_string()));
        }
        self.silent_threshold_percent = percent;
        Ok(())
    }
}
