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

/// An item of the points system (先锋岗积分): a base item every member can earn
/// (a thought report on time) or a bonus item (a major task, a commendation).
#[derive(Clone, Debug, PartialEq, Eq, Hydrate, Reconcile)]
pub struct PointRule {
    /// What earns the points.
    pub description: String,
    /// How many points it is worth.
    pub points: i64,
    /// Whether it is a base item rather than a bonus item.
    #[autosurgeon(missing = "Default::default")]
    pub base: bool,
}

vocabulary! {
    /// A figure the higher committee rates its branches on (星级评定).
    Indicator, "rating indicator" {
        /// Required meeting kinds held as often as their frequency asks, in percent.
        MeetingCompliance = "meeting_compliance",
        /// Dues collected of dues owed, in percent.
        DuesCollection = "dues_collection",
        /// Petitions resolved by their deadline, of those resolved, in percent.
        PetitionsInTime = "petitions_in_time",
        /// Satisfied ratings (4 or 5), of ratings given, in percent.
        Satisfaction = "satisfaction",
        /// Whether the committee's term is current (100) or has run out (0).
        TermCurrent = "term_current",
    }
}

/// How one indicator counts in a star rating: its weight, and the value (in
/// percent) that earns the whole weight; below it the weight is earned in
/// proportion.
#[derive(Clone, Debug, PartialEq, Eq, Hydrate, Reconcile)]
pub struct IndicatorRule {
    /// Its share of the score.
    pub weight: u32,
    /// The value that earns the whole weight.
    pub target_percent: u32,
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
    /// The indicators this branch rates the branches below it on, by [`Indicator`]
    /// name; empty means [`default_rating`].
    #[autosurgeon(missing = "Default::default")]
    pub rating: BTreeMap<String, IndicatorRule>,
    /// The score (percent) each number of stars needs, keyed by the number ("1" to
    /// "5"); empty means [`DEFAULT_STARS`].
    #[autosurgeon(missing = "Default::default")]
    pub stars: BTreeMap<String, u32>,
}

/// The score (percent) one to five stars need when a branch sets none.
pub const DEFAULT_STARS: [u32; 5] = [20, 40, 60, 80, 95];

/// The indicators a branch rates on when it configures none: all five, equal.
pub fn default_rating() -> BTreeMap<String, IndicatorRule> {
    let rule = |target_percent| IndicatorRule {
        weight: 20,
        target_percent,
    };
    BTreeMap::from([
        (Indicator::MeetingCompliance.as_str().to_owned(), rule(100)),
        (Indicator::DuesCollection.as_str().to_owned(), rule(100)),
        (Indicator::PetitionsInTime.as_str().to_owned(), rule(90)),
        (Indicator::Satisfaction.as_str().to_owned(), rule(90)),
        (Indicator::TermCurrent.as_str().to_owned(), rule(100)),
    ])
}

/// The usual point items: a thought report on time, a major task, a commendation.
pub fn default_point_rules() -> BTreeMap<String, PointRule> {
    let rule = |description: &str, points, base| PointRule {
        description: description.to_owned(),
        points,
        base,
    };
    BTreeMap::from([
        (
            super::points::THOUGHT_REPORT_RULE.to_owned(),
            rule("按时提交思想汇报", 2, true),
        ),
        ("major_task".to_owned(), rule("完成急难险重任务", 5, false)),
        ("commendation".to_owned(), rule("获得表彰", 5, false)),
    ])
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
            point_rules: default_point_rules(),
            monthly_dues_fen: 0,
            silent_threshold_percent: 50,
            rating: BTreeMap::new(),
            stars: BTreeMap::new(),
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

    /// Adds or replaces a point item.
    pub fn set_point_rule(&mut self, code: &str, rule: PointRule) -> Result<()> {
        let code = required("point rule code", code)?;
        required("point rule description", &rule.description)?;
        if rule.points == 0 {
            return Err(Error::invalid("points", "0"));
        }
        self.point_rules.insert(code, rule);
        Ok(())
    }

    /// The point item `code`, or [`Error::UnknownPointRule`].
    pub fn point_rule(&self, code: &str) -> Result<&PointRule> {
        self.point_rules
            .get(code)
            .ok_or_else(|| Error::UnknownPointRule(code.to_owned()))
    }

    /// Sets how `indicator` counts in the rating of the branches below; a weight of
    /// 0 leaves it out.
    pub fn set_indicator(&mut self, indicator: Indicator, rule: IndicatorRule) -> Result<()> {
        if rule.target_percent == 0 || rule.target_percent > 100 {
            return Err(Error::invalid(
                "target percentage (1-100)",
                rule.target_percent.to_string(),
            ));
        }
        if self.rating.is_empty() {
            self.rating = default_rating();
        }
        self.rating.insert(indicator.as_str().to_owned(), rule);
        Ok(())
    }

    /// The indicators in force, with their rules (the defaults if none are set);
    /// names this build does not know are left out.
    pub fn rating_rules(&self) -> Vec<(Indicator, IndicatorRule)> {
        let rules = if self.rating.is_empty() {
            default_rating()
        } else {
            self.rating.clone()
        };
        rules
            .into_iter()
            .filter_map(|(name, rule)| Some((name.parse().ok()?, rule)))
            .filter(|(_, rule)| rule.weight > 0)
            .collect()
    }

    /// Sets the score (percent) one to five stars need; they must rise.
    pub fn set_stars(&mut self, thresholds: [u32; 5]) -> Result<()> {
        if thresholds.windows(2).any(|w| w[0] >= w[1]) || thresholds[4] > 100 {
            return Err(Error::invalid(
                "star thresholds (rising, at most 100)",
                format!("{thresholds:?}"),
            ));
        }
        self.stars = (1..=5)
            .map(|n: usize| (n.to_string(), thresholds[n - 1]))
            .collect();
        Ok(())
    }

    /// The score (percent) one to five stars need.
    pub fn star_thresholds(&self) -> [u32; 5] {
        let mut out = DEFAULT_STARS;
        for (n, slot) in out.iter_mut().enumerate() {
            if let Some(t) = self.stars.get(&(n + 1).to_string()) {
                *slot = *t;
            }
        }
        out
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
