//! The home directory: one Branchline store, `branchline.db`, and the
//! account of the device it belongs to.
//!
//! Only `enroll` creates a store; every other command needs one that has
//! enrolled, and refuses a directory that is something else, so a mistyped
//! `--home` never leaves an empty database behind.
//!
//! A device the server revoked forgets its account (the store drops it when
//! the server says so), but its records stay: they are the branch's, and the
//! secretary may still need to read them. When a sync hears of the
//! revocation, the CLI writes down who the device was in `revoked.json` next
//! to the store, so later commands still open the store to read, say the
//! device is revoked, and refuse every edit and sync with
//! `auth.device_revoked`. Enrolling again with a new invite clears it.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use branchline_core::ids::SuggestionId;
use branchline_core::model::{Activity, ActivityStatus, MemberStatus, Petition, Timestamp};
use branchline_core::store::Account;
use branchline_core::store::query::{ActivityFilter, MemberFilter, PetitionFilter};
use branchline_core::{BranchId, DocId, MemberId, Store};
use branchline_protocol::{DeviceId as WireDeviceId, Role};
use serde::{Deserialize, Serialize};

use crate::failure::{EXIT_FAILURE, EXIT_HOME, EXIT_REFUSED, Failure, Result};
use crate::output::short;

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

/// The file that remembers a revoked device, beside the store.
pub const REVOKED_FILE: &str = "revoked.json";

/// Who this device is on its branch server: the account without its secrets.
#[derive(Clone, Debug)]
pub struct Identity {
    /// The server's address, `host:port`.
    pub server: String,
    /// The id the server gave this device.
    pub device_id: WireDeviceId,
    /// The name the device enrolled under.
    pub device_name: String,
    /// The branch whose records this device holds.
    pub branch: BranchId,
    /// The member this device belongs to (none for a resident's device).
    pub member: Option<MemberId>,
    /// What the device's member may do in the branch.
    pub role: Role,
}

impl From<&Account> for Identity {
    fn from(a: &Account) -> Self {
        Self {
            server: a.server.clone(),
            device_id: a.device_id,
            device_name: a.device_name.clone(),
            branch: a.branch,
            member: a.member,
            role: a.role,
        }
    }
}

/// `revoked.json`: who a revoked device was, and when it heard.
#[derive(Serialize, Deserialize)]
struct RevokedFile {
    server: String,
    device_id: String,
    device_name: String,
    branch: String,
    member: Option<String>,
    role: String,
    revoked_at_ms: i64,
}

impl RevokedFile {
    fn identity(&self) -> Option<Identity> {
        Some(Identity {
            server: self.server.clone(),
            device_id: self.device_id.parse().ok()?,
            device_name: self.device_name.clone(),
            branch: self.branch.parse().ok()?,
            member: match &self.member {
                Some(m) => Some(m.parse().ok()?),
                None => None,
            },
            role: [
                Role::Secretary,
                Role::Committee,
                Role::Member,
                Role::Resident,
            ]
            .into_iter()
            .find(|r| r.as_str() == self.role)?,
        })
    }
}

/// Writes down that the server revoked the device `who` of the store in
/// `home`, so its records stay readable (see the module docs).
pub fn record_revocation(home: &Path, who: &Identity) -> Result<()> {
    let file = RevokedFile {
        server: who.server.clone(),
        device_id: who.device_id.to_string(),
        device_name: who.device_name.clone(),
        branch: who.branch.to_string(),
        member: who.member.map(|m| m.to_string()),
        role: who.role.as_str().to_owned(),
        revoked_at_ms: Timestamp::now().0,
    };
    let text = serde_json::to_string_pretty(&file)
        .map_err(|e| Failure::new("cli.io", e.to_string(), EXIT_FAILURE))?;
    std::fs::write(home.join(REVOKED_FILE), text)?;
    Ok(())
}

/// Forgets an earlier revocation: the device has enrolled again.
pub fn clear_revocation(home: &Path) {
    let _ = std::fs::remove_file(home.join(REVOKED_FILE));
}

/// The revoked device's identity and when it was revoked, if `home` holds one.
fn read_revocation(home: &Path) -> Option<(Identity, Timestamp)> {
    let text = std::fs::read_to_string(home.join(REVOKED_FILE)).ok()?;
    let file: RevokedFile = serde_json::from_str(&text).ok()?;
    Some((file.identity()?, Timestamp(file.revoked_at_ms)))
}

/// The name of `branch` as this device knows it: from the branch's profile
/// where the device holds it, else as the server's Welcome said it (a
/// resident's device holds no profile; a server older than protocol 4 names
/// no branch).
pub fn known_branch_name(
    store: &Store,
    branch: BranchId,
    welcomed_as: Option<String>,
) -> Option<String> {
    store
        .profile(branch)
        .ok()
        .map(|p| p.name)
        .filter(|name| !name.trim().is_empty())
        .or_else(|| welcomed_as.filter(|name| !name.trim().is_empty()))
}

/// The failure of an edit or a sync on a revoked device.
pub fn revoked_failure() -> Failure {
    Failure::new(
        "auth.device_revoked",
        "the server revoked this device: it can still read its records, but not change or \
         sync them; ask the branch secretary for a new invite and enroll again",
        EXIT_REFUSED,
    )
    .zh("服务器已吊销此设备：仍可查看本机记录，但不能修改或同步；请向支部书记索取新的邀请后重新加入")
}

/// An enrolled (or revoked) device's store and who it is.
pub struct Home {
    /// The store.
    pub store: Store,
    /// Who this device is.
    pub account: Identity,
    /// When the server revoked this device, if it did: the store is then
    /// for reading only.
    pub revoked: Option<Timestamp>,
    /// The home directory.
    pub dir: PathBuf,
}

impl Home {
    /// Opens the store of an enrolled device, or of a revoked one to read.
    pub fn open(home: &Path) -> Result<Self> {
        let store = open_existing(home)?;
        let (account, revoked) = match store.account()? {
            Some(account) => (Identity::from(&account), None),
            None => {
                let (who, at) = read_revocation(home).ok_or_else(|| not_enrolled(home))?;
                (who, Some(at))
            }
        };
        Ok(Self {
            store,
            account,
            revoked,
            dir: home.to_path_buf(),
        })
    }

    /// Fails if the server revoked this device: its records are for reading.
    pub fn require_not_revoked(&self) -> Result<()> {
        match self.revoked {
            Some(_) => Err(revoked_failure()),
            None => Ok(()),
        }
    }

    /// Roster names of every member on this device's rosters (its own
    /// branch's, and any other the device holds).
    pub fn names(&self) -> HashMap<MemberId, String> {
        let mut names = HashMap::new();
        let all = MemberFilter {
            status: None,
            ..MemberFilter::default()
        };
        let mut branches = vec![self.branch()];
        if let Ok(documents) = self.store.documents() {
            branches.extend(
                documents
                    .iter()
                    .filter(|d| d.kind == "roster")
                    .map(|d| d.branch),
            );
        }
        branches.sort();
        branches.dedup();
        for branch in branches {
            // A resident's device holds no roster: names fall back to ids.
            if let Ok(members) = self.store.list_members(branch, &all) {
                names.extend(members.into_iter().map(|m| (m.id, m.name)));
            }
        }
        names
    }

    /// A member's roster name, or their short id when this device does not
    /// know them.
    pub fn member_name(&self, member: MemberId) -> String {
        self.names()
            .remove(&member)
            .unwrap_or_else(|| short(member))
    }

    /// A store error, naming members by their roster names.
    pub fn named<T>(&self, result: branchline_core::Result<T>) -> Result<T> {
        result.map_err(|e| {
            let names = self.names();
            Failure::from_core(e, &|m| {
                names.get(&m).cloned().unwrap_or_else(|| m.to_string())
            })
        })
    }

    /// An activity's title, or its short id if it cannot be read.
    pub fn activity_title(&self, activity: DocId) -> String {
        self.store
            .get::<Activity>(activity)
            .map_or_else(|_| short(activity), |a| a.title)
    }

    /// A petition's title, or its short id if it cannot be read.
    pub fn petition_title(&self, petition: DocId) -> String {
        self.store
            .get::<Petition>(petition)
            .map_or_else(|_| short(petition), |p| p.title)
    }

    /// A branch's name where this device holds its profile, else its short id.
    pub fn branch_name(&self, branch: BranchId) -> String {
        self.store
            .profile(branch)
            .map_or_else(|_| short(branch), |p| p.name)
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
        )
        .zh(format!(
            "{}的设备不能{}；请联系支部书记",
            crate::words::value(role.as_str(), crate::output::Lang::Zh),
            what_zh(what)
        )))
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
            )
            .zh("支部意见箱尚未同步到本机；请运行 branchline sync"));
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
                .zh("此设备不属于任何党员；请用 --member 指定")
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
        )
        .zh(format!(
            "{} 是文件，不是 Branchline 的数据目录",
            home.display()
        )));
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
    .zh(format!(
        "{} 中没有已加入支部的 Branchline 数据；请先加入：branchline --home {} enroll <邀请链接>",
        home.display(),
        home.display()
    ))
}

/// The end of "a member's device cannot …", in Chinese.
fn what_zh(what: &str) -> &str {
    match what {
        "change the roster" => "修改花名册",
        "show the branch's submission code" => "显示支部的公开提交码",
        "answer suggestions" => "答复意见",
        "publish answers" => "公开答复",
        "change this activity" => "修改此活动",
        other => other,
    }
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
    let what_zh = match what {
        "member" => "成员",
        "activity" => "活动",
        "petition" => "诉求",
        "suggestion" => "意见",
        other => other,
    };
    match found.as_slice() {
        [one] => Ok(*one),
        [] => Err(
            Failure::invalid(code, format!("no {what} matches {text:?}"))
                .zh(format!("没有与“{text}”相符的{what_zh}")),
        ),
        _ => Err(Failure::invalid(
            "input.ambiguous",
            format!(
                "{} {what}s match {text:?}; give more of the id",
                found.len()
            ),
        )
        .zh(format!(
            "有 {} 个{what_zh}与“{text}”相符；请多输入几位编号",
            found.len()
        ))),
    }
}
