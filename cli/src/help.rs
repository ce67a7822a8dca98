//! The command line's help in Chinese.
//!
//! clap builds help from the doc comments of [`crate::cli`], which are
//! English and fixed at compile time. For `--lang zh` (or a Chinese locale)
//! the command is rebuilt before parsing: every about text, argument help,
//! heading and clap's own flags get the Chinese of [`ZH`], looked up by the
//! subcommand path and argument id. A test walks the whole command and fails
//! for any text left without Chinese.

use std::error::Error as _;

use clap::builder::StyledStr;
use clap::error::{ContextKind, ContextValue, ErrorKind};
use clap::{Arg, ArgAction, Command};

use crate::output::Lang;

/// Chinese help: `"<subcommand path>"` for a command's about text,
/// `"<subcommand path> <arg id>"` for an argument (the path of the top
/// command is empty).
const ZH: &[(&str, &str)] = &[
    (
        "",
        "Branchline 桌面客户端：支部的记录，离线可用，与支部服务器同步。",
    ),
    (
        " home",
        "本设备数据所在的目录（默认：用户数据目录，例如 ~/.local/share/branchline；\
         也可用环境变量 BRANCHLINE_HOME 指定）。",
    ),
    (
        " lang",
        "消息语言：en（英文）或 zh（中文）（默认：跟随系统区域设置）。",
    ),
    (" json", "输出供脚本使用的 JSON，而不是给人看的文字。"),
    ("enroll", "用书记或服务器管理员给的邀请链接加入支部。"),
    (
        "enroll link",
        "邀请链接，形如 branchline://主机:端口/邀请码?cert=…",
    ),
    ("enroll name", "本设备的名称，书记会看到。"),
    ("enroll timeout", "连不上服务器时，等待这么多秒后放弃。"),
    ("status", "本设备的身份、待同步的修改和上次同步时间。"),
    ("sync", "与支部服务器同步一次，或用 --watch 保持连接。"),
    (
        "sync watch",
        "保持连接：实时同步，断线自动重连，直到按 Ctrl-C。",
    ),
    ("sync timeout", "（单次同步）这么多秒内未能同步就放弃。"),
    ("member", "花名册：支部的党员。"),
    ("member add", "把党员加入花名册；输出新党员的编号。"),
    ("member add name", "姓名。"),
    (
        "member add gender",
        "性别：male（男）或 female（女）；加入时不填则登记为“未登记”，不会猜测。",
    ),
    ("member add birth", "出生日期，YYYY-MM-DD。"),
    ("member add joined", "入党日期，YYYY-MM-DD。"),
    (
        "member add category",
        "类别：full（正式党员）、probationary（预备党员）、activist（积极分子）或 applicant（申请人）。",
    ),
    ("member add group", "党小组。"),
    ("member add post", "职务，例如 组织委员。"),
    ("member add phone", "电话。"),
    ("member update", "修改党员的花名册信息（只改给出的项）。"),
    ("member update member", "党员编号、编号前几位或完整姓名。"),
    ("member update name", "新姓名。"),
    ("member update gender", "性别：male（男）或 female（女）。"),
    ("member update birth", "出生日期，YYYY-MM-DD。"),
    ("member update joined", "入党日期，YYYY-MM-DD。"),
    (
        "member update category",
        "类别：full（正式党员）、probationary（预备党员）、activist（积极分子）或 applicant（申请人）。",
    ),
    ("member update group", "党小组。"),
    ("member update post", "职务，例如 组织委员。"),
    ("member update phone", "电话。"),
    ("member transfer-out", "登记党员转出到其他支部。"),
    (
        "member transfer-out member",
        "党员编号、编号前几位或完整姓名。",
    ),
    ("member transfer-out on", "日期（默认：今天）。"),
    ("member deceased", "登记党员去世。"),
    ("member deceased member", "党员编号、编号前几位或完整姓名。"),
    ("member deceased on", "日期（默认：今天）。"),
    ("member list", "列出党员。"),
    (
        "member list category",
        "只列此类别：full、probationary、activist 或 applicant。",
    ),
    (
        "member list status",
        "只列此状态（默认：全部）：active（在册）、transferred_out（已转出）、deceased（已去世）。",
    ),
    ("member list group", "只列此党小组。"),
    ("member list name", "只列姓名中含有此文字的。"),
    ("activity", "会议和其他活动：安排、签到、会议记录。"),
    ("activity create", "安排一项活动；输出活动编号。"),
    (
        "activity create kind",
        "支部设置中的活动类型代码（见 activity kinds）。",
    ),
    ("activity create title", "标题。"),
    (
        "activity create starts",
        "开始时间（支部当地时间）：YYYY-MM-DDTHH:MM。",
    ),
    (
        "activity create ends",
        "结束时间（支部当地时间）：YYYY-MM-DDTHH:MM。",
    ),
    ("activity create place", "地点。"),
    (
        "activity create organizer",
        "组织者（党员编号、编号前几位或姓名）。",
    ),
    ("activity create group", "党小组会：应参加的党小组。"),
    ("activity create agenda", "议程。"),
    (
        "activity edit",
        "修改活动的标题、地点或议程（只改给出的项）。",
    ),
    ("activity edit activity", "活动编号或编号前几位。"),
    ("activity edit title", "新标题。"),
    ("activity edit place", "新地点（给空值则清除）。"),
    ("activity edit agenda", "新议程。"),
    ("activity reschedule", "把活动改到其他时间。"),
    ("activity reschedule activity", "活动编号或编号前几位。"),
    (
        "activity reschedule starts",
        "新的开始时间，YYYY-MM-DDTHH:MM。",
    ),
    (
        "activity reschedule ends",
        "新的结束时间，YYYY-MM-DDTHH:MM。",
    ),
    ("activity sign-in", "活动签到（默认：本设备的党员）。"),
    ("activity sign-in activity", "活动编号或编号前几位。"),
    (
        "activity sign-in member",
        "为这位党员签到（党员编号、编号前几位或姓名）。",
    ),
    ("activity sign-in remote", "线上参加，而不是到现场。"),
    ("activity leave", "活动请假（默认：本设备的党员）。"),
    ("activity leave activity", "活动编号或编号前几位。"),
    ("activity leave reason", "请假原因。"),
    (
        "activity leave member",
        "为这位党员请假（党员编号、编号前几位或姓名）。",
    ),
    (
        "activity minutes",
        "写入（替换）活动的会议记录：直接给出文字，用 --file 从文件读取，或用 - 从标准输入读取。",
    ),
    ("activity minutes activity", "活动编号或编号前几位。"),
    ("activity minutes text", "会议记录；给 - 则从标准输入读取。"),
    (
        "activity minutes file",
        "从这个文件读取会议记录（UTF-8 文本）。",
    ),
    ("activity award", "为党员在某活动中加分。"),
    ("activity award activity", "活动编号或编号前几位。"),
    ("activity award member", "党员（编号、编号前几位或姓名）。"),
    ("activity award points", "分数（负数用于更正）。"),
    ("activity share", "与共建支部共享联合活动。"),
    ("activity share activity", "活动编号或编号前几位。"),
    ("activity share partner", "共建支部的编号。"),
    (
        "activity close",
        "结束活动：签到、请假和会议记录从此不再修改。",
    ),
    ("activity close activity", "活动编号或编号前几位。"),
    ("activity list", "按开始时间列出活动。"),
    ("activity list kind", "只列此类型。"),
    ("activity list from", "只列从这一天起的。"),
    ("activity list to", "只列到这一天为止的。"),
    (
        "activity list status",
        "只列 open（进行中）或 closed（已结束）的。",
    ),
    ("activity show", "查看一项活动，包括会议记录和出勤。"),
    ("activity show activity", "活动编号或编号前几位。"),
    ("activity kinds", "支部设置的活动类型。"),
    ("petition", "群众诉求：登记、分派、进展、办结、评价。"),
    ("petition submit", "登记一项群众诉求；输出诉求编号。"),
    ("petition submit category", "类别，例如 环境卫生。"),
    ("petition submit title", "简短标题。"),
    ("petition submit description", "群众的诉求内容。"),
    ("petition submit location", "地点。"),
    ("petition submit submitter", "提出人姓名（如有）。"),
    (
        "petition submit contact",
        "提出人的电话或其他联系方式（如有，保密）。",
    ),
    (
        "petition submit by_member",
        "由这位党员提交（编号、编号前几位或姓名）。",
    ),
    (
        "petition submit timeout",
        "群众的设备经服务器提交：连不上服务器时，等待这么多秒后放弃。",
    ),
    ("petition assign", "为诉求指定负责人和期限。"),
    ("petition assign petition", "诉求编号或编号前几位。"),
    (
        "petition assign owner",
        "负责的党员（编号、编号前几位或姓名）。",
    ),
    ("petition assign deadline", "期限，YYYY-MM-DD。"),
    ("petition progress", "记录一条进展。"),
    ("petition progress petition", "诉求编号或编号前几位。"),
    ("petition progress text", "进展情况。"),
    ("petition progress author", "记录人（默认：本设备的党员）。"),
    ("petition resolve", "办结诉求。"),
    ("petition resolve petition", "诉求编号或编号前几位。"),
    ("petition resolve summary", "办理结果。"),
    ("petition resolve by", "办结人（默认：本设备的党员）。"),
    ("petition rate", "记录提出人对办理结果的满意度（1 到 5）。"),
    ("petition rate petition", "诉求编号或编号前几位。"),
    ("petition rate score", "1（很不满意）到 5（很满意）。"),
    ("petition rate comment", "评价意见。"),
    ("petition reopen", "重新打开已办结的诉求。"),
    ("petition reopen petition", "诉求编号或编号前几位。"),
    ("petition reopen reason", "原因。"),
    (
        "petition reopen author",
        "重新打开的人（默认：本设备的党员）。",
    ),
    ("petition list", "诉求台账，期限最紧的在前。"),
    (
        "petition list status",
        "只列此状态：open（待分派）、assigned（办理中）、resolved（已办结）。",
    ),
    (
        "petition list owner",
        "只列这位党员负责的（编号、编号前几位或姓名）。",
    ),
    ("petition list overdue", "只列已逾期的。"),
    ("petition show", "查看一项诉求及其进展记录。"),
    ("petition show petition", "诉求编号或编号前几位。"),
    (
        "report",
        "支部某一时期的报表：出勤、诉求、组织生活完成情况、任期、年龄结构。",
    ),
    ("report from", "起始日（默认：今年 1 月 1 日）。"),
    ("report to", "截止日（默认：今天）。"),
    (
        "report as_of",
        "计算逾期和年龄时以这一天为今天（默认：今天）。",
    ),
    ("conflicts", "两台设备同时修改的字段，以及如何处理。"),
    ("conflicts list", "列出有多个同时写入的值的字段。"),
    (
        "conflicts settle",
        "保留字段的其中一个值，所有设备都以此为准。",
    ),
    (
        "conflicts settle doc",
        "文档编号或编号前几位（见 conflicts list）。",
    ),
    ("conflicts settle path", "字段路径（见 conflicts list）。"),
    (
        "conflicts settle keep",
        "要保留的值的序号（见 conflicts list，从 1 开始）。",
    ),
    (
        "submission-code",
        "支部的公开提交码（民情直通车），群众扫码提交诉求；需连接服务器（书记和支委）。",
    ),
    (
        "submission-code qr",
        "同时在终端画出二维码，供海报或手机扫描。",
    ),
    (
        "submission-code timeout",
        "连不上服务器时，等待这么多秒后放弃。",
    ),
    ("suggest", "经服务器向支部意见箱提交意见；输出意见编号。"),
    ("suggest text", "意见内容。"),
    (
        "suggest anonymous",
        "匿名：服务器不保存任何能关联到您的信息。",
    ),
    ("suggest timeout", "连不上服务器时，等待这么多秒后放弃。"),
    ("feedback", "意见箱：意见、答复和公开栏。"),
    ("feedback list", "支部意见箱中的意见，按时间先后。"),
    ("feedback list published", "只看公开栏：答复已公开的意见。"),
    (
        "feedback answer",
        "答复一条意见（支委会）；替换之前的答复，并在重新公开前从公开栏撤下。",
    ),
    (
        "feedback answer suggestion",
        "意见编号或编号前几位（见 feedback list）。",
    ),
    ("feedback answer text", "支部的答复。"),
    ("feedback publish", "把意见的答复放上公开栏（支委会）。"),
    (
        "feedback publish suggestion",
        "意见编号或编号前几位（见 feedback list）。",
    ),
    ("feedback publish unpublish", "改为从公开栏撤下答复。"),
    ("rejections", "服务器拒绝的本机修改，以及其后修改的去向。"),
];

const EXIT_STATUSES_ZH: &str = "\
退出状态：0 完成；1 意外错误；2 命令行有误；3 输入无效或被记录规则拒绝；\
4 无法连接服务器；5 被服务器拒绝；6 数据目录不是已加入支部的 Branchline 数据。";

/// The help template for Chinese: clap's layout with a Chinese heading.
const TEMPLATE_ZH: &str = "\
{before-help}{about-with-newline}
用法：{usage}

{all-args}{after-help}";

fn zh(key: &str) -> Option<&'static str> {
    ZH.iter().find(|(k, _)| *k == key).map(|(_, v)| *v)
}

/// The options every subcommand takes, listed after its own.
const GLOBAL_OPTIONS: [&str; 3] = ["home", "lang", "json"];

/// The command line, with its help in `lang`.
pub fn command(lang: Lang) -> Command {
    let mut command = <crate::cli::Cli as clap::CommandFactory>::command();
    for (i, id) in GLOBAL_OPTIONS.into_iter().enumerate() {
        command = command.mut_arg(id, |arg| arg.display_order(1000 + i));
    }
    match lang {
        Lang::En => command,
        Lang::Zh => {
            // The Chinese texts say what clap would print in English after them.
            let command = command
                .mut_arg("home", |arg| arg.hide_env(true))
                .mut_arg("lang", |arg| arg.hide_possible_values(true));
            translate(command, "")
                .after_help(EXIT_STATUSES_ZH)
                .disable_version_flag(true)
                .arg(
                    Arg::new("version")
                        .short('V')
                        .long("version")
                        .action(ArgAction::Version)
                        .help("显示版本")
                        .help_heading("选项"),
                )
        }
    }
}

fn translate(mut command: Command, path: &str) -> Command {
    if let Some(about) = zh(path) {
        command = command.about(about).long_about(None::<&str>);
    }
    let ids: Vec<String> = command
        .get_arguments()
        .map(|a| a.get_id().as_str().to_owned())
        .collect();
    for id in ids {
        let key = format!("{path} {id}");
        command = command.mut_arg(&id, |arg| {
            let heading = if arg.is_positional() {
                "参数"
            } else {
                "选项"
            };
            let arg = arg.help_heading(heading);
            match zh(&key) {
                Some(help) => arg.help(help).long_help(None::<&str>),
                None => arg,
            }
        });
    }
    let subcommands: Vec<String> = command
        .get_subcommands()
        .map(|s| s.get_name().to_owned())
        .collect();
    for name in subcommands {
        let sub_path = if path.is_empty() {
            name.clone()
        } else {
            format!("{path} {name}")
        };
        command = command.mut_subcommand(&name, |sub| translate(sub, &sub_path));
    }
    command
        .help_template(TEMPLATE_ZH)
        .subcommand_help_heading("命令")
        .subcommand_value_name("命令")
        .disable_help_subcommand(true)
        .disable_help_flag(true)
        .arg(
            Arg::new("help")
                .short('h')
                .long("help")
                .action(ArgAction::Help)
                .help("显示帮助")
                .help_heading("选项")
                .display_order(2000),
        )
}

/// `branchline help member add` as `branchline member add --help`: the
/// Chinese command has no `help` subcommand of clap's (its text is English).
pub fn help_subcommand_as_flag(args: Vec<std::ffi::OsString>) -> Vec<std::ffi::OsString> {
    // The first word that is not an option (or an option's value) names
    // the subcommand.
    let mut index = 1;
    while let Some(arg) = args.get(index) {
        let text = arg.to_string_lossy();
        if text == "--home" || text == "--lang" {
            index += 2;
        } else if text.starts_with('-') {
            index += 1;
        } else {
            break;
        }
    }
    if args.get(index).is_none_or(|a| a != "help") {
        return args;
    }
    let mut rewritten = args;
    rewritten.remove(index);
    rewritten.push("--help".into());
    rewritten
}

/// A command-line error in Chinese, for the kinds people meet; clap's own
/// English message for the rest.
pub fn error_zh(e: &clap::Error) -> Option<String> {
    let text = |kind: ContextKind| match e.get(kind) {
        Some(ContextValue::String(s)) => Some(s.clone()),
        Some(ContextValue::Strings(v)) => Some(v.join("、")),
        Some(ContextValue::StyledStr(s)) => Some(s.to_string()),
        _ => None,
    };
    let arg = text(ContextKind::InvalidArg).unwrap_or_default();
    let message = match e.kind() {
        ErrorKind::InvalidValue | ErrorKind::ValueValidation => {
            let value = text(ContextKind::InvalidValue).unwrap_or_default();
            let mut line = format!("参数 {arg} 的值“{value}”无效");
            if let Some(valid) = text(ContextKind::ValidValue) {
                line.push_str(&format!("；可选：{valid}"));
            }
            if let Some(source) = e.source() {
                match source.downcast_ref::<branchline_core::Error>() {
                    Some(core) => line.push_str(&format!("：{}", crate::failure::core_zh(core))),
                    None => line.push_str(&format!("（{source}）")),
                }
            }
            line
        }
        ErrorKind::UnknownArgument => format!("无法识别的参数 {arg}"),
        ErrorKind::InvalidSubcommand => format!("没有这个命令：{arg}"),
        ErrorKind::MissingRequiredArgument => format!("缺少必需的参数：{arg}"),
        ErrorKind::MissingSubcommand => "缺少命令".to_owned(),
        ErrorKind::ArgumentConflict => {
            let other = text(ContextKind::PriorArg).unwrap_or_default();
            format!("参数 {arg} 不能与 {other} 同时使用")
        }
        ErrorKind::TooManyValues | ErrorKind::WrongNumberOfValues => {
            format!("参数 {arg} 的值个数不对")
        }
        _ => return None,
    };
    let usage = match e.get(ContextKind::Usage) {
        Some(ContextValue::StyledStr(usage)) => plain(usage),
        _ => String::new(),
    };
    let usage = usage
        .trim()
        .strip_prefix("Usage:")
        .map_or_else(String::new, |u| format!("\n\n用法：{}", u.trim()));
    Some(format!("错误：{message}{usage}\n\n更多信息请运行 --help。"))
}

fn plain(styled: &StyledStr) -> String {
    styled.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(command: &Command, path: &str, missing: &mut Vec<String>) {
        if zh(path).is_none() {
            missing.push(format!("{path:?} (about)"));
        }
        for arg in command.get_arguments() {
            let id = arg.get_id().as_str();
            if id != "help" && id != "version" && zh(&format!("{path} {id}")).is_none() {
                missing.push(format!("{path:?} {id}"));
            }
        }
        for sub in command.get_subcommands() {
            let sub_path = if path.is_empty() {
                sub.get_name().to_owned()
            } else {
                format!("{path} {}", sub.get_name())
            };
            check(sub, &sub_path, missing);
        }
    }

    #[test]
    fn every_help_text_has_chinese() {
        let mut missing = Vec::new();
        check(&command(Lang::En), "", &mut missing);
        assert!(missing.is_empty(), "no Chinese help for {missing:#?}");
    }

    #[test]
    fn no_chinese_text_is_for_a_command_that_does_not_exist() {
        let mut keys = Vec::new();
        fn collect(command: &Command, path: &str, keys: &mut Vec<String>) {
            keys.push(path.to_owned());
            for arg in command.get_arguments() {
                keys.push(format!("{path} {}", arg.get_id().as_str()));
            }
            for sub in command.get_subcommands() {
                let sub_path = if path.is_empty() {
                    sub.get_name().to_owned()
                } else {
                    format!("{path} {}", sub.get_name())
                };
                collect(sub, &sub_path, keys);
            }
        }
        collect(&command(Lang::En), "", &mut keys);
        for (key, _) in ZH {
            assert!(keys.iter().any(|k| k == key), "{key:?} names nothing");
        }
    }

    #[test]
    fn the_chinese_command_is_well_formed() {
        command(Lang::Zh).debug_assert();
    }

    #[test]
    fn help_as_a_word_becomes_the_flag() {
        let args =
            |words: &[&str]| -> Vec<std::ffi::OsString> { words.iter().map(Into::into).collect() };
        assert_eq!(
            help_subcommand_as_flag(args(&["b", "--lang", "zh", "help", "member", "add"])),
            args(&["b", "--lang", "zh", "member", "add", "--help"])
        );
        assert_eq!(
            help_subcommand_as_flag(args(&["b", "member", "add", "help"])),
            args(&["b", "member", "add", "help"])
        );
    }
}
