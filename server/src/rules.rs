//! What each role may change inside a document: the rule tables, and the
//! check of one incoming change against them.
//!
//! Access control ([`crate::access`]) decides whether a device may write a
//! document at all. These rules decide *which parts* it may change: a member
//! may write an activity, but only their own sign-in. The server applies
//! every incoming change, works out what it did (the patches between the
//! document at the change's dependencies and at the change itself) and
//! checks each modified path against the table of the document's kind.
//!
//! # The tables
//!
//! A rule is a path pattern from the document root, who may *set* what is
//! there, who may *clear* it (delete it or write null), and the code a
//! refusal carries. The first rule whose pattern matches a path decides;
//! every table ends with a catch-all. Patterns are keys, `{key}` (any one
//! key, captured so a rule can say "the member named by this key") and
//! `**` (anything below, including nothing).
//!
//! | kind | path | set | clear | code |
//! |---|---|---|---|---|
//! | every kind | `meta/**` | nobody | nobody | `sync.invalid_document` |
//! | branch profile, roster, member file, feedback box, unknown kinds | `**` | committee | committee | `rule.committee_only` |
//! | activity | `sign_ins/{key}/**`, `leaves/{key}/**` | the member named by the key, the organizer, the committee | same | `rule.not_own_entry` |
//! | activity | `**` | the organizer, the committee | same | `rule.organizer_only` |
//! | petition | `progress/**`, `resolution/**`, `status` | the owner, the committee | same | `rule.owner_only` |
//! | petition | `rating/**` | the submitter, once resolved | the owner, the committee (reopening) | `rule.submitter_only` (`rule.not_resolved` for the submitter before resolution) |
//! | petition | `**` (owner, deadline, title, description, submitter…) | the committee | the committee | `rule.committee_only` |
//!
//! "Committee" is the secretary or a committee member of a branch with write
//! access (for an activity, its home branch or a partner branch it is shared
//! with). "The organizer", "the owner" and "the submitter" are read from the
//! document **as the change's author saw it** (at the change's
//! dependencies), not as the server holds it now: an owner who adds a
//! progress note offline while the committee reassigns the petition made an
//! honest edit, and it is accepted. A petition's submitter is the member in
//! its `submitter` field, or the device that created it (a resident).
//!
//! # Beyond the tables
//!
//! - **Creation.** The change that creates a document the server does not
//!   hold (no dependencies) is checked by [`access::may_create`]; a petition
//!   created by a member or a resident must also be a fresh submission: open,
//!   with no owner, progress, resolution or rating, and naming no submitter
//!   but the sender (`rule.not_a_new_submission`).
//! - **Authorship.** Every change must be written under the sender's own
//!   actor id (`rule.foreign_actor`): the actor is how the audit log and the
//!   conflict list name a change's device, so it may not be borrowed.
//! - **Write access.** A change to a document the device may only read, or
//!   not see at all, is refused with `access.read_only` / `access.denied`.

use automerge::{Automerge, Change, ChangeHash, ObjType, Patch, PatchAction, Prop, ROOT, Value};
use automerge::{ReadDoc, ScalarValue};
use branchline_protocol::{DeviceId, ErrorCode, MemberId};

use crate::access::{self, DocAttributes, DocClass, Principal};

/// One segment of a rule's path pattern.
#[derive(Debug, Clone, Copy)]
enum Seg {
    /// Exactly this map key.
    Key(&'static str),
    /// Any one key or index; captured.
    Any,
    /// Anything below, including nothing; only last.
    Rest,
}

/// Someone a rule lets make a change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Allow {
    /// The secretary or a committee member.
    Committee,
    /// The member the activity names as organizer.
    Organizer,
    /// The member whose id is the captured key (their own sign-in).
    KeyedMember,
    /// The member the petition names as owner.
    Owner,
    /// The petition's submitter, once the petition is resolved.
    SubmitterOnceResolved,
}

/// Why a change was refused, before it becomes a wire code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refusal {
    InvalidDocument,
    CommitteeOnly,
    NotOwnEntry,
    OrganizerOnly,
    OwnerOnly,
    SubmitterOnly,
}

impl Refusal {
    fn code(self) -> ErrorCode {
        match self {
            Refusal::InvalidDocument => ErrorCode::InvalidDocument,
            Refusal::CommitteeOnly => ErrorCode::CommitteeOnly,
            Refusal::NotOwnEntry => ErrorCode::NotOwnEntry,
            Refusal::OrganizerOnly => ErrorCode::OrganizerOnly,
            Refusal::OwnerOnly => ErrorCode::OwnerOnly,
            Refusal::SubmitterOnly => ErrorCode::SubmitterOnly,
        }
    }
}

/// One row of a rule table.
#[derive(Debug)]
struct Rule {
    path: &'static [Seg],
    set: &'static [Allow],
    clear: &'static [Allow],
    refusal: Refusal,
}

use Allow::*;
use Seg::*;

const COMMITTEE: &[Allow] = &[Committee];
const OWN_ENTRY: &[Allow] = &[KeyedMember, Organizer, Committee];
const ORGANIZER: &[Allow] = &[Organizer, Committee];
const OWNER: &[Allow] = &[Owner, Committee];

/// The header is written once, by the change that creates the document.
const HEADER: Rule = Rule {
    path: &[Key("meta"), Rest],
    set: &[],
    clear: &[],
    refusal: Refusal::InvalidDocument,
};

/// Kinds only the committee changes: branch profile, roster, member file,
/// feedback box (members write to it through the server), unknown kinds.
const COMMITTEE_TABLE: &[Rule] = &[
    HEADER,
    Rule {
        path: &[Rest],
        set: COMMITTEE,
        clear: COMMITTEE,
        refusal: Refusal::CommitteeOnly,
    },
];

const ACTIVITY_TABLE: &[Rule] = &[
    HEADER,
    Rule {
        path: &[Key("sign_ins"), Any, Rest],
        set: OWN_ENTRY,
        clear: OWN_ENTRY,
        refusal: Refusal::NotOwnEntry,
    },
    Rule {
        path: &[Key("leaves"), Any, Rest],
        set: OWN_ENTRY,
        clear: OWN_ENTRY,
        refusal: Refusal::NotOwnEntry,
    },
    Rule {
        path: &[Rest],
        set: ORGANIZER,
        clear: ORGANIZER,
        refusal: Refusal::OrganizerOnly,
    },
];

const PETITION_TABLE: &[Rule] = &[
    HEADER,
    Rule {
        path: &[Key("progress"), Rest],
        set: OWNER,
        clear: OWNER,
        refusal: Refusal::OwnerOnly,
    },
    Rule {
        path: &[Key("resolution"), Rest],
        set: OWNER,
        clear: OWNER,
        refusal: Refusal::OwnerOnly,
    },
    Rule {
        path: &[Key("status")],
        set: OWNER,
        clear: OWNER,
        refusal: Refusal::OwnerOnly,
    },
    Rule {
        path: &[Key("rating"), Rest],
        set: &[SubmitterOnceResolved],
        clear: OWNER,
        refusal: Refusal::SubmitterOnly,
    },
    Rule {
        path: &[Rest],
        set: COMMITTEE,
        clear: COMMITTEE,
        refusal: Refusal::CommitteeOnly,
    },
];

/// The rule table of a document kind.
fn table(class: DocClass) -> &'static [Rule] {
    match class {
        DocClass::Activity => ACTIVITY_TABLE,
        DocClass::Petition => PETITION_TABLE,
        DocClass::BranchProfile
        | DocClass::Roster
        | DocClass::MemberFile
        | DocClass::FeedbackBox
        | DocClass::Other => COMMITTEE_TABLE,
    }
}

/// A refused change: the code and which path broke which rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Violation {
    pub code: ErrorCode,
    pub message: String,
}

impl Violation {
    fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Violation {
            code,
            message: message.into(),
        }
    }
}

/// What the check of one change needs besides the change.
pub(crate) struct Subject<'a> {
    /// The sender.
    pub who: &'a Principal,
    /// The actor ids registered to the sender's device.
    pub actor_is_senders: &'a dyn Fn(&[u8]) -> bool,
    /// The document's attributes as stored, or `None` for a document the
    /// server does not hold yet.
    pub stored: Option<&'a DocAttributes>,
    /// The document's kind and branch from its header, as now applied.
    pub kind: &'a str,
}

/// Checks one change, already applied to `doc`, against the rules.
pub(crate) fn check_change(
    doc: &Automerge,
    change: &Change,
    subject: &Subject<'_>,
) -> Result<(), Violation> {
    let who = subject.who;
    if !(subject.actor_is_senders)(change.actor_id().to_bytes()) {
        return Err(Violation::new(
            ErrorCode::ForeignActor,
            format!(
                "the change is written as actor {}, not as this device",
                change.actor_id()
            ),
        ));
    }
    let deps = change.deps().to_vec();
    let here = [change.hash()];
    if subject.stored.is_none() && deps.is_empty() {
        return check_creation(doc, &here, who);
    }
    let context = Context::read(doc, &deps, subject, who);
    let class = DocClass::of(subject.kind);
    for patch in doc.diff(&deps, &here) {
        let (path, clears) = touched(&patch);
        check_path(table(class), &path, clears, &context)?;
    }
    Ok(())
}

/// The modified path of one patch and whether it clears what was there.
fn touched(patch: &Patch) -> (Vec<String>, bool) {
    let mut path: Vec<String> = patch.path.iter().map(|(_, prop)| prop_text(prop)).collect();
    let last = match &patch.action {
        PatchAction::PutMap { key, value, .. } => {
            path.push(key.clone());
            return (path, is_null(&value.0));
        }
        PatchAction::PutSeq { index, value, .. } => {
            path.push(index.to_string());
            return (path, is_null(&value.0));
        }
        PatchAction::DeleteMap { key } => {
            path.push(key.clone());
            return (path, true);
        }
        PatchAction::DeleteSeq { index, .. } => {
            path.push(index.to_string());
            return (path, true);
        }
        PatchAction::Insert { index, .. } => Some(index.to_string()),
        PatchAction::Increment { prop, .. } | PatchAction::Conflict { prop } => {
            Some(prop_text(prop))
        }
        PatchAction::SpliceText { .. } | PatchAction::Mark { .. } => None,
    };
    path.extend(last);
    (path, false)
}

fn prop_text(prop: &Prop) -> String {
    match prop {
        Prop::Map(key) => key.clone(),
        Prop::Seq(index) => index.to_string(),
    }
}

fn is_null(value: &Value<'_>) -> bool {
    matches!(value, Value::Scalar(scalar) if matches!(scalar.as_ref(), ScalarValue::Null))
}

/// Finds the rule for `path` and checks the sender against it.
fn check_path(
    table: &[Rule],
    path: &[String],
    clears: bool,
    context: &Context,
) -> Result<(), Violation> {
    let Some((rule, key)) = table
        .iter()
        .find_map(|rule| matches(rule.path, path).map(|key| (rule, key)))
    else {
        // Every table ends with a catch-all; refusing is the safe answer.
        return Err(Violation::new(
            ErrorCode::InvalidDocument,
            format!("no rule covers {}", path.join("/")),
        ));
    };
    let allowed = if clears { rule.clear } else { rule.set };
    if allowed.iter().any(|allow| context.allows(*allow, key)) {
        return Ok(());
    }
    let code = if allowed.contains(&SubmitterOnceResolved) && context.is_submitter {
        ErrorCode::NotResolved
    } else {
        rule.refusal.code()
    };
    Err(Violation::new(
        code,
        format!(
            "a {} may not {} {}",
            context.role_name,
            if clears { "clear" } else { "change" },
            path.join("/")
        ),
    ))
}

/// Matches `path` against a pattern; `Some(captured key)` on a match.
fn matches<'p>(pattern: &[Seg], path: &'p [String]) -> Option<Option<&'p str>> {
    let mut captured = None;
    let mut at = 0;
    for seg in pattern {
        match seg {
            Rest => return Some(captured),
            Key(key) => {
                if path.get(at).map(String::as_str) != Some(*key) {
                    return None;
                }
            }
            Any => {
                captured = Some(path.get(at)?.as_str());
            }
        }
        at += 1;
    }
    (at == path.len()).then_some(captured)
}

/// What the rules need to know about the sender and the document, read at
/// the change's dependencies.
struct Context {
    committee: bool,
    member: Option<MemberId>,
    role_name: String,
    organizer: Option<MemberId>,
    owner: Option<MemberId>,
    is_submitter: bool,
    resolved: bool,
}

impl Context {
    fn read(doc: &Automerge, deps: &[ChangeHash], subject: &Subject<'_>, who: &Principal) -> Self {
        let member_at = |obj: &automerge::ObjId, key: &str| -> Option<MemberId> {
            text_at(doc, obj, key, deps).and_then(|text| text.parse().ok())
        };
        let submitter = match doc.get_at(ROOT, "submitter", deps) {
            Ok(Some((Value::Object(ObjType::Map), obj))) => member_at(&obj, "member"),
            _ => None,
        };
        let created_it = subject
            .stored
            .and_then(|attrs| attrs.creator)
            .is_some_and(|creator: DeviceId| creator == who.device);
        Context {
            committee: who.is_committee(),
            member: who.member,
            role_name: who.role.to_string(),
            organizer: member_at(&ROOT, "organizer"),
            owner: member_at(&ROOT, "owner"),
            is_submitter: created_it || (who.member.is_some() && submitter == who.member),
            resolved: text_at(doc, &ROOT, "status", deps).as_deref() == Some("resolved"),
        }
    }

    fn allows(&self, allow: Allow, key: Option<&str>) -> bool {
        let is_member = |m: Option<MemberId>| m.is_some() && m == self.member;
        match allow {
            Committee => self.committee,
            Organizer => is_member(self.organizer),
            Owner => is_member(self.owner),
            KeyedMember => is_member(key.and_then(|key| key.parse().ok())),
            SubmitterOnceResolved => self.is_submitter && self.resolved,
        }
    }
}

fn text_at(
    doc: &Automerge,
    obj: &automerge::ObjId,
    key: &str,
    heads: &[ChangeHash],
) -> Option<String> {
    match doc.get_at(obj, key, heads).ok()?? {
        (Value::Scalar(scalar), _) => scalar.as_str().map(str::to_owned),
        _ => None,
    }
}

/// The change that creates a document: the sender may create its kind in
/// its branch, and a petition from a member or a resident is a fresh one.
fn check_creation(doc: &Automerge, here: &[ChangeHash], who: &Principal) -> Result<(), Violation> {
    let invalid = |why: String| Violation::new(ErrorCode::InvalidDocument, why);
    let meta = match doc.get_at(ROOT, "meta", here) {
        Ok(Some((Value::Object(ObjType::Map), meta))) => meta,
        _ => return Err(invalid("a new document must start with its header".into())),
    };
    let kind = text_at(doc, &meta, "kind", here).unwrap_or_default();
    let branch = text_at(doc, &meta, "branch", here)
        .and_then(|text| text.parse().ok())
        .ok_or_else(|| invalid("the header names no branch".into()))?;
    if !access::may_create(who, &kind, branch) {
        return Err(invalid(format!(
            "a {} device may not create a {kind} document in branch {branch}",
            who.role
        )));
    }
    if DocClass::of(&kind) == DocClass::Petition && !who.is_committee() {
        let empty = |key: &str| match doc.get_at(ROOT, key, here) {
            Ok(None) => true,
            Ok(Some((Value::Scalar(scalar), _))) => scalar.is_null(),
            Ok(Some((Value::Object(_), obj))) => doc.length_at(&obj, here) == 0,
            Err(_) => false,
        };
        let open = text_at(doc, &ROOT, "status", here).as_deref() == Some("open");
        let submitter = match doc.get_at(ROOT, "submitter", here) {
            Ok(Some((Value::Object(ObjType::Map), obj))) => text_at(doc, &obj, "member", here),
            _ => None,
        };
        let names_sender = submitter.is_none_or(|text| {
            text.parse::<MemberId>()
                .ok()
                .is_some_and(|m| Some(m) == who.member)
        });
        let fresh = open
            && names_sender
            && ["owner", "progress", "resolution", "rating"]
                .into_iter()
                .all(empty);
        if !fresh {
            return Err(Violation::new(
                ErrorCode::NotANewSubmission,
                "a new petition starts open, unassigned and unrated, in its submitter's name",
            ));
        }
    }
    Ok(())
}
