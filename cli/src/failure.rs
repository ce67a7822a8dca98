//! Why a command failed: a stable code for scripts, a message for people, and
//! the process exit status.
//!
//! Exit statuses group failures by what the person can do about them:
//!
//! | status | meaning |
//! |---|---|
//! | 0 | done |
//! | 1 | an unexpected failure (disk, database) |
//! | 2 | the command line itself was wrong (from clap) |
//! | 3 | invalid input (also a request the server found invalid), or a rule of the records refused it |
//! | 4 | the server could not be reached in time |
//! | 5 | the server refused (invite expired or used, device revoked, no access, an edit against the branch's rules, too many requests) |
//! | 6 | the home directory is not a usable Branchline store |
//!
//! The code never changes with the language; the message does. A failure
//! made where the language is not known (a store error turned into a
//! `Failure` by `?`) carries its message in both languages, and the one the
//! person reads is picked when it is printed.

use std::fmt;

use branchline_core::MemberId;
use branchline_core::net::NetError;

use crate::output::Lang;

/// Exit status: an unexpected failure.
pub const EXIT_FAILURE: u8 = 1;
/// Exit status: invalid input or a refused operation.
pub const EXIT_INVALID: u8 = 3;
/// Exit status: the server could not be reached.
pub const EXIT_NETWORK: u8 = 4;
/// Exit status: the server refused.
pub const EXIT_REFUSED: u8 = 5;
/// Exit status: the home directory is not usable.
pub const EXIT_HOME: u8 = 6;

/// A failed command.
#[derive(Debug)]
pub struct Failure {
    /// Stable code, e.g. `member.unknown` or `home.not_enrolled`.
    pub code: String,
    /// What went wrong, for people: in the output language when the code
    /// that failed knew it, else in English (and `zh` holds the Chinese).
    pub message: String,
    /// The message in Chinese, when `message` is the English one.
    pub zh: Option<String>,
    /// The process exit status.
    pub exit: u8,
}

impl Failure {
    /// A failure with its code, message and exit status.
    pub fn new(code: impl Into<String>, message: impl Into<String>, exit: u8) -> Self {
        Self {
            code: code.into(),
            message: message.into(),
            zh: None,
            exit,
        }
    }

    /// Invalid input (exit status 3).
    pub fn invalid(code: impl Into<String>, message: impl Into<String>) -> Self {
        Self::new(code, message, EXIT_INVALID)
    }

    /// The same failure with `zh` as its Chinese message (and `message` the
    /// English one).
    pub fn zh(mut self, zh: impl Into<String>) -> Self {
        self.zh = Some(zh.into());
        self
    }

    /// The same failure with one message, already in the output language.
    pub fn saying(mut self, message: String) -> Self {
        self.message = message;
        self.zh = None;
        self
    }

    /// The message in `lang`.
    pub fn message_in(&self, lang: Lang) -> &str {
        match (lang, &self.zh) {
            (Lang::Zh, Some(zh)) => zh,
            _ => &self.message,
        }
    }

    /// A store error, naming members with `name` (their roster name where
    /// the device knows it).
    pub fn from_core(e: branchline_core::Error, name: &dyn Fn(MemberId) -> String) -> Self {
        use branchline_core::Error as E;
        let code = e.code();
        let exit = match code {
            "store.sqlite" => EXIT_FAILURE,
            // The store refuses as the server refused the device.
            "auth.device_revoked" => EXIT_REFUSED,
            _ if code.starts_with("store.") => EXIT_HOME,
            _ => EXIT_INVALID,
        };
        let (en, zh) = match &e {
            E::UnknownMember(m) => (
                format!("{} is not on this branch's roster", name(*m)),
                format!("本支部花名册上没有 {}", name(*m)),
            ),
            E::MemberNotActive(m) => (
                format!(
                    "{} is no longer an active member (transferred out or deceased)",
                    name(*m)
                ),
                format!("{} 已不在册（已转出或去世）", name(*m)),
            ),
            E::AlreadySignedIn(m) => (
                format!("{} has already signed in", name(*m)),
                format!("{} 已经签到", name(*m)),
            ),
            E::NotAnApplicant(m) => (
                format!(
                    "{} is not on the way to membership; open their file with \
                     `branchline applicant add`",
                    name(*m)
                ),
                format!(
                    "{} 不在入党流程中；请先用 branchline applicant add 建立档案",
                    name(*m)
                ),
            ),
            E::UnknownPointRule(code) => (
                format!(
                    "the branch has no point rule {code:?} (see `branchline points rules list`)"
                ),
                format!("支部没有积分项目 {code:?}（见 branchline points rules list）"),
            ),
            E::UnknownEntry(entry) => (
                format!("no entry {} in the ledger", crate::output::short(entry)),
                format!("账目中没有记录 {}", crate::output::short(entry)),
            ),
            E::AlreadyOnLeave(m) => (
                format!("{} has already asked for leave", name(*m)),
                format!("{} 已经请过假", name(*m)),
            ),
            // What to do next, which the store cannot say.
            E::DeviceRevoked => (
                "the server revoked this device: it can still read its records, but not change \
                 or sync them; ask the branch secretary for a new invite and enroll again"
                    .to_owned(),
                "服务器已吊销此设备：仍可查看本机记录，但不能修改或同步；\
                 请向支部书记索取新的邀请后重新加入"
                    .to_owned(),
            ),
            _ => (e.to_string(), core_zh(&e)),
        };
        Self::new(code, en, exit).zh(zh)
    }
}

/// A store error's message in Chinese.
pub(crate) fn core_zh(e: &branchline_core::Error) -> String {
    use branchline_core::Error as E;
    match e {
        E::EmptyField { field } => format!("{}不能为空", field_zh(field)),
        E::InvalidValue { what, value } => format!("无效的{}：{value:?}", field_zh(what)),
        E::EndBeforeStart => "活动的结束时间必须晚于开始时间".into(),
        E::UnknownEntry(id) => format!("账目中没有记录 {id}"),
        E::AlreadyVoided(id) => format!("缴费记录 {id} 已经作废"),
        E::OutsideYear { year, day } => format!("{day} 不在账目所属的 {year} 年内"),
        E::StageOutOfOrder { stage, missing } => format!(
            "登记“{}”之前须先登记“{}”",
            stage_zh(stage),
            stage_zh(missing)
        ),
        E::StageTooEarly { stage, earliest } => {
            format!("“{}”最早可在 {earliest} 登记", stage_zh(stage))
        }
        E::IntroducersMissing { needed } => format!("须先确定 {needed} 名入党介绍人"),
        E::ApplicantExists(doc) => format!("此人已有入党申请人档案（{doc}）"),
        E::NotAnApplicant(m) => format!("党员 {m} 不在入党流程中"),
        E::UnknownPointRule(code) => {
            format!("支部没有积分项目 {code:?}（见 branchline points rules list）")
        }
        E::UnknownActivityKind(kind) => {
            format!("支部没有设置活动类型 {kind:?}（见 branchline activity kinds）")
        }
        E::ActivityClosed => "活动已结束：签到、请假和会议记录不能再修改".into(),
        E::PetitionNoOwner => "诉求还没有负责人，请先分派".into(),
        E::PetitionNotResolved => "诉求尚未办结".into(),
        E::PetitionAlreadyResolved => "诉求已经办结".into(),
        E::PetitionAlreadyRated => "诉求已经评价过".into(),
        E::RatingOutOfRange(n) => format!("满意度须在 1 到 5 之间，不能是 {n}"),
        E::DeadlineBeforeSubmission => "期限不能早于诉求提交的日期".into(),
        E::SuggestionTooLong { found, max } => {
            format!("意见最多 {max} 个字，这条有 {found} 个")
        }
        E::DuplicateSuggestion(id) => format!("意见 {id} 已在意见箱中"),
        E::UnknownSuggestion(id) => format!("意见箱中没有意见 {id}"),
        E::SuggestionNotAnswered(id) => format!("意见 {id} 还没有答复，无法公开"),
        E::FeedbackBoxExists(doc) => format!("支部已有意见箱（文档 {doc}）"),
        E::DocNotFound(id) => format!("本机没有文档 {id}"),
        E::MissingBranchDocument(kind) => format!(
            "本机还没有支部的{}；请先运行 branchline sync",
            crate::words::kind_name(kind, Lang::Zh)
        ),
        E::Corrupt(why) => format!("文档已损坏：{why}"),
        E::InvalidHeader { doc, reason } => format!("拒绝了对文档 {doc} 的修改：{reason}"),
        E::WrongKind { expected, found } => format!(
            "该文档是{}，而不是{}",
            crate::words::kind_name(found, Lang::Zh),
            crate::words::kind_name(expected, Lang::Zh)
        ),
        E::SchemaTooNew { found, supported } => {
            format!("文档格式版本 {found} 比本程序支持的 {supported} 新；请升级 Branchline")
        }
        E::Malformed(why) => format!("文档格式有误：{why}"),
        E::ConflictNotFound(path) => format!("{path} 没有冲突（或已处理）"),
        E::StoreTooNew { found, supported } => {
            format!("数据库版本 {found} 比本程序支持的 {supported} 新；请升级 Branchline")
        }
        E::NotAStore(why) => format!("不是 Branchline 数据库：{why}"),
        E::Sqlite(why) => format!("存储出错：{why}"),
        E::DeviceRevoked => "服务器已吊销此设备：仍可查看本机记录，但不能修改".into(),
        other => other.to_string(),
    }
}

/// A step of the way to membership, by its stable name, in Chinese.
fn stage_zh(stage: &str) -> &str {
    match stage.parse() {
        Ok(stage) => crate::words::stage(stage, Lang::Zh),
        Err(_) => stage,
    }
}

/// A field or value name of the records, in Chinese.
fn field_zh(field: &str) -> &str {
    match field {
        "title" => "标题",
        "name" => "姓名",
        "kind" => "活动类型",
        "start" => "开始时间",
        "end" => "结束时间",
        "reason" => "原因",
        "category" => "类别",
        "group" => "小组",
        "answer" => "答复",
        "suggestion" => "意见",
        "progress note" => "进展",
        "resolution" => "办结说明",
        "topic" => "主题",
        "activity kind code" => "活动类型代码",
        "activity kind name" => "活动类型名称",
        "points" => "积分",
        "training hours" => "培训学时",
        "year" => "年份",
        "percentage" => "百分比",
        "gender" => "性别",
        "member category" => "党员类别",
        "member status" => "状态",
        "petition status" => "诉求状态",
        "activity status" => "活动状态",
        "sign-in mode" => "签到方式",
        "date (YYYY-MM-DD)" => "日期（YYYY-MM-DD）",
        "date and time (YYYY-MM-DDTHH:MM)" => "日期时间（YYYY-MM-DDTHH:MM）",
        "amount in fen" => "金额（分）",
        "amount (the branch sets no monthly dues)" => "金额（支部尚未设定每月党费）",
        "months (1-12)" => "月份（1-12）",
        "purpose" => "用途",
        "approved by" => "批准人",
        "spending category" => "支出类别",
        "applicant stage" => "入党阶段",
        "library collection" => "条目类别",
        "rating indicator" => "评定指标",
        "problem" => "问题",
        "solution" => "解决办法",
        "point rule code" => "积分项目代码",
        "point rule description" => "积分项目内容",
        "target percentage (1-100)" => "目标百分比（1-100）",
        "star thresholds (rising, at most 100)" => "星级分数线（须依次升高，最高 100）",
        "introducer (the applicant)" => "入党介绍人（不能是申请人本人）",
        "introducer (there are two already)" => "入党介绍人（已有两名）",
        "introducer (an active full member of the branch)" => {
            "入党介绍人（须为本支部在册的正式党员）"
        }
        "date (after the next step's)" => "日期（晚于下一阶段的日期）",
        "partner branch (it wrote the entry)" => "共建支部（该条目就是它编写的）",
        "parent (a branch has no branches below it)" => "上级（党支部以下没有其他支部）",
        "quarter (1-4)" => "季度（1-4）",
        "period (end before start)" => "时期（截止日早于起始日）",
        other => other,
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[{}] {}", self.code, self.message)
    }
}

impl From<branchline_core::Error> for Failure {
    fn from(e: branchline_core::Error) -> Self {
        Self::from_core(e, &|m| m.to_string())
    }
}

impl From<NetError> for Failure {
    fn from(e: NetError) -> Self {
        let exit = match &e {
            NetError::Store(_) => match e {
                NetError::Store(inner) => return inner.into(),
                _ => EXIT_FAILURE,
            },
            NetError::NotEnrolled => EXIT_HOME,
            NetError::Offline | NetError::Connection(_) | NetError::Timeout => EXIT_NETWORK,
            // A request with a bad field is the person's input to fix.
            NetError::Refused { code, .. } if code.as_str() == "request.invalid" => EXIT_INVALID,
            NetError::Refused { .. } => EXIT_REFUSED,
            _ => EXIT_FAILURE,
        };
        let zh = match &e {
            NetError::NotEnrolled => "此设备尚未加入支部；请使用邀请链接".to_owned(),
            NetError::Offline => "未连接到服务器".to_owned(),
            NetError::Refused { code, message } => format!("服务器拒绝：{code}：{message}"),
            NetError::Connection(why) => format!("连接失败：{why}"),
            NetError::Timeout => "等待超时".to_owned(),
            NetError::Stopped => "同步已停止".to_owned(),
            other => other.to_string(),
        };
        Self::new(e.code(), e.to_string(), exit).zh(zh)
    }
}

impl From<std::io::Error> for Failure {
    fn from(e: std::io::Error) -> Self {
        let zh = format!("读写文件出错：{e}");
        Self::new("cli.io", e.to_string(), EXIT_FAILURE).zh(zh)
    }
}

/// A command's result.
pub type Result<T, E = Failure> = std::result::Result<T, E>;
