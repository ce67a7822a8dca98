//! `branchline rejections`, and the words for a refusal wherever one is shown.
//!
//! The server refuses a change a device's role may not make (a member renaming
//! someone else's meeting…); the device then drops it, replays the honest
//! edits made after it as new changes, and records the refusal. The code is
//! stable; the sentence for people is chosen here, in English or Chinese, so a
//! secretary reads why and not only `rule.organizer_only`.

use branchline_core::model::{Activity, Petition};
use branchline_core::store::Rejection;
use branchline_core::{DocId, Store};
use serde::Serialize;

use crate::failure::Result;
use crate::home::Home;
use crate::output::{Lang, Out, Table, local_time, short};

/// Why the server refuses, in words, for the codes it refuses with. `None`
/// for a code this build does not know (a newer server's): the server's own
/// message is shown then.
pub fn explain(code: &str, lang: Lang) -> Option<&'static str> {
    let (en, zh) = match code {
        "rule.committee_only" => (
            "only the branch committee may change this",
            "只有支部委员会可以修改此项",
        ),
        "rule.not_own_entry" => (
            "a member may sign in or ask for leave only for themselves",
            "党员只能为自己签到或请假",
        ),
        "rule.organizer_only" => (
            "only the activity's organizer or the committee may change it",
            "只有活动组织者或支部委员会可以修改该活动",
        ),
        "rule.owner_only" => (
            "only the petition's owner or the committee may record progress or resolve it",
            "只有诉求负责人或支部委员会可以记录进展或办结",
        ),
        "rule.submitter_only" => (
            "only the person who submitted the petition may rate it",
            "只有诉求提交人可以评价",
        ),
        "rule.not_resolved" => (
            "a petition can be rated only once it is resolved",
            "诉求办结后才能评价",
        ),
        "rule.foreign_actor" => (
            "the change was written in another device's name",
            "该修改以其他设备的名义写入",
        ),
        "rule.not_a_new_submission" => (
            "a new petition from a member or resident must be open, unassigned and in their own name",
            "党员或群众提交的新诉求必须未分派、未办结，并以本人名义提交",
        ),
        "access.read_only" => (
            "this device may only read this record",
            "此设备对该记录只有查看权限",
        ),
        "access.denied" => ("this device has no access to it", "此设备无权访问"),
        "sync.invalid_document" => (
            "the change altered the record's header, or made a record this device may not create",
            "该修改改动了记录的头部信息，或创建了此设备无权创建的记录",
        ),
        "request.rate_limited" => (
            "too many requests of this kind from this device; try again later",
            "此设备该类请求过多，请稍后再试",
        ),
        "request.invalid" => ("a field is missing or too long", "有字段缺失或过长"),
        "rule.not_allied" => (
            "an activity may be shared only with a branch allied with its own",
            "活动只能与结对共建的支部共享",
        ),
        "auth.invite_invalid" => (
            "the invite is not known to the server; check the link",
            "服务器不认识该邀请；请核对链接",
        ),
        "auth.invite_expired" => (
            "the invite has expired; ask for a new one",
            "邀请已过期；请索取新的邀请",
        ),
        "auth.invite_used" => (
            "the invite was already used; ask for a new one",
            "邀请已被使用；请索取新的邀请",
        ),
        "auth.device_revoked" => ("the server revoked this device", "服务器已吊销此设备"),
        "tls.certificate_mismatch" => (
            "the server's certificate is not the one the invite names",
            "服务器证书与邀请中的不一致",
        ),
        _ => return None,
    };
    Some(lang.pick(en, zh))
}

/// One refusal, for `--json`.
#[derive(Serialize)]
pub struct RejectionView {
    /// The record's id, increasing.
    pub id: i64,
    /// When the device dropped the change, in milliseconds since the epoch.
    pub at: i64,
    /// The document.
    pub doc: String,
    /// The document's kind.
    pub kind: String,
    /// The refused change's hash.
    pub change: String,
    /// The server's stable code.
    pub code: String,
    /// Why, in the output language.
    pub explanation: String,
    /// The server's own explanation, in English.
    pub server_message: String,
    /// Changes dropped: the refused one and the later local ones.
    pub dropped_changes: usize,
    /// Later local changes replayed as new changes.
    pub replayed_changes: usize,
    /// The refused change created the document, which is gone.
    pub document_removed: bool,
}

impl RejectionView {
    /// The view of a recorded refusal.
    pub fn new(r: &Rejection, lang: Lang) -> Self {
        Self {
            id: r.id,
            at: r.at.0,
            doc: r.doc_id.to_string(),
            kind: r.kind.clone(),
            change: r.change.to_string(),
            code: r.code.clone(),
            explanation: explain(&r.code, lang).unwrap_or(&r.message).to_owned(),
            server_message: r.message.clone(),
            dropped_changes: r.dropped_changes,
            replayed_changes: r.replayed_changes,
            document_removed: r.document_removed,
        }
    }
}

/// The title of record `doc` (an activity's or a petition's), if the store
/// holds it: how people tell records apart.
pub fn record_title(store: &Store, doc: DocId) -> Option<String> {
    store
        .get::<Activity>(doc)
        .map(|a| a.title)
        .or_else(|_| store.get::<Petition>(doc).map(|p| p.title))
        .ok()
}

/// One sentence about a refusal, for people; `title` names the record.
pub fn sentence(r: &Rejection, title: Option<&str>, out: Out) -> String {
    let kind = crate::words::kind_name(&r.kind, out.lang);
    let why = explain(&r.code, out.lang).unwrap_or(&r.message);
    let doc = match title {
        Some(title) => format!("{title:?} ({})", short(r.doc_id)),
        None => short(r.doc_id),
    };
    let later = r.dropped_changes.saturating_sub(1);
    let fate = if r.document_removed {
        out.say(
            "; the record was removed from this device",
            "；该记录已从本机删除",
        )
    } else if later > 0 {
        out.say(
            format!(
                "; {} of {later} later edits kept and sent again",
                r.replayed_changes
            ),
            format!(
                "；其后 {later} 条修改中 {} 条已保留并重新发送",
                r.replayed_changes
            ),
        )
    } else {
        String::new()
    };
    out.say(
        format!(
            "the server refused an edit to {kind} {doc} [{}]: {why}{fate}",
            r.code
        ),
        format!(
            "服务器拒绝了对{kind} {doc} 的修改 [{}]：{why}{fate}",
            r.code
        ),
    )
}

/// Lists the refusals recorded on this device, oldest first.
pub fn list(home: &Home, out: Out) -> Result<()> {
    let rows = home.store.rejections(None)?;
    let views: Vec<RejectionView> = rows
        .iter()
        .map(|r| RejectionView::new(r, out.lang))
        .collect();
    out.show(&views, || {
        let mut table = Table::new(match out.lang {
            Lang::En => ["when", "record", "id", "code", "why", "replayed"],
            Lang::Zh => ["时间", "记录", "编号", "代码", "原因", "已重发"],
        });
        for (r, v) in rows.iter().zip(&views) {
            let replayed = if r.document_removed {
                out.lang.pick("record removed", "记录已删除").to_owned()
            } else {
                format!(
                    "{}/{}",
                    r.replayed_changes,
                    r.dropped_changes.saturating_sub(1)
                )
            };
            let kind = crate::words::kind_name(&r.kind, out.lang);
            table.row(vec![
                local_time(r.at),
                match record_title(&home.store, r.doc_id) {
                    Some(title) => format!("{kind}: {title}"),
                    None => kind,
                },
                short(r.doc_id),
                r.code.clone(),
                v.explanation.clone(),
                replayed,
            ]);
        }
        table.print(out.lang.pick(
            "the server has refused no edit of this device",
            "服务器没有拒绝过本机的修改",
        ));
    });
    Ok(())
}
