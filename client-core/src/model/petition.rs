//! `Petition`: one per request a resident or member brings to the branch (民情直通车).
//!
//! The life of a petition: submitted → assigned an owner and a deadline → progress
//! notes → resolved → rated by the submitter; an unsatisfied submitter can have it
//! reopened. Progress notes are an append-only list, so notes written on two phones
//! offline both appear. The description is automerge text. The submitter's contact
//! is private: it lives only in this document, never in the published ledger.

use autosurgeon::{Hydrate, Reconcile, Text};

use super::scalar::{Date, Timestamp, vocabulary};
use super::{DocKind, FieldPath, Meta, Record, optional, required};
use crate::error::{Error, Result};
use crate::ids::{BranchId, MemberId};

vocabulary! {
    /// Where a petition stands.
    PetitionStatus, "petition status" {
        /// Submitted, nobody owns it yet.
        Open = "open",
        /// An owner works on it.
        Assigned = "assigned",
        /// Resolved; the submitter may rate it.
        Resolved = "resolved",
    }
}

vocabulary! {
    /// What a progress entry records.
    ProgressKind, "progress kind" {
        /// A note on work done.
        Note = "note",
        /// The petition was reopened; the text says why.
        Reopened = "reopened",
    }
}

/// Who brought the petition, and how to reach them (private).
#[derive(Clone, Debug, PartialEq, Eq, Default, Hydrate, Reconcile)]
pub struct Submitter {
    /// Their name, if they gave it.
    #[autosurgeon(missing = "Default::default")]
    pub name: Option<String>,
    /// Phone or other contact, if they gave it. Private.
    #[autosurgeon(missing = "Default::default")]
    pub contact: Option<String>,
    /// The member who submitted it, when a member did.
    #[autosurgeon(missing = "Default::default")]
    pub member: Option<MemberId>,
}

/// One entry of the progress log.
#[derive(Clone, Debug, PartialEq, Eq, Hydrate, Reconcile)]
pub struct ProgressNote {
    /// When it was written.
    pub at: Timestamp,
    /// Who wrote it.
    #[autosurgeon(missing = "Default::default")]
    pub author: Option<MemberId>,
    /// Note or reopening.
    pub kind: ProgressKind,
    /// What happened.
    pub text: String,
}

/// How the petition was resolved.
#[derive(Clone, Debug, PartialEq, Eq, Hydrate, Reconcile)]
pub struct Resolution {
    /// When.
    pub at: Timestamp,
    /// By whom.
    #[autosurgeon(missing = "Default::default")]
    pub by: Option<MemberId>,
    /// What was done.
    pub summary: String,
}

/// The submitter's satisfaction rating of the resolution.
#[derive(Clone, Debug, PartialEq, Eq, Hydrate, Reconcile)]
pub struct Rating {
    /// 1 (very unsatisfied) to 5 (very satisfied).
    pub score: u8,
    /// A comment, if any.
    #[autosurgeon(missing = "Default::default")]
    pub comment: Option<String>,
    /// When it was given.
    pub at: Timestamp,
}

/// What is needed to submit a petition.
#[derive(Clone, Debug, Default)]
pub struct NewPetition {
    /// Category, e.g. 环境卫生, 道路交通.
    pub category: String,
    /// Short title.
    pub title: String,
    /// Full description.
    pub description: String,
    /// Where the problem is.
    pub location: Option<String>,
    /// Who submits it.
    pub submitter: Submitter,
}

/// One request and its handling.
#[derive(Clone, Debug, Hydrate, Reconcile)]
pub struct Petition {
    /// Document header.
    pub meta: Meta,
    /// Category.
    pub category: String,
    /// Title.
    pub title: String,
    /// Description, edited together.
    pub description: Text,
    /// Location.
    #[autosurgeon(missing = "Default::default")]
    pub location: Option<String>,
    /// Submitter and private contact.
    pub submitter: Submitter,
    /// When it was submitted.
    pub submitted_at: Timestamp,
    /// Where it stands.
    pub status: PetitionStatus,
    /// The member responsible.
    #[autosurgeon(missing = "Default::default")]
    pub owner: Option<MemberId>,
    /// The day it must be resolved by (时限).
    #[autosurgeon(missing = "Default::default")]
    pub deadline: Option<Date>,
    /// Progress log.
    pub progress: Vec<ProgressNote>,
    /// The resolution, once resolved.
    #[autosurgeon(missing = "Default::default")]
    pub resolution: Option<Resolution>,
    /// The submitter's rating, once rated.
    #[autosurgeon(missing = "Default::default")]
    pub rating: Option<Rating>,
}

/// Where the fields the server rules on live in a petition's document.
pub mod paths {
    use super::FieldPath;

    /// [`super::Petition::status`].
    pub const STATUS: FieldPath = FieldPath::new(&["status"]);
    /// [`super::Petition::owner`].
    pub const OWNER: FieldPath = FieldPath::new(&["owner"]);
    /// [`super::Petition::submitter`].
    pub const SUBMITTER: FieldPath = FieldPath::new(&["submitter"]);
    /// [`super::Submitter::member`] of the petition's submitter.
    pub const SUBMITTER_MEMBER: FieldPath = FieldPath::new(&["submitter", "member"]);
    /// [`super::Petition::progress`].
    pub const PROGRESS: FieldPath = FieldPath::new(&["progress"]);
    /// [`super::Petition::resolution`].
    pub const RESOLUTION: FieldPath = FieldPath::new(&["resolution"]);
    /// [`super::Petition::rating`].
    pub const RATING: FieldPath = FieldPath::new(&["rating"]);
}

impl Record for Petition {
    const KIND: DocKind = DocKind::Petition;
    const PATHS: &'static [FieldPath] = &[
        paths::STATUS,
        paths::OWNER,
        paths::SUBMITTER,
        paths::SUBMITTER_MEMBER,
        paths::PROGRESS,
        paths::RESOLUTION,
        paths::RATING,
    ];

    fn meta(&self) -> &Meta {
        &self.meta
    }
}

impl Petition {
    /// Records a new petition to `branch`, submitted at `at`.
    pub fn submit(branch: BranchId, new: NewPetition, at: Timestamp) -> Result<Self> {
        Ok(Petition {
            meta: Meta::new(DocKind::Petition, branch),
            category: required("category", &new.category)?,
            title: required("title", &new.title)?,
            description: Text::with_value(new.description.trim()),
            location: optional(new.location.as_deref()),
            submitter: Submitter {
                name: optional(new.submitter.name.as_deref()),
                contact: optional(new.submitter.contact.as_deref()),
                member: new.submitter.member,
            },
            submitted_at: at,
            status: PetitionStatus::Open,
            owner: None,
            deadline: None,
            progress: Vec::new(),
            resolution: None,
            rating: None,
        })
    }

    fn ensure_unresolved(&self) -> Result<()> {
        if self.status == PetitionStatus::Resolved {
            Err(Error::PetitionAlreadyResolved)
        } else {
            Ok(())
        }
    }

    /// Gives the petition an owner and a deadline (or changes them).
    pub fn assign(&mut self, owner: MemberId, deadline: Date) -> Result<()> {
        self.ensure_unresolved()?;
        if deadline < self.submitted_at.utc_date() {
            return Err(Error::DeadlineBeforeSubmission);
        }
        self.owner = Some(owner);
        self.deadline = Some(deadline);
        self.status = PetitionStatus::Assigned;
        Ok(())
    }

    /// Adds a progress note; the petition must have an owner.
    pub fn add_progress(
        &mut self,
        author: Option<MemberId>,
        text: &str,
        at: Timestamp,
    ) -> Result<()> {
        self.ensure_unresolved()?;
        if self.owner.is_none() {
            return Err(Error::PetitionNoOwner);
        }
        self.progress.push(ProgressNote {
            at,
            author,
            kind: ProgressKind::Note,
            text: required("progress note", text)?,
        });
        Ok(())
    }

    /// Resolves the petition; it must have an owner.
    pub fn resolve(&mut self, by: Option<MemberId>, summary: &str, at: Timestamp) -> Result<()> {
        self.ensure_unresolved()?;
        if self.owner.is_none() {
            return Err(Error::PetitionNoOwner);
        }
        self.resolution = Some(Resolution {
            at,
            by,
            summary: required("resolution", summary)?,
        });
        self.status = PetitionStatus::Resolved;
        Ok(())
    }

    /// Records the submitter's rating of the resolution, once.
    pub fn rate(&mut self, score: u8, comment: Option<&str>, at: Timestamp) -> Result<()> {
        if self.status != PetitionStatus::Resolved {
            return Err(Error::PetitionNotResolved);
        }
        if !(1..=5).contains(&score) {
            return Err(Error::RatingOutOfRange(score));
        }
        if self.rating.is_some() {
            return Err(Error::PetitionAlreadyRated);
        }
        self.rating = Some(Rating {
            score,
            comment: optional(comment),
            at,
        });
        Ok(())
    }

    /// Reopens a resolved petition: the resolution and rating are cleared (the log
    /// keeps why), and the owner works on it again.
    pub fn reopen(&mut self, author: Option<MemberId>, reason: &str, at: Timestamp) -> Result<()> {
        if self.status != PetitionStatus::Resolved {
            return Err(Error::PetitionNotResolved);
        }
        let reason = required("reason", reason)?;
        self.progress.push(ProgressNote {
            at,
            author,
            kind: ProgressKind::Reopened,
            text: reason,
        });
        self.resolution = None;
        self.rating = None;
        self.status = PetitionStatus::Assigned;
        Ok(())
    }

    /// Whether the deadline has passed on `today` without a resolution.
    pub fn is_overdue(&self, today: Date) -> bool {
        self.status != PetitionStatus::Resolved && self.deadline.is_some_and(|d| d < today)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i64 = 86_400_000;

    fn petition() -> Petition {
        Petition::submit(
            BranchId::random(),
            NewPetition {
                category: "环境卫生".into(),
                title: "楼道堆放杂物".into(),
                description: "三单元楼道堆满杂物，存在消防隐患。".into(),
                ..Default::default()
            },
            Timestamp(1_735_689_600_000), // 2025-01-01
        )
        .unwrap()
    }

    #[test]
    fn every_declared_path_is_in_the_document() {
        super::super::assert_declared_paths_exist(&petition());
        let mut p = petition();
        let owner = MemberId::random();
        p.submitter.member = Some(MemberId::random());
        p.assign(owner, Date::ymd(2025, 1, 10).unwrap()).unwrap();
        p.add_progress(Some(owner), "已联系物业", Timestamp(1_735_689_600_001))
            .unwrap();
        p.resolve(Some(owner), "杂物已清理", Timestamp(1_735_689_600_002))
            .unwrap();
        p.rate(5, None, Timestamp(1_735_689_600_003)).unwrap();
        super::super::assert_declared_paths_exist(&p);
    }

    #[test]
    fn the_whole_life_of_a_petition() {
        let mut p = petition();
        let owner = MemberId::random();
        assert_eq!(
            p.resolve(None, "done", Timestamp(0)).unwrap_err().code(),
            "petition.no_owner"
        );
        assert_eq!(
            p.add_progress(None, "x", Timestamp(0)).unwrap_err().code(),
            "petition.no_owner"
        );
        assert_eq!(
            p.rate(5, None, Timestamp(0)).unwrap_err().code(),
            "petition.not_resolved"
        );
        let before = Date::ymd(2024, 12, 31).unwrap();
        assert_eq!(
            p.assign(owner, before).unwrap_err().code(),
            "petition.deadline_before_submission"
        );
        p.assign(owner, Date::ymd(2025, 1, 10).unwrap()).unwrap();
        p.add_progress(
            Some(owner),
            "已联系物业",
            Timestamp(1_735_689_600_000 + DAY),
        )
        .unwrap();
        assert!(p.is_overdue(Date::ymd(2025, 1, 11).unwrap()));
        p.resolve(
            Some(owner),
            "杂物已清理",
            Timestamp(1_735_689_600_000 + 2 * DAY),
        )
        .unwrap();
        assert!(!p.is_overdue(Date::ymd(2025, 1, 11).unwrap()));
        assert_eq!(
            p.resolve(None, "again", Timestamp(0)).unwrap_err().code(),
            "petition.already_resolved"
        );
        assert_eq!(
            p.rate(6, None, Timestamp(0)).unwrap_err().code(),
            "petition.rating_out_of_range"
        );
        p.rate(4, Some("满意"), Timestamp(0)).unwrap();
        assert_eq!(
            p.rate(5, None, Timestamp(0)).unwrap_err().code(),
            "petition.already_rated"
        );
        p.reopen(None, "又堆起来了", Timestamp(0)).unwrap();
        assert_eq!(p.status, PetitionStatus::Assigned);
        assert!(p.rating.is_none() && p.resolution.is_none());
        assert_eq!(
            p.reopen(None, "x", Timestamp(0)).unwrap_err().code(),
            "petition.not_resolved"
        );
    }
}
