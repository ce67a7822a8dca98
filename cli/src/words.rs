//! The words people read for the records' stable values.
//!
//! Documents, `--json` and scripts use the stable names (`male`, `on_site`,
//! `branch_meeting`); people read them in their language. A value this
//! build does not know (written by a newer one) is shown as it is stored.

use branchline_core::model::{
    BranchProfile, Collection, Indicator, Level, SpendingCategory, Stage,
};

use crate::output::Lang;

/// English and Chinese for a stable name, or `None` for one this table does
/// not know.
fn pair(value: &str) -> Option<(&'static str, &'static str)> {
    Some(match value {
        // Gender.
        "male" => ("male", "男"),
        "female" => ("female", "女"),
        "unknown" => ("not recorded", "未登记"),
        // Member category.
        "full" => ("full member", "正式党员"),
        "probationary" => ("probationary member", "预备党员"),
        "activist" => ("activist", "入党积极分子"),
        "applicant" => ("applicant", "入党申请人"),
        // Member status.
        "active" => ("active", "在册"),
        "transferred_out" => ("transferred out", "已转出"),
        "deceased" => ("deceased", "已去世"),
        // Activity and petition status.
        "open" => ("open", "进行中"),
        "closed" => ("closed", "已结束"),
        "assigned" => ("assigned", "办理中"),
        "resolved" => ("resolved", "已办结"),
        // Sign-in mode.
        "on_site" => ("on site", "现场"),
        "remote" => ("remote", "线上"),
        // Progress kind.
        "note" => ("note", "进展"),
        "reopened" => ("reopened", "重新打开"),
        // Roles.
        "secretary" => ("secretary", "书记"),
        "committee" => ("committee member", "支委"),
        "member" => ("member", "党员"),
        "resident" => ("resident", "群众"),
        // Frequencies.
        "monthly" => ("monthly", "每月"),
        "quarterly" => ("quarterly", "每季度"),
        "half_yearly" => ("every half year", "每半年"),
        "yearly" => ("yearly", "每年"),
        _ => return None,
    })
}

/// A stable value (gender, category, status, sign-in mode, role, frequency…)
/// in `lang`.
pub fn value(value: impl AsRef<str>, lang: Lang) -> String {
    let value = value.as_ref();
    pair(value).map_or_else(|| value.to_owned(), |(en, zh)| lang.pick(en, zh).to_owned())
}

/// A petition's status in `lang` (an open petition waits for an owner;
/// an open activity is still taking sign-ins: the words differ).
pub fn petition_status(status: impl AsRef<str>, lang: Lang) -> String {
    match status.as_ref() {
        "open" => lang.pick("open", "待分派").to_owned(),
        other => value(other, lang),
    }
}

/// A petition's category in `lang`: the usual category codes are
/// translated, anything else people typed is shown as typed.
pub fn petition_category(category: &str, lang: Lang) -> String {
    let (en, zh) = match category.trim() {
        "roads" | "道路交通" => ("roads", "道路交通"),
        "noise" | "噪音" | "噪音扰民" => ("noise", "噪音扰民"),
        "sanitation" | "环境卫生" => ("sanitation", "环境卫生"),
        "safety" | "安全隐患" => ("safety", "安全隐患"),
        "water" | "供水" => ("water", "供水"),
        "power" | "供电" => ("power", "供电"),
        "housing" | "住房" => ("housing", "住房"),
        "neighbours" | "neighbors" | "邻里纠纷" => ("neighbours", "邻里纠纷"),
        "elderly" | "养老服务" => ("elderly care", "养老服务"),
        "other" | "其他" => ("other", "其他"),
        other => (other, other),
    };
    lang.pick(en, zh).to_owned()
}

/// An activity kind in `lang`: the branch profile's name for it in Chinese
/// (the profile names kinds in Chinese), English names for the usual kinds,
/// else the code.
pub fn activity_kind(code: &str, profile: Option<&BranchProfile>, lang: Lang) -> String {
    let english = match code {
        "branch_meeting" => Some("branch meeting"),
        "committee_meeting" => Some("committee meeting"),
        "group_meeting" => Some("group meeting"),
        "lecture" => Some("Party lecture"),
        "theme_day" => Some("theme day"),
        "volunteer" => Some("volunteer service"),
        "training" => Some("study and training"),
        "joint" => Some("joint activity"),
        _ => None,
    };
    let named = profile
        .and_then(|p| p.activity_kinds.get(code))
        .map(|k| k.name.clone());
    match lang {
        Lang::Zh => named.unwrap_or_else(|| code.to_owned()),
        Lang::En => english
            .map(str::to_owned)
            .or(named)
            .unwrap_or_else(|| code.to_owned()),
    }
}

/// What dues were spent on, in `lang`.
pub fn spending_category(category: SpendingCategory, lang: Lang) -> &'static str {
    let (en, zh) = match category {
        SpendingCategory::Education => ("education and training", "党员教育培训"),
        SpendingCategory::StudyMaterials => ("study materials", "学习资料"),
        SpendingCategory::Commendation => ("commendations", "表彰先进"),
        SpendingCategory::HardshipSupport => ("support for members in hardship", "慰问困难党员"),
        SpendingCategory::BranchActivity => ("branch activities", "支部组织生活"),
    };
    lang.pick(en, zh)
}

/// A step of the way to membership, in `lang`.
pub fn stage(stage: Stage, lang: Lang) -> &'static str {
    let (en, zh) = match stage {
        Stage::Applied => ("applied", "递交申请"),
        Stage::Activist => ("activist", "入党积极分子"),
        Stage::Candidate => ("development candidate", "发展对象"),
        Stage::Probationary => ("probationary member", "预备党员"),
        Stage::Full => ("full member", "正式党员"),
    };
    lang.pick(en, zh)
}

/// A library collection, in `lang`.
pub fn collection(collection: Collection, lang: Lang) -> &'static str {
    let (en, zh) = match collection {
        Collection::Problem => ("problem library", "问题库"),
        Collection::Case => ("case collection", "案例集"),
    };
    lang.pick(en, zh)
}

/// A rating indicator, in `lang`.
pub fn indicator(indicator: Indicator, lang: Lang) -> &'static str {
    let (en, zh) = match indicator {
        Indicator::MeetingCompliance => ("meeting compliance", "组织生活完成率"),
        Indicator::DuesCollection => ("dues collection", "党费收缴率"),
        Indicator::PetitionsInTime => ("petitions resolved in time", "诉求按期办结率"),
        Indicator::Satisfaction => ("satisfaction", "群众满意率"),
        Indicator::TermCurrent => ("term current", "按期换届"),
    };
    lang.pick(en, zh)
}

/// A branch's level, in `lang`.
pub fn level(level: Level, lang: Lang) -> &'static str {
    let (en, zh) = match level {
        Level::Committee => ("committee", "党委"),
        Level::GeneralBranch => ("general branch", "党总支"),
        Level::Branch => ("branch", "党支部"),
    };
    lang.pick(en, zh)
}

/// A point rule in `lang`: English names for the usual rules, else the
/// profile's description (the profile describes rules in Chinese), else the
/// code.
pub fn point_rule(code: &str, profile: Option<&BranchProfile>, lang: Lang) -> String {
    let english = match code {
        "thought_report" => Some("thought report on time"),
        "major_task" => Some("major task"),
        "commendation" => Some("commendation"),
        _ => None,
    };
    let described = profile
        .and_then(|p| p.point_rules.get(code))
        .map(|r| r.description.clone());
    match lang {
        Lang::Zh => described.unwrap_or_else(|| code.to_owned()),
        Lang::En => english
            .map(str::to_owned)
            .or(described)
            .unwrap_or_else(|| code.to_owned()),
    }
}

/// Fen as yuan with two decimals: `3000` → `30.00`.
pub fn yuan(fen: i64) -> String {
    let sign = if fen < 0 { "-" } else { "" };
    let fen = fen.unsigned_abs();
    format!("{sign}{}.{:02}", fen / 100, fen % 100)
}

/// Months of a year as people write them: `1-3, 5`.
pub fn months(months: &[u32]) -> String {
    let mut runs: Vec<(u32, u32)> = Vec::new();
    for &m in months {
        match runs.last_mut() {
            Some((_, last)) if *last + 1 == m => *last = m,
            _ => runs.push((m, m)),
        }
    }
    if runs.is_empty() {
        return "-".to_owned();
    }
    runs.iter()
        .map(|(a, b)| {
            if a == b {
                a.to_string()
            } else {
                format!("{a}-{b}")
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The kind of record, as people call it.
pub fn kind_name(kind: &str, lang: Lang) -> String {
    let (en, zh) = match kind {
        "branch_profile" => ("branch profile", "支部信息"),
        "roster" => ("roster", "花名册"),
        "member_file" => ("member file", "党员档案"),
        "activity" => ("activity", "活动"),
        "petition" => ("petition", "诉求"),
        "feedback_box" => ("feedback box", "意见箱"),
        "dues_ledger" => ("dues ledger", "党费账目"),
        "points_book" => ("points book", "积分册"),
        "applicant" => ("applicant file", "入党申请人档案"),
        "library_entry" => ("library entry", "问题库条目"),
        other => (other, other),
    };
    lang.pick(en, zh).to_owned()
}

#[cfg(test)]
mod tests {
    use branchline_core::model::{
        ActivityStatus, Category, Frequency, Gender, MemberStatus, PetitionStatus, SignInMode,
    };

    use super::*;

    #[test]
    fn every_value_people_read_has_both_words() {
        let names = Gender::ALL
            .iter()
            .map(|v| v.as_str())
            .chain(Category::ALL.iter().map(|v| v.as_str()))
            .chain(MemberStatus::ALL.iter().map(|v| v.as_str()))
            .chain(ActivityStatus::ALL.iter().map(|v| v.as_str()))
            .chain(PetitionStatus::ALL.iter().map(|v| v.as_str()))
            .chain(SignInMode::ALL.iter().map(|v| v.as_str()))
            .chain(Frequency::ALL.iter().map(|v| v.as_str()))
            .chain(["secretary", "committee", "member", "resident"]);
        for name in names {
            let (_, zh) = pair(name).unwrap_or_else(|| panic!("{name} has no words"));
            assert!(!zh.is_ascii(), "{name}: {zh}");
        }
    }

    #[test]
    fn kinds_are_named_from_the_profile_in_chinese() {
        assert_eq!(
            activity_kind("branch_meeting", None, Lang::En),
            "branch meeting"
        );
        assert_eq!(activity_kind("karaoke", None, Lang::Zh), "karaoke");
    }
    #[test]
    fn the_branch_work_values_have_chinese() {
        for c in SpendingCategory::ALL {
            assert!(!spending_category(*c, Lang::Zh).is_ascii(), "{c}");
        }
        for s in Stage::ALL {
            assert!(!stage(*s, Lang::Zh).is_ascii(), "{s}");
        }
        for c in Collection::ALL {
            assert!(!collection(*c, Lang::Zh).is_ascii(), "{c}");
        }
        for i in Indicator::ALL {
            assert!(!indicator(*i, Lang::Zh).is_ascii(), "{i}");
        }
        for l in Level::ALL {
            assert!(!level(*l, Lang::Zh).is_ascii(), "{l}");
        }
    }

    #[test]
    fn fen_read_as_yuan_and_months_as_runs() {
        assert_eq!(yuan(3000), "30.00");
        assert_eq!(yuan(5), "0.05");
        assert_eq!(yuan(-1250), "-12.50");
        assert_eq!(months(&[1, 2, 3, 5, 7, 8]), "1-3, 5, 7-8");
        assert_eq!(months(&[]), "-");
    }
}
