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
//! every table ends with a catch-all. Patterns are fields (the paths each
//! kind declares beside its model type, `branchline_core::model::*::paths`,
//! so a renamed field cannot leave a table naming a key that no longer
//! exists), `{key}` (any one key, captured so a rule can say "the member
//! named by this key") and `**` (anything below, including nothing).
//!
//! | kind | path | set | clear | code |
//! |---|---|---|---|---|
//! | every kind | `meta/**` | nobody | nobody | `sync.invalid_document` |
//! | branch profile, roster, member file, feedback box, dues ledger, points book, applicant, unknown kinds | `**` | committee | committee | `rule.committee_only` |
//! | activity | `sign_ins/{key}/**`, `leaves/{key}/**` | the member named by the key, the organizer, the committee | same | `rule.not_own_entry` |
//! | activity | `shared_with/{key}` | the committee, when the key names a branch allied with the activity's own | the committee | `rule.not_allied` (`rule.committee_only` for others) |
//! | activity | `**` | the organizer, the committee | same | `rule.organizer_only` |
//! | petition | `progress/**`, `resolution/**`, `status` | the owner, the committee | same | `rule.owner_only` |
//! | petition | `rating/**` | the submitter, once resolved | the owner, the committee (reopening) | `rule.submitter_only` (`rule.not_resolved` for the submitter before resolution) |
//! | petition | `**` (owner, deadline, title, description, submitter…) | the committee | the committee | `rule.committee_only` |
//! | library entry | `shared_with/{key}` | the committee, when the key names a branch allied with the entry's own | the committee | `rule.not_allied` (`rule.committee_only` for others) |
//! | library entry | `**` (texts, tags, `shared_down`…) | the committee | the committee | `rule.committee_only` |
//!
//! "Committee" is the secretary or a committee member of a branch with write
//! access (for an activity, its home branch or a partner branch it is shared
//! with; for every other kind, its home branch). Members read a dues
//! ledger, a points book, their own applicant file and a library entry but
//! may not write them at all, so access control refuses their changes
//! (`access.read_only`) before these tables are asked; the tables still say
//! committee, so a change to those kinds passes only as the committee's. "The organizer", "the owner" and "the submitter" are read from the
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
//!   but the sender (`rule.not_a_new_submission`). An activity or a library
//!   entry created already shared names only allied branches
//!   (`rule.not_allied`).
//! - **Authorship.** Every change must be written under the sender's own
//!   actor id (`rule.foreign_actor`): the actor is how the audit log and the
//!   conflict list name a change's device, so it may not be borrowed.
//! - **Write access.** A change to a document the device may only read, or
//!   not see at all, is refused with `access.read_only` / `access.denied`.
//! - **Containment.** The check reads a document built from a peer's bytes;
//!   should automerge panic on it, that change is refused
//!   (`sync.invalid_document`) and the server carries on.

use std::panic::{AssertUnwindSafe, catch_unwind};

use automerge::{Automerge, Change, ChangeHash, ObjType, Patch, PatchAction, Prop, Value};
use automerge::{ReadDoc, ScalarValue};
use branchline_core::model::{FieldPath, PetitionStatus, activity, library, paths, petition};
use branchline_protocol::{DeviceId, ErrorCode, MemberId};

use crate::access::{self, DocAttributes, DocClass, Principal};

/// One segment of a rule's path pattern.
#[derive(Debug, Clone, Copy)]
enum Seg {
    /// Exactly the keys of this declared field.
    Field(FieldPath),
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
    /// The committee, naming a branch (the captured key) allied with the
    /// document's own.
    CommitteeOfAlliedKey,
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
    path: &[Field(paths::META), Rest],
    set: &[],
    clear: &[],
    refusal: Refusal::InvalidDocument,
};

/// Kinds only the committee changes: branch profile, roster, member file,
/// feedback box (members write to it through the server), dues ledger,
/// points book, applicant file, unknown kinds.
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
        path: &[Field(activity::paths::SIGN_INS), Any, Rest],
        set: OWN_ENTRY,
        clear: OWN_ENTRY,
        refusal: Refusal::NotOwnEntry,
    },
    Rule {
        path: &[Field(activity::paths::LEAVES), Any, Rest],
        set: OWN_ENTRY,
        clear: OWN_ENTRY,
        refusal: Refusal::NotOwnEntry,
    },
    Rule {
        path: &[Field(activity::paths::SHARED_WITH), Any, Rest],
        set: &[CommitteeOfAlliedKey],
        clear: COMMITTEE,
        refusal: Refusal::CommitteeOnly,
    },
    Rule {
        path: &[Rest],
        set: ORGANIZER,
        clear: ORGANIZER,
        refusal: Refusal::OrganizerOnly,
    },
];

/// A library entry is the committee's; sharing it names only allied
/// branches, as sharing an activity does.
const LIBRARY_TABLE: &[Rule] = &[
    HEADER,
    Rule {
        path: &[Field(library::paths::SHARED_WITH), Any, Rest],
        set: &[CommitteeOfAlliedKey],
        clear: COMMITTEE,
        refusal: Refusal::CommitteeOnly,
    },
    Rule {
        path: &[Rest],
        set: COMMITTEE,
        clear: COMMITTEE,
        refusal: Refusal::CommitteeOnly,
    },
];

const PETITION_TABLE: &[Rule] = &[
    HEADER,
    Rule {
        path: &[Field(petition::paths::PROGRESS), Rest],
        set: OWNER,
        clear: OWNER,
        refusal: Refusal::OwnerOnly,
    },
    Rule {
        path: &[Field(petition::paths::RESOLUTION), Rest],
        set: OWNER,
        clear: OWNER,
        refusal: Refusal::OwnerOnly,
    },
    Rule {
        path: &[Field(petition::paths::STATUS)],
        set: OWNER,
        clear: OWNER,
        refusal: Refusal::OwnerOnly,
    },
    Rule {
        path: &[Field(petition::paths::RATING), Rest],
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
        DocClass::LibraryEntry => LIBRARY_TABLE,
        DocClass::BranchProfile
        | DocClass::Roster
        | DocClass::MemberFile
        | DocClass::FeedbackBox
        | DocClass::FeedbackDrafts
        | DocClass::DuesLedger
        | DocClass::PointsBook
        | DocClass::Applicant
        | DocClass::Other => COMMITTEE_TABLE,
    }
}

/// Where a kind keeps the set of allied branches it is shared with, if it
/// has one.
fn shared_with_field(class: DocClass) -> Option<FieldPath> {
    match class {
        DocClass::Activity => Some(activity::paths::SHARED_WITH),
        DocClass::LibraryEntry => Some(library::paths::SHARED_WITH),
        DocClass::BranchProfile
        | DocClass::Roster
        | DocClass::MemberFile
        | DocClass::Petition
        | DocClass::FeedbackBox
        | DocClass::FeedbackDrafts
        | DocClass::DuesLedger
        | DocClass::PointsBook
        | DocClass::Applicant
        | DocClass::Other => None,
    }
}

/// A refused change: the code and which path broke which rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// The stable code sent to the device.
    pub code: ErrorCode,
    /// Which path broke which rule, for logs and the audit log.
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
pub struct Subject<'a> {
    /// The sender.
    pub who: &'a Principal,
    /// The actor ids registered to the sender's device.
    pub actor_is_senders: &'a dyn Fn(&[u8]) -> bool,
    /// The document's attributes as stored, or `None` for a document the
    /// server does not hold yet.
    pub stored: Option<&'a DocAttributes>,
    /// The document's kind and branch from its header, as now applied.
    pub kind: &'a str,
    /// Whether a branch (its id as text) is allied with the document's
    /// own branch, so an activity or a library entry may be shared with it.
    pub allied: &'a dyn Fn(&str) -> bool,
}

/// Checks one change, already applied to `doc`, against the rules: the
/// sender's actor, creation, then every path the change modified against
/// the table of the document's kind. A panic inside automerge while
/// reading the peer's document refuses the change instead of unwinding
/// into the server.
pub fn check_change(
    doc: &Automerge,
    change: &Change,
    subject: &Subject<'_>,
) -> Result<(), Violation> {
    contained(|| check_applied(doc, change, subject))
}

/// Runs `check`, turning a panic (automerge on a hostile document) into a
/// refusal of the change. The check only reads `doc`, so nothing it leaves
/// half done is seen afterwards.
fn contained(check: impl FnOnce() -> Result<(), Violation>) -> Result<(), Violation> {
    catch_unwind(AssertUnwindSafe(check)).unwrap_or_else(|_| {
        tracing::error!("automerge panicked while checking a change");
        Err(Violation::new(
            ErrorCode::InvalidDocument,
            "automerge failed on the change, so it could not be checked",
        ))
    })
}

fn check_applied(doc: &Automerge, change: &Change, subject: &Subject<'_>) -> Result<(), Violation> {
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
    // A device's changes name the member who made them (devices show
    // writers by that name): it must be the sender's own.
    match branchline_core::conflict::author_of(change.message()) {
        Ok(None) => {}
        Ok(Some(member)) if who.member.map(branchline_core::MemberId::from) == Some(member) => {}
        _ => {
            return Err(Violation::new(
                ErrorCode::ForeignActor,
                "the change names a member other than this device's",
            ));
        }
    }
    let deps = change.deps().to_vec();
    let here = [change.hash()];
    if subject.stored.is_none() && deps.is_empty() {
        return check_creation(doc, &here, subject);
    }
    let context = Context::read(doc, &deps, subject, who);
    let class = DocClass::of(subject.kind);
    for patch in doc.diff(&deps, &here) {
        if rewrites_same_value(doc, &patch, &deps) {
            continue;
        }
        let (path, clears) = touched(&patch);
        check_path(table(class), &path, clears, &context)?;
    }
    Ok(())
}

/// Whether `patch` writes the value its author already saw there. Such a
/// write changes nothing anyone reads; it happens when an edit settles a
/// concurrent conflict on a field as a side effect (the workflow writes
/// back the winner it read), and it is not a change of that field.
fn rewrites_same_value(doc: &Automerge, patch: &Patch, deps: &[ChangeHash]) -> bool {
    let (prop, value): (Prop, &Value<'_>) = match &patch.action {
        PatchAction::PutMap { key, value, .. } => (Prop::Map(key.clone()), &value.0),
        PatchAction::PutSeq { index, value, .. } => (Prop::Seq(*index), &value.0),
        _ => return false,
    };
    let Value::Scalar(new) = value else {
        return false;
    };
    matches!(
        doc.get_at(&patch.obj, prop, deps),
        Ok(Some((Value::Scalar(old), _))) if old == *new
    )
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
    // Clearing is taking the whole entry away; a null written deeper inside
    // (an optional field left empty) is part of setting it.
    let fixed: usize = rule.path.iter().map(|seg| seg.width()).sum();
    let clears = clears && path.len() <= fixed;
    let allowed = if clears { rule.clear } else { rule.set };
    if allowed.iter().any(|allow| context.allows(*allow, key)) {
        return Ok(());
    }
    // Say the precise reason when the sender is the right person at the
    // wrong moment or for the wrong branch.
    let code = if allowed.contains(&SubmitterOnceResolved) && context.is_submitter {
        ErrorCode::NotResolved
    } else if allowed.contains(&CommitteeOfAlliedKey) && context.committee {
        ErrorCode::NotAllied
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

impl Seg {
    /// How many keys of a path this segment stands for (`Rest`: none fixed).
    fn width(&self) -> usize {
        match self {
            Field(field) => field.keys().len(),
            Any => 1,
            Rest => 0,
        }
    }
}

/// Matches `path` against a pattern; `Some(captured key)` on a match.
fn matches<'p>(pattern: &[Seg], path: &'p [String]) -> Option<Option<&'p str>> {
    let mut captured = None;
    let mut at = 0;
    for seg in pattern {
        match seg {
            Rest => return Some(captured),
            Field(field) => {
                for key in field.keys() {
                    if path.get(at).map(String::as_str) != Some(*key) {
                        return None;
                    }
                    at += 1;
                }
            }
            Any => {
                captured = Some(path.get(at)?.as_str());
                at += 1;
            }
        }
    }
    (at == path.len()).then_some(captured)
}

/// What the rules need to know about the sender and the document, read at
/// the change's dependencies.
struct Context<'a> {
    allied: &'a dyn Fn(&str) -> bool,
    committee: bool,
    member: Option<MemberId>,
    role_name: String,
    organizer: Option<MemberId>,
    owner: Option<MemberId>,
    is_submitter: bool,
    resolved: bool,
}

impl<'a> Context<'a> {
    fn read(doc: &Automerge, deps: &[ChangeHash], subject: &Subject<'a>, who: &Principal) -> Self {
        let member_at = |field: FieldPath| -> Option<MemberId> {
            text_at(doc, field, deps).and_then(|text| text.parse().ok())
        };
        let submitter = member_at(petition::paths::SUBMITTER_MEMBER);
        let created_it = subject
            .stored
            .and_then(|attrs| attrs.creator)
            .is_some_and(|creator: DeviceId| creator == who.device);
        Context {
            allied: subject.allied,
            committee: who.is_committee(),
            member: who.member,
            role_name: who.role.to_string(),
            organizer: member_at(activity::paths::ORGANIZER),
            owner: member_at(petition::paths::OWNER),
            is_submitter: created_it || (who.member.is_some() && submitter == who.member),
            resolved: text_at(doc, petition::paths::STATUS, deps).as_deref()
                == Some(PetitionStatus::Resolved.as_str()),
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
            CommitteeOfAlliedKey => self.committee && key.is_some_and(|key| (self.allied)(key)),
        }
    }
}

/// The text at `field` as of `heads`, if it is text.
fn text_at(doc: &Automerge, field: FieldPath, heads: &[ChangeHash]) -> Option<String> {
    match field.get(doc, Some(heads)).ok()?? {
        (Value::Scalar(scalar), _) => scalar.as_str().map(str::to_owned),
        _ => None,
    }
}

/// The change that creates a document: the sender may create its kind in
/// its branch, and a petition from a member or a resident is a fresh one.
fn check_creation(
    doc: &Automerge,
    here: &[ChangeHash],
    subject: &Subject<'_>,
) -> Result<(), Violation> {
    let who = subject.who;
    let invalid = |why: String| Violation::new(ErrorCode::InvalidDocument, why);
    if !matches!(
        paths::META.get(doc, Some(here)),
        Ok(Some((Value::Object(ObjType::Map), _)))
    ) {
        return Err(invalid("a new document must start with its header".into()));
    }
    let kind = text_at(doc, paths::META_KIND, here).unwrap_or_default();
    let branch = text_at(doc, paths::META_BRANCH, here)
        .and_then(|text| text.parse().ok())
        .ok_or_else(|| invalid("the header names no branch".into()))?;
    if !access::may_create(who, &kind, branch) {
        return Err(invalid(format!(
            "a {} device may not create a {kind} document in branch {branch}",
            who.role
        )));
    }
    if let Some(field) = shared_with_field(DocClass::of(&kind))
        && let Ok(Some((Value::Object(ObjType::Map), shared))) = field.get(doc, Some(here))
        && let Some(stranger) = doc
            .keys_at(&shared, here)
            .find(|key| !(subject.allied)(key))
    {
        return Err(Violation::new(
            ErrorCode::NotAllied,
            format!("branch {stranger} is not allied with branch {branch}"),
        ));
    }
    if DocClass::of(&kind) == DocClass::Petition && !who.is_committee() {
        let empty = |field: FieldPath| match field.get(doc, Some(here)) {
            Ok(None) => true,
            Ok(Some((Value::Scalar(scalar), _))) => scalar.is_null(),
            Ok(Some((Value::Object(_), obj))) => doc.length_at(&obj, here) == 0,
            Err(_) => false,
        };
        let open = text_at(doc, petition::paths::STATUS, here).as_deref()
            == Some(PetitionStatus::Open.as_str());
        let submitter = text_at(doc, petition::paths::SUBMITTER_MEMBER, here);
        let names_sender = submitter.is_none_or(|text| {
            text.parse::<MemberId>()
                .ok()
                .is_some_and(|m| Some(m) == who.member)
        });
        let fresh = open
            && names_sender
            && [
                petition::paths::OWNER,
                petition::paths::PROGRESS,
                petition::paths::RESOLUTION,
                petition::paths::RATING,
            ]
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

#[cfg(test)]
mod tests {
    use automerge::{ActorId, AutoCommit};
    use branchline_core::EntryId;
    use branchline_core::model::{
        self, Activity, Applicant, Collection, Date, DuesLedger, LibraryEntry, LocalDateTime,
        NewActivity, NewLibraryEntry, NewMember, NewPetition, Petition, PointsBook, Record, Roster,
        SignInMode, Stage, Submitter, Timestamp,
    };
    use branchline_protocol::{BranchId, Role};

    use super::*;

    /// The server's copy of one document, and who is asking.
    struct Lab {
        server: Automerge,
        kind: &'static str,
        attrs: DocAttributes,
    }

    fn person(role: Role, branch: BranchId) -> Principal {
        Principal {
            device: DeviceId::new_random(),
            role,
            branch,
            member: (role != Role::Resident).then(MemberId::new_random),
        }
    }

    fn actor(who: &Principal) -> ActorId {
        ActorId::from(who.device.as_bytes().as_slice())
    }

    fn at(text: &str) -> LocalDateTime {
        text.parse().unwrap()
    }

    impl Lab {
        /// A document created by `creator` and stored on the server.
        fn new<R: Record>(record: &R, creator: &Principal, branch: BranchId) -> Lab {
            let mut doc = model::create_document(record, actor(creator)).unwrap();
            let server = Automerge::load(&doc.save()).unwrap();
            let mut attrs = DocAttributes::new(R::KIND.as_str(), branch);
            attrs.creator = Some(creator.device);
            Lab {
                server,
                kind: R::KIND.as_str(),
                attrs,
            }
        }

        /// `who` edits their copy (as of the server's state now) with `op`;
        /// returns the change, already applied on the server.
        fn edit<R: Record>(
            &mut self,
            who: &Principal,
            op: impl FnOnce(&mut R) -> branchline_core::Result<()>,
        ) -> Change {
            let mut copy = AutoCommit::load(&self.server.save())
                .unwrap()
                .with_actor(actor(who));
            self.edit_copy(&mut copy, op)
        }

        fn copy_for(&self, who: &Principal) -> AutoCommit {
            AutoCommit::load(&self.server.save())
                .unwrap()
                .with_actor(actor(who))
        }

        fn edit_copy<R: Record>(
            &mut self,
            copy: &mut AutoCommit,
            op: impl FnOnce(&mut R) -> branchline_core::Result<()>,
        ) -> Change {
            let before = copy.get_heads();
            model::edit(copy, op).unwrap();
            copy.commit();
            let mut changes = copy.get_changes(&before);
            assert_eq!(changes.len(), 1, "one operation, one change");
            changes.remove(0).clone()
        }

        /// Checks `change` as the server would, keeping it only if it passes.
        fn check(&mut self, change: &Change, who: &Principal) -> Result<(), Violation> {
            let device = who.device;
            let senders = move |bytes: &[u8]| bytes == device.as_bytes().as_slice();
            let subject = Subject {
                who,
                actor_is_senders: &senders,
                stored: Some(&self.attrs),
                kind: self.kind,
                allied: &|partner: &str| partner == ALLY,
            };
            let mut probe = self.server.clone();
            probe.apply_changes([change.clone()]).unwrap();
            let verdict = check_change(&probe, change, &subject);
            if verdict.is_ok() {
                self.server = probe;
            }
            verdict
        }
    }

    /// The one branch allied with the branches of these tests.
    const ALLY: &str = "0a11ed00-0000-4000-8000-000000000001";

    fn code(result: Result<(), Violation>) -> Option<String> {
        result.err().map(|v| v.code.as_str().to_owned())
    }

    fn core_member(who: &Principal) -> branchline_core::ids::MemberId {
        who.member.unwrap().into()
    }

    fn activity(branch: BranchId, organizer: Option<&Principal>) -> Activity {
        Activity::new(
            branch.into(),
            NewActivity {
                kind: "branch_meeting".into(),
                title: "支部党员大会".into(),
                starts_at: Some(at("2026-03-01T09:00")),
                ends_at: Some(at("2026-03-01T11:00")),
                organizer: organizer.map(core_member),
                ..Default::default()
            },
        )
        .unwrap()
    }

    #[test]
    fn members_sign_only_themselves_in_and_the_organizer_runs_the_activity() {
        let branch = BranchId::new_random();
        let secretary = person(Role::Secretary, branch);
        let organizer = person(Role::Member, branch);
        let member = person(Role::Member, branch);
        let other = person(Role::Member, branch);
        let third = person(Role::Member, branch);
        let mut lab = Lab::new(&activity(branch, Some(&organizer)), &secretary, branch);
        let now = Timestamp(1_772_355_600_000);

        let own = lab.edit(&member, |a: &mut Activity| {
            a.sign_in(core_member(&member), now, SignInMode::OnSite)
        });
        assert_eq!(code(lab.check(&own, &member)), None);

        let someone_else = lab.edit(&member, |a: &mut Activity| {
            a.sign_in(core_member(&other), now, SignInMode::Remote)
        });
        assert_eq!(
            code(lab.check(&someone_else, &member)).as_deref(),
            Some("rule.not_own_entry")
        );
        let leave = lab.edit(&third, |a: &mut Activity| {
            a.request_leave(core_member(&third), "出差", now)
        });
        assert_eq!(code(lab.check(&leave, &third)), None);

        let title = lab.edit(&member, |a: &mut Activity| {
            a.title = "改个标题".into();
            Ok(())
        });
        assert_eq!(
            code(lab.check(&title, &member)).as_deref(),
            Some("rule.organizer_only")
        );
        let minutes = lab.edit(&organizer, |a: &mut Activity| a.write_minutes("会议记录"));
        assert_eq!(code(lab.check(&minutes, &organizer)), None);
        let points = lab.edit(&secretary, |a: &mut Activity| {
            a.award_points(core_member(&member), 2)
        });
        assert_eq!(code(lab.check(&points, &secretary)), None);
        let sign_other_in = lab.edit(&organizer, |a: &mut Activity| {
            a.sign_in(core_member(&third), now, SignInMode::OnSite)
        });
        assert_eq!(code(lab.check(&sign_other_in, &organizer)), None);
        let close = lab.edit(&member, Activity::close);
        assert_eq!(
            code(lab.check(&close, &member)).as_deref(),
            Some("rule.organizer_only")
        );
    }

    fn petition(branch: BranchId, submitter: Option<&Principal>) -> Petition {
        Petition::submit(
            branch.into(),
            NewPetition {
                category: "环境卫生".into(),
                title: "楼道堆放杂物".into(),
                description: "三单元楼道堆满杂物".into(),
                submitter: Submitter {
                    member: submitter.map(core_member),
                    ..Default::default()
                },
                ..Default::default()
            },
            Timestamp(1_772_355_600_000),
        )
        .unwrap()
    }

    #[test]
    fn the_owner_works_a_petition_and_only_its_submitter_rates_it_once_resolved() {
        let branch = BranchId::new_random();
        let secretary = person(Role::Secretary, branch);
        let owner = person(Role::Member, branch);
        let member = person(Role::Member, branch);
        let resident = person(Role::Resident, branch);
        let mut lab = Lab::new(&petition(branch, None), &resident, branch);
        let day = Date::ymd(2026, 3, 20).unwrap();
        let now = Timestamp(1_772_400_000_000);

        let assign = lab.edit(&owner, |p: &mut Petition| {
            p.assign(core_member(&owner), day)
        });
        assert_eq!(
            code(lab.check(&assign, &owner)).as_deref(),
            Some("rule.committee_only"),
            "a member may not assign a petition, even to themselves"
        );
        let mut lab = Lab::new(&petition(branch, None), &resident, branch);
        let assign = lab.edit(&secretary, |p: &mut Petition| {
            p.assign(core_member(&owner), day)
        });
        assert_eq!(code(lab.check(&assign, &secretary)), None);

        let stranger_note = lab.edit(&member, |p: &mut Petition| {
            p.add_progress(member.member.map(Into::into), "我来看看", now)
        });
        assert_eq!(
            code(lab.check(&stranger_note, &member)).as_deref(),
            Some("rule.owner_only")
        );
        let early_rating = lab.edit(&resident, |p: &mut Petition| {
            p.status = model::PetitionStatus::Resolved;
            p.rate(5, None, now)
        });
        assert!(
            matches!(
                code(lab.check(&early_rating, &resident)).as_deref(),
                Some("rule.owner_only" | "rule.not_resolved")
            ),
            "a resident may not mark their own request resolved"
        );

        let mut lab = Lab::new(&petition(branch, None), &resident, branch);
        let assign = lab.edit(&secretary, |p: &mut Petition| {
            p.assign(core_member(&owner), day)
        });
        assert_eq!(code(lab.check(&assign, &secretary)), None);
        let note = lab.edit(&owner, |p: &mut Petition| {
            p.add_progress(owner.member.map(Into::into), "已联系物业", now)
        });
        assert_eq!(code(lab.check(&note, &owner)), None);
        let resolve = lab.edit(&owner, |p: &mut Petition| {
            p.resolve(owner.member.map(Into::into), "已清理", now)
        });
        assert_eq!(code(lab.check(&resolve, &owner)), None);
        let not_theirs = lab.edit(&member, |p: &mut Petition| p.rate(1, None, now));
        assert_eq!(
            code(lab.check(&not_theirs, &member)).as_deref(),
            Some("rule.submitter_only")
        );
        let mut lab2 = Lab::new(&petition(branch, None), &resident, branch);
        let unresolved = lab2.edit(&resident, |p: &mut Petition| {
            p.rating = Some(model::Rating {
                score: 5,
                comment: None,
                at: now,
            });
            Ok(())
        });
        assert_eq!(
            code(lab2.check(&unresolved, &resident)).as_deref(),
            Some("rule.not_resolved")
        );
        let rating = lab.edit(&resident, |p: &mut Petition| p.rate(4, Some("满意"), now));
        assert_eq!(code(lab.check(&rating, &resident)), None);
        let reopen = lab.edit(&owner, |p: &mut Petition| {
            p.reopen(owner.member.map(Into::into), "又堆起来了", now)
        });
        assert_eq!(
            code(lab.check(&reopen, &owner)),
            None,
            "reopening clears the rating"
        );
        let retitle = lab.edit(&resident, |p: &mut Petition| {
            p.title = "别的".into();
            Ok(())
        });
        assert_eq!(
            code(lab.check(&retitle, &resident)).as_deref(),
            Some("rule.committee_only")
        );
    }

    #[test]
    fn activities_are_shared_only_with_allied_branches_by_the_committee() {
        let branch = BranchId::new_random();
        let secretary = person(Role::Secretary, branch);
        let organizer = person(Role::Member, branch);
        let mut lab = Lab::new(&activity(branch, Some(&organizer)), &secretary, branch);
        let ally: branchline_core::BranchId = ALLY.parse().unwrap();
        let stranger = branchline_core::BranchId::random();
        let by_organizer = lab.edit(&organizer, |a: &mut Activity| a.share_with(ally));
        assert_eq!(
            code(lab.check(&by_organizer, &organizer)).as_deref(),
            Some("rule.committee_only")
        );
        let unallied = lab.edit(&secretary, |a: &mut Activity| a.share_with(stranger));
        assert_eq!(
            code(lab.check(&unallied, &secretary)).as_deref(),
            Some("rule.not_allied")
        );
        let allied = lab.edit(&secretary, |a: &mut Activity| a.share_with(ally));
        assert_eq!(code(lab.check(&allied, &secretary)), None);

        let mut shared = activity(branch, None);
        shared.share_with(stranger).unwrap();
        assert_eq!(
            code(creation(&shared, &secretary)).as_deref(),
            Some("rule.not_allied"),
            "nor created already shared with a stranger"
        );
    }

    fn library_entry(branch: BranchId) -> LibraryEntry {
        LibraryEntry::new(
            branch.into(),
            NewLibraryEntry {
                collection: Collection::Problem,
                title: "路灯坏了没人管".into(),
                problem: "老旧小区路灯长期不亮".into(),
                solution: "联系街道，结对单位出资修好".into(),
                tags: vec!["路灯".into()],
                written_on: Date::ymd(2026, 5, 1).unwrap(),
            },
        )
        .unwrap()
    }

    #[test]
    fn library_entries_are_the_committees_and_shared_only_with_allied_branches() {
        let branch = BranchId::new_random();
        let secretary = person(Role::Secretary, branch);
        let member = person(Role::Member, branch);
        let mut lab = Lab::new(&library_entry(branch), &secretary, branch);
        let ally: branchline_core::BranchId = ALLY.parse().unwrap();
        let stranger = branchline_core::BranchId::random();

        let revised = lab.edit(&member, |e: &mut LibraryEntry| {
            e.revise(None, None, Some("我觉得应该这样"))
        });
        assert_eq!(
            code(lab.check(&revised, &member)).as_deref(),
            Some("rule.committee_only")
        );
        let by_member = lab.edit(&member, |e: &mut LibraryEntry| e.share_with(ally));
        assert_eq!(
            code(lab.check(&by_member, &member)).as_deref(),
            Some("rule.committee_only")
        );
        let down_by_member = lab.edit(&member, |e: &mut LibraryEntry| {
            e.share_down(true);
            Ok(())
        });
        assert_eq!(
            code(lab.check(&down_by_member, &member)).as_deref(),
            Some("rule.committee_only")
        );
        let unallied = lab.edit(&secretary, |e: &mut LibraryEntry| e.share_with(stranger));
        assert_eq!(
            code(lab.check(&unallied, &secretary)).as_deref(),
            Some("rule.not_allied")
        );
        let allied = lab.edit(&secretary, |e: &mut LibraryEntry| e.share_with(ally));
        assert_eq!(code(lab.check(&allied, &secretary)), None);
        let down = lab.edit(&secretary, |e: &mut LibraryEntry| {
            e.share_down(true);
            e.revise(None, None, Some("街道出资修好"))
        });
        assert_eq!(code(lab.check(&down, &secretary)), None);
        let unshared = lab.edit(&secretary, |e: &mut LibraryEntry| {
            e.shared_with.clear();
            Ok(())
        });
        assert_eq!(
            code(lab.check(&unshared, &secretary)),
            None,
            "the committee stops sharing with any branch"
        );

        let mut shared = library_entry(branch);
        shared.share_with(stranger).unwrap();
        assert_eq!(
            code(creation(&shared, &secretary)).as_deref(),
            Some("rule.not_allied"),
            "nor created already shared with a stranger"
        );
        let mut shared = library_entry(branch);
        shared.share_with(ally).unwrap();
        shared.share_down(true);
        assert_eq!(code(creation(&shared, &secretary)), None);
        assert_eq!(
            code(creation(&library_entry(branch), &member)).as_deref(),
            Some("sync.invalid_document"),
            "members do not write library entries"
        );
    }

    #[test]
    fn only_the_committee_keeps_dues_points_and_applicant_files() {
        let branch = BranchId::new_random();
        let secretary = person(Role::Secretary, branch);
        let member = person(Role::Member, branch);
        let me = core_member(&member);
        let day = Date::ymd(2026, 4, 2).unwrap();

        let mut ledger = Lab::new(&DuesLedger::new(branch.into(), 2026), &secretary, branch);
        let paid = |l: &mut DuesLedger| l.record_payment(EntryId::random(), me, 1..=3, 300, day);
        let by_member = ledger.edit(&member, paid);
        assert_eq!(
            code(ledger.check(&by_member, &member)).as_deref(),
            Some("rule.committee_only")
        );
        let by_secretary = ledger.edit(&secretary, paid);
        assert_eq!(code(ledger.check(&by_secretary, &secretary)), None);

        let mut book = Lab::new(&PointsBook::new(branch.into(), 2026), &secretary, branch);
        let award =
            |b: &mut PointsBook| b.award(EntryId::random(), me, 5, None, Some("自评满分"), day);
        let by_member = book.edit(&member, award);
        assert_eq!(
            code(book.check(&by_member, &member)).as_deref(),
            Some("rule.committee_only")
        );
        let by_secretary = book.edit(&secretary, award);
        assert_eq!(code(book.check(&by_secretary, &secretary)), None);

        let applied = Date::ymd(2026, 1, 5).unwrap();
        let file = Applicant::new(branch.into(), me, applied);
        let mut lab = Lab::new(&file, &secretary, branch);
        let activist = |a: &mut Applicant| a.record_stage(Stage::Activist, day, None);
        let by_applicant = lab.edit(&member, activist);
        assert_eq!(
            code(lab.check(&by_applicant, &member)).as_deref(),
            Some("rule.committee_only"),
            "an applicant does not record their own steps"
        );
        let by_secretary = lab.edit(&secretary, activist);
        assert_eq!(code(lab.check(&by_secretary, &secretary)), None);
        let created = [
            creation(&DuesLedger::new(branch.into(), 2026), &member),
            creation(&PointsBook::new(branch.into(), 2026), &member),
            creation(&file, &member),
        ];
        for refused in created {
            assert_eq!(
                code(refused).as_deref(),
                Some("sync.invalid_document"),
                "members create none of them"
            );
        }
    }

    #[test]
    fn an_owner_reassigned_while_offline_still_gets_their_note_in() {
        let branch = BranchId::new_random();
        let secretary = person(Role::Secretary, branch);
        let first = person(Role::Member, branch);
        let second = person(Role::Member, branch);
        let mut lab = Lab::new(&petition(branch, None), &secretary, branch);
        let day = Date::ymd(2026, 3, 20).unwrap();
        let assign = lab.edit(&secretary, |p: &mut Petition| {
            p.assign(core_member(&first), day)
        });
        assert_eq!(code(lab.check(&assign, &secretary)), None);
        let mut offline = lab.copy_for(&first);
        let reassign = lab.edit(&secretary, |p: &mut Petition| {
            p.assign(core_member(&second), day)
        });
        assert_eq!(code(lab.check(&reassign, &secretary)), None);
        let note = lab.edit_copy(&mut offline, |p: &mut Petition| {
            p.add_progress(first.member.map(Into::into), "上周已处理一半", Timestamp(0))
        });
        assert_eq!(code(lab.check(&note, &first)), None);
    }

    #[test]
    fn only_the_committee_edits_the_roster_and_nobody_rewrites_the_header() {
        let branch = BranchId::new_random();
        let secretary = person(Role::Secretary, branch);
        let member = person(Role::Member, branch);
        let mut lab = Lab::new(&Roster::new(branch.into()), &secretary, branch);
        let add = |name: &str| {
            let name = name.to_owned();
            move |r: &mut Roster| {
                r.add_member(NewMember {
                    name,
                    ..Default::default()
                })
                .map(|_| ())
            }
        };
        let by_member = lab.edit(&member, add("王五"));
        assert_eq!(
            code(lab.check(&by_member, &member)).as_deref(),
            Some("rule.committee_only")
        );
        let by_secretary = lab.edit(&secretary, add("李四"));
        assert_eq!(code(lab.check(&by_secretary, &secretary)), None);
        let header = lab.edit(&secretary, |r: &mut Roster| {
            r.meta.schema = 99;
            Ok(())
        });
        assert_eq!(
            code(lab.check(&header, &secretary)).as_deref(),
            Some("sync.invalid_document")
        );
    }

    #[test]
    fn a_change_under_another_devices_actor_is_refused() {
        let branch = BranchId::new_random();
        let secretary = person(Role::Secretary, branch);
        let impostor = person(Role::Committee, branch);
        let mut lab = Lab::new(&Roster::new(branch.into()), &secretary, branch);
        let forged = lab.edit(&secretary, |r: &mut Roster| {
            r.add_member(NewMember {
                name: "张三".into(),
                ..Default::default()
            })
            .map(|_| ())
        });
        assert_eq!(
            code(lab.check(&forged, &impostor)).as_deref(),
            Some("rule.foreign_actor")
        );
    }

    #[test]
    fn a_change_must_name_its_own_member() {
        let branch = BranchId::new_random();
        let secretary = person(Role::Secretary, branch);
        let mut lab = Lab::new(&Roster::new(branch.into()), &secretary, branch);
        let mut signed = |names: Option<String>| {
            let mut copy = lab.copy_for(&secretary);
            let before = copy.get_heads();
            model::edit(&mut copy, |r: &mut Roster| {
                r.add_member(NewMember {
                    name: "张三".into(),
                    ..Default::default()
                })
                .map(|_| ())
            })
            .unwrap();
            let options = automerge::transaction::CommitOptions::default();
            copy.commit_with(match names {
                Some(message) => options.with_message(message),
                None => options,
            });
            let change = copy.get_changes(&before).remove(0).clone();
            code(lab.check(&change, &secretary))
        };
        let own = secretary.member.unwrap();
        assert_eq!(signed(Some(format!("member:{own}"))), None);
        assert_eq!(signed(None), None, "a change may name nobody");
        assert_eq!(
            signed(Some(format!("member:{}", MemberId::new_random()))).as_deref(),
            Some("rule.foreign_actor")
        );
        assert_eq!(
            signed(Some("member:nobody".into())).as_deref(),
            Some("rule.foreign_actor")
        );
        assert_eq!(
            signed(Some("a note".into())),
            None,
            "other messages are free"
        );
    }

    fn creation(record: &impl Record, who: &Principal) -> Result<(), Violation> {
        let mut doc = model::create_document(record, actor(who)).unwrap();
        let change = doc.get_changes(&[]).remove(0).clone();
        let server = Automerge::load(&doc.save()).unwrap();
        let device = who.device;
        let senders = move |bytes: &[u8]| bytes == device.as_bytes().as_slice();
        let kind = model::read_meta(&server).unwrap().kind;
        check_change(
            &server,
            &change,
            &Subject {
                who,
                actor_is_senders: &senders,
                stored: None,
                kind: &kind,
                allied: &|partner: &str| partner == ALLY,
            },
        )
    }

    #[test]
    fn members_create_only_fresh_petitions_in_their_own_name_and_branch() {
        let branch = BranchId::new_random();
        let member = person(Role::Member, branch);
        let other = person(Role::Member, branch);
        assert_eq!(
            code(creation(&petition(branch, Some(&member)), &member)),
            None
        );
        assert_eq!(
            code(creation(&petition(branch, Some(&other)), &member)).as_deref(),
            Some("rule.not_a_new_submission")
        );
        let mut assigned = petition(branch, Some(&member));
        assigned
            .assign(core_member(&member), Date::ymd(2026, 4, 1).unwrap())
            .unwrap();
        assert_eq!(
            code(creation(&assigned, &member)).as_deref(),
            Some("rule.not_a_new_submission")
        );
        assert_eq!(
            code(creation(&Roster::new(branch.into()), &member)).as_deref(),
            Some("sync.invalid_document")
        );
        let elsewhere = BranchId::new_random();
        assert_eq!(
            code(creation(&petition(elsewhere, Some(&member)), &member)).as_deref(),
            Some("sync.invalid_document")
        );
        let secretary = person(Role::Secretary, branch);
        assert_eq!(code(creation(&assigned, &secretary)), None);
    }

    /// One workflow operation on a record.
    type Op<R> = Box<dyn FnOnce(&mut R) -> branchline_core::Result<()>>;

    /// The people of one branch in the property test: a secretary, a
    /// committee member, four members (the first organizes, the second and
    /// third may own the petition) and the resident who filed the petition.
    fn cast(branch: BranchId) -> Vec<Principal> {
        let mut people = vec![
            person(Role::Secretary, branch),
            person(Role::Committee, branch),
        ];
        people.extend((0..4).map(|_| person(Role::Member, branch)));
        people.push(person(Role::Resident, branch));
        people
    }

    /// One honest operation: what this person's role lets them do, made
    /// through the same workflow methods the app uses. `None` when the
    /// role has nothing of this kind to do.
    fn honest_activity_op(
        who: &Principal,
        organizer: &Principal,
        people: &[Principal],
        pick: u8,
    ) -> Option<Op<Activity>> {
        let now = Timestamp(1_772_355_600_000 + i64::from(pick) * 60_000);
        let target = core_member(&people[2 + usize::from(pick) % 4]);
        let committee = who.is_committee();
        let organizing = who.member == organizer.member;
        let me = who.member.map(branchline_core::ids::MemberId::from)?;
        let text = format!("第{pick}条");
        Some(match pick % 6 {
            0 => Box::new(move |a| a.sign_in(me, now, SignInMode::OnSite)),
            1 => Box::new(move |a| a.request_leave(me, "家里有事", now)),
            2 if committee || organizing => Box::new(move |a| a.write_minutes(&text)),
            3 if committee || organizing => Box::new(move |a| a.award_points(target, 1)),
            4 if committee || organizing => {
                Box::new(move |a| a.sign_in(target, now, SignInMode::Remote))
            }
            5 if committee || organizing => Box::new(move |a| a.set_agenda(&text)),
            _ => return None,
        })
    }

    fn honest_petition_op(who: &Principal, people: &[Principal], pick: u8) -> Option<Op<Petition>> {
        let now = Timestamp(1_772_400_000_000 + i64::from(pick) * 60_000);
        let me = who.member.map(branchline_core::ids::MemberId::from);
        let owner = core_member(&people[3 + usize::from(pick) % 2]);
        let day = Date::ymd(2026, 4, 1).unwrap();
        let committee = who.is_committee();
        let text = format!("进展{pick}");
        Some(match (who.role, pick % 4) {
            (Role::Resident, _) => Box::new(move |p| p.rate(1 + pick % 5, None, now)),
            (_, 0) if committee => Box::new(move |p| p.assign(owner, day)),
            (_, 1) => Box::new(move |p: &mut Petition| {
                // Only the owner (or the committee) works on it.
                if !committee && p.owner != me {
                    return Err(branchline_core::Error::PetitionNoOwner);
                }
                p.add_progress(me, &text, now)
            }),
            (_, 2) => Box::new(move |p: &mut Petition| {
                if !committee && p.owner != me {
                    return Err(branchline_core::Error::PetitionNoOwner);
                }
                p.resolve(me, &text, now)
            }),
            (_, 3) => Box::new(move |p: &mut Petition| {
                if !committee && p.owner != me {
                    return Err(branchline_core::Error::PetitionNoOwner);
                }
                p.reopen(me, &text, now)
            }),
            _ => return None,
        })
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]

        /// Every person edits their own, possibly stale, copy and the
        /// server checks each change against the document as the server
        /// holds it: honest operations from every role, made concurrently,
        /// are never refused.
        #[test]
        fn honest_concurrent_operations_are_never_refused(
            steps in proptest::collection::vec((0usize..7, proptest::prelude::any::<u8>(), proptest::prelude::any::<bool>()), 1..40)
        ) {
            let branch = BranchId::new_random();
            let people = cast(branch);
            let organizer = people[2].clone();
            let mut meeting = Lab::new(&activity(branch, Some(&organizer)), &people[0], branch);
            let mut request = Lab::new(&petition(branch, None), &people[6], branch);
            let mut meeting_copies: Vec<AutoCommit> =
                people.iter().map(|who| meeting.copy_for(who)).collect();
            let mut request_copies: Vec<AutoCommit> =
                people.iter().map(|who| request.copy_for(who)).collect();
            for (index, pick, catch_up) in steps {
                let who = &people[index];
                if catch_up {
                    meeting_copies[index].merge(&mut AutoCommit::load(&meeting.server.save()).unwrap()).unwrap();
                    request_copies[index].merge(&mut AutoCommit::load(&request.server.save()).unwrap()).unwrap();
                }
                if pick % 2 == 0 {
                    if let Some(op) = honest_activity_op(who, &organizer, &people, pick / 2) {
                        let copy = &mut meeting_copies[index];
                        let before = copy.get_heads();
                        if model::edit(copy, op).is_ok() {
                            copy.commit();
                            for change in copy.get_changes(&before) {
                                let change = change.clone();
                                let verdict = meeting.check(&change, who);
                                proptest::prop_assert!(verdict.is_ok(), "{} refused: {verdict:?}", who.role);
                            }
                        }
                    }
                } else if let Some(op) = honest_petition_op(who, &people, pick / 2) {
                    let copy = &mut request_copies[index];
                    let before = copy.get_heads();
                    if model::edit(copy, op).is_ok() {
                        copy.commit();
                        for change in copy.get_changes(&before) {
                            let change = change.clone();
                            let verdict = request.check(&change, who);
                            proptest::prop_assert!(verdict.is_ok(), "{} refused: {verdict:?}", who.role);
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn patterns_match_whole_paths() {
        let path = |p: &str| p.split('/').map(str::to_owned).collect::<Vec<_>>();
        let sign_ins = Field(activity::paths::SIGN_INS);
        assert_eq!(
            matches(&[sign_ins, Any, Rest], &path("sign_ins/m1/at")),
            Some(Some("m1"))
        );
        assert_eq!(matches(&[sign_ins, Any, Rest], &path("sign_ins")), None);
        let status = Field(petition::paths::STATUS);
        assert_eq!(matches(&[status], &path("status/x")), None);
        assert_eq!(matches(&[Rest], &path("anything/at/all")), Some(None));
        let member = Field(petition::paths::SUBMITTER_MEMBER);
        assert_eq!(matches(&[member], &path("submitter/member")), Some(None));
        assert_eq!(matches(&[member], &path("submitter/name")), None);
        assert_eq!(matches(&[member, Rest], &path("submitter")), None);
    }

    #[test]
    fn a_panic_while_checking_refuses_the_change() {
        let verdict = contained(|| panic!("automerge fell over"));
        let refusal = verdict.unwrap_err();
        assert_eq!(refusal.code, ErrorCode::InvalidDocument);
        assert_eq!(contained(|| Ok(())), Ok(()));
    }

    /// The declared paths of the kinds a table serves; `Other` (a kind from
    /// a newer build) declares nothing but the header.
    fn declared(class: DocClass) -> &'static [FieldPath] {
        match class {
            DocClass::BranchProfile => model::BranchProfile::PATHS,
            DocClass::Roster => Roster::PATHS,
            DocClass::MemberFile => model::MemberFile::PATHS,
            DocClass::Activity => Activity::PATHS,
            DocClass::Petition => Petition::PATHS,
            DocClass::FeedbackBox => model::FeedbackBox::PATHS,
            DocClass::FeedbackDrafts => model::FeedbackDrafts::PATHS,
            DocClass::DuesLedger => DuesLedger::PATHS,
            DocClass::PointsBook => PointsBook::PATHS,
            DocClass::Applicant => Applicant::PATHS,
            DocClass::LibraryEntry => LibraryEntry::PATHS,
            DocClass::Other => &[],
        }
    }

    #[test]
    fn every_table_names_only_fields_its_kinds_declare() {
        let classes = [
            DocClass::BranchProfile,
            DocClass::Roster,
            DocClass::MemberFile,
            DocClass::Activity,
            DocClass::Petition,
            DocClass::FeedbackBox,
            DocClass::FeedbackDrafts,
            DocClass::DuesLedger,
            DocClass::PointsBook,
            DocClass::Applicant,
            DocClass::LibraryEntry,
            DocClass::Other,
        ];
        let mut named = 0;
        for class in classes {
            for rule in table(class) {
                let fields = rule.path.iter().filter_map(|seg| match seg {
                    Field(field) => Some(*field),
                    Any | Rest => None,
                });
                for field in fields {
                    named += 1;
                    assert!(
                        paths::HEADER.contains(&field) || declared(class).contains(&field),
                        "the {class:?} table names {field}, which {class:?} does not declare"
                    );
                }
            }
            assert!(
                matches!(table(class).last().map(|rule| rule.path), Some([Rest])),
                "the {class:?} table ends with a catch-all"
            );
        }
        assert!(named >= 8, "the tables name fields ({named})");
    }

    /// The codes named in `source` as `ErrorCode::Name`, as codes.
    fn codes_named_in(source: &str) -> Vec<ErrorCode> {
        source
            .split("ErrorCode::")
            .skip(1)
            .filter_map(|rest| {
                let name: String = rest
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric())
                    .collect();
                ErrorCode::KNOWN
                    .iter()
                    .find(|code| format!("{code:?}") == name)
                    .cloned()
            })
            .collect()
    }

    #[test]
    fn every_refusal_code_has_words_in_both_languages() {
        // Read from the source, so a code the rules start using is covered
        // at once; write access refuses with the two access codes.
        let mut codes = codes_named_in(include_str!("rules.rs"));
        codes.extend(codes_named_in(include_str!("access.rs")));
        codes.extend([ErrorCode::ReadOnly, ErrorCode::AccessDenied]);
        codes.sort_by(|a, b| a.as_str().cmp(b.as_str()));
        codes.dedup();
        assert!(codes.len() >= 12, "found only {codes:?}");
        for code in codes {
            let words = branchline_core::refusal::explain(code.as_str())
                .unwrap_or_else(|| panic!("{code} has no words for people"));
            assert!(!words.english.trim().is_empty(), "{code}");
            assert!(
                words
                    .chinese
                    .chars()
                    .any(|c| ('\u{4e00}'..='\u{9fff}').contains(&c)),
                "{code} has no Chinese words"
            );
        }
    }
}
