//! `Roster`: one per branch, the members (花名册).
//!
//! Members are a map keyed by member id: two secretaries adding members offline both
//! keep theirs, and two edits of different fields of one member both survive. Nobody
//! is ever deleted; leaving the branch is a status change, so history stays readable.

use std::collections::BTreeMap;

use autosurgeon::{Hydrate, Reconcile};

use super::scalar::{Date, vocabulary};
use super::{DocKind, FieldPath, Meta, Record, optional, required};
use crate::error::{Error, Result};
use crate::ids::{BranchId, MemberId};

vocabulary! {
    /// Gender as recorded on the roster.
    Gender, "gender" {
        /// 男.
        Male = "male",
        /// 女.
        Female = "female",
        /// Not recorded (未登记): never guessed.
        Unknown = "unknown",
    }
}

vocabulary! {
    /// Where a person stands in the membership pipeline.
    Category, "member category" {
        /// 正式党员.
        Full = "full",
        /// 预备党员.
        Probationary = "probationary",
        /// 发展对象 / 积极分子.
        Activist = "activist",
        /// 入党申请人.
        Applicant = "applicant",
    }
}

impl Category {
    /// Whether this person is a member bound to attend organizational life.
    pub fn is_member(self) -> bool {
        matches!(self, Category::Full | Category::Probationary)
    }
}

vocabulary! {
    /// Whether a person is still on the branch.
    MemberStatus, "member status" {
        /// On the branch.
        Active = "active",
        /// Moved to another branch (转出).
        TransferredOut = "transferred_out",
        /// Passed away.
        Deceased = "deceased",
    }
}

/// One person on the roster.
#[derive(Clone, Debug, PartialEq, Eq, Hydrate, Reconcile)]
pub struct Member {
    /// Stable id.
    pub id: MemberId,
    /// Full name.
    pub name: String,
    /// Gender.
    pub gender: Gender,
    /// Birth date.
    #[autosurgeon(missing = "Default::default")]
    pub birth_date: Option<Date>,
    /// The day they joined (or applied, for applicants).
    #[autosurgeon(missing = "Default::default")]
    pub joined: Option<Date>,
    /// Membership category.
    pub category: Category,
    /// Their group (党小组), if any.
    #[autosurgeon(missing = "Default::default")]
    pub group: Option<String>,
    /// Their post in the branch (书记, 组织委员…), if any.
    #[autosurgeon(missing = "Default::default")]
    pub post: Option<String>,
    /// Phone number.
    #[autosurgeon(missing = "Default::default")]
    pub phone: Option<String>,
    /// Whether they are still on the branch.
    pub status: MemberStatus,
    /// When the status last changed (transfer out, death).
    #[autosurgeon(missing = "Default::default")]
    pub status_since: Option<Date>,
}

/// What is needed to add a member.
#[derive(Clone, Debug, Default)]
pub struct NewMember {
    /// Full name.
    pub name: String,
    /// Gender.
    pub gender: Option<Gender>,
    /// Birth date.
    pub birth_date: Option<Date>,
    /// Date joined.
    pub joined: Option<Date>,
    /// Category (defaults to full member).
    pub category: Option<Category>,
    /// Group.
    pub group: Option<String>,
    /// Post.
    pub post: Option<String>,
    /// Phone.
    pub phone: Option<String>,
}

/// A partial update of a member: `None` leaves a field as it is.
#[derive(Clone, Debug, Default)]
pub struct MemberUpdate {
    /// New name.
    pub name: Option<String>,
    /// New gender.
    pub gender: Option<Gender>,
    /// New birth date.
    pub birth_date: Option<Date>,
    /// New date joined.
    pub joined: Option<Date>,
    /// New category (e.g. probationary to full).
    pub category: Option<Category>,
    /// New group; `Some("")` clears it.
    pub group: Option<String>,
    /// New post; `Some("")` clears it.
    pub post: Option<String>,
    /// New phone; `Some("")` clears it.
    pub phone: Option<String>,
}

/// One per branch: everyone on it.
#[derive(Clone, Debug, PartialEq, Hydrate, Reconcile)]
pub struct Roster {
    /// Document header.
    pub meta: Meta,
    /// Members by id.
    pub members: BTreeMap<String, Member>,
}

impl Record for Roster {
    const KIND: DocKind = DocKind::Roster;
    // Only the header is read by path; everything else is the committee's (rules.rs).
    const PATHS: &'static [FieldPath] = &[];

    fn meta(&self) -> &Meta {
        &self.meta
    }
}

fn check_dates(birth: Option<Date>, joined: Option<Date>) -> Result<()> {
    match (birth, joined) {
        (Some(birth), Some(joined)) if joined <= birth => Err(Error::invalid(
            "date joined (must follow the birth date)",
            joined.to_string(),
        )),
        _ => Ok(()),
    }
}

impl Roster {
    /// An empty roster for `branch`.
    pub fn new(branch: BranchId) -> Self {
        Roster {
            meta: Meta::new(DocKind::Roster, branch),
            members: BTreeMap::new(),
        }
    }

    /// The member with `id`, or [`Error::UnknownMember`].
    pub fn member(&self, id: MemberId) -> Result<&Member> {
        self.members
            .get(&id.to_string())
            .ok_or(Error::UnknownMember(id))
    }

    fn member_mut(&mut self, id: MemberId) -> Result<&mut Member> {
        self.members
            .get_mut(&id.to_string())
            .ok_or(Error::UnknownMember(id))
    }

    /// Adds a member and returns their new id.
    pub fn add_member(&mut self, new: NewMember) -> Result<MemberId> {
        self.add_member_with_id(MemberId::random(), new)
    }

    /// Adds a member whose id was made elsewhere (an import, a generated workload).
    pub fn add_member_with_id(&mut self, id: MemberId, new: NewMember) -> Result<MemberId> {
        let name = required("name", &new.name)?;
        check_dates(new.birth_date, new.joined)?;
        if self.members.contains_key(&id.to_string()) {
            return Err(Error::invalid(
                "member id (already on the roster)",
                id.to_string(),
            ));
        }
        let member = Member {
            id,
            name,
            gender: new.gender.unwrap_or(Gender::Unknown),
            birth_date: new.birth_date,
            joined: new.joined,
            category: new.category.unwrap_or(Category::Full),
            group: optional(new.group.as_deref()),
            post: optional(new.post.as_deref()),
            phone: optional(new.phone.as_deref()),
            status: MemberStatus::Active,
            status_since: None,
        };
        self.members.insert(id.to_string(), member);
        Ok(id)
    }

    /// Changes the given fields of a member.
    pub fn update_member(&mut self, id: MemberId, update: MemberUpdate) -> Result<()> {
        let member = self.member_mut(id)?;
        let birth = update.birth_date.or(member.birth_date);
        let joined = update.joined.or(member.joined);
        check_dates(birth, joined)?;
        if let Some(name) = update.name {
            member.name = required("name", &name)?;
        }
        if let Some(gender) = update.gender {
            member.gender = gender;
        }
        member.birth_date = birth;
        member.joined = joined;
        if let Some(category) = update.category {
            member.category = category;
        }
        if let Some(group) = update.group {
            member.group = optional(Some(&group));
        }
        if let Some(post) = update.post {
            member.post = optional(Some(&post));
        }
        if let Some(phone) = update.phone {
            member.phone = optional(Some(&phone));
        }
        Ok(())
    }

    /// Records that an active member moved to another branch on `on`.
    pub fn transfer_out(&mut self, id: MemberId, on: Date) -> Result<()> {
        self.set_status(id, MemberStatus::TransferredOut, on)
    }

    /// Records that an active member passed away on `on`.
    pub fn mark_deceased(&mut self, id: MemberId, on: Date) -> Result<()> {
        self.set_status(id, MemberStatus::Deceased, on)
    }

    fn set_status(&mut self, id: MemberId, status: MemberStatus, on: Date) -> Result<()> {
        let member = self.member_mut(id)?;
        if member.status != MemberStatus::Active {
            return Err(Error::MemberNotActive(id));
        }
        member.status = status;
        member.status_since = Some(on);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roster_with_one() -> (Roster, MemberId) {
        let mut roster = Roster::new(BranchId::random());
        let id = roster
            .add_member(NewMember {
                name: "王秀英".into(),
                birth_date: Date::ymd(1970, 5, 1),
                joined: Date::ymd(1995, 7, 1),
                ..Default::default()
            })
            .unwrap();
        (roster, id)
    }

    #[test]
    fn add_update_transfer() {
        let (mut roster, id) = roster_with_one();
        roster
            .update_member(
                id,
                MemberUpdate {
                    phone: Some("13800000000".into()),
                    ..Default::default()
                },
            )
            .unwrap();
        assert_eq!(
            roster.member(id).unwrap().phone.as_deref(),
            Some("13800000000")
        );
        roster
            .transfer_out(id, Date::ymd(2025, 1, 1).unwrap())
            .unwrap();
        assert_eq!(
            roster.member(id).unwrap().status,
            MemberStatus::TransferredOut
        );
        let again = roster.transfer_out(id, Date::ymd(2025, 1, 2).unwrap());
        assert_eq!(again.unwrap_err().code(), "member.not_active");
    }

    #[test]
    fn a_gender_not_given_is_unknown_never_guessed() {
        let (roster, id) = roster_with_one();
        assert_eq!(roster.member(id).unwrap().gender, Gender::Unknown);
        assert_eq!("unknown".parse::<Gender>().unwrap(), Gender::Unknown);
    }

    #[test]
    fn bad_member_input_is_refused() {
        let (mut roster, _) = roster_with_one();
        let empty = roster.add_member(NewMember::default()).unwrap_err();
        assert_eq!(empty.code(), "input.empty");
        let joined_before_birth = roster
            .add_member(NewMember {
                name: "李".into(),
                birth_date: Date::ymd(2000, 1, 1),
                joined: Date::ymd(1990, 1, 1),
                ..Default::default()
            })
            .unwrap_err();
        assert_eq!(joined_before_birth.code(), "input.invalid");
        let unknown = roster
            .update_member(MemberId::random(), MemberUpdate::default())
            .unwrap_err();
        assert_eq!(unknown.code(), "member.unknown");
    }
}
