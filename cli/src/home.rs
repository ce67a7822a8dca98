//! The home directory: one Branchline store, `branchline.db`, and the
//! account of the device it belongs to.
//!
//! Only `enroll` creates a store; every other command needs one that has
//! enrolled, and refuses a directory that is something else, so a mistyped
//! `--home` never leaves an empty database behind.
//!
//! A device the server revoked forgets its account, but its records stay:
//! they are the branch's, and the secretary may still need to read them.
//! The store itself remembers the revocation (who the device was and when
//! it heard, [`Revocation`]), so later commands still open the store to
//! read, say the device is revoked, and refuse every edit and sync with the
//! store's `auth.device_revoked`. Enrolling again with a new invite ends it.
//!
//! Earlier builds of this CLI wrote the revocation to `revoked.json` beside
//! the store instead, and an older store has no record of its own: such a
//! file is still read (never written) while the store has neither account
//! nor revocation, and removed once the store has either.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use branchline_core::ids::SuggestionId;
use branchline_core::model::{Activity, ActivityStatus, MemberStatus, Petition, Timestamp};
use branchline_core::store::query::{ActivityFilter, MemberFilter, PetitionFilter};
use branchline_core::store::{Account, Revocation};
use branchline_core::{BranchId, DocId, MemberId, Store};
use branchline_protocol::{DeviceId as WireDeviceId, Role};
use serde::Deserialize;

use crate::failure::{EXIT_HOME, Failure, Result};
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

/// The file in which earlier builds of the CLI remembered a revoked device.
const LEGACY_REVOKED_FILE: &str = "revoked.json";

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
    /// The branch's name as the server's Welcome said it.
    pub branch_name: Option<String>,
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
            branch_name: a.branch_name.clone(),
        }
    }
}

/// What an earlier build wrote to `revoked.json`; only the fields a
/// [`Revocation`] keeps are read.
#[derive(Deserialize)]
struct LegacyRevokedFile {
    device_id: String,
    branch: String,
    revoked_at_ms: i64,
}

/// The revocation an earlier build wrote beside the store, if there is one
/// that reads.
fn legacy_revocation(home: &Path) -> Option<Revocation> {
    let text = std::fs::read_to_string(home.join(LEGACY_REVOKED_FILE)).ok()?;
    let file: LegacyRevokedFile = serde_json::from_str(&text).ok()?;
    Some(Revocation {
        device_id: file.device_id.parse().ok()?,
        branch: file.branch.parse().ok()?,
        branch_name: None,
        revoked_at: Timestamp(file.revoked_at_ms),
    })
}

/// Removes the `revoked.json` of an earlier build: the store now knows
/// whether the device is enrolled or revoked.
pub fn forget_legacy_revocation(home: &Path) {
    let file = home.join(LEGACY_REVOKED_FILE);
    if file.exists()
        && let Err(e) = std::fs::remove_file(&file)
    {
        tracing::debug!(error = %e, "could not remove {}", file.display());
    }
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

/// The failure of an edit or a sync on a revoked device: the store's own.
pub fn revoked_failure() -> Failure {
    Failure::from(branchline_core::Error::DeviceRevoked)
}

/// Whether a device is enrolled, or was until its server revoked it.
enum Standing {
    /// Enrolled: the account.
    Enrolled(Identity),
    /// Revoked: who the device was, as the store (or an earlier build's
    /// `revoked.json`) remembers it.
    Revoked(Revocation),
}

/// An enrolled (or revoked) device's store and who it is.
pub struct Home {
    /// The store.
    pub store: Store,
    /// Who this device is.
    standing: Standing,
}

impl Home {
    /// Opens the store of an enrolled device, or of a revoked one to read.
    pub fn open(home: &Path) -> Result<Self> {
        let store = open_existing(home)?;
        let standing = match (store.account()?, store.revocation()?) {
            (Some(account), _) => Standing::Enrolled(Identity::from(&account)),
            (None, Some(revocation)) => Standing::Revoked(revocation),
            (None, None) => {
                let revocation = legacy_revocation(home).ok_or_else(|| not_enrolled(home))?;
                return Ok(Self {
                    store,
                    standing: Standing::Revoked(revocation),
                });
            }
        };
        // The store knows where the device stands: an earlier build's file
        // has nothing left to say.
        forget_legacy_revocation(home);
        Ok(Self { store, standing })
    }

    /// The device's account; fails with `auth.device_revoked` if the server
    /// revoked it (it then has none).
    pub fn account(&self) -> Result<&Identity> {
        match &self.standing {
            Standing::Enrolled(account) => Ok(account),
            Standing::Revoked(_) => Err(revoked_failure()),
        }
    }

    /// Who the device was and when it heard, if the server revoked it.
    pub fn revocation(&self) -> Option<&Revocation> {
        match &self.standing {
            Standing::Enrolled(_) => None,
            Standing::Revoked(revocation) => Some(revocation),
        }
    }

    /// Fails with the store's `auth.device_revoked` if the server revoked
    /// this device: its records are for reading only.
    pub fn require_writable(&self) -> Result<()> {
        self.store.require_writable()?;
        // An earlier build's revocation, which the store does not know of.
        self.account().map(|_| ())
    }

    /// The id the server gave this device (and, if it revoked the device,
    /// took back).
    pub fn device_id(&self) -> WireDeviceId {
        match &self.standing {
            Standing::Enrolled(account) => account.device_id,
            Standing::Revoked(revocation) => revocation.device_id,
        }
    }

    /// The member this device belongs to; none for a resident's device, and
    /// none known once the server revoked it.
    pub fn own_member(&self) -> Option<MemberId> {
        self.account().ok().and_then(|a| a.member)
    }

    /// The branch's name as the server last said it (at Welcome, or before
    /// it revoked the device).
    pub fn welcomed_branch_name(&self) -> Option<String> {
        match &self.standing {
            Standing::Enrolled(account) => account.branch_name.clone(),
            Standing::Revoked(revocation) => revocation.branch_name.clone(),
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

    /// The branch this device works in (or worked in, if revoked).
    pub fn branch(&self) -> BranchId {
        match &self.standing {
            Standing::Enrolled(account) => account.branch,
            Standing::Revoked(revocation) => revocation.branch,
        }
    }

    /// Fails unless this device's role may change the roster: the server would
    /// refuse the change at the next sync, so it is refused here, before it
    /// is made.
    pub fn require_roster_editor(&self) -> Result<()> {
        self.require_committee("change the roster")
    }

    /// Whether this device belongs to the branch committee (secretary or
    /// committee member); a revoked device no longer does.
    pub fn is_committee(&self) -> bool {
        self.account()
            .is_ok_and(|a| matches!(a.role, Role::Secretary | Role::Committee))
    }

    /// Fails unless this device belongs to the branch committee; `what` ends
    /// the sentence "a member's device cannot …".
    pub fn require_committee(&self, what: &str) -> Result<()> {
        if self.is_committee() {
            return Ok(());
        }
        let role = self.account()?.role;
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
            None => self.account()?.member.ok_or_else(|| {
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
        "keep the dues ledger" => "记录党费账目",
        "award points" => "记录积分",
        "change the point rules" => "修改积分项目",
        "keep applicant files" => "管理入党申请人档案",
        "write the problem library" => "编写问题库",
        "change the branch's settings" => "修改支部设置",
        other => other,
    }
}

/// Ids are shown shortened to 8 characters; at least 4 are needed to look one up.
pub(crate) fn prefix_matches(id: &str, text: &str) -> bool {
    let text = text.trim().to_ascii_lowercase();
    text.len() >= 4 && id.starts_with(&text)
}

/// The one candidate, or a failure: `code` when none matches `text`, and
/// `input.ambiguous` when several do.
pub(crate) fn unique<T: Copy + PartialEq>(
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
        "payment" => "缴费记录",
        "award" => "加分记录",
        "library entry" => "条目",
        "branch" => "支部",
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
