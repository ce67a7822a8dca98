//! The home directory: one Branchline store, `branchline.db`, and the
//! account of the device it belongs to.
//!
//! Only `enroll` creates a store; every other command needs one that has
//! enrolled, and refuses a directory that is something else, so a mistyped
//! `--home` never leaves an empty database behind.

use std::path::{Path, PathBuf};

use branchline_core::ids::SuggestionId;
use branchline_core::model::{ActivityStatus, MemberStatus};
use branchline_core::store::Account;
use branchline_core::store::query::{ActivityFilter, MemberFilter, PetitionFilter};
use branchline_core::{BranchId, DocId, MemberId, Store};
use branchline_protocol::Role;

use crate::failure::{EXIT_HOME, Failure, Result};

/// The store's file name inside the home directory.
pub const STORE_FILE: &str = "branchline.db";

/// The default home: the user's data directory.
pub fn default_home() -> PathBuf {
    dirs::data_dir()
        .unwrap_or_else(|| PathBuf::from("."))
        .join("branchline")
}

/// The store file of `home`.
pub fn store_path(home: &Path) -> PathBuf {
    home.join(STORE_FILE)
}

/// An enrolled device's store and account.
pub struct Home {
    /// The store.
    pub store: Store,
    /// Who this device is.
    pub account: Account,
}

impl Home {
    /// Opens the store of an enrolled device.
    pub fn open(home: &Path) -> Result<Self> {
        let store = open_existing(home)?;
        let account = store.account()?.ok_or_else(|| not_enrolled(home))?;
        Ok(Self { store, account })
    }

    /// The branch this device works in.
    pub fn branch(&self) -> BranchId {
        self.account.branch
    }

    /// Fails unless this device's role may change the roster: the server would
    /// refuse the change at the next sync, so it is refused here, before it
    /// is made.
    pub fn require_roster_editor(&self) -> Result<()> {
        self.require_committee("change the roster")
    }

    /// Whether this device belongs to the branch committee (secretary or
    /// committee member).
    pub fn is_committee(&self) -> bool {
        matches!(self.account.role, Role::Secretary | Role::Committee)
    }

    /// Fails unless this device belongs to the branch committee; `what` ends
    /// the sentence "a member's device cannot …".
    pub fn require_committee(&self, what: &str) -> Result<()> {
        if self.is_committee() {
            return Ok(());
        }
        let role = self.account.role;
        Err(Failure::invalid(
            "access.read_only",
            format!("a {role}'s device cannot {what}; ask the branch secretary"),
        ))
    }

    /// A suggestion in the branch's feedback box by id or unique id prefix.
    pub fn suggestion(&self, text: &str) -> Result<SuggestionId> {
        if let Ok(id) = text.parse::<SuggestionId>() {
            return Ok(id);
        }
        let Some((_, feedback)) = self.store.feedback_box(self.branch())? else {
            return Err(Failure::invalid(
                "feedback.unknown_suggestion",
                "the branch's feedback box has not reached this device; run `branchline sync`",
            ));
        };
        let candidates = feedback
            .suggestions
            .keys()
            .filter(|id| prefix_matches(id, text))
            .filter_map(|id| id.parse::<SuggestionId>().ok());
        unique(
            candidates,
            "feedback.unknown_suggestion",
            "suggestion",
            text,
        )
    }

    /// The member given, or this device's own member.
    pub fn member_or_self(&self, given: Option<&str>) -> Result<MemberId> {
        match given {
            Some(text) => self.member(text),
            None => self.account.member.ok_or_else(|| {
                Failure::invalid(
                    "input.member_required",
                    "this device belongs to no member; name one with --member",
                )
            }),
        }
    }

    /// A member by id, unique id prefix, or exact name.
    pub fn member(&self, text: &str) -> Result<MemberId> {
        if let Ok(id) = text.parse::<MemberId>() {
            return Ok(id);
        }
        let filter = MemberFilter {
            status: None::<MemberStatus>,
            ..MemberFilter::default()
        };
        let members = self.store.list_members(self.branch(), &filter)?;
        let candidates = members
            .iter()
            .filter(|m| m.name == text.trim() || prefix_matches(&m.id.to_string(), text))
            .map(|m| m.id);
        unique(candidates, "member.unknown", "member", text)
    }

    /// An activity by id or unique id prefix.
    pub fn activity(&self, text: &str) -> Result<DocId> {
        if let Ok(id) = text.parse::<DocId>() {
            return Ok(id);
        }
        let filter = ActivityFilter {
            status: None::<ActivityStatus>,
            ..ActivityFilter::default()
        };
        let activities = self.store.list_activities(self.branch(), &filter)?;
        let candidates = activities
            .iter()
            .filter(|a| prefix_matches(&a.id.to_string(), text))
            .map(|a| a.id);
        unique(candidates, "doc.not_found", "activity", text)
    }

    /// A petition by id or unique id prefix.
    pub fn petition(&self, text: &str) -> Result<DocId> {
        if let Ok(id) = text.parse::<DocId>() {
            return Ok(id);
        }
        let today = crate::today();
        let petitions =
            self.store
                .list_petitions(self.branch(), &PetitionFilter::default(), today)?;
        let candidates = petitions
            .iter()
            .filter(|p| prefix_matches(&p.id.to_string(), text))
            .map(|p| p.id);
        unique(candidates, "doc.not_found", "petition", text)
    }
}

/// Opens the store in `home`, which must exist and be a Branchline store.
pub fn open_existing(home: &Path) -> Result<Store> {
    if home.exists() && !home.is_dir() {
        return Err(Failure::new(
            "home.not_a_directory",
            format!(
                "{} is a file, not a Branchline home directory",
                home.display()
            ),
            EXIT_HOME,
        ));
    }
    let path = store_path(home);
    if !path.is_file() {
        return Err(not_enrolled(home));
    }
    Ok(Store::open(&path)?)
}

fn not_enrolled(home: &Path) -> Failure {
    Failure::new(
        "home.not_enrolled",
        format!(
            "{} holds no enrolled Branchline store; enroll this device first: \
             branchline --home {} enroll <invite link>",
            home.display(),
            home.display()
        ),
        EXIT_HOME,
    )
}

/// Ids are shown shortened to 8 characters; at least 4 are needed to look one up.
fn prefix_matches(id: &str, text: &str) -> bool {
    let text = text.trim().to_ascii_lowercase();
    text.len() >= 4 && id.starts_with(&text)
}

fn unique<T: Copy + PartialEq>(
    candidates: impl Iterator<Item = T>,
    code: &str,
    what: &str,
    text: &str,
) -> Result<T> {
    let mut found: Vec<T> = Vec::new();
    for c in candidates {
        if !found.contains(&c) {
            found.push(c);
        }
    }
    match found.as_slice() {
        [one] => Ok(*one),
        [] => Err(Failure::invalid(
            code,
            format!("no {what} matches {text:?}"),
        )),
        _ => Err(Failure::invalid(
            "input.ambiguous",
            format!(
                "{} {what}s match {text:?}; give more of the id",
                found.len()
            ),
        )),
    }
}
