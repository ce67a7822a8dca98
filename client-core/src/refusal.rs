//! Why the server refused, in people's words: one table for every screen.
//!
//! The server refuses a change, a request or a device with a stable code
//! (`rule.committee_only`, `auth.invite_used`, …) and an English message for
//! logs. What a secretary reads instead is chosen here, in English and in
//! Chinese, so the desktop client, the demo and the phone apps (through the
//! mobile library) say the same thing for the same refusal. A code with no
//! words here (one a newer server invented) has none: show the server's own
//! message then.

/// One explanation, in both languages people read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Words {
    /// In English.
    pub english: &'static str,
    /// In Chinese.
    pub chinese: &'static str,
}

/// Code, English, Chinese.
const TABLE: &[(&str, &str, &str)] = &[
    (
        "rule.committee_only",
        "only the branch committee may change this",
        "只有支部委员会可以修改此项",
    ),
    (
        "rule.not_own_entry",
        "a member may sign in or ask for leave only for themselves",
        "党员只能为自己签到或请假",
    ),
    (
        "rule.organizer_only",
        "only the activity's organizer or the committee may change it",
        "只有活动组织者或支部委员会可以修改该活动",
    ),
    (
        "rule.owner_only",
        "only the petition's owner or the committee may record progress or resolve it",
        "只有诉求负责人或支部委员会可以记录进展或办结",
    ),
    (
        "rule.submitter_only",
        "only the person who submitted the petition may rate it",
        "只有诉求提交人可以评价",
    ),
    (
        "rule.not_resolved",
        "a petition can be rated only once it is resolved",
        "诉求办结后才能评价",
    ),
    (
        "rule.foreign_actor",
        "the change was written in another device's name",
        "该修改以其他设备的名义写入",
    ),
    (
        "rule.not_a_new_submission",
        "a new petition from a member or resident must be open, unassigned and in their own name",
        "党员或群众提交的新诉求必须未分派、未办结，并以本人名义提交",
    ),
    (
        "rule.not_allied",
        "an activity may be shared only with a branch allied with its own",
        "活动只能与结对共建的支部共享",
    ),
    (
        "access.read_only",
        "this device may only read this record",
        "此设备对该记录只有查看权限",
    ),
    (
        "access.denied",
        "this device has no access to it",
        "此设备无权访问",
    ),
    (
        "sync.invalid_document",
        "the change altered the record's header, or made a record this device may not create",
        "该修改改动了记录的头部信息，或创建了此设备无权创建的记录",
    ),
    (
        "request.rate_limited",
        "too many requests of this kind from this device; try again later",
        "此设备该类请求过多，请稍后再试",
    ),
    (
        "request.invalid",
        "a field is missing or too long",
        "有字段缺失或过长",
    ),
    (
        "auth.invite_invalid",
        "the invite is not known to the server; check the link",
        "服务器不认识该邀请；请核对链接",
    ),
    (
        "auth.invite_expired",
        "the invite has expired; ask for a new one",
        "邀请已过期；请索取新的邀请",
    ),
    (
        "auth.invite_used",
        "the invite was already used; ask for a new one",
        "邀请已被使用；请索取新的邀请",
    ),
    (
        "auth.device_revoked",
        "the server revoked this device",
        "服务器已吊销此设备",
    ),
    (
        "server.busy",
        "the server is busy; the device tries again shortly",
        "服务器繁忙；设备稍后会自动重试",
    ),
    (
        "server.internal",
        "something failed on the server; the device tries again shortly",
        "服务器出现故障；设备稍后会自动重试",
    ),
    (
        "server.unavailable",
        "the server cannot reach its database; nothing was lost, the device tries again shortly",
        "服务器暂时无法访问数据库；数据没有丢失，设备稍后会自动重试",
    ),
    (
        "tls.certificate_mismatch",
        "the server's certificate is not the one the invite names",
        "服务器证书与邀请中的不一致",
    ),
];

/// Why the server refuses with `code`, in words; `None` for a code this build
/// has no words for.
pub fn explain(code: &str) -> Option<Words> {
    TABLE
        .iter()
        .find(|(known, _, _)| *known == code)
        .map(|&(_, english, chinese)| Words { english, chinese })
}

/// Every code that has words, in table order.
pub fn codes() -> impl Iterator<Item = &'static str> {
    TABLE.iter().map(|(code, _, _)| *code)
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use branchline_protocol::ErrorCode;

    use super::*;

    #[test]
    fn each_code_has_one_entry_in_both_languages() {
        let mut seen = HashSet::new();
        for code in codes() {
            assert!(seen.insert(code), "{code} is in the table twice");
            let words = explain(code).unwrap();
            assert!(
                words.english.is_ascii() && !words.english.is_empty(),
                "{code}"
            );
            assert!(
                words
                    .chinese
                    .chars()
                    .any(|c| ('\u{4e00}'..='\u{9fff}').contains(&c)),
                "{code} has no Chinese words"
            );
        }
        assert_eq!(explain("rule.from_a_newer_server"), None);
    }

    #[test]
    fn every_code_is_one_the_protocol_knows() {
        for code in codes() {
            let parsed: ErrorCode = code.parse().unwrap();
            assert!(
                ErrorCode::KNOWN.contains(&parsed),
                "{code} is not a protocol code"
            );
        }
    }
}
