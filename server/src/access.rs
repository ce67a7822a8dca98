//! Who may read and write which document: the access table of the sync design,
//! as pure functions with no I/O, so the whole matrix is tested here.
//!
//! A device holds one [`Role`] in one branch and, except residents, belongs
//! to one member. A document's [`DocAttributes`] come from its content (kind,
//! owning branch, partner branches, the members it concerns) plus the device
//! that created it on the server. "Committee" means secretary or committee
//! member.
//!
//! | kind | read | write |
//! |---|---|---|
//! | branch profile | S, C, M of its branch | committee of its branch |
//! | roster | S, C, M of its branch | committee of its branch |
//! | feedback box | S, C, M of its branch | committee of its branch |
//! | member file | committee of its branch; the member it describes | committee of its branch |
//! | activity | S, C, M of its branch or of a branch in `shared_with` | same as read |
//! | petition | committee of its branch; its owner; its submitter | same as read |
//! | dues ledger | S, C, M of its branch | committee of its branch |
//! | points book | S, C, M of its branch | committee of its branch |
//! | applicant | committee of its branch; the member it describes | committee of its branch |
//! | library entry | S, C, M of its branch, of a branch in `shared_with`, and, when `shared_down`, of every branch below its own | committee of its branch |
//!
//! S and C of an ancestor branch (general branch, committee) may read, not
//! write, the profile, roster, activities, petitions, dues ledgers and
//! points books of descendant branches: the higher committee's reports
//! count meetings, petitions, dues and points. Applicant files are not
//! overseen (they are confidential), nor are library entries (a branch
//! shares those down on purpose, or not at all). A petition's submitter
//! includes the device that created it: that is how a resident, who has
//! no member id, keeps seeing their own request. Kinds this build does not
//! know are for the committee of their branch only.

use branchline_core::model::DocKind;
use branchline_protocol::{BranchId, DeviceId, MemberId, Role};

/// The device asking, as established at Hello.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The device.
    pub device: DeviceId,
    /// Its role in its branch.
    pub role: Role,
    /// Its branch.
    pub branch: BranchId,
    /// The member it belongs to (none for residents).
    pub member: Option<MemberId>,
}

impl Principal {
    /// Secretary or committee member.
    pub fn is_committee(&self) -> bool {
        matches!(self.role, Role::Secretary | Role::Committee)
    }

    /// Secretary, committee member or member: everyone but residents.
    fn is_member_or_above(&self) -> bool {
        !matches!(self.role, Role::Resident)
    }
}

/// The document kinds the access table distinguishes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DocClass {
    /// `branch_profile`.
    BranchProfile,
    /// `roster`.
    Roster,
    /// `member_file`.
    MemberFile,
    /// `activity`.
    Activity,
    /// `petition`.
    Petition,
    /// `feedback_box`: one per branch, suggestions and published answers.
    FeedbackBox,
    /// `feedback_drafts`: one per branch, answers not yet published; the
    /// committee's only.
    FeedbackDrafts,
    /// `dues_ledger`: one per branch and year, the public dues ledger.
    DuesLedger,
    /// `points_book`: one per branch and year, awards and thought reports.
    PointsBook,
    /// `applicant`: one per person on the way to membership; confidential.
    Applicant,
    /// `library_entry`: an entry of the problem library or the case
    /// collection, shared across branches.
    LibraryEntry,
    /// A kind this build does not know (written by a newer client).
    Other,
}

impl DocClass {
    /// The class of a document `kind` as written in its header (the
    /// stable names of [`DocKind`]).
    pub fn of(kind: &str) -> Self {
        [
            (DocKind::BranchProfile, DocClass::BranchProfile),
            (DocKind::Roster, DocClass::Roster),
            (DocKind::MemberFile, DocClass::MemberFile),
            (DocKind::Activity, DocClass::Activity),
            (DocKind::Petition, DocClass::Petition),
            (DocKind::FeedbackBox, DocClass::FeedbackBox),
            (DocKind::FeedbackDrafts, DocClass::FeedbackDrafts),
            (DocKind::DuesLedger, DocClass::DuesLedger),
            (DocKind::PointsBook, DocClass::PointsBook),
            (DocKind::Applicant, DocClass::Applicant),
            (DocKind::LibraryEntry, DocClass::LibraryEntry),
        ]
        .into_iter()
        .find(|(known, _)| known.as_str() == kind)
        .map_or(DocClass::Other, |(_, class)| class)
    }
}

/// What access control needs to know about one document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DocAttributes {
    /// The kind from the header (`meta.kind`).
    pub kind: String,
    /// The owning branch (`meta.branch`).
    pub branch: BranchId,
    /// Partner branches a joint activity or a library entry is shared with.
    pub shared_with: Vec<BranchId>,
    /// Whether a library entry is shared with every branch below its own.
    pub shared_down: bool,
    /// A petition's owner.
    pub owner: Option<MemberId>,
    /// A petition's submitter, when a member submitted it.
    pub submitter: Option<MemberId>,
    /// The member a member file or an applicant file describes.
    pub subject: Option<MemberId>,
    /// The device that first delivered the document to the server (none for
    /// documents the server wrote itself).
    pub creator: Option<DeviceId>,
}

impl DocAttributes {
    /// Attributes of a document of `kind` in `branch` with nothing else set.
    pub fn new(kind: impl Into<String>, branch: BranchId) -> Self {
        DocAttributes {
            kind: kind.into(),
            branch,
            shared_with: Vec::new(),
            shared_down: false,
            owner: None,
            submitter: None,
            subject: None,
            creator: None,
        }
    }
}

/// What a device may do with a document.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Access {
    /// It may receive the document.
    pub read: bool,
    /// It may send changes to the document.
    pub write: bool,
}

impl Access {
    const NONE: Access = Access {
        read: false,
        write: false,
    };
    const READ: Access = Access {
        read: true,
        write: false,
    };
    const READ_WRITE: Access = Access {
        read: true,
        write: true,
    };

    fn or(self, other: Access) -> Access {
        Access {
            read: self.read || other.read,
            write: self.write || other.write,
        }
    }
}

/// What `who` may do with a document with attributes `doc`, whose owning
/// branch has the ancestors `home_ancestors` and the device's own branch the
/// ancestors `viewer_ancestors` (parent first; any order works).
///
/// Only a library entry shared down the hierarchy reads `viewer_ancestors`;
/// where [`needs_viewer_ancestors`] says no, an empty slice gives the same
/// answer, so callers need not walk the hierarchy for every document.
pub fn decide(
    who: &Principal,
    doc: &DocAttributes,
    home_ancestors: &[BranchId],
    viewer_ancestors: &[BranchId],
) -> Access {
    let class = DocClass::of(&doc.kind);
    let home = who.branch == doc.branch;
    let committee_here = home && who.is_committee();
    let is_member = |m: Option<MemberId>| who.member.is_some() && who.member == m;

    let local = match class {
        DocClass::BranchProfile
        | DocClass::Roster
        | DocClass::FeedbackBox
        | DocClass::DuesLedger
        | DocClass::PointsBook => {
            if committee_here {
                Access::READ_WRITE
            } else if home && who.is_member_or_above() {
                Access::READ
            } else {
                Access::NONE
            }
        }
        DocClass::FeedbackDrafts => {
            if committee_here {
                Access::READ_WRITE
            } else {
                Access::NONE
            }
        }
        DocClass::MemberFile | DocClass::Applicant => {
            if committee_here {
                Access::READ_WRITE
            } else if is_member(doc.subject) {
                Access::READ
            } else {
                Access::NONE
            }
        }
        DocClass::Activity => {
            let partner = doc.shared_with.contains(&who.branch);
            if (home || partner) && who.is_member_or_above() {
                Access::READ_WRITE
            } else {
                Access::NONE
            }
        }
        DocClass::Petition => {
            let concerned =
                is_member(doc.owner) || is_member(doc.submitter) || doc.creator == Some(who.device);
            if committee_here || concerned {
                Access::READ_WRITE
            } else {
                Access::NONE
            }
        }
        DocClass::LibraryEntry => {
            let partner = doc.shared_with.contains(&who.branch);
            let below = doc.shared_down && viewer_ancestors.contains(&doc.branch);
            if committee_here {
                Access::READ_WRITE
            } else if (home || partner || below) && who.is_member_or_above() {
                Access::READ
            } else {
                Access::NONE
            }
        }
        DocClass::Other => {
            if committee_here {
                Access::READ_WRITE
            } else {
                Access::NONE
            }
        }
    };

    let oversight = matches!(
        class,
        DocClass::BranchProfile
            | DocClass::Roster
            | DocClass::Activity
            | DocClass::Petition
            | DocClass::DuesLedger
            | DocClass::PointsBook
    ) && who.is_committee()
        && home_ancestors.contains(&who.branch);
    if oversight {
        local.or(Access::READ)
    } else {
        local
    }
}

/// Whether [`decide`] needs the ancestors of `who`'s branch for `doc`: only
/// for a library entry shared down, seen from another branch.
pub fn needs_viewer_ancestors(who: &Principal, doc: &DocAttributes) -> bool {
    doc.shared_down && who.branch != doc.branch && DocClass::of(&doc.kind) == DocClass::LibraryEntry
}

/// Whether `who` may create a new document of `kind` owned by `branch`:
/// the committee any kind in its own branch; members and residents
/// petitions in their own branch.
pub fn may_create(who: &Principal, kind: &str, branch: BranchId) -> bool {
    if branch != who.branch {
        return false;
    }
    who.is_committee() || DocClass::of(kind) == DocClass::Petition
}

/// Whether `who` may invite a device with `role` into its own branch: the
/// secretary any role, the committee members and residents.
pub fn may_invite(who: &Principal, role: Role) -> bool {
    match who.role {
        Role::Secretary => true,
        Role::Committee => matches!(role, Role::Member | Role::Resident),
        Role::Member | Role::Resident => false,
    }
}

/// Whether `who` may revoke a device of `device_branch`: the secretary of
/// that branch.
pub fn may_revoke(who: &Principal, device_branch: BranchId) -> bool {
    who.role == Role::Secretary && who.branch == device_branch
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROLES: [Role; 4] = [
        Role::Secretary,
        Role::Committee,
        Role::Member,
        Role::Resident,
    ];

    /// How the device relates to the document in one row of the matrix.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    enum Relation {
        /// Same branch, no personal link.
        Home,
        /// Same branch; the device's member is described by the file.
        HomeSubject,
        /// Another branch, unrelated.
        Stranger,
        /// The device's branch is an ancestor of the document's branch.
        Ancestor,
        /// The device's branch is below the document's, which is shared down.
        Descendant,
        /// The device's branch is below the document's, not shared down.
        DescendantUnshared,
        /// The device's branch is a partner in `shared_with`.
        Partner,
        /// Another branch; the device's member is the petition owner.
        Owner,
        /// Another branch; the device's member is the petition submitter.
        Submitter,
        /// Another branch; the device's member is described by the file.
        Subject,
        /// Another branch; the device created the document.
        Creator,
    }

    const RELATIONS: [Relation; 11] = [
        Relation::Home,
        Relation::HomeSubject,
        Relation::Stranger,
        Relation::Ancestor,
        Relation::Descendant,
        Relation::DescendantUnshared,
        Relation::Partner,
        Relation::Owner,
        Relation::Submitter,
        Relation::Subject,
        Relation::Creator,
    ];

    const KINDS: [&str; 12] = [
        "branch_profile",
        "roster",
        "feedback_box",
        "feedback_drafts",
        "member_file",
        "activity",
        "petition",
        "dues_ledger",
        "points_book",
        "applicant",
        "library_entry",
        "from_the_future",
    ];

    /// The device, the document and both branches' ancestors of one row.
    fn setting(
        role: Role,
        relation: Relation,
        kind: &str,
    ) -> (Principal, DocAttributes, Vec<BranchId>, Vec<BranchId>) {
        let home = BranchId::from_bytes([1; 16]);
        let other = BranchId::from_bytes([2; 16]);
        let member = MemberId::from_bytes([3; 16]);
        let device = DeviceId::from_bytes([4; 16]);
        let at_home = matches!(relation, Relation::Home | Relation::HomeSubject);
        let who = Principal {
            device,
            role,
            branch: if at_home { home } else { other },
            member: (role != Role::Resident).then_some(member),
        };
        let mut doc = DocAttributes::new(kind, home);
        doc.creator = Some(DeviceId::from_bytes([9; 16]));
        let mut ancestors = vec![BranchId::from_bytes([7; 16])];
        let mut viewer_ancestors = if at_home {
            ancestors.clone()
        } else {
            vec![BranchId::from_bytes([6; 16])]
        };
        match relation {
            Relation::Home | Relation::Stranger => {}
            Relation::Ancestor => ancestors.push(other),
            // Every kind is marked shared down: only library entries heed it.
            Relation::Descendant | Relation::DescendantUnshared => {
                doc.shared_down = relation == Relation::Descendant;
                viewer_ancestors = vec![home, BranchId::from_bytes([7; 16])];
            }
            Relation::Partner => doc.shared_with = vec![BranchId::from_bytes([8; 16]), other],
            Relation::Owner => doc.owner = Some(member),
            Relation::Submitter => doc.submitter = Some(member),
            Relation::Subject | Relation::HomeSubject => doc.subject = Some(member),
            Relation::Creator => doc.creator = Some(device),
        }
        (who, doc, ancestors, viewer_ancestors)
    }

    fn scenario(role: Role, relation: Relation, kind: &str) -> Access {
        let (who, doc, ancestors, viewer_ancestors) = setting(role, relation, kind);
        decide(&who, &doc, &ancestors, &viewer_ancestors)
    }

    /// The design's table, written out row by row: `(kind, relation)` →
    /// the access of S, C, M, R, each as `"rw"`, `"r"` or `"-"`.
    fn expected(kind: &str, relation: Relation) -> [&'static str; 4] {
        use Relation::*;
        let none = ["-", "-", "-", "-"];
        match (kind, relation) {
            // Being described by a file only matters for the files.
            ("member_file" | "applicant", HomeSubject) => ["rw", "rw", "r", "-"],
            (_, HomeSubject) => expected(kind, Home),
            ("branch_profile" | "roster", Home) => ["rw", "rw", "r", "-"],
            ("branch_profile" | "roster", Ancestor) => ["r", "r", "-", "-"],
            // Suggestions are the branch's own business: no oversight.
            ("feedback_box", Home) => ["rw", "rw", "r", "-"],
            // Answers not yet published: the committee's alone.
            ("feedback_drafts", Home) => ["rw", "rw", "-", "-"],
            ("member_file", Home) => ["rw", "rw", "-", "-"],
            // Residents have no member id, so no file describes them.
            ("member_file", Subject) => ["r", "r", "r", "-"],
            ("activity", Home | Partner) => ["rw", "rw", "rw", "-"],
            ("activity", Ancestor) => ["r", "r", "-", "-"],
            ("petition", Home) => ["rw", "rw", "-", "-"],
            ("petition", Owner | Submitter) => ["rw", "rw", "rw", "-"],
            ("petition", Creator) => ["rw", "rw", "rw", "rw"],
            ("petition", Ancestor) => ["r", "r", "-", "-"],
            // The public ledger and the published rankings: members read,
            // the committee keeps them, the higher committee reports on them.
            ("dues_ledger" | "points_book", Home) => ["rw", "rw", "r", "-"],
            ("dues_ledger" | "points_book", Ancestor) => ["r", "r", "-", "-"],
            // Confidential: the committee and the applicant, nobody above.
            ("applicant", Home) => ["rw", "rw", "-", "-"],
            ("applicant", Subject) => ["r", "r", "r", "-"],
            ("library_entry", Home) => ["rw", "rw", "r", "-"],
            ("library_entry", Partner | Descendant) => ["r", "r", "r", "-"],
            ("from_the_future", Home) => ["rw", "rw", "-", "-"],
            _ => none,
        }
    }

    fn show(access: Access) -> &'static str {
        match (access.read, access.write) {
            (true, true) => "rw",
            (true, false) => "r",
            (false, false) => "-",
            (false, true) => "write without read",
        }
    }

    #[test]
    fn full_access_matrix_matches_the_design() {
        let mut checked = 0;
        for kind in KINDS {
            for relation in RELATIONS {
                let want = expected(kind, relation);
                for (role, want) in ROLES.iter().zip(want) {
                    let got = show(scenario(*role, relation, kind));
                    assert_eq!(got, want, "{role} / {relation:?} / {kind}");
                    checked += 1;
                }
            }
        }
        assert_eq!(checked, KINDS.len() * RELATIONS.len() * ROLES.len());
    }

    #[test]
    fn write_never_comes_without_read() {
        for kind in KINDS {
            for relation in RELATIONS {
                for role in ROLES {
                    let access = scenario(role, relation, kind);
                    assert!(access.read || !access.write);
                }
            }
        }
    }

    #[test]
    fn a_device_without_a_member_matches_no_member_link() {
        let branch = BranchId::from_bytes([1; 16]);
        let who = Principal {
            device: DeviceId::from_bytes([4; 16]),
            role: Role::Member,
            branch: BranchId::from_bytes([2; 16]),
            member: None,
        };
        let doc = DocAttributes::new("petition", branch);
        // Neither side has a member: that is no match.
        assert_eq!(decide(&who, &doc, &[], &[]), Access::NONE);
        for kind in ["member_file", "applicant"] {
            let doc = DocAttributes::new(kind, branch);
            assert_eq!(decide(&who, &doc, &[], &[]), Access::NONE, "{kind}");
        }
    }

    #[test]
    fn the_viewers_ancestors_matter_only_where_it_is_said_they_do() {
        for kind in KINDS {
            for relation in RELATIONS {
                for role in ROLES {
                    let (who, doc, ancestors, viewer_ancestors) = setting(role, relation, kind);
                    if !needs_viewer_ancestors(&who, &doc) {
                        assert_eq!(
                            decide(&who, &doc, &ancestors, &[]),
                            decide(&who, &doc, &ancestors, &viewer_ancestors),
                            "{role} / {relation:?} / {kind}"
                        );
                    }
                }
            }
        }
        let (who, doc, ..) = setting(Role::Member, Relation::Descendant, "library_entry");
        assert!(needs_viewer_ancestors(&who, &doc));
    }

    #[test]
    fn creation_rights() {
        let home = BranchId::from_bytes([1; 16]);
        let other = BranchId::from_bytes([2; 16]);
        for role in ROLES {
            let who = Principal {
                device: DeviceId::from_bytes([4; 16]),
                role,
                branch: home,
                member: None,
            };
            for kind in KINDS {
                let committee = matches!(role, Role::Secretary | Role::Committee);
                assert_eq!(
                    may_create(&who, kind, home),
                    committee || kind == "petition",
                    "{role} creating {kind}"
                );
                assert!(!may_create(&who, kind, other), "{role} in another branch");
            }
        }
    }

    #[test]
    fn invite_and_revoke_rights() {
        let home = BranchId::from_bytes([1; 16]);
        let who = |role| Principal {
            device: DeviceId::from_bytes([4; 16]),
            role,
            branch: home,
            member: None,
        };
        let table = [
            (Role::Secretary, [true, true, true, true]),
            (Role::Committee, [false, false, true, true]),
            (Role::Member, [false, false, false, false]),
            (Role::Resident, [false, false, false, false]),
        ];
        for (inviter, allowed) in table {
            for (role, allowed) in ROLES.iter().zip(allowed) {
                assert_eq!(
                    may_invite(&who(inviter), *role),
                    allowed,
                    "{inviter} → {role}"
                );
            }
            assert_eq!(may_revoke(&who(inviter), home), inviter == Role::Secretary);
            assert!(!may_revoke(&who(inviter), BranchId::from_bytes([2; 16])));
        }
    }
}
