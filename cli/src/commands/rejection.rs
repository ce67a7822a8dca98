//! `branchline rejections`, and the words for a refusal wherever one is shown.
//!
//! The server refuses a change a device's role may not make (a member renaming
//! someone else's meeting…); the device then drops it, replays the honest
//! edits made after it as new changes, and records the refusal. The code is
//! stable; the sentence for people comes from client-core's table, in English
//! or Chinese, so a secretary reads why and not only `rule.organizer_only`.

use branchline_core::model::{Activity, Petition};
use branchline_core::refusal;
use branchline_core::store::Rejection;
use branchline_core::{DocId, Store};
use serde::Serialize;

use crate::failure::Result;
use crate::home::Home;
use crate::output::{Lang, Out, Table, local_time, short};

/// Why the server refuses, in words ([`branchline_core::refusal`], the table
/// every client shares). `None` for a code this build does not know (a newer
/// server's): the server's own message is shown then.
pub fn explain(code: &str, lang: Lang) -> Option<&'static str> {
    refusal::explain(code).map(|words| lang.pick(words.english, words.chinese))
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
