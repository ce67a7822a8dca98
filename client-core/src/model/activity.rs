//! `Activity`: one per meeting, lecture, theme day, service or joint activity.
//!
//! Sign-ins and leave requests are maps keyed by member id. A member signing in on
//! their phone while the secretary signs them in on site meet at the same key: they
//! never count twice, and a sign-in never vanishes in a merge. Agenda and minutes are
//! automerge text, so two people editing the minutes offline both keep their words.
//! Bonus points are counters: two committee members awarding points concurrently add
//! up. Attendance points are not stored at all; they follow from the sign-ins and the
//! branch's rule, so they cannot drift from them.
//!
//! The start and end are two registers that every edit writes together, start
//! first, in one change ([`crate::model::Record::WRITTEN_TOGETHER`]): an edit that
//! moves only the start writes the end again too. Two people rescheduling the same
//! activity offline therefore merge into one of their two schedules, whole (automerge
//! keeps the same writer's value on both keys), never one's start with the other's
//! end, so a merge cannot make an activity end before it starts. The device shows
//! the other schedule as a conflict on both keys; settling either key keeps the
//! other as the same edit left it.

use std::collections::BTreeMap;

use autosurgeon::{Counter, Hydrate, Reconcile, Text};

use super::points::Award;
use super::scalar::{LocalDateTime, Timestamp, vocabulary};
use super::{DocKind, FieldPath, Meta, Record, optional, required};
use crate::error::{Error, Result};
use crate::ids::{BranchId, EntryId, MemberId};

vocabulary! {
    /// Whether sign-ins are still being taken.
    ActivityStatus, "activity status" {
        /// Planned or under way.
        Open = "open",
        /// Finished: attendance and minutes are final.
        Closed = "closed",
    }
}

vocabulary! {
    /// Where a member signed in from.
    SignInMode, "sign-in mode" {
        /// At the venue.
        OnSite = "on_site",
        /// From elsewhere, e.g. a 云党日 online session.
        Remote = "remote",
    }
}

/// One member's sign-in.
#[derive(Clone, Debug, PartialEq, Eq, Hydrate, Reconcile)]
pub struct SignIn {
    /// When they signed in.
    pub at: Timestamp,
    /// On site or remote.
    pub mode: SignInMode,
}

/// One member's request for leave.
#[derive(Clone, Debug, PartialEq, Eq, Hydrate, Reconcile)]
pub struct Leave {
    /// When they asked.
    pub at: Timestamp,
    /// Why they cannot attend.
    pub reason: String,
}

/// What is needed to plan an activity.
#[derive(Clone, Debug, Default)]
pub struct NewActivity {
    /// Activity kind code, one of the branch profile's kinds.
    pub kind: String,
    /// Title.
    pub title: String,
    /// Start, branch wall-clock time.
    pub starts_at: Option<LocalDateTime>,
    /// End, branch wall-clock time.
    pub ends_at: Option<LocalDateTime>,
    /// Venue.
    pub place: Option<String>,
    /// The member organizing it.
    pub organizer: Option<MemberId>,
    /// For a group meeting: the group expected to attend.
    pub group: Option<String>,
    /// Agenda.
    pub agenda: Option<String>,
}

/// One activity of a branch, possibly shared with partner branches.
#[derive(Clone, Debug, Hydrate, Reconcile)]
pub struct Activity {
    /// Document header.
    pub meta: Meta,
    /// Activity kind code (see the branch profile).
    pub kind: String,
    /// Title.
    pub title: String,
    /// Start.
    pub starts_at: LocalDateTime,
    /// End.
    pub ends_at: LocalDateTime,
    /// Venue.
    #[autosurgeon(missing = "Default::default")]
    pub place: Option<String>,
    /// Organizing member.
    #[autosurgeon(missing = "Default::default")]
    pub organizer: Option<MemberId>,
    /// The group expected to attend, for a group meeting.
    #[autosurgeon(missing = "Default::default")]
    pub group: Option<String>,
    /// Agenda, edited together.
    pub agenda: Text,
    /// Minutes, edited together.
    pub minutes: Text,
    /// Open or closed.
    pub status: ActivityStatus,
    /// Sign-ins keyed by member id.
    pub sign_ins: BTreeMap<String, SignIn>,
    /// Leave requests keyed by member id.
    pub leaves: BTreeMap<String, Leave>,
    /// Bonus points awarded by builds before awards were entries, keyed by member
    /// id; read, never written (see [`Activity::awards`]).
    #[autosurgeon(missing = "Default::default")]
    pub bonus_points: BTreeMap<String, Counter>,
    /// Bonus points awarded at this activity, keyed by entry id: each award is an
    /// entry, so awards made on two devices add up.
    #[autosurgeon(missing = "Default::default")]
    pub awards: BTreeMap<String, Award>,
    /// Partner branches this joint activity is shared with (a set: the value is `true`).
    #[autosurgeon(missing = "Default::default")]
    pub shared_with: BTreeMap<String, bool>,
}

/// Where the fields the server rules on live in an activity's document.
pub mod paths {
    use super::FieldPath;

    /// [`super::Activity::organizer`].
    pub const ORGANIZER: FieldPath = FieldPath::new(&["organizer"]);
    /// [`super::Activity::sign_ins`], keyed by member id.
    pub const SIGN_INS: FieldPath = FieldPath::new(&["sign_ins"]);
    /// [`super::Activity::leaves`], keyed by member id.
    pub const LEAVES: FieldPath = FieldPath::new(&["leaves"]);
    /// [`super::Activity::shared_with`], keyed by partner branch id.
    pub const SHARED_WITH: FieldPath = FieldPath::new(&["shared_with"]);
    /// [`super::Activity::starts_at`].
    pub const STARTS_AT: FieldPath = FieldPath::new(&["starts_at"]);
    /// [`super::Activity::ends_at`].
    pub const ENDS_AT: FieldPath = FieldPath::new(&["ends_at"]);
    /// The schedule, start first: every edit writes both or neither.
    pub const SCHEDULE: &[FieldPath] = &[STARTS_AT, ENDS_AT];
}

impl Record for Activity {
    const KIND: DocKind = DocKind::Activity;
    const PATHS: &'static [FieldPath] = &[
        paths::ORGANIZER,
        paths::SIGN_INS,
        paths::LEAVES,
        paths::SHARED_WITH,
        paths::STARTS_AT,
        paths::ENDS_AT,
    ];
    const WRITTEN_TOGETHER: &'static [FieldPath] = paths::SCHEDULE;

    fn meta(&self) -> &Meta {
        &self.meta
    }
}

fn check_times(starts_at: LocalDateTime, ends_at: LocalDateTime) -> Result<()> {
    if ends_at <= starts_at {
        Err(Error::EndBeforeStart)
    } else {
        Ok(())
    }
}

impl Activity {
    /// Plans an activity of `branch`. The kind must already be checked against the
    /// branch profile by the caller (the store does).
    pub fn new(branch: BranchId, new: NewActivity) -> Result<Self> {
        let kind = required("kind", &new.kind)?;
        let title = required("title", &new.title)?;
        let starts_at = new.starts_at.ok_or(Error::EmptyField { field: "start" })?;
        let ends_at = new.ends_at.ok_or(Error::EmptyField { field: "end" })?;
        check_times(starts_at, ends_at)?;
        Ok(Activity {
            meta: Meta::new(DocKind::Activity, branch),
            kind,
            title,
            starts_at,
            ends_at,
            place: optional(new.place.as_deref()),
            organizer: new.organizer,
            group: optional(new.group.as_deref()),
            agenda: Text::with_value(new.agenda.unwrap_or_default()),
            minutes: Text::with_value(""),
            status: ActivityStatus::Open,
            sign_ins: BTreeMap::new(),
            leaves: BTreeMap::new(),
            bonus_points: BTreeMap::new(),
            awards: BTreeMap::new(),
            shared_with: BTreeMap::new(),
        })
    }

    fn ensure_open(&self) -> Result<()> {
        match self.status {
            ActivityStatus::Open => Ok(()),
            ActivityStatus::Closed => Err(Error::ActivityClosed),
        }
    }

    /// Whether `member` signed in.
    pub fn signed_in(&self, member: MemberId) -> bool {
        self.sign_ins.contains_key(&member.to_string())
    }

    /// Moves the activity to a new time.
    pub fn reschedule(&mut self, starts_at: LocalDateTime, ends_at: LocalDateTime) -> Result<()> {
        self.ensure_open()?;
        check_times(starts_at, ends_at)?;
        self.starts_at = starts_at;
        self.ends_at = ends_at;
        Ok(())
    }

    /// Signs `member` in. A pending leave request of theirs is withdrawn: they came.
    pub fn sign_in(&mut self, member: MemberId, at: Timestamp, mode: SignInMode) -> Result<()> {
        self.ensure_open()?;
        let key = member.to_string();
        if self.sign_ins.contains_key(&key) {
            return Err(Error::AlreadySignedIn(member));
        }
        self.leaves.remove(&key);
        self.sign_ins.insert(key, SignIn { at, mode });
        Ok(())
    }

    /// Records that `member` asks for leave.
    pub fn request_leave(&mut self, member: MemberId, reason: &str, at: Timestamp) -> Result<()> {
        self.ensure_open()?;
        let key = member.to_string();
        if self.sign_ins.contains_key(&key) {
            return Err(Error::AlreadySignedIn(member));
        }
        if self.leaves.contains_key(&key) {
            return Err(Error::AlreadyOnLeave(member));
        }
        let reason = required("reason", reason)?;
        self.leaves.insert(key, Leave { at, reason });
        Ok(())
    }

    /// Replaces the agenda; only the characters that differ are edited.
    pub fn set_agenda(&mut self, agenda: &str) -> Result<()> {
        self.ensure_open()?;
        self.agenda.update(agenda);
        Ok(())
    }

    /// Replaces the minutes; only the characters that differ are edited, so edits
    /// made elsewhere to other parts of the minutes survive the merge.
    pub fn write_minutes(&mut self, minutes: &str) -> Result<()> {
        self.ensure_open()?;
        self.minutes.update(minutes);
        Ok(())
    }

    /// Awards `points` bonus points (negative to deduct) to `member`.
    pub fn award_points(&mut self, member: MemberId, points: i64) -> Result<()> {
        self.award_points_as(EntryId::random(), member, points)
    }

    /// [`Activity::award_points`] as the entry `id` (a generator chooses ids
    /// reproducibly; everyone else takes a random one).
    pub fn award_points_as(&mut self, id: EntryId, member: MemberId, points: i64) -> Result<()> {
        if points == 0 {
            return Err(Error::invalid("points", "0"));
        }
        self.awards.insert(
            id.to_string(),
            Award {
                member,
                points,
                rule: None,
                reason: Some(self.title.clone()),
                on: self.starts_at.date(),
            },
        );
        Ok(())
    }

    /// Bonus points awarded to `member` so far.
    pub fn bonus_points_of(&self, member: MemberId) -> i64 {
        let legacy = self
            .bonus_points
            .get(&member.to_string())
            .map_or(0, Counter::value);
        legacy
            + self
                .awards
                .values()
                .filter(|a| a.member == member)
                .map(|a| a.points)
                .sum::<i64>()
    }

    /// Shares this joint activity with a partner branch.
    pub fn share_with(&mut self, branch: BranchId) -> Result<()> {
        if branch == self.meta.branch {
            return Err(Error::invalid(
                "partner branch (it owns the activity)",
                branch.to_string(),
            ));
        }
        self.shared_with.insert(branch.to_string(), true);
        Ok(())
    }

    /// Closes the activity: attendance and minutes become final.
    pub fn close(&mut self) -> Result<()> {
        self.ensure_open()?;
        self.status = ActivityStatus::Closed;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use automerge::{ActorId, AutoCommit, ROOT, ReadDoc};
    use proptest::prelude::*;

    use super::*;
    use crate::model;

    fn activity() -> Activity {
        Activity::new(
            BranchId::random(),
            NewActivity {
                kind: "theme_day".into(),
                title: "主题党日".into(),
                starts_at: "2025-03-01T09:00".parse().ok(),
                ends_at: "2025-03-01T11:00".parse().ok(),
                ..Default::default()
            },
        )
        .unwrap()
    }

    #[test]
    fn every_declared_path_is_in_the_document() {
        super::super::assert_declared_paths_exist(&activity());
        let mut a = activity();
        let m = MemberId::random();
        a.sign_in(m, Timestamp(1), SignInMode::OnSite).unwrap();
        a.request_leave(MemberId::random(), "出差", Timestamp(2))
            .unwrap();
        a.share_with(BranchId::random()).unwrap();
        super::super::assert_declared_paths_exist(&a);
    }

    #[test]
    fn sign_in_once_and_leave_rules() {
        let mut a = activity();
        let m = MemberId::random();
        a.request_leave(m, "出差", Timestamp(1)).unwrap();
        assert_eq!(
            a.request_leave(m, "出差", Timestamp(2)).unwrap_err().code(),
            "activity.already_on_leave"
        );
        a.sign_in(m, Timestamp(3), SignInMode::OnSite).unwrap();
        assert!(a.leaves.is_empty(), "coming in withdraws the leave request");
        assert_eq!(
            a.sign_in(m, Timestamp(4), SignInMode::Remote)
                .unwrap_err()
                .code(),
            "activity.already_signed_in"
        );
        assert_eq!(
            a.request_leave(m, "x", Timestamp(5)).unwrap_err().code(),
            "activity.already_signed_in"
        );
        a.close().unwrap();
        let late = a.sign_in(MemberId::random(), Timestamp(6), SignInMode::OnSite);
        assert_eq!(late.unwrap_err().code(), "activity.closed");
        assert_eq!(a.write_minutes("x").unwrap_err().code(), "activity.closed");
    }

    #[test]
    fn end_before_start_is_refused() {
        let err = Activity::new(
            BranchId::random(),
            NewActivity {
                kind: "lecture".into(),
                title: "党课".into(),
                starts_at: "2025-03-01T11:00".parse().ok(),
                ends_at: "2025-03-01T09:00".parse().ok(),
                ..Default::default()
            },
        )
        .unwrap_err();
        assert_eq!(err.code(), "activity.end_before_start");
        let mut a = activity();
        let err = a
            .reschedule(
                "2025-03-02T10:00".parse().unwrap(),
                "2025-03-02T10:00".parse().unwrap(),
            )
            .unwrap_err();
        assert_eq!(err.code(), "activity.end_before_start");
    }

    #[test]
    fn points_add_up() {
        let mut a = activity();
        let m = MemberId::random();
        a.award_points(m, 3).unwrap();
        a.award_points(m, 2).unwrap();
        assert_eq!(a.bonus_points_of(m), 5);
        assert_eq!(a.award_points(m, 0).unwrap_err().code(), "input.invalid");
    }

    /// One step of the concurrent-reschedule property: a device moves the activity,
    /// or one device receives everything another holds.
    #[derive(Clone, Debug)]
    enum Step {
        /// Device `0` reschedules to start and end at these hours (refused, and
        /// so writing nothing, unless the end is after the start).
        Reschedule(usize, u32, u32),
        /// Device `1` merges what device `0` holds.
        Sync(usize, usize),
        /// Device `0` settles a conflict on the start (or, if `1`, the end) by
        /// keeping value number `2` (modulo how many there are), if there is one.
        Settle(usize, bool, usize),
    }

    fn step(devices: usize) -> impl Strategy<Value = Step> {
        // Few hours, overlapping ranges: many edits move only the start or only
        // the end, the case a plain reconcile writes one key for.
        prop_oneof![
            3 => (0..devices, 8u32..12, 10u32..14).prop_map(|(d, s, e)| Step::Reschedule(d, s, e)),
            1 => (0..devices, 0..devices).prop_map(|(a, b)| Step::Sync(a, b)),
            1 => (0..devices, any::<bool>(), 0usize..3).prop_map(|(d, end, k)| Step::Settle(d, end, k)),
        ]
    }

    fn hour(h: u32) -> LocalDateTime {
        format!("2025-03-01T{h:02}:00").parse().unwrap()
    }

    /// The schedule in `doc` and whether the values of both keys were written
    /// by one change.
    fn schedule(doc: &AutoCommit) -> ((LocalDateTime, LocalDateTime), bool) {
        let a: Activity = model::hydrate(doc).unwrap();
        let (_, start_op) = doc.get(&ROOT, "starts_at").unwrap().unwrap();
        let (_, end_op) = doc.get(&ROOT, "ends_at").unwrap().unwrap();
        let one_change = doc.hash_for_opid(&start_op) == doc.hash_for_opid(&end_op);
        ((a.starts_at, a.ends_at), one_change)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// Two or three devices reschedule one activity offline, sometimes
        /// syncing and settling conflicts in between; once everything is merged, every device shows
        /// a schedule that one edit wrote whole, with both keys from one change,
        /// ending after it starts.
        #[test]
        fn concurrent_reschedules_merge_into_one_writers_schedule(
            (devices, steps) in (2usize..=3).prop_flat_map(|n| {
                (Just(n), proptest::collection::vec(step(n), 1..24))
            }),
        ) {
            let original = activity();
            let mut docs: Vec<AutoCommit> = Vec::new();
            let mut created = model::create_document(&original, ActorId::random()).unwrap();
            created.commit();
            for _ in 0..devices {
                let mut doc = created.clone();
                doc.set_actor(ActorId::random());
                docs.push(doc);
            }
            let mut written = vec![(original.starts_at, original.ends_at)];
            for step in &steps {
                match *step {
                    Step::Reschedule(d, s, e) => {
                        // Committed at once, as the store does, so a copy merged
                        // elsewhere holds the same change.
                        if model::edit(&mut docs[d], |a: &mut Activity| a.reschedule(hour(s), hour(e))).is_ok() {
                            docs[d].commit();
                            written.push((hour(s), hour(e)));
                        }
                    }
                    Step::Sync(from, to) if from != to => {
                        let mut source = docs[from].clone();
                        docs[to].merge(&mut source).unwrap();
                    }
                    Step::Sync(..) => {}
                    Step::Settle(d, end, keep) => {
                        let key = if end { "ends_at" } else { "starts_at" };
                        let values = docs[d].get_all(&ROOT, key).unwrap().len();
                        if values > 1 {
                            // Keeps a schedule some edit wrote: nothing new.
                            if crate::conflict::settle_activity(&mut docs[d], key, keep % values).is_ok() {
                                docs[d].commit();
                            } else {
                                docs[d].rollback();
                            }
                        }
                    }
                }
            }
            let mut merged = docs[0].clone();
            for doc in &mut docs[1..] {
                merged.merge(doc).unwrap();
            }
            let ((starts, ends), one_change) = schedule(&merged);
            prop_assert!(ends > starts, "merged into {starts} to {ends}");
            prop_assert!(written.contains(&(starts, ends)), "{starts} to {ends} was never written by one edit");
            prop_assert!(one_change, "start and end come from different changes");
            for doc in &mut docs {
                doc.merge(&mut merged.clone()).unwrap();
                prop_assert_eq!(schedule(doc).0, (starts, ends));
            }
        }
    }

    #[test]
    fn moving_only_the_start_writes_the_end_again() {
        let mut doc = model::create_document(&activity(), ActorId::random()).unwrap();
        let (_, end_before) = doc.get(&ROOT, "ends_at").unwrap().unwrap();
        model::edit(&mut doc, |a: &mut Activity| {
            a.reschedule(hour(10), hour(11))
        })
        .unwrap();
        let (_, start_op) = doc.get(&ROOT, "starts_at").unwrap().unwrap();
        let (_, end_op) = doc.get(&ROOT, "ends_at").unwrap().unwrap();
        assert_ne!(end_op, end_before, "the unchanged end was written again");
        assert_eq!(doc.hash_for_opid(&start_op), doc.hash_for_opid(&end_op));
        // An edit that leaves the schedule alone writes neither key.
        model::edit(&mut doc, |a: &mut Activity| a.set_agenda("学习")).unwrap();
        let (_, still) = doc.get(&ROOT, "ends_at").unwrap().unwrap();
        assert_eq!(still, end_op);
    }
}
