//! Concurrent edits stay visible.
//!
//! When two devices set the same field offline, automerge keeps every value and picks
//! a deterministic winner. The merge is correct, but a person should know: the
//! secretary changed the phone number to one thing and a committee member to another.
//! [`find`] lists every field holding more than one value, with each value and the
//! device that wrote it; [`settle`] keeps the one a person chose, which replaces all
//! of them for everyone.
//!
//! Text (minutes, descriptions) merges character by character and counters add up,
//! so neither ever conflicts.

use automerge::transaction::Transactable;
use automerge::{AutoCommit, ObjId, ObjType, Prop, ROOT, ReadDoc, ScalarValue, Value};

use crate::error::{Error, Result};
use crate::ids::{DeviceId, DocId, MemberId};
use crate::model::{self, FieldPath};

/// What a local change's message starts with: the member who made it follows.
const AUTHOR_PREFIX: &str = "member:";

/// The message a device puts on each change it makes for `member`.
pub(crate) fn author_message(member: MemberId) -> String {
    format!("{AUTHOR_PREFIX}{member}")
}

/// A change message that claims a member but names none readable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnreadableAuthor;

/// The member a change's message names, if it names one.
pub fn author_of(message: Option<&str>) -> std::result::Result<Option<MemberId>, UnreadableAuthor> {
    match message.and_then(|m| m.strip_prefix(AUTHOR_PREFIX)) {
        None => Ok(None),
        Some(member) => member.parse().map(Some).map_err(|_| UnreadableAuthor),
    }
}

/// A field with more than one concurrent value.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Conflict {
    /// The document.
    pub doc: DocId,
    /// The field, as `/`-separated keys from the document root (e.g.
    /// `members/<member id>/phone`).
    pub path: String,
    /// Every value, in a stable order.
    pub values: Vec<ConflictValue>,
}

/// One of the concurrent values of a field.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct ConflictValue {
    /// The value, rendered for people (text as is, objects summarised).
    pub value: String,
    /// The device that wrote it, when the writer was a Branchline device.
    pub device: Option<DeviceId>,
    /// The member who wrote it, when the change says (Branchline devices name
    /// their member on every change).
    pub member: Option<MemberId>,
    /// The automerge actor that wrote it, in hex.
    pub actor: String,
    /// Whether automerge currently shows this value.
    pub winner: bool,
}

/// Every conflicting field of `doc`.
pub fn find(id: DocId, doc: &AutoCommit) -> Vec<Conflict> {
    let mut found = Found::default();
    walk(id, doc, &ROOT, &mut Vec::new(), &mut found);
    if !found.conflicts.is_empty() {
        name_authors(doc, &mut found);
    }
    found.conflicts
}

/// Conflicts found so far, with the operation behind each value.
#[derive(Default)]
struct Found {
    conflicts: Vec<Conflict>,
    ops: Vec<Vec<ObjId>>,
}

/// Fills in who wrote each conflicting value, from the message of the change
/// that holds its operation.
fn name_authors(doc: &AutoCommit, found: &mut Found) {
    let author = |op: &ObjId| {
        let hash = doc.hash_for_opid(op)?;
        let change = ReadDoc::get_change_by_hash(doc, &hash)?;
        author_of(change.message()).ok().flatten()
    };
    for (conflict, ops) in found.conflicts.iter_mut().zip(&found.ops) {
        for (value, op) in conflict.values.iter_mut().zip(ops) {
            value.member = author(op);
        }
    }
}

fn walk(id: DocId, doc: &AutoCommit, obj: &ObjId, path: &mut Vec<String>, found: &mut Found) {
    match doc.object_type(obj) {
        Ok(ObjType::Map | ObjType::Table) => {
            for key in doc.keys(obj).collect::<Vec<_>>() {
                visit(id, doc, obj, Prop::Map(key), path, found);
            }
        }
        Ok(ObjType::List) => {
            for index in 0..doc.length(obj) {
                visit(id, doc, obj, Prop::Seq(index), path, found);
            }
        }
        Ok(ObjType::Text) | Err(_) => {}
    }
}

fn visit(
    id: DocId,
    doc: &AutoCommit,
    obj: &ObjId,
    prop: Prop,
    path: &mut Vec<String>,
    found: &mut Found,
) {
    let values = doc.get_all(obj, prop.clone()).unwrap_or_default();
    // One value is its own winner; only a conflict needs a second lookup.
    let winner = match values.as_slice() {
        [] => None,
        [(_, only)] => Some(only.clone()),
        _ => doc.get(obj, prop.clone()).ok().flatten().map(|(_, id)| id),
    };
    path.push(prop.to_string());
    if values.len() > 1 {
        found
            .ops
            .push(values.iter().map(|(_, op)| op.clone()).collect());
        found.conflicts.push(Conflict {
            doc: id,
            path: path.join("/"),
            values: values
                .iter()
                .map(|(value, op)| ConflictValue {
                    value: render(doc, value, op),
                    device: device_of(op),
                    member: None,
                    actor: actor_of(op),
                    winner: winner.as_ref() == Some(op),
                })
                .collect(),
        });
    }
    if let Some((Value::Object(_), child)) = winner
        .as_ref()
        .and_then(|w| values.iter().find(|(_, op)| op == w))
    {
        walk(id, doc, child, path, found);
    }
    path.pop();
}

fn actor_of(op: &ObjId) -> String {
    match op {
        ObjId::Id(_, actor, _) => actor.to_hex_string(),
        ObjId::Root => String::new(),
    }
}

fn device_of(op: &ObjId) -> Option<DeviceId> {
    match op {
        ObjId::Id(_, actor, _) => <[u8; 16]>::try_from(actor.to_bytes())
            .ok()
            .map(DeviceId::from_bytes),
        ObjId::Root => None,
    }
}

fn render(doc: &AutoCommit, value: &Value<'_>, op: &ObjId) -> String {
    match value {
        Value::Scalar(s) => match s.as_ref() {
            ScalarValue::Str(s) => s.to_string(),
            ScalarValue::Timestamp(ms) => chrono::DateTime::from_timestamp_millis(*ms)
                .map_or_else(|| ms.to_string(), |t| t.to_rfc3339()),
            other => other.to_string(),
        },
        Value::Object(ObjType::Text) => doc.text(op).unwrap_or_default(),
        Value::Object(ObjType::List) => format!("[{} items]", doc.length(op)),
        Value::Object(_) => {
            let fields: Vec<String> = doc
                .keys(op)
                .filter_map(|key| match doc.get(op, key.as_str()) {
                    Ok(Some((Value::Scalar(s), _))) => Some(format!("{key}: {s}")),
                    _ => None,
                })
                .collect();
            format!("{{{}}}", fields.join(", "))
        }
    }
}

/// Settles the conflict at `path` by keeping value number `keep` of [`find`]'s list.
pub fn settle(doc: &mut AutoCommit, path: &str, keep: usize) -> Result<()> {
    let not_found = || Error::ConflictNotFound(path.to_owned());
    let (obj, prop) = field(doc, path)?;
    let values = doc.get_all(&obj, prop.clone())?;
    if values.len() < 2 {
        return Err(not_found());
    }
    let (value, source) = values.get(keep).cloned().ok_or_else(not_found)?;
    match value {
        Value::Scalar(s) => doc.put(&obj, prop, plain_scalar(&s))?,
        Value::Object(kind) => {
            let copy = doc.put_object(&obj, prop, kind)?;
            copy_object(doc, &source, &copy)?;
        }
    }
    Ok(())
}

/// Settles `path` by keeping value `keep`, and with it each field of
/// `together` that is in conflict too, by keeping the value the same change
/// wrote there: fields one edit sets together (an activity's start and end)
/// are settled as that edit left them, never one writer's start with the
/// other's end.
pub fn settle_together(
    doc: &mut AutoCommit,
    path: &str,
    keep: usize,
    together: &[FieldPath],
) -> Result<()> {
    let (obj, prop) = field(doc, path)?;
    let values = doc.get_all(&obj, prop)?;
    let (_, kept) = values
        .get(keep)
        .ok_or_else(|| Error::ConflictNotFound(path.to_owned()))?;
    let change = doc.hash_for_opid(kept);
    for companion in together.iter().map(ToString::to_string) {
        if companion == path {
            continue;
        }
        let Ok((obj, prop)) = field(doc, &companion) else {
            continue;
        };
        let values = doc.get_all(&obj, prop)?;
        let same = values
            .iter()
            .position(|(_, op)| change.is_some() && doc.hash_for_opid(op) == change);
        if let (true, Some(index)) = (values.len() > 1, same) {
            settle(doc, &companion, index)?;
        }
    }
    settle(doc, path, keep)
}

/// Settles the conflict at `path` of an activity by keeping value `keep`. The
/// schedule is settled as one edit left it ([`settle_together`]) and written
/// again whole, as every edit of it is ([`model::Record::WRITTEN_TOGETHER`]), so a
/// concurrent reschedule elsewhere cannot split it either; an activity that would
/// end before it starts is refused (`activity.end_before_start`, possible only
/// with schedules written by older builds, one key at a time). On an error the
/// caller rolls the document back.
pub fn settle_activity(doc: &mut AutoCommit, path: &str, keep: usize) -> Result<()> {
    let schedule = model::activity::paths::SCHEDULE;
    settle_together(doc, path, keep, schedule)?;
    if schedule.iter().any(|p| p.to_string() == path) {
        model::write_together(doc, schedule)?;
    }
    let activity: model::Activity = model::hydrate(doc)?;
    if activity.ends_at <= activity.starts_at {
        return Err(Error::EndBeforeStart);
    }
    Ok(())
}

/// The object and key a `/`-separated path names.
fn field(doc: &AutoCommit, path: &str) -> Result<(ObjId, Prop)> {
    let not_found = || Error::ConflictNotFound(path.to_owned());
    let mut segments: Vec<&str> = path.split('/').collect();
    let last = segments
        .pop()
        .filter(|s| !s.is_empty())
        .ok_or_else(not_found)?;
    let mut obj = ROOT;
    for segment in segments {
        let prop = prop_in(doc, &obj, segment).ok_or_else(not_found)?;
        obj = match doc.get(&obj, prop) {
            Ok(Some((Value::Object(_), child))) => child,
            _ => return Err(not_found()),
        };
    }
    let prop = prop_in(doc, &obj, last).ok_or_else(not_found)?;
    Ok((obj, prop))
}

fn prop_in(doc: &AutoCommit, obj: &ObjId, segment: &str) -> Option<Prop> {
    match doc.object_type(obj).ok()? {
        ObjType::List | ObjType::Text => segment.parse().ok().map(Prop::Seq),
        ObjType::Map | ObjType::Table => Some(Prop::Map(segment.to_owned())),
    }
}

/// A counter is written as a fresh counter holding its current value.
fn plain_scalar(s: &ScalarValue) -> ScalarValue {
    match s {
        ScalarValue::Counter(c) => ScalarValue::counter(i64::from(c)),
        other => other.clone(),
    }
}

/// Deep-copies the object `from` into the new, empty object `to`.
fn copy_object(doc: &mut AutoCommit, from: &ObjId, to: &ObjId) -> Result<()> {
    match doc.object_type(from)? {
        ObjType::Text => {
            let text = doc.text(from)?;
            doc.splice_text(to, 0, 0, &text)?;
        }
        ObjType::List => {
            for index in 0..doc.length(from) {
                match doc.get(from, index)? {
                    Some((Value::Scalar(s), _)) => doc.insert(to, index, plain_scalar(&s))?,
                    Some((Value::Object(kind), child)) => {
                        let new = doc.insert_object(to, index, kind)?;
                        copy_object(doc, &child, &new)?;
                    }
                    None => {}
                }
            }
        }
        ObjType::Map | ObjType::Table => {
            for key in doc.keys(from).collect::<Vec<_>>() {
                match doc.get(from, key.as_str())? {
                    Some((Value::Scalar(s), _)) => doc.put(to, key.as_str(), plain_scalar(&s))?,
                    Some((Value::Object(kind), child)) => {
                        let new = doc.put_object(to, key.as_str(), kind)?;
                        copy_object(doc, &child, &new)?;
                    }
                    None => {}
                }
            }
        }
    }
    Ok(())
}
