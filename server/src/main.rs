//! `branchline-server`: run the Branchline server, and administer it.
//!
//! ```text
//! branchline-server [--data-dir DIR] [--lang en|zh] serve [--listen 0.0.0.0:4433] [--public-addr host:port]
//! branchline-server branch add --name NAME [--level branch|general-branch|committee] [--parent ID]
//! branchline-server branch list
//! branchline-server invite --branch ID --role secretary|committee|member|resident [--member ID] [--valid-for-hours 72]
//! branchline-server revoke DEVICE_ID
//! branchline-server devices [--branch ID]
//! branchline-server audit [--limit 50]
//! ```
//!
//! Output meant for people is English or Chinese (`--lang zh`); errors start
//! with a stable code in brackets, e.g. `error [admin.unknown_branch]: …`.
//! Logs go to stderr, filtered by `RUST_LOG` (default `info`).

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use branchline_core::model::Level;
use branchline_core::{BranchId, MemberId};
use branchline_protocol::{DeviceId, Role};
use branchline_server::{Admin, Server, ServerConfig, parse_role};
use clap::{Parser, Subcommand, ValueEnum};

#[derive(Parser, Debug)]
#[command(
    name = "branchline-server",
    version,
    about = "The Branchline sync server and its administration"
)]
struct Cli {
    /// Where the database, certificate and key live.
    #[arg(long, global = true, default_value = "./branchline-data")]
    data_dir: PathBuf,
    /// Language of messages for people.
    #[arg(long, global = true, value_enum, default_value_t = Lang::En)]
    lang: Lang,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Lang {
    /// English.
    En,
    /// 中文.
    Zh,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the server until SIGINT or SIGTERM.
    Serve {
        /// UDP address to listen on.
        #[arg(long, default_value = "0.0.0.0:4433")]
        listen: SocketAddr,
        /// The host:port devices reach this server at (written into invites).
        #[arg(long)]
        public_addr: Option<String>,
        /// Refuse connections beyond this many.
        #[arg(long, default_value_t = 1000)]
        max_connections: usize,
    },
    /// Manage branches.
    Branch {
        #[command(subcommand)]
        command: BranchCommand,
    },
    /// Create a one-time invite link for a new device.
    Invite {
        /// The branch the device joins.
        #[arg(long)]
        branch: BranchId,
        /// The role it gets: secretary, committee, member or resident.
        #[arg(long, value_parser = role_arg)]
        role: Role,
        /// The member the device belongs to.
        #[arg(long)]
        member: Option<MemberId>,
        /// How long the invite stays valid.
        #[arg(long, default_value_t = 72)]
        valid_for_hours: u64,
    },
    /// Revoke a device: its connections close and it is refused from now on.
    Revoke {
        /// The device to revoke.
        device: DeviceId,
    },
    /// List enrolled devices.
    Devices {
        /// Only devices of this branch.
        #[arg(long)]
        branch: Option<BranchId>,
    },
    /// Show the newest audit log entries.
    Audit {
        /// How many entries.
        #[arg(long, default_value_t = 50)]
        limit: usize,
    },
}

#[derive(Subcommand, Debug)]
enum BranchCommand {
    /// Add a branch (an organization is a committee with no parent).
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
    /// List branches.
    List,
}

fn role_arg(text: &str) -> Result<Role, String> {
    parse_role(text).ok_or_else(|| "expected secretary, committee, member or resident".into())
}

fn level_arg(text: &str) -> Result<Level, String> {
    text.replace('-', "_")
        .parse()
        .map_err(|_| "expected branch, general-branch or committee".into())
}

/// A message for people in both languages.
fn say(lang: Lang, en: &str, zh: &str) -> String {
    match lang {
        Lang::En => en.to_owned(),
        Lang::Zh => zh.to_owned(),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let lang = cli.lang;
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let code = e
                .downcast_ref::<branchline_server::Error>()
                .map_or("cli.error", branchline_server::Error::code);
            eprintln!("{} [{code}]: {e:#}", say(lang, "error", "错误"));
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let lang = cli.lang;
    match cli.command {
        Command::Serve {
            listen,
            public_addr,
            max_connections,
        } => serve(cli.data_dir, lang, listen, public_addr, max_connections),
        Command::Branch { command } => {
            let admin = Admin::open(&cli.data_dir)?;
            match command {
                BranchCommand::Add {
                    name,
                    level,
                    parent,
                } => {
                    let branch = admin.add_branch(&name, level, parent)?;
                    println!("{branch}");
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
        Command::Invite {
            branch,
            role,
            member,
            valid_for_hours,
        } => {
            let admin = Admin::open(&cli.data_dir)?;
            let hours = valid_for_hours.clamp(1, 24 * 365);
            let link =
                admin.create_invite(branch, role, member, Duration::from_secs(hours * 3600))?;
            println!("{link}");
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
        Command::Revoke { device } => {
            Admin::open(&cli.data_dir)?.revoke_device(device)?;
            println!(
                "{}",
                say(
                    lang,
                    &format!("device {device} revoked"),
                    &format!("设备 {device} 已吊销")
                )
            );
            Ok(())
        }
        Command::Devices { branch } => {
            for d in Admin::open(&cli.data_dir)?.devices(branch)? {
                let member = d
                    .member
                    .map(|m| m.to_string())
                    .unwrap_or_else(|| "-".into());
                let status = match d.revoked_at_ms {
                    Some(_) => say(lang, "revoked", "已吊销"),
                    None => say(lang, "active", "有效"),
                };
                println!(
                    "{}\t{}\t{}\t{}\t{}\t{}",
                    d.device_id, d.branch, d.role, member, status, d.name
                );
            }
            Ok(())
        }
        Command::Audit { limit } => {
            for entry in Admin::open(&cli.data_dir)?.audit(limit)? {
                let opt = |v: Option<String>| v.unwrap_or_else(|| "-".into());
                println!(
                    "{}\t{}\t{}\tdevice={}\tdoc={}\tcode={}\t{}",
                    entry.id,
                    entry.at_ms,
                    entry.event,
                    opt(entry.device.map(|d| d.to_string())),
                    opt(entry.doc.map(|d| d.to_string())),
                    opt(entry.code),
                    entry.detail
                );
            }
            Ok(())
        }
    }
}

fn serve(
    data_dir: PathBuf,
    lang: Lang,
    listen: SocketAddr,
    public_addr: Option<String>,
    max_connections: usize,
) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let mut config = ServerConfig::new(data_dir, listen);
        config.public_addr = public_addr;
        config.max_connections = max_connections;
        let server = Server::start(config).await?;
        let fingerprint: String = server
            .cert_sha256()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let mut out = std::io::stdout().lock();
        writeln!(out, "listening {}", server.local_addr())?;
        writeln!(out, "public {}", server.public_addr())?;
        writeln!(out, "fingerprint {fingerprint}")?;
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
