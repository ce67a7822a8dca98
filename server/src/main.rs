//! `branchline-server`: run the Branchline server, and administer it.
//!
//! ```text
//! branchline-server demo [--keep DIR]                  see it work: a server and two phones
//! branchline-server [--data-dir DIR] [--lang en|zh] <command>
//!   init [--listen 0.0.0.0:4433] [--public-addr host:port]
//!   serve [--config FILE] [--listen …] [--public-addr …] [--max-connections N] …
//!   branch add --name NAME [--level branch|general-branch|committee] [--parent ID]
//!   branch list
//!   alliance add --name NAME --branch ID --branch ID [...]
//!   alliance list
//!   invite --branch ID --role secretary|committee|member|resident [--member ID]
//!          [--valid-for-hours 72] [--qr]
//!   submission-code --branch ID [--rotate] [--qr]
//!   devices list [--branch ID]
//!   devices revoke DEVICE_ID
//!   export --branch ID --out DIR [--format csv|xlsx|all] [--bom] [--from DAY] [--to DAY]
//!   audit [--limit 50] [--json]
//! ```
//!
//! What a script needs is on stdout (a new id, an invite link, the files
//! written); messages for people go to stderr, in English or Chinese
//! (`--lang zh`, or from the locale as the desktop client reads it:
//! `LANGUAGE`, `LC_ALL`, `LC_MESSAGES`, `LANG`). Every command but `init`
//! needs a data directory `init` set up, `serve` included: a server started
//! on an empty directory would know no device, and every phone would have
//! to enroll again. Errors start with a stable code in brackets, e.g.
//! `error [admin.unknown_branch]: …`, and exit non-zero. Logs go to stderr,
//! filtered by `RUST_LOG` (default `info` for `serve`, `error` for `demo`,
//! `warn` otherwise).

mod demo;
mod export;
mod settings;

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use branchline_core::model::{Date, Level};
use branchline_core::{BranchId, MemberId};
use branchline_protocol::{DeviceId, Role};
use branchline_server::{Admin, Server, parse_role};
use clap::{Parser, Subcommand, ValueEnum};

use crate::export::{ExportFormat, ExportRequest};
use crate::settings::Settings;

#[derive(Parser, Debug)]
#[command(
    name = "branchline-server",
    version,
    about = "The Branchline sync server and its administration",
    long_about = "The Branchline sync server and its administration.\n\n\
                  New here? Run `branchline-server demo`: it starts a server and two phones on \
                  this machine, edits offline on both and shows the merge.\n\
                  To set up a server: `init`, then `serve`, then `branch add` and `invite`."
)]
struct Cli {
    /// Where the settings, database, certificate and key live.
    #[arg(long, global = true, default_value = "./branchline-data")]
    data_dir: PathBuf,
    /// Language of messages, headers and exported values for people
    /// [default: from the locale: LANGUAGE, LC_ALL, LC_MESSAGES, LANG].
    #[arg(long, global = true, value_enum)]
    lang: Option<Lang>,
    #[command(subcommand)]
    command: Command,
}

/// The language people read output in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Lang {
    /// English.
    En,
    /// 中文.
    Zh,
}

impl Lang {
    /// The language of the locale, read as the desktop client reads it
    /// (sys-locale): Chinese for `zh…`, else English.
    fn from_locale() -> Lang {
        match sys_locale::get_locale() {
            Some(locale) if locale.to_ascii_lowercase().starts_with("zh") => Lang::Zh,
            _ => Lang::En,
        }
    }
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Set up a new data directory: settings file, database and certificate.
    ///
    /// Prints the data directory, settings file, listen address, public
    /// address and certificate fingerprint, one `key value` per line. Refuses
    /// a directory that is already set up: keys are never overwritten.
    Init {
        /// The UDP address the server will listen on.
        #[arg(long, default_value = settings::DEFAULT_LISTEN)]
        listen: SocketAddr,
        /// The host:port devices reach this server at (written into
        /// invites); default: the listen address, with localhost for 0.0.0.0.
        #[arg(long)]
        public_addr: Option<String>,
        /// Keep the server's data in this PostgreSQL database
        /// (postgres://user@host:port/db) instead of the embedded SQLite
        /// file; several servers (nodes) can share one database.
        #[arg(long, value_name = "URL")]
        database: Option<String>,
    },
    /// Run the server until SIGINT or SIGTERM.
    ///
    /// The data directory must have been set up by `init`: a server started
    /// without its database would know no device and make every phone
    /// enroll again, so `serve` refuses (admin.not_initialized). Settings
    /// come from the data directory's branchline-server.toml (or
    /// --config FILE); each flag overrides the file. The first line on stdout
    /// is `listening ADDR`, then `public HOST:PORT` and `fingerprint HEX`.
    Serve {
        /// A settings file to read instead of DATA_DIR/branchline-server.toml.
        #[arg(long)]
        config: Option<PathBuf>,
        /// UDP address to listen on [default: 0.0.0.0:4433].
        #[arg(long)]
        listen: Option<SocketAddr>,
        /// The host:port devices reach this server at (written into invites).
        #[arg(long)]
        public_addr: Option<String>,
        /// Refuse connections beyond this many [default: 1000].
        #[arg(long)]
        max_connections: Option<usize>,
        /// Keep at most this many documents in memory [default: 1000].
        #[arg(long)]
        max_loaded_docs: Option<usize>,
        /// Unload a document unused for this many seconds [default: 300].
        #[arg(long)]
        idle_unload_secs: Option<u64>,
    },
    /// Manage branches.
    Branch {
        #[command(subcommand)]
        command: BranchCommand,
    },
    /// Manage alliances of partner branches (结对共建 / 党建联盟).
    Alliance {
        #[command(subcommand)]
        command: AllianceCommand,
    },
    /// Create a one-time invite link for a new device.
    ///
    /// Prints only the link on stdout's first line; with --qr, a QR code of
    /// it follows, for a phone to scan.
    Invite {
        /// The branch the device joins.
        #[arg(long)]
        branch: BranchId,
        /// The role it gets: secretary, committee, member or resident.
        #[arg(long, value_parser = role_arg)]
        role: Role,
        /// The member the device belongs to (must be active on the branch's roster).
        #[arg(long)]
        member: Option<MemberId>,
        /// How long the invite stays valid (1 hour to 1 year).
        #[arg(long, default_value_t = 72)]
        valid_for_hours: u64,
        /// Also print the link as a QR code.
        #[arg(long)]
        qr: bool,
    },
    /// Show the branch's public submission link (民情直通车), for posters.
    ///
    /// Residents scan it to register a phone and send requests to the
    /// branch; each sees only their own requests. The code is created on
    /// first use and stays the same until --rotate replaces it (the old one
    /// stops working). Prints only the link on stdout's first line; with
    /// --qr, a QR code of it follows.
    SubmissionCode {
        /// The branch.
        #[arg(long)]
        branch: BranchId,
        /// Replace the code with a new one; the old one stops working.
        #[arg(long)]
        rotate: bool,
        /// Also print the link as a QR code.
        #[arg(long)]
        qr: bool,
    },
    /// List or revoke enrolled devices.
    Devices {
        #[command(subcommand)]
        command: DevicesCommand,
    },
    /// Revoke a device (same as `devices revoke`).
    #[command(hide = true)]
    Revoke {
        /// The device to revoke.
        device: DeviceId,
    },
    /// Export a branch's roster, attendance and petition ledger as CSV and XLSX.
    ///
    /// Writes roster.csv, attendance.csv, petitions.csv (UTF-8) and
    /// branchline-export.xlsx (three sheets) into --out, and prints each
    /// file written. Attendance covers the branch's activities and those
    /// partner branches shared with it.
    Export {
        /// The branch to export.
        #[arg(long)]
        branch: BranchId,
        /// The directory to write into (created if missing; files are replaced).
        #[arg(long)]
        out: PathBuf,
        /// Which files to write.
        #[arg(long, value_enum, default_value_t = ExportFormat::All)]
        format: ExportFormat,
        /// Start CSV files with a UTF-8 byte order mark, so Excel reads Chinese right.
        #[arg(long)]
        bom: bool,
        /// Only activities on or after this day (YYYY-MM-DD).
        #[arg(long)]
        from: Option<String>,
        /// Only activities on or before this day (YYYY-MM-DD).
        #[arg(long)]
        to: Option<String>,
    },
    /// Show the newest audit log entries, newest first.
    ///
    /// One line per entry: id, time, event, then `device=`, `member=` (the
    /// name on the roster where known, else the id), `doc=`, `change=` (the
    /// accepted change's hash), `code=` (a refusal's code) and the detail.
    /// With --json, one JSON array of entries with ids and names.
    Audit {
        /// How many entries.
        #[arg(long, default_value_t = 50)]
        limit: usize,
        /// Print one JSON value for scripts instead.
        #[arg(long)]
        json: bool,
    },
    /// See Branchline work: a server and two phones on this machine edit
    /// offline, reconnect and merge.
    ///
    /// Starts a server on 127.0.0.1 with a temporary data directory, enrolls
    /// a secretary's and a member's phone, has both edit offline, reconnects
    /// them and prints each step and the merged result: the same minutes
    /// edited by both, merged word for word; the same place set by both,
    /// kept as a conflict; and an edit the server's rules refuse, with its
    /// code and reason. Every statement is checked before it is printed: if
    /// one does not hold (or the phones and the server do not end up
    /// identical) the demo stops with its code (demo.not_merged, …) and
    /// exits non-zero.
    Demo {
        /// Keep the data (server and both phones) in this directory instead
        /// of deleting it.
        #[arg(long)]
        keep: Option<PathBuf>,
    },
}

#[derive(Subcommand, Debug)]
enum BranchCommand {
    /// Add a branch (an organization is a committee with no parent).
    ///
    /// Prints only the new branch's id on stdout.
    Add {
        /// Its name.
        #[arg(long)]
        name: String,
        /// Its level.
        #[arg(long, value_parser = level_arg, default_value = "branch")]
        level: Level,
        /// The branch above it.
        #[arg(long)]
        parent: Option<BranchId>,
    },
    /// List branches: id, level, parent, name.
    List,
}

#[derive(Subcommand, Debug)]
enum AllianceCommand {
    /// Record an alliance of partner branches.
    ///
    /// Prints only the new alliance's id on stdout.
    Add {
        /// Its name.
        #[arg(long)]
        name: String,
        /// A partner branch; give at least two.
        #[arg(long = "branch", required = true)]
        branches: Vec<BranchId>,
    },
    /// List alliances: id, name, partner branch ids.
    List,
}

#[derive(Subcommand, Debug)]
enum DevicesCommand {
    /// List enrolled devices under a header line: device id, branch, role,
    /// member id, member name (from the roster), status, device name.
    List {
        /// Only devices of this branch.
        #[arg(long)]
        branch: Option<BranchId>,
    },
    /// Revoke a device: its connections close and it is refused from now on.
    Revoke {
        /// The device to revoke.
        device: DeviceId,
    },
}

/// A failure of the command line itself, with its stable code.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
struct Failure {
    /// The stable code, e.g. `init.already_initialized`.
    code: &'static str,
    /// What went wrong, for people.
    message: String,
}

impl Failure {
    fn new(code: &'static str, message: impl Into<String>) -> Self {
        Failure {
            code,
            message: message.into(),
        }
    }
}

fn role_arg(text: &str) -> Result<Role, String> {
    parse_role(text).ok_or_else(|| "expected secretary, committee, member or resident".into())
}

fn level_arg(text: &str) -> Result<Level, String> {
    text.replace('-', "_")
        .parse()
        .map_err(|_| "expected branch, general-branch or committee".into())
}

fn date_arg(flag: &str, text: Option<String>) -> anyhow::Result<Option<Date>> {
    text.map(|text| {
        text.parse::<Date>()
            .with_context(|| format!("{flag} {text:?}"))
    })
    .transpose()
}

/// A message for people in both languages.
fn say(lang: Lang, en: &str, zh: &str) -> String {
    match lang {
        Lang::En => en.to_owned(),
        Lang::Zh => zh.to_owned(),
    }
}

/// The stable code of an error, looking through context.
fn code_of(e: &anyhow::Error) -> &str {
    if let Some(failure) = e.downcast_ref::<Failure>() {
        return failure.code;
    }
    if let Some(e) = e.downcast_ref::<branchline_server::Error>() {
        return match e {
            branchline_server::Error::Model(inner) => inner.code(),
            other => other.code(),
        };
    }
    if let Some(e) = e.downcast_ref::<branchline_core::Error>() {
        return e.code();
    }
    if let Some(e) = e.downcast_ref::<branchline_core::net::NetError>() {
        return e.code();
    }
    if e.downcast_ref::<std::io::Error>().is_some() {
        return "io.error";
    }
    "cli.error"
}

/// The error with its causes, each cause once: a wrapping error often
/// repeats its source's text already.
fn message_of(e: &anyhow::Error) -> String {
    let mut message = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if message.ends_with(&text) {
            continue;
        }
        if !message.is_empty() {
            message.push_str(": ");
        }
        message.push_str(&text);
    }
    message
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            use clap::error::ErrorKind;
            if matches!(
                e.kind(),
                ErrorKind::DisplayHelp
                    | ErrorKind::DisplayVersion
                    | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
            ) {
                e.exit();
            }
            let rendered = e.render().to_string();
            let text = rendered.strip_prefix("error: ").unwrap_or(&rendered);
            eprint!("error [cli.usage]: {text}");
            return ExitCode::from(2);
        }
    };
    // The demo's own server logs disconnections a newcomer need not read.
    let default_filter = match cli.command {
        Command::Serve { .. } => "info",
        Command::Demo { .. } => "error",
        _ => "warn",
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_filter)),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let lang = cli.lang.unwrap_or_else(Lang::from_locale);
    match run(cli, lang) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!(
                "{} [{}]: {}",
                say(lang, "error", "错误"),
                code_of(&e),
                message_of(&e)
            );
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli, lang: Lang) -> anyhow::Result<()> {
    let data_dir = cli.data_dir;
    match cli.command {
        Command::Init {
            listen,
            public_addr,
            database,
        } => init(&data_dir, lang, listen, public_addr, database),
        Command::Serve {
            config,
            listen,
            public_addr,
            max_connections,
            max_loaded_docs,
            idle_unload_secs,
        } => {
            let flags = Settings {
                listen,
                public_addr,
                max_connections,
                max_loaded_docs,
                idle_unload_secs,
            };
            serve(data_dir, lang, config, flags)
        }
        Command::Branch { command } => {
            let admin = open_admin(&data_dir, lang)?;
            match command {
                BranchCommand::Add {
                    name,
                    level,
                    parent,
                } => {
                    let branch = admin.add_branch(&name, level, parent)?;
                    println!("{branch}");
                    let name = name.trim();
                    eprintln!(
                        "{}",
                        say(
                            lang,
                            &format!("branch {name:?} added"),
                            &format!("已添加组织“{name}”")
                        )
                    );
                }
                BranchCommand::List => {
                    for b in admin.branches()? {
                        let parent = b
                            .parent
                            .map(|p| p.to_string())
                            .unwrap_or_else(|| "-".into());
                        println!("{}\t{}\t{}\t{}", b.branch, b.level, parent, b.name);
                    }
                }
            }
            Ok(())
        }
        Command::Alliance { command } => {
            let admin = open_admin(&data_dir, lang)?;
            match command {
                AllianceCommand::Add { name, branches } => {
                    let id = admin.add_alliance(&name, &branches)?;
                    println!("{id}");
                    let name = name.trim();
                    eprintln!(
                        "{}",
                        say(
                            lang,
                            &format!("alliance {name:?} of {} branches recorded", branches.len()),
                            &format!("已记录党建联盟“{name}”（{} 个组织）", branches.len()),
                        )
                    );
                }
                AllianceCommand::List => {
                    for a in admin.alliances(None)? {
                        let branches: Vec<String> =
                            a.branches.iter().map(ToString::to_string).collect();
                        println!("{}\t{}\t{}", a.id, a.name, branches.join(","));
                    }
                }
            }
            Ok(())
        }
        Command::Invite {
            branch,
            role,
            member,
            valid_for_hours,
            qr,
        } => {
            let admin = open_admin(&data_dir, lang)?;
            let hours = valid_for_hours.clamp(1, 24 * 365);
            let link = admin
                .create_invite(branch, role, member, Duration::from_secs(hours * 3600))
                .with_context(|| format!("inviting a {role} into branch {branch}"))?;
            let link = link.to_string();
            let mut out = std::io::stdout().lock();
            writeln!(out, "{link}")?;
            if qr {
                write!(out, "{}", qr_code(&link)?)?;
            }
            out.flush()?;
            eprintln!(
                "{}",
                say(
                    lang,
                    &format!("one-time invite for a {role}, valid for {hours} h"),
                    &format!("一次性邀请（{role}），{hours} 小时内有效"),
                )
            );
            Ok(())
        }
        Command::SubmissionCode { branch, rotate, qr } => {
            let admin = open_admin(&data_dir, lang)?;
            let link = admin
                .submission_link(branch, rotate)
                .with_context(|| format!("the submission code of branch {branch}"))?
                .to_string();
            let mut out = std::io::stdout().lock();
            writeln!(out, "{link}")?;
            if qr {
                write!(out, "{}", qr_code(&link)?)?;
            }
            out.flush()?;
            let (en, zh) = if rotate {
                (
                    "new public submission code; the old one no longer works",
                    "已更换公开提交码，旧码失效",
                )
            } else {
                (
                    "public submission code: residents scan it to send requests",
                    "公开提交码：群众扫码即可提交诉求",
                )
            };
            eprintln!("{}", say(lang, en, zh));
            Ok(())
        }
        Command::Devices {
            command: DevicesCommand::Revoke { device },
        }
        | Command::Revoke { device } => {
            open_admin(&data_dir, lang)?.revoke_device(device)?;
            eprintln!(
                "{}",
                say(
                    lang,
                    &format!("device {device} revoked"),
                    &format!("设备 {device} 已吊销")
                )
            );
            Ok(())
        }
        Command::Devices {
            command: DevicesCommand::List { branch },
        } => {
            let admin = open_admin(&data_dir, lang)?;
            let devices = admin.devices(branch)?;
            let names = admin.member_names()?;
            let mut out = std::io::stdout().lock();
            let header = match lang {
                Lang::En => [
                    "device",
                    "branch",
                    "role",
                    "member",
                    "member name",
                    "status",
                    "device name",
                ],
                Lang::Zh => [
                    "设备",
                    "组织",
                    "角色",
                    "党员编号",
                    "党员姓名",
                    "状态",
                    "设备名称",
                ],
            };
            writeln!(out, "{}", header.join("\t"))?;
            for d in &devices {
                let (member, name) = match d.member {
                    Some(m) => (
                        m.to_string(),
                        names.get(&m).cloned().unwrap_or_else(|| "-".into()),
                    ),
                    None => ("-".into(), "-".into()),
                };
                let status = match d.revoked_at_ms {
                    Some(_) => say(lang, "revoked", "已吊销"),
                    None => say(lang, "active", "有效"),
                };
                writeln!(
                    out,
                    "{}\t{}\t{}\t{member}\t{name}\t{status}\t{}",
                    d.device_id, d.branch, d.role, d.name
                )?;
            }
            out.flush()?;
            if devices.is_empty() {
                eprintln!(
                    "{}",
                    say(lang, "no device has enrolled yet", "还没有设备登记")
                );
            }
            Ok(())
        }
        Command::Export {
            branch,
            out,
            format,
            bom,
            from,
            to,
        } => {
            let request = ExportRequest {
                branch,
                out,
                format,
                bom,
                from: date_arg("--from", from)?,
                to: date_arg("--to", to)?,
                today: Date(chrono::Utc::now().date_naive()),
                lang,
            };
            let admin = open_admin(&data_dir, lang)?;
            let summary = export::export(&admin, &request)?;
            for file in &summary.files {
                println!("{}", file.display());
            }
            let shared = summary.shared_activities;
            eprintln!(
                "{}",
                say(
                    lang,
                    &format!(
                        "exported {:?}: {} members, {} activities ({shared} shared by partner \
                         branches), {} attendance rows, {} petitions, {} dues payments, {} \
                         applicants",
                        summary.branch_name,
                        summary.members,
                        summary.activities,
                        summary.attendance_rows,
                        summary.petitions,
                        summary.payments,
                        summary.applicants
                    ),
                    &format!(
                        "已导出“{}”：党员 {} 人，活动 {} 次（其中结对组织共享 {shared} 次），\
                         考勤 {} 行，问题 {} 件，党费缴纳 {} 笔，入党申请人 {} 名",
                        summary.branch_name,
                        summary.members,
                        summary.activities,
                        summary.attendance_rows,
                        summary.petitions,
                        summary.payments,
                        summary.applicants
                    ),
                )
            );
            for alliance in &summary.alliances {
                eprintln!(
                    "{}",
                    say(
                        lang,
                        &format!(
                            "alliance {:?} with {} branches",
                            alliance.name,
                            alliance.branches.len()
                        ),
                        &format!(
                            "党建联盟“{}”，{} 个组织",
                            alliance.name,
                            alliance.branches.len()
                        ),
                    )
                );
            }
            if summary.skipped > 0 {
                eprintln!(
                    "{}",
                    say(
                        lang,
                        &format!(
                            "{} documents written by a newer version were left out",
                            summary.skipped
                        ),
                        &format!("{} 份由更新版本写入的文档未导出", summary.skipped),
                    )
                );
            }
            Ok(())
        }
        Command::Audit { limit, json } => audit(&open_admin(&data_dir, lang)?, limit, json),
        Command::Demo { keep } => demo::run(lang, keep),
    }
}

/// Opens the data directory for administration; it must have been set up
/// (by `init` or a server run), so a mistyped `--data-dir` is an error
/// rather than a new empty server.
fn open_admin(data_dir: &Path, lang: Lang) -> anyhow::Result<Admin> {
    require_initialized(data_dir, lang)?;
    Ok(Admin::open(data_dir)?)
}

/// The server's database in a data directory: the SQLite file, or the file
/// naming its PostgreSQL database when there is one.
fn database_of(data_dir: &Path) -> PathBuf {
    let named = data_dir.join(DATABASE_URL_FILE);
    if named.exists() {
        named
    } else {
        data_dir.join("server.sqlite3")
    }
}

/// The file `init --database` writes, naming the PostgreSQL database.
const DATABASE_URL_FILE: &str = "database.url";

/// Refuses a data directory without a server database
/// (`admin.not_initialized`): opening it would create an empty database,
/// a server that knows no branch and no device.
fn require_initialized(data_dir: &Path, lang: Lang) -> anyhow::Result<()> {
    let db = database_of(data_dir);
    if db.exists() {
        return Ok(());
    }
    let dir = data_dir.display();
    let leftovers = [data_dir.join(settings::FILE_NAME), data_dir.join("tls")]
        .into_iter()
        .any(|p| p.exists());
    let message = if leftovers {
        // `init` refuses a directory with settings or keys in it, so it
        // cannot be the advice for this one.
        say(
            lang,
            &format!(
                "{dir} has settings but no database ({} is missing): restore it from a backup; \
                 a server started without it would know no device and every phone would have to \
                 enroll again. To set up a new server instead, run \
                 `branchline-server --data-dir NEW_DIR init`",
                db.display()
            ),
            &format!(
                "{dir} 有设置但没有数据库（缺少 {}）：请从备份恢复；没有它启动的服务器不认识任何设备，\
                 每部手机都得重新登记。若要新建服务器，请运行 \
                 `branchline-server --data-dir 新目录 init`",
                db.display()
            ),
        )
    } else {
        say(
            lang,
            &format!(
                "{dir} holds no Branchline server; run `branchline-server --data-dir {dir} init` \
                 first"
            ),
            &format!(
                "{dir} 中没有 Branchline 服务器；请先运行 `branchline-server --data-dir {dir} init`"
            ),
        )
    };
    Err(Failure::new("admin.not_initialized", message).into())
}

/// `audit`: the newest entries, members named by their roster name where
/// the server knows it.
fn audit(admin: &Admin, limit: usize, json: bool) -> anyhow::Result<()> {
    let entries = admin.audit(limit)?;
    let names = admin.member_names()?;
    let devices: std::collections::HashMap<DeviceId, String> = admin
        .devices(None)?
        .into_iter()
        .map(|d| (d.device_id, d.name))
        .collect();
    let mut out = std::io::stdout().lock();
    if json {
        let rows: Vec<serde_json::Value> = entries
            .iter()
            .map(|e| {
                serde_json::json!({
                    "id": e.id,
                    "at_ms": e.at_ms,
                    "at": rfc3339(e.at_ms),
                    "event": e.event,
                    "device": e.device.map(|d| d.to_string()),
                    "device_name": e.device.and_then(|d| devices.get(&d)),
                    "member": e.member.map(|m| m.to_string()),
                    "member_name": e.member.and_then(|m| names.get(&m)),
                    "branch": e.branch.map(|b| b.to_string()),
                    "doc": e.doc.map(|d| d.to_string()),
                    "change": e.change_hash.map(|h| hex(&h)),
                    "actor": e.actor.as_deref().map(hex),
                    "code": e.code,
                    "detail": e.detail,
                })
            })
            .collect();
        serde_json::to_writer_pretty(&mut out, &rows)?;
        writeln!(out)?;
    } else {
        let opt = |v: Option<String>| v.unwrap_or_else(|| "-".into());
        for e in &entries {
            let member = e
                .member
                .map(|m| names.get(&m).cloned().unwrap_or_else(|| m.to_string()));
            writeln!(
                out,
                "{}\t{}\t{}\tdevice={}\tmember={}\tdoc={}\tchange={}\tcode={}\t{}",
                e.id,
                rfc3339(e.at_ms),
                e.event,
                opt(e.device.map(|d| d.to_string())),
                opt(member),
                opt(e.doc.map(|d| d.to_string())),
                opt(e.change_hash.map(|h| hex(&h))),
                opt(e.code.clone()),
                e.detail
            )?;
        }
    }
    out.flush()?;
    Ok(())
}

/// A time in milliseconds since the epoch, as RFC 3339 (UTC).
fn rfc3339(at_ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(at_ms)
        .map_or_else(|| at_ms.to_string(), |t| t.to_rfc3339())
}

/// The link as a QR code for the terminal.
fn qr_code(link: &str) -> anyhow::Result<String> {
    branchline_core::qr::terminal(link)
        .map_err(|e| Failure::new("invite.qr", format!("cannot draw a QR code: {e}")).into())
}

fn init(
    data_dir: &Path,
    lang: Lang,
    listen: SocketAddr,
    public_addr: Option<String>,
    database: Option<String>,
) -> anyhow::Result<()> {
    let public_addr = public_addr
        .map(|addr| settings::check_public_addr(&addr))
        .transpose()?;
    if let Some(url) = &database
        && !(url.starts_with("postgres://") || url.starts_with("postgresql://"))
    {
        return Err(Failure::new(
            "init.bad_database",
            say(
                lang,
                &format!("--database takes a postgres:// URL, not {url:?}"),
                &format!("--database 需要 postgres:// 形式的地址，而不是 {url:?}"),
            ),
        )
        .into());
    }
    let config_path = data_dir.join(settings::FILE_NAME);
    let found = [
        config_path.clone(),
        database_of(data_dir),
        data_dir.join("tls"),
    ]
    .into_iter()
    .find(|p| p.exists());
    if let Some(found) = found {
        return Err(Failure::new(
            "init.already_initialized",
            say(
                lang,
                &format!(
                    "{} is already set up ({} exists); init never overwrites settings or keys",
                    data_dir.display(),
                    found.display()
                ),
                &format!(
                    "{} 已经初始化（{} 已存在）；init 不会覆盖设置或密钥",
                    data_dir.display(),
                    found.display()
                ),
            ),
        )
        .into());
    }
    std::fs::create_dir_all(data_dir)
        .with_context(|| format!("creating {}", data_dir.display()))?;
    // The settings file is written beside the database in a temporary
    // file and moved into place last, so a failed init leaves no settings
    // describing a server that does not exist.
    let mut staged = tempfile::Builder::new()
        .prefix(".branchline-server.toml-")
        .tempfile_in(data_dir)?;
    staged.write_all(settings::template(listen, public_addr.as_deref()).as_bytes())?;
    staged.as_file().sync_all()?;
    if let Some(url) = &database {
        write_private(&data_dir.join(DATABASE_URL_FILE), url)?;
    }
    let admin = match Admin::open(data_dir) {
        Ok(admin) => admin,
        Err(e) => {
            // Nothing is set up: leave no file that says otherwise.
            let _ = std::fs::remove_file(data_dir.join(DATABASE_URL_FILE));
            return Err(e.into());
        }
    };
    let fingerprint = admin.certificate_fingerprint()?;
    let public = public_addr.unwrap_or_else(|| settings::derived_public_addr(listen));
    admin.set_public_addr(&public)?;
    staged
        .persist_noclobber(&config_path)
        .map_err(|e| e.error)
        .with_context(|| format!("writing {}", config_path.display()))?;
    let shown = std::path::absolute(data_dir).unwrap_or_else(|_| data_dir.to_owned());
    let mut out = std::io::stdout().lock();
    writeln!(out, "data-dir {}", shown.display())?;
    writeln!(out, "config {}", shown.join(settings::FILE_NAME).display())?;
    writeln!(out, "listen {listen}")?;
    writeln!(out, "public {public}")?;
    writeln!(out, "fingerprint {}", hex(&fingerprint))?;
    out.flush()?;
    eprintln!(
        "{}",
        say(
            lang,
            "ready: start it with `serve`, then `branch add` and `invite` (same --data-dir)",
            "已就绪：用 `serve` 启动服务器，再用 `branch add` 和 `invite`（使用同一个 --data-dir）",
        )
    );
    Ok(())
}

/// Writes `text` to a new file only its owner can read (a database URL may
/// hold a password).
fn write_private(path: &Path, text: &str) -> anyhow::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options
        .open(path)
        .with_context(|| format!("writing {}", path.display()))?;
    writeln!(file, "{text}")?;
    file.sync_all()?;
    Ok(())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn serve(
    data_dir: PathBuf,
    lang: Lang,
    config: Option<PathBuf>,
    flags: Settings,
) -> anyhow::Result<()> {
    require_initialized(&data_dir, lang)?;
    let file = match config {
        Some(path) => settings::load(&path)?,
        None => {
            let path = data_dir.join(settings::FILE_NAME);
            if path.exists() {
                settings::load(&path)?
            } else {
                Settings::default()
            }
        }
    };
    let config = file.overridden_by(flags).server_config(data_dir)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let server = Server::start(config).await?;
        let mut out = std::io::stdout().lock();
        writeln!(out, "listening {}", server.local_addr())?;
        writeln!(out, "public {}", server.public_addr())?;
        writeln!(out, "fingerprint {}", hex(&server.cert_sha256()))?;
        out.flush()?;
        drop(out);
        eprintln!(
            "{}",
            say(
                lang,
                "server running; Ctrl-C stops it",
                "服务器正在运行；按 Ctrl-C 停止"
            )
        );
        wait_for_signal().await?;
        eprintln!("{}", say(lang, "stopping…", "正在停止…"));
        server.shutdown().await?;
        eprintln!("{}", say(lang, "stopped", "已停止"));
        Ok(())
    })
}

async fn wait_for_signal() -> anyhow::Result<()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut terminate = signal(SignalKind::terminate())?;
        let mut interrupt = signal(SignalKind::interrupt())?;
        tokio::select! {
            _ = terminate.recv() => {}
            _ = interrupt.recv() => {}
        }
    }
    #[cfg(not(unix))]
    tokio::signal::ctrl_c().await?;
    Ok(())
}
