//! The command line's help in Chinese.
//!
//! clap builds help from the doc comments of [`crate::cli`], which are
//! English and fixed at compile time. For `--lang zh` (or a Chinese locale)
//! the command is rebuilt before parsing: every about text and argument help
//! gets the Chinese of [`ZH`], looked up by the subcommand path and argument
//! id, and every value placeholder the Chinese of [`VALUE_NAMES_ZH`]. The
//! words clap writes itself are replaced through its own settings, not by
//! editing its output: a usage line of ours (`[选项]`, `<命令>`), a help
//! template with Chinese headings, and our own help and version flags.
//! Tests walk the whole command and fail for any text left without Chinese,
//! and check that our usage lines are laid out as clap's.

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
        "支部某一时期的报表：出勤、诉求、组织生活完成情况、任期、年龄结构；\
         加 --branches 则为上级党组织汇总本支部以下的所有支部。",
    ),
    ("report from", "起始日（默认：今年 1 月 1 日）。"),
    ("report to", "截止日（默认：今天）。"),
    (
        "report as_of",
        "计算逾期和年龄时以这一天为今天（默认：今天）。",
    ),
    (
        "report branches",
        "上级党组织的汇总：本支部以下的所有支部，并评定星级。",
    ),
    (
        "report xlsx",
        "同时把汇总写成 XLSX 工作簿，保存到这个文件。",
    ),
    ("dues", "党费：缴纳、支出、公示账目和催缴提醒。"),
    (
        "dues pay",
        "登记党员缴纳某几个月的党费；输出该笔记录的编号。",
    ),
    ("dues pay member", "党员（编号、编号前几位或姓名）。"),
    (
        "dues pay months",
        "缴纳的月份：一个月（4）或连续几个月（1-3）。",
    ),
    (
        "dues pay amount",
        "金额（元），例如 30.00（默认：该党员每月应缴金额乘以月数）。",
    ),
    ("dues pay on", "缴纳日期（默认：今天）。"),
    (
        "dues pay year",
        "所缴月份所属的年份（默认：缴纳日期所在年份）。",
    ),
    (
        "dues void",
        "作废登记错误的缴费记录；记录仍留在账目中并注明作废。",
    ),
    (
        "dues void entry",
        "缴费记录的编号或编号前几位（见 dues ledger）。",
    ),
    ("dues void reason", "作废原因。"),
    ("dues void year", "该记录所在账目的年份（默认：今年）。"),
    (
        "dues set-amount",
        "设定党员每月应缴的金额，或恢复为支部统一的金额。",
    ),
    ("dues set-amount member", "党员（编号、编号前几位或姓名）。"),
    ("dues set-amount yuan", "每月金额（元），例如 12.50。"),
    ("dues set-amount default", "恢复为支部统一的每月金额。"),
    ("dues set-amount year", "适用的年份（默认：今年）。"),
    (
        "dues spend",
        "登记用于支部工作的党费支出；输出该笔记录的编号。",
    ),
    ("dues spend yuan", "金额（元），例如 120.00。"),
    (
        "dues spend category",
        "支出类别：education（党员教育培训）、study_materials（学习资料）、\
         commendation（表彰先进）、hardship_support（慰问困难党员）或 \
         branch_activity（支部组织生活）。",
    ),
    ("dues spend purpose", "具体用途。"),
    ("dues spend approved_by", "批准人或批准机构，例如 支委会。"),
    ("dues spend on", "支出日期（默认：今天）。"),
    ("dues ledger", "某一年的党费公示账目：缴纳、支出、结余。"),
    ("dues ledger year", "年份（默认：今年）。"),
    ("dues overdue", "欠缴党费的党员：催缴提醒名单。"),
    ("dues overdue as_of", "以这一天为今天（默认：今天）。"),
    (
        "dues status",
        "某位党员某一年的党费（默认：本设备的党员）。",
    ),
    ("dues status member", "党员（编号、编号前几位或姓名）。"),
    ("dues status year", "年份（默认：今年）。"),
    ("dues status as_of", "以这一天为今天（默认：今天）。"),
    (
        "dues export",
        "把某一年的公示账目导出为 CSV 文件和 XLSX 工作簿。",
    ),
    (
        "dues export format",
        "导出哪些文件：csv、xlsx 或 all（全部）。",
    ),
    ("dues export out", "保存到这个目录（不存在则新建）。"),
    ("dues export year", "年份（默认：今年）。"),
    (
        "dues export bom",
        "CSV 文件以 UTF-8 字节顺序标记开头，便于 Excel 打开。",
    ),
    ("points", "积分：加分、思想汇报、排名和积分项目。"),
    (
        "points award",
        "按积分项目或其他理由为党员加分；输出该笔记录的编号。",
    ),
    ("points award member", "党员（编号、编号前几位或姓名）。"),
    (
        "points award rule",
        "支部的积分项目（见 points rules list）。",
    ),
    (
        "points award points",
        "分数（默认按积分项目；负数为扣分）。",
    ),
    ("points award reason", "理由。"),
    ("points award on", "计分日期（默认：今天）。"),
    ("points withdraw", "撤回登记错误的加分。"),
    (
        "points withdraw entry",
        "加分记录的编号或编号前几位（见加分时的输出）。",
    ),
    ("points withdraw year", "加分所在的年份（默认：今年）。"),
    (
        "points report-received",
        "登记党员交来的思想汇报；按时交的按 thought_report 项目加分。输出该笔记录的编号。",
    ),
    (
        "points report-received member",
        "党员（编号、编号前几位或姓名）。",
    ),
    ("points report-received due", "应交日期。"),
    ("points report-received on", "实交日期（默认：今天）。"),
    (
        "points ranking",
        "某季度（默认：本季度）或某一年的积分排名。",
    ),
    ("points ranking quarter", "季度，例如 2026-Q2。"),
    ("points ranking year", "整年，例如 2026。"),
    ("points rules", "支部的积分项目。"),
    ("points rules list", "支部设置的积分项目。"),
    ("points rules set", "新增或修改积分项目（支委会）。"),
    ("points rules set code", "项目代码，例如 major_task。"),
    ("points rules set points", "分值（负数为扣分项）。"),
    (
        "points rules set description",
        "加分内容，例如 完成急难险重任务。",
    ),
    (
        "points rules set base",
        "基础分项目（每位党员都可获得），而不是奖励分项目。",
    ),
    ("points export", "把积分排名导出为 CSV 文件和 XLSX 工作簿。"),
    (
        "points export format",
        "导出哪些文件：csv、xlsx 或 all（全部）。",
    ),
    ("points export out", "保存到这个目录（不存在则新建）。"),
    (
        "points export quarter",
        "季度，例如 2026-Q2（默认：本季度）。",
    ),
    ("points export year", "整年，例如 2026。"),
    (
        "points export bom",
        "CSV 文件以 UTF-8 字节顺序标记开头，便于 Excel 打开。",
    ),
    ("applicant", "入党流程：各阶段、入党介绍人、提醒。"),
    (
        "applicant add",
        "为花名册上递交了入党申请书的人建立档案；输出档案编号。",
    ),
    (
        "applicant add member",
        "申请人（编号、编号前几位或姓名），须已在花名册上。",
    ),
    ("applicant add applied", "递交入党申请书的日期。"),
    (
        "applicant step",
        "登记一个阶段：activist（积极分子）、candidate（发展对象）、\
         probationary（预备党员）或 full（正式党员）。",
    ),
    (
        "applicant step member",
        "申请人（编号、编号前几位或姓名）。",
    ),
    (
        "applicant step stage",
        "阶段：activist、candidate、probationary 或 full。",
    ),
    ("applicant step on", "日期。"),
    ("applicant step note", "备注，例如 作出决定的会议。"),
    ("applicant introducer", "确定入党介绍人（在册的正式党员）。"),
    (
        "applicant introducer member",
        "申请人（编号、编号前几位或姓名）。",
    ),
    (
        "applicant introducer introducer",
        "入党介绍人（编号、编号前几位或姓名）。",
    ),
    ("applicant list", "入党流程中的所有人，进展最快的在前。"),
    ("applicant reminders", "到期的阶段和思想汇报。"),
    (
        "applicant reminders as_of",
        "以这一天为今天（默认：今天）。",
    ),
    (
        "applicant show",
        "查看一位申请人：各阶段及日期、入党介绍人、思想汇报。",
    ),
    (
        "applicant show member",
        "申请人（编号、编号前几位或姓名）。",
    ),
    ("library", "问题库和案例集，在支部之间共享。"),
    ("library add", "编写新条目（支委会）；输出条目编号。"),
    (
        "library add collection",
        "problem（问题库）或 case（案例集）。",
    ),
    ("library add title", "标题。"),
    ("library add problem", "问题，或案例的情况。"),
    ("library add solution", "解决办法，或具体做法。"),
    ("library add tag", "标签（可重复给出多个）。"),
    ("library add on", "编写日期（默认：今天）。"),
    (
        "library list",
        "本机的条目（本支部的和共享给本支部的），最新的在前。",
    ),
    (
        "library list collection",
        "只列此类：problem（问题库）或 case（案例集）。",
    ),
    ("library list tag", "只列带此标签的。"),
    ("library list title_contains", "只列标题中含有此文字的。"),
    ("library show", "查看一个条目的全文。"),
    ("library show entry", "条目编号、编号前几位或完整标题。"),
    (
        "library revise",
        "修改条目的标题、问题或解决办法（只改给出的项）。",
    ),
    ("library revise entry", "条目编号、编号前几位或完整标题。"),
    ("library revise title", "新标题。"),
    ("library revise problem", "新的问题内容。"),
    ("library revise solution", "新的解决办法。"),
    ("library tag", "为条目添加标签。"),
    ("library tag entry", "条目编号、编号前几位或完整标题。"),
    ("library tag tags", "标签。"),
    ("library share", "与结对共建的支部共享条目。"),
    ("library share entry", "条目编号、编号前几位或完整标题。"),
    ("library share branch", "支部：名称（本机知道时）或编号。"),
    (
        "library share-down",
        "把条目共享给本支部以下的所有支部，或用 --off 停止共享。",
    ),
    (
        "library share-down entry",
        "条目编号、编号前几位或完整标题。",
    ),
    ("library share-down off", "停止向下共享。"),
    ("branch", "支部设置：每月党费，以及对下级支部的评定办法。"),
    ("branch show", "支部设置：每月党费、积分项目、星级评定。"),
    ("branch set-dues", "设定党员每月统一应缴的党费（支委会）。"),
    ("branch set-dues yuan", "每月金额（元），例如 30.00。"),
    ("branch rating", "下级支部的星级评定办法。"),
    (
        "branch rating set-indicator",
        "设定一项指标的权重，以及拿满权重所需的数值。",
    ),
    (
        "branch rating set-indicator indicator",
        "指标：meeting_compliance（组织生活）、dues_collection（党费收缴）、\
         petitions_in_time（诉求按期办结）、satisfaction（群众满意）或 \
         term_current（按期换届）。",
    ),
    (
        "branch rating set-indicator weight",
        "在总分中所占的权重（0 表示不计入）。",
    ),
    (
        "branch rating set-indicator target",
        "拿满权重所需的数值（百分比，1-100）。",
    ),
    (
        "branch rating set-stars",
        "设定一至五星各自所需的分数（百分比），例如 20,40,60,80,95。",
    ),
    (
        "branch rating set-stars thresholds",
        "五个依次升高的分数，用逗号分隔。",
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

/// Chinese placeholders for argument values, `<名称>` rather than `<NAME>`:
/// `"<subcommand path> <arg id>"` where one command means something of its
/// own by the id, else `"<arg id>"` for every command.
const VALUE_NAMES_ZH: &[(&str, &str)] = &[
    ("home", "目录"),
    ("lang", "语言"),
    ("link", "邀请链接"),
    ("name", "名称"),
    ("enroll name", "设备名称"),
    ("member add name", "姓名"),
    ("member update name", "姓名"),
    ("member list name", "姓名"),
    ("timeout", "秒数"),
    ("gender", "性别"),
    ("birth", "日期"),
    ("joined", "日期"),
    ("category", "类别"),
    ("group", "党小组"),
    ("post", "职务"),
    ("phone", "电话"),
    ("member", "党员"),
    ("on", "日期"),
    ("status", "状态"),
    ("kind", "类型"),
    ("title", "标题"),
    ("starts", "时间"),
    ("ends", "时间"),
    ("place", "地点"),
    ("organizer", "党员"),
    ("agenda", "议程"),
    ("activity", "活动"),
    ("reason", "原因"),
    ("text", "文字"),
    ("activity minutes text", "会议记录"),
    ("petition progress text", "进展"),
    ("suggest text", "意见"),
    ("feedback answer text", "答复"),
    ("file", "文件"),
    ("points", "分数"),
    ("partner", "支部编号"),
    ("from", "日期"),
    ("to", "日期"),
    ("description", "内容"),
    ("location", "地点"),
    ("submitter", "姓名"),
    ("contact", "联系方式"),
    ("by_member", "党员"),
    ("petition", "诉求"),
    ("owner", "党员"),
    ("deadline", "日期"),
    ("author", "党员"),
    ("summary", "结果"),
    ("by", "党员"),
    ("score", "分数"),
    ("comment", "评价"),
    ("as_of", "日期"),
    ("doc", "文档"),
    ("path", "路径"),
    ("keep", "序号"),
    ("suggestion", "意见"),
    ("months", "月份"),
    ("amount", "金额"),
    ("year", "年份"),
    ("entry", "记录"),
    ("yuan", "金额"),
    ("purpose", "用途"),
    ("approved_by", "批准人"),
    ("format", "格式"),
    ("out", "目录"),
    ("rule", "项目"),
    ("due", "日期"),
    ("quarter", "季度"),
    ("code", "代码"),
    ("applied", "日期"),
    ("stage", "阶段"),
    ("note", "备注"),
    ("introducer", "党员"),
    ("collection", "类别"),
    ("problem", "问题"),
    ("solution", "办法"),
    ("tag", "标签"),
    ("tags", "标签"),
    ("title_contains", "文字"),
    ("library show entry", "条目"),
    ("library revise entry", "条目"),
    ("library tag entry", "条目"),
    ("library share entry", "条目"),
    ("library share-down entry", "条目"),
    ("branch", "支部"),
    ("indicator", "指标"),
    ("weight", "权重"),
    ("target", "百分比"),
    ("thresholds", "分数线"),
    ("xlsx", "文件"),
];

const EXIT_STATUSES_ZH: &str = "\
退出状态：0 完成；1 意外错误；2 命令行有误；3 输入无效或被记录规则拒绝；\
4 无法连接服务器；5 被服务器拒绝；6 数据目录不是已加入支部的 Branchline 数据。";

fn zh(key: &str) -> Option<&'static str> {
    ZH.iter().find(|(k, _)| *k == key).map(|(_, v)| *v)
}

/// The Chinese placeholder of argument `id` of the command at `path`.
fn value_name_zh(path: &str, id: &str) -> Option<&'static str> {
    let find = |key: &str| VALUE_NAMES_ZH.iter().find(|(k, _)| *k == key);
    find(&format!("{path} {id}"))
        .or_else(|| find(id))
        .map(|(_, v)| *v)
}

/// The options every subcommand takes, listed after its own.
const GLOBAL_OPTIONS: [&str; 3] = ["home", "lang", "json"];

/// The words clap writes into a usage line itself, in one language.
struct UsageWords {
    /// Stands for the options a command takes, `[OPTIONS]`.
    options: &'static str,
    /// Stands for a subcommand, `COMMAND` (clap adds the brackets).
    command: &'static str,
}

const USAGE_ZH: UsageWords = UsageWords {
    options: "[选项]",
    command: "命令",
};

/// The command line, with its help in `lang`.
pub fn command(lang: Lang) -> Command {
    let mut command = <crate::cli::Cli as clap::CommandFactory>::command();
    for (i, id) in GLOBAL_OPTIONS.into_iter().enumerate() {
        command = command.mut_arg(id, |arg| arg.display_order(1000 + i));
    }
    match lang {
        Lang::En => command,
        Lang::Zh => translate(command, "", false)
            .after_help(EXIT_STATUSES_ZH)
            .disable_version_flag(true)
            .arg(
                Arg::new("version")
                    .short('V')
                    .long("version")
                    .action(ArgAction::Version)
                    .help("显示版本")
                    .display_order(2001),
            ),
    }
}

/// The command at `path` with Chinese help, and its subcommands too.
/// `inherited_options`: a parent passes global options down to it.
///
/// clap writes a few English words of its own into every help screen: the
/// usage line (`[OPTIONS]`, `<COMMAND>`), placeholders taken from argument
/// ids (`<NAME>`), the section headings with their colon, and the notes
/// after a help text (`[default: 30]`). Each is replaced through clap's own
/// settings: a usage line of ours, Chinese value names, a help template
/// with Chinese headings, and defaults written into the Chinese help text.
fn translate(mut command: Command, path: &str, inherited_options: bool) -> Command {
    if let Some(about) = zh(path) {
        command = command.about(about).long_about(None::<&str>);
    }
    let ids: Vec<String> = command
        .get_arguments()
        .map(|a| a.get_id().as_str().to_owned())
        .collect();
    for id in ids {
        let help = zh(&format!("{path} {id}"));
        let value_name = value_name_zh(path, &id);
        command = command.mut_arg(&id, |arg| translate_arg(arg, help, value_name));
    }
    let inherited_options = inherited_options
        || command
            .get_arguments()
            .any(|a| a.is_global_set() && in_options_tag(a));
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
        command = command.mut_subcommand(&name, |sub| translate(sub, &sub_path, inherited_options));
    }
    let usage = usage_line(&command, path, inherited_options, &USAGE_ZH);
    let template = template_zh(&command);
    command
        .override_usage(usage)
        .help_template(template)
        .subcommand_value_name(USAGE_ZH.command)
        .disable_help_subcommand(true)
        .disable_help_flag(true)
        .arg(
            Arg::new("help")
                .short('h')
                .long("help")
                .action(ArgAction::Help)
                .help("显示帮助")
                .display_order(2000),
        )
}

/// One argument with its Chinese help and placeholder; what clap would note
/// after the help in English (the default, the values it takes, the
/// environment variable) is in the Chinese text instead.
fn translate_arg(arg: Arg, help: Option<&str>, value_name: Option<&'static str>) -> Arg {
    let defaults: Vec<String> = arg
        .get_default_values()
        .iter()
        .map(|v| v.to_string_lossy().into_owned())
        .collect();
    let takes_values = arg.get_action().takes_values();
    let mut arg = arg;
    if takes_values && !defaults.is_empty() {
        arg = arg.hide_default_value(true);
    }
    if takes_values && !arg.get_possible_values().is_empty() {
        arg = arg.hide_possible_values(true);
    }
    if arg.get_env().is_some() {
        arg = arg.hide_env(true);
    }
    if let Some(value_name) = value_name {
        arg = arg.value_name(value_name);
    }
    if let Some(help) = help {
        let help = if defaults.is_empty() || !takes_values {
            help.to_owned()
        } else {
            let shown: Vec<String> = defaults
                .iter()
                .map(|d| {
                    if d.contains(char::is_whitespace) {
                        format!("“{d}”")
                    } else {
                        d.clone()
                    }
                })
                .collect();
            let (text, stop) = match help.strip_suffix('。') {
                Some(text) => (text, "。"),
                None => (help, ""),
            };
            format!("{text}（默认：{}）{stop}", shown.join("、"))
        };
        arg = arg.help(help).long_help(None::<&str>);
    }
    arg
}

/// Whether clap's usage line stands for `arg` with `[OPTIONS]`: a visible
/// option that is not required and not clap's help or version.
fn in_options_tag(arg: &Arg) -> bool {
    !arg.is_positional()
        && !arg.is_required_set()
        && !arg.is_hide_set()
        && !matches!(arg.get_long(), Some("help" | "version"))
        && matches!(
            arg.get_action(),
            ArgAction::Set
                | ArgAction::Append
                | ArgAction::SetTrue
                | ArgAction::SetFalse
                | ArgAction::Count
        )
}

/// The value placeholder of `arg`, as clap shows it: its value name, else
/// its id in capitals.
fn placeholder(arg: &Arg) -> String {
    match arg.get_value_names() {
        Some(names) if !names.is_empty() => names
            .iter()
            .map(|n| n.as_str())
            .collect::<Vec<_>>()
            .join(" "),
        _ => arg.get_id().as_str().to_uppercase(),
    }
}

/// The usage line of the command at `path`, laid out as clap lays it out
/// (options tag, required options, positionals, subcommand) in `words`.
fn usage_line(
    command: &Command,
    path: &str,
    inherited_options: bool,
    words: &UsageWords,
) -> String {
    let mut parts = vec!["branchline".to_owned()];
    if !path.is_empty() {
        parts.push(path.to_owned());
    }
    if inherited_options || command.get_arguments().any(in_options_tag) {
        parts.push(words.options.to_owned());
    }
    for arg in command
        .get_arguments()
        .filter(|a| !a.is_positional() && a.is_required_set() && !a.is_hide_set())
    {
        let flag = match (arg.get_long(), arg.get_short()) {
            (Some(long), _) => format!("--{long}"),
            (None, Some(short)) => format!("-{short}"),
            (None, None) => continue,
        };
        if arg.get_action().takes_values() {
            parts.push(format!("{flag} <{}>", placeholder(arg)));
        } else {
            parts.push(flag);
        }
    }
    for arg in command.get_positionals().filter(|a| !a.is_hide_set()) {
        let many = if arg.get_num_args().is_some_and(|n| n.max_values() > 1) {
            "..."
        } else {
            ""
        };
        let name = placeholder(arg);
        if arg.is_required_set() {
            parts.push(format!("<{name}>{many}"));
        } else {
            parts.push(format!("[{name}]{many}"));
        }
    }
    if command.has_subcommands() {
        let name = words.command;
        if command.is_subcommand_required_set() {
            parts.push(format!("<{name}>"));
        } else {
            parts.push(format!("[{name}]"));
        }
    }
    parts.join(" ")
}

/// The Chinese help template of `command`: clap's layout, with Chinese
/// headings ending in a full-width colon and only the sections it has.
fn template_zh(command: &Command) -> StyledStr {
    let styles = command.get_styles();
    let (usage, header) = (styles.get_usage(), styles.get_header());
    let mut sections = Vec::new();
    if command.get_subcommands().any(|s| !s.is_hide_set()) {
        sections.push(format!("{header}命令：{header:#}\n{{subcommands}}"));
    }
    if command.get_positionals().any(|a| !a.is_hide_set()) {
        sections.push(format!("{header}参数：{header:#}\n{{positionals}}"));
    }
    // Every command has options: its help flag, and the global ones.
    sections.push(format!("{header}选项：{header:#}\n{{options}}"));
    StyledStr::from(format!(
        "{{before-help}}{{about-with-newline}}\n{usage}用法：{usage:#}{{usage}}\n\n{}{{after-help}}",
        sections.join("\n\n")
    ))
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
        ErrorKind::InvalidSubcommand => format!(
            "没有这个命令：{}",
            text(ContextKind::InvalidSubcommand).unwrap_or_default()
        ),
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

    /// The command at each subcommand path (the top one at `""`), unbuilt.
    fn paths(command: &Command, path: &str, all: &mut Vec<(String, Command)>) {
        all.push((path.to_owned(), command.clone()));
        for sub in command.get_subcommands() {
            let sub_path = if path.is_empty() {
                sub.get_name().to_owned()
            } else {
                format!("{path} {}", sub.get_name())
            };
            paths(sub, &sub_path, all);
        }
    }

    #[test]
    fn our_usage_lines_are_laid_out_as_clap_lays_them_out() {
        // With clap's English words, the usage line made for the Chinese
        // help must be the one clap itself writes, for every command.
        const EN: UsageWords = UsageWords {
            options: "[OPTIONS]",
            command: "COMMAND",
        };
        let english = command(Lang::En);
        let mut built = english.clone();
        built.build();
        let mut all = Vec::new();
        paths(&english, "", &mut all);
        assert!(all.len() > 40, "only {} commands", all.len());
        for (path, unbuilt) in all {
            let mut target = &mut built;
            for name in path.split_whitespace() {
                target = target.find_subcommand_mut(name).unwrap();
            }
            let clap_says = target.render_usage().to_string();
            let clap_says = clap_says.trim().strip_prefix("Usage: ").unwrap();
            // Every command takes the global options.
            assert_eq!(
                usage_line(&unbuilt, &path, true, &EN),
                clap_says,
                "{path:?}"
            );
        }
    }

    #[test]
    fn every_value_has_a_chinese_placeholder() {
        let mut all = Vec::new();
        paths(&command(Lang::En), "", &mut all);
        let mut missing = Vec::new();
        for (path, command) in &all {
            for arg in command.get_arguments() {
                let id = arg.get_id().as_str();
                if arg.get_action().takes_values() && value_name_zh(path, id).is_none() {
                    missing.push(format!("{path:?} {id}"));
                }
            }
        }
        assert!(
            missing.is_empty(),
            "no Chinese placeholder for {missing:#?}"
        );
        for (key, _) in VALUE_NAMES_ZH {
            let named = all.iter().any(|(path, command)| {
                command.get_arguments().any(|arg| {
                    let id = arg.get_id().as_str();
                    *key == id || *key == format!("{path} {id}")
                })
            });
            assert!(named, "placeholder {key:?} names no argument");
        }
    }

    #[test]
    fn a_default_is_written_into_the_chinese_help() {
        let arg = Arg::new("timeout").long("timeout").default_value("30");
        let arg = translate_arg(arg, Some("放弃。"), Some("秒数"));
        assert_eq!(arg.get_help().unwrap().to_string(), "放弃（默认：30）。");
        assert!(arg.is_hide_default_value_set());
        let arg = Arg::new("name")
            .long("name")
            .default_value("Branchline desktop");
        let arg = translate_arg(arg, Some("名称"), None);
        assert_eq!(
            arg.get_help().unwrap().to_string(),
            "名称（默认：“Branchline desktop”）"
        );
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
