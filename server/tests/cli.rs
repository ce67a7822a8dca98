//! The `branchline-server` binary as an administrator uses it: init, branch,
//! alliance, invite, devices, export, audit, serve's settings file and its
//! refusal of a directory without a database, the language from the locale,
//! the demo's data, and the errors a mistyped command gets.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, ensure};
use branchline_core::model::{self, Activity, MemberStatus, NewActivity, SignInMode, Timestamp};
use branchline_core::workload::{WorkloadSpec, generate};
use branchline_server::Admin;
use calamine::{Data, Reader as _, Xlsx, open_workbook};

/// The locale variables the language is read from.
const LOCALE_VARS: [&str; 4] = ["LANGUAGE", "LC_ALL", "LC_MESSAGES", "LANG"];

/// The binary on `data_dir`, in an English locale unless `locale` says
/// otherwise.
fn command(data_dir: &Path, args: &[&str], locale: &[(&str, &str)]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_branchline-server"));
    command
        .arg("--data-dir")
        .arg(data_dir)
        .args(args)
        .env_remove("RUST_LOG")
        .stdin(Stdio::null());
    for var in LOCALE_VARS {
        command.env_remove(var);
    }
    if locale.is_empty() {
        command.env("LANG", "C.UTF-8");
    }
    command.envs(locale.iter().copied());
    command
}

/// Runs the binary with `args` on `data_dir`.
fn run(data_dir: &Path, args: &[&str]) -> Result<Output> {
    Ok(command(data_dir, args, &[]).output()?)
}

/// Runs and expects success; returns stdout.
fn ok(data_dir: &Path, args: &[&str]) -> Result<String> {
    let out = run(data_dir, args)?;
    ensure!(
        out.status.success(),
        "{args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8(out.stdout)?)
}

/// Runs and expects failure with `code`; returns stderr.
fn fails(data_dir: &Path, args: &[&str], code: &str) -> Result<String> {
    let out = run(data_dir, args)?;
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    ensure!(!out.status.success(), "{args:?} succeeded: {stderr}");
    ensure!(
        stderr.contains(&format!("[{code}]")),
        "{args:?}: expected [{code}], got: {stderr}"
    );
    Ok(stderr)
}

/// `key value` lines as printed by init.
fn field<'a>(stdout: &'a str, key: &str) -> Option<&'a str> {
    stdout
        .lines()
        .find_map(|line| line.strip_prefix(key)?.strip_prefix(' '))
}

fn files_in(dir: &Path) -> Result<Vec<String>> {
    if !dir.exists() {
        return Ok(Vec::new());
    }
    let mut names: Vec<String> = std::fs::read_dir(dir)?
        .map(|e| Ok(e?.file_name().to_string_lossy().into_owned()))
        .collect::<Result<_>>()?;
    names.sort();
    Ok(names)
}

fn csv_rows(path: &Path) -> Result<Vec<Vec<String>>> {
    let bytes = std::fs::read(path)?;
    let text = std::str::from_utf8(&bytes).context("CSV must be UTF-8")?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .from_reader(text.as_bytes());
    reader
        .records()
        .map(|r| Ok(r?.iter().map(str::to_owned).collect()))
        .collect()
}

#[test]
fn an_administrator_sets_up_a_server_and_exports_a_branch() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("data");

    // Nothing works on a directory that was never set up.
    fails(&data, &["branch", "list"], "admin.not_initialized")?;
    ensure!(
        !data.exists(),
        "a failed command created the data directory"
    );

    let init = ok(
        &data,
        &[
            "init",
            "--listen",
            "127.0.0.1:4455",
            "--public-addr",
            "branch.example.org:4455",
        ],
    )?;
    assert_eq!(field(&init, "listen"), Some("127.0.0.1:4455"));
    assert_eq!(field(&init, "public"), Some("branch.example.org:4455"));
    let fingerprint = field(&init, "fingerprint")
        .context("fingerprint")?
        .to_owned();
    assert_eq!(fingerprint.len(), 64);
    assert!(field(&init, "data-dir").is_some());
    let config = PathBuf::from(field(&init, "config").context("config")?);
    let settings = std::fs::read_to_string(&config)?;
    assert!(settings.contains("max_connections = 1000"), "{settings}");
    assert!(settings.contains("public_addr = \"branch.example.org:4455\""));
    // Init never runs twice: keys and settings stay.
    fails(&data, &["init"], "init.already_initialized")?;
    assert_eq!(std::fs::read_to_string(&config)?, settings);

    // Branches and an alliance.
    let a = ok(&data, &["branch", "add", "--name", "幸福里社区第二党支部"])?;
    let a = a.trim().to_owned();
    assert!(a.parse::<branchline_core::BranchId>().is_ok(), "{a}");
    let b = ok(&data, &["branch", "add", "--name", "河畔小区党支部"])?;
    let b = b.trim().to_owned();
    let list = ok(&data, &["branch", "list"])?;
    assert!(
        list.contains(&a) && list.contains("河畔小区党支部"),
        "{list}"
    );
    let alliance = ok(
        &data,
        &[
            "alliance",
            "add",
            "--name",
            "河畔党建联盟",
            "--branch",
            &a,
            "--branch",
            &b,
        ],
    )?;
    let alliance = alliance.trim().to_owned();
    assert!(alliance.parse::<uuid::Uuid>().is_ok(), "{alliance}");
    let alliances = ok(&data, &["alliance", "list"])?;
    assert!(
        alliances.contains(&format!("{alliance}\t河畔党建联盟\t{a},{b}")),
        "{alliances}"
    );
    fails(
        &data,
        &[
            "alliance", "add", "--name", "x", "--branch", &a, "--branch", &a,
        ],
        "input.invalid",
    )?;
    let unknown = uuid::Uuid::new_v4().to_string();
    fails(
        &data,
        &[
            "alliance", "add", "--name", "x", "--branch", &a, "--branch", &unknown,
        ],
        "admin.unknown_branch",
    )?;
    assert_eq!(ok(&data, &["alliance", "list"])?, alliances);

    // Invites: the link alone on the first line, then the QR code.
    let invite = ok(&data, &["invite", "--branch", &a, "--role", "secretary"])?;
    let link = invite.trim_end();
    assert_eq!(invite.lines().count(), 1);
    assert!(link.contains("branch.example.org:4455"), "{link}");
    assert!(link.ends_with(&format!("?cert={fingerprint}")), "{link}");
    assert!(link.parse::<branchline_protocol::InviteLink>().is_ok());
    let with_qr = ok(
        &data,
        &["invite", "--branch", &a, "--role", "resident", "--qr"],
    )?;
    let mut lines = with_qr.lines();
    assert!(
        lines
            .next()
            .is_some_and(|l| l.parse::<branchline_protocol::InviteLink>().is_ok())
    );
    let qr: Vec<&str> = lines.collect();
    assert!(qr.len() > 10, "{with_qr}");
    assert!(qr.iter().any(|l| l.contains('█') || l.contains('▀')));
    fails(
        &data,
        &["invite", "--branch", &unknown, "--role", "member"],
        "admin.unknown_branch",
    )?;
    let stranger = uuid::Uuid::new_v4().to_string();
    fails(
        &data,
        &[
            "invite", "--branch", &a, "--role", "member", "--member", &stranger,
        ],
        "member.unknown",
    )?;
    fails(
        &data,
        &["invite", "--branch", &a, "--role", "boss"],
        "cli.usage",
    )?;

    // No device yet: the header alone.
    assert_eq!(
        ok(&data, &["devices", "list"])?,
        "device\tbranch\trole\tmember\tmember name\tstatus\tdevice name\n"
    );

    // A generated branch gives the export something to export.
    let spec = WorkloadSpec {
        members: 8,
        years: 1,
        activities_per_month: 1,
        petitions: 6,
        ..WorkloadSpec::default()
    };
    let generated = generate(&spec)?;
    Admin::open(&data)?.import_documents(generated.documents.iter().map(|d| d.bytes.as_slice()))?;
    let g = generated.branch.to_string();
    // A partner branch shares a joint activity with it; a member signs in.
    let first_member = generated
        .roster
        .members
        .values()
        .find(|m| m.category.is_member() && m.status == MemberStatus::Active)
        .context("an active member")?;
    let mut joint = Activity::new(
        a.parse()?,
        NewActivity {
            kind: "joint".into(),
            title: "联建共建：清理河道".into(),
            starts_at: "2024-06-15T09:00".parse().ok(),
            ends_at: "2024-06-15T11:00".parse().ok(),
            ..Default::default()
        },
    )?;
    joint.share_with(generated.branch)?;
    joint.sign_in(
        first_member.id,
        Timestamp(1_718_413_200_000),
        SignInMode::Remote,
    )?;
    let joint_doc = model::create_document(&joint, automerge::ActorId::random())?.save();
    Admin::open(&data)?.import_documents([joint_doc.as_slice()])?;
    // Invites for roster members are checked against the stored roster.
    let first = generated
        .roster
        .members
        .values()
        .next()
        .context("a member")?;
    ok(
        &data,
        &[
            "invite",
            "--branch",
            &g,
            "--role",
            "member",
            "--member",
            &first.id.to_string(),
        ],
    )?;

    let out = dir.path().join("export");
    let written = ok(
        &data,
        &[
            "export",
            "--branch",
            &g,
            "--out",
            out.to_str().context("utf-8")?,
        ],
    )?;
    let written: Vec<&str> = written.lines().collect();
    assert_eq!(written.len(), 10, "{written:?}");
    assert_eq!(
        files_in(&out)?,
        [
            "applicants.csv",
            "attendance.csv",
            "branchline-export.xlsx",
            "dues.csv",
            "dues_spending.csv",
            "library.csv",
            "petitions.csv",
            "points.csv",
            "roster.csv",
            "thought_reports.csv",
        ]
    );
    let roster_bytes = std::fs::read(out.join("roster.csv"))?;
    assert!(
        !roster_bytes.starts_with(b"\xEF\xBB\xBF"),
        "no BOM unless asked"
    );
    let roster = csv_rows(&out.join("roster.csv"))?;
    assert_eq!(roster[0][..3], ["Member ID", "Name", "Gender"]);
    assert_eq!(roster.len(), 1 + generated.roster.members.len());
    let row = roster
        .iter()
        .find(|r| r[0] == first.id.to_string())
        .context("the member's row")?;
    assert_eq!(row[1], first.name);
    if let Some(joined) = first.joined {
        assert_eq!(row[4], joined.to_string());
    }
    let attendance = csv_rows(&out.join("attendance.csv"))?;
    assert_eq!(attendance[0][0], "Date");
    assert!(
        attendance.len() > generated.activities.len(),
        "one row per activity × member"
    );
    let states: Vec<&str> = attendance[1..].iter().map(|r| r[8].as_str()).collect();
    assert!(states.contains(&"signed in"), "{states:?}");
    let joint_rows: Vec<&Vec<String>> = attendance
        .iter()
        .filter(|r| r[3] == "联建共建：清理河道")
        .collect();
    assert!(
        !joint_rows.is_empty(),
        "the partner's shared activity is in"
    );
    assert!(
        joint_rows
            .iter()
            .all(|r| r[4] == "幸福里社区第二党支部" && r[2] == "联建共建活动")
    );
    assert!(
        joint_rows
            .iter()
            .any(|r| r[6] == first_member.name && r[8] == "signed in" && r[9] == "remote")
    );
    let petitions = csv_rows(&out.join("petitions.csv"))?;
    assert_eq!(petitions.len(), 1 + spec.petitions);
    assert_eq!(petitions[0][5], "Owner");

    // The workbook reads back: three sheets, bold headers, real dates.
    let mut workbook: Xlsx<_> = open_workbook(out.join("branchline-export.xlsx"))?;
    assert_eq!(
        workbook.sheet_names(),
        [
            "Roster",
            "Attendance",
            "Petitions",
            "Dues",
            "Dues spending",
            "Points",
            "Thought reports",
            "Applicants",
            "Library"
        ]
    );
    // The branch work: every generated payment, award and applicant, by name.
    let dues = csv_rows(&out.join("dues.csv"))?;
    let payments: usize = generated
        .dues_ledgers
        .iter()
        .map(|l| l.payments.len())
        .sum();
    assert_eq!(dues.len(), 1 + payments);
    assert!(payments > 0);
    let payer = generated.roster.member(
        generated.dues_ledgers[0]
            .payments
            .values()
            .next()
            .context("a payment")?
            .member,
    )?;
    assert!(dues.iter().any(|r| r[2] == payer.name));
    let points = csv_rows(&out.join("points.csv"))?;
    let awards: usize = generated
        .points_books
        .iter()
        .map(|b| b.awards.len())
        .sum::<usize>()
        + generated
            .activities
            .iter()
            .map(|a| a.awards.len())
            .sum::<usize>();
    assert_eq!(points.len(), 1 + awards);
    let applicants = csv_rows(&out.join("applicants.csv"))?;
    assert_eq!(applicants.len(), 1 + generated.applicants.len());
    let library = csv_rows(&out.join("library.csv"))?;
    assert_eq!(library.len(), 1 + generated.library.len());
    assert_eq!(library[0][4], "Problem");
    let sheet = workbook.worksheet_range("Roster")?;
    let header: Vec<String> = sheet
        .rows()
        .next()
        .context("a header")?
        .iter()
        .map(|c| c.to_string())
        .collect();
    assert_eq!(header, roster[0]);
    let xlsx_row = sheet
        .rows()
        .find(|r| r[0].to_string() == first.id.to_string())
        .context("the member in the workbook")?;
    assert_eq!(xlsx_row[1].to_string(), first.name);
    if first.joined.is_some() {
        assert!(
            matches!(xlsx_row[4], Data::DateTime(_)),
            "{:?}",
            xlsx_row[4]
        );
    }
    let sheet = workbook.worksheet_range("Attendance")?;
    assert_eq!(sheet.height(), attendance.len());
    assert!(matches!(
        sheet.rows().nth(1).context("a row")?[0],
        Data::DateTime(_)
    ));
    let sheet = workbook.worksheet_range("Petitions")?;
    assert_eq!(sheet.height(), petitions.len());

    // Chinese headers, CSV only, with a BOM for Excel.
    let zh = dir.path().join("export-zh");
    let written = ok(
        &data,
        &[
            "--lang",
            "zh",
            "export",
            "--branch",
            &g,
            "--out",
            zh.to_str().context("utf-8")?,
            "--format",
            "csv",
            "--bom",
        ],
    )?;
    assert_eq!(written.lines().count(), 9);
    assert_eq!(files_in(&zh)?.len(), 9);
    assert_eq!(csv_rows(&zh.join("dues.csv"))?[0][5], "金额（元）");
    assert!(
        std::fs::read(zh.join("roster.csv"))?.starts_with(b"\xEF\xBB\xBF\xE7\xBC\x96\xE5\x8F\xB7")
    );
    assert_eq!(csv_rows(&zh.join("roster.csv"))?[0][1], "姓名");

    // A date range keeps only the activities in it.
    let q1 = dir.path().join("export-q1");
    ok(
        &data,
        &[
            "export",
            "--branch",
            &g,
            "--out",
            q1.to_str().context("utf-8")?,
            "--format",
            "csv",
            "--from",
            "2024-01-01",
            "--to",
            "2024-03-31",
        ],
    )?;
    let q1_rows = csv_rows(&q1.join("attendance.csv"))?;
    assert!(q1_rows.len() > 1 && q1_rows.len() < attendance.len());
    assert!(q1_rows[1..].iter().all(|r| r[0].as_str() <= "2024-03-31"));

    // Bad input: a clear error and nothing written.
    let bad = dir.path().join("export-bad");
    let bad_out = bad.to_str().context("utf-8")?;
    fails(
        &data,
        &[
            "export",
            "--branch",
            &g,
            "--out",
            bad_out,
            "--from",
            "2024-13-01",
        ],
        "input.invalid",
    )?;
    fails(
        &data,
        &[
            "export",
            "--branch",
            &g,
            "--out",
            bad_out,
            "--from",
            "2024-05-01",
            "--to",
            "2024-04-01",
        ],
        "input.invalid",
    )?;
    fails(
        &data,
        &["export", "--branch", &unknown, "--out", bad_out],
        "admin.unknown_branch",
    )?;
    assert!(files_in(&bad)?.is_empty(), "{:?}", files_in(&bad)?);

    let audit = ok(&data, &["audit", "--limit", "100"])?;
    for event in ["branch.added", "alliance.added", "invite.created"] {
        assert!(audit.contains(event), "{event} missing from {audit}");
    }
    assert_eq!(ok(&data, &["audit", "--limit", "2"])?.lines().count(), 2);
    Ok(())
}

#[test]
fn serve_reads_the_settings_file_and_flags_override_it() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("data");
    ok(
        &data,
        &[
            "init",
            "--listen",
            "127.0.0.1:0",
            "--public-addr",
            "files.example.org:7000",
        ],
    )?;
    // The public address from `init` is in invites before any server ran.
    let branch = ok(&data, &["branch", "add", "--name", "一支部"])?;
    let invite = ok(
        &data,
        &["invite", "--branch", branch.trim(), "--role", "secretary"],
    )?;
    assert!(invite.contains("files.example.org:7000"), "{invite}");

    let mut child = Command::new(env!("CARGO_BIN_EXE_branchline-server"))
        .arg("--data-dir")
        .arg(&data)
        .args(["serve", "--max-connections", "5"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()?;
    let stdout = child.stdout.take().context("stdout")?;
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(stdout));
    let first = lines.next().context("a first line")??;
    let second = lines.next().context("a second line")??;
    child.kill()?;
    child.wait()?;
    assert!(first.starts_with("listening 127.0.0.1:"), "{first}");
    assert_eq!(second, "public files.example.org:7000");

    // A malformed settings file names the file and the line.
    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        "listen = \"127.0.0.1:0\"\nmax_connections = \"many\"\n",
    )?;
    let bad_arg = bad.to_str().context("utf-8")?;
    let stderr = fails(&data, &["serve", "--config", bad_arg], "config.invalid")?;
    assert!(
        stderr.contains("bad.toml") && stderr.contains("line 2"),
        "{stderr}"
    );
    std::fs::write(&bad, "listen = \"127.0.0.1:0\"\nmax_conections = 5\n")?;
    let stderr = fails(&data, &["serve", "--config", bad_arg], "config.invalid")?;
    assert!(stderr.contains("max_conections"), "{stderr}");
    fails(
        &data,
        &["serve", "--config", "/nonexistent/branchline.toml"],
        "config.unreadable",
    )?;
    Ok(())
}

#[test]
fn every_subcommand_has_help() -> Result<()> {
    let dir = tempfile::tempdir()?;
    for args in [
        &["--help"][..],
        &["init", "--help"],
        &["serve", "--help"],
        &["branch", "add", "--help"],
        &["branch", "list", "--help"],
        &["alliance", "add", "--help"],
        &["alliance", "list", "--help"],
        &["invite", "--help"],
        &["devices", "list", "--help"],
        &["devices", "revoke", "--help"],
        &["export", "--help"],
        &["audit", "--help"],
        &["demo", "--help"],
    ] {
        let help = ok(dir.path(), args)?;
        assert!(help.contains("Usage"), "{args:?}: {help}");
    }
    Ok(())
}

#[test]
fn the_demo_converges_and_its_data_can_be_administered() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let kept = dir.path().join("demo");
    let stdout = ok(
        dir.path(),
        &["demo", "--keep", kept.to_str().context("utf-8")?],
    )?;
    assert!(stdout.contains("converged"), "{stdout}");
    assert!(
        stdout.contains("1. Server started on 127.0.0.1:"),
        "{stdout}"
    );
    // Both phones' edits are in the merged result.
    assert!(stdout.contains("Zhang Min") && stdout.contains("Reported to the power company"));

    let server = kept.join("server");
    let devices = ok(&server, &["devices", "list"])?;
    let mut lines = devices.lines();
    let header: Vec<&str> = lines.next().context("a header")?.split('\t').collect();
    assert_eq!(
        header,
        [
            "device",
            "branch",
            "role",
            "member",
            "member name",
            "status",
            "device name"
        ]
    );
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split('\t').collect()).collect();
    assert_eq!(rows.len(), 2, "{devices}");
    assert!(rows.iter().all(|r| r.len() == header.len()), "{devices}");
    let secretary = rows
        .iter()
        .find(|r| r[2] == "secretary")
        .context("the secretary's phone")?;
    let member = rows
        .iter()
        .find(|r| r[2] == "member")
        .context("the member's phone")?;
    assert_eq!(secretary[6], "Li Wei's phone");
    // The member's phone is bound to her roster entry, named from it.
    assert!(
        member[3].parse::<branchline_core::MemberId>().is_ok(),
        "{devices}"
    );
    assert_eq!((member[4], member[6]), ("Wang Fang", "Wang Fang's phone"));

    // The audit log names the member and gives each accepted change's hash,
    // in text and as one JSON value saying the same.
    let audit = ok(&server, &["audit", "--limit", "1000"])?;
    let accepted: Vec<&str> = audit
        .lines()
        .filter(|l| l.contains("\tchange.accepted\t"))
        .collect();
    assert!(!accepted.is_empty(), "{audit}");
    let hash_of = |line: &str| {
        line.split('\t')
            .find_map(|f| f.strip_prefix("change="))
            .map(str::to_owned)
    };
    for line in &accepted {
        let hash = hash_of(line).context("a change= field")?;
        assert!(
            hash.len() == 64 && hash.chars().all(|c| c.is_ascii_hexdigit()),
            "{line}"
        );
    }
    assert!(
        accepted.iter().any(|l| l.contains("\tmember=Wang Fang\t")),
        "Wang Fang's changes name her: {audit}"
    );
    let refused = audit
        .lines()
        .find(|l| l.contains("\trequest.refused\t"))
        .context("the refused edit in the audit log")?;
    assert!(
        refused.contains("\tmember=Wang Fang\t") && refused.contains("\tcode=rule."),
        "{refused}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&ok(&server, &["audit", "--limit", "1000", "--json"])?)?;
    let entries = json.as_array().context("an array")?;
    assert_eq!(entries.len(), audit.lines().count());
    for (entry, line) in entries.iter().zip(audit.lines()) {
        assert_eq!(
            entry["id"].as_i64().map(|id| id.to_string()).as_deref(),
            line.split('\t').next(),
            "newest first, one entry per line"
        );
        assert_eq!(
            entry["change"].as_str().map(str::to_owned),
            hash_of(line).filter(|h| h != "-")
        );
    }
    let named = entries
        .iter()
        .find(|e| e["event"] == "change.accepted" && e["member_name"] == "Wang Fang")
        .context("a change of Wang Fang's in JSON")?;
    assert_eq!(named["member"].as_str(), Some(member[3]));
    assert_eq!(named["device_name"], "Wang Fang's phone");

    // Revoking a device: listed as revoked from then on.
    let member_device = member[0].to_owned();
    ok(&server, &["devices", "revoke", &member_device])?;
    let after = ok(&server, &["devices", "list"])?;
    assert!(
        after
            .lines()
            .any(|l| l.starts_with(&member_device) && l.contains("\trevoked\t")),
        "{after}"
    );
    fails(
        &server,
        &["devices", "revoke", &uuid::Uuid::new_v4().to_string()],
        "admin.unknown_device",
    )?;
    let branch = ok(&server, &["branch", "list"])?;
    let branch = branch.split('\t').next().context("a branch")?.to_owned();
    let out = dir.path().join("export");
    ok(
        &server,
        &[
            "export",
            "--branch",
            &branch,
            "--out",
            out.to_str().context("utf-8")?,
        ],
    )?;
    let attendance = csv_rows(&out.join("attendance.csv"))?;
    let wang = attendance
        .iter()
        .find(|r| r[6] == "Wang Fang")
        .context("Wang Fang's attendance")?;
    assert_eq!(
        (wang[8].as_str(), wang[9].as_str()),
        ("signed in", "remote")
    );
    let petitions = csv_rows(&out.join("petitions.csv"))?;
    assert_eq!(petitions[1][5], "Wang Fang");

    // The demo refuses to overwrite a directory with something in it.
    fails(
        dir.path(),
        &["demo", "--keep", kept.to_str().context("utf-8")?],
        "demo.dir_not_empty",
    )?;

    let zh = ok(dir.path(), &["--lang", "zh", "demo"])?;
    assert!(zh.contains("已收敛"), "{zh}");
    Ok(())
}

/// Runs `serve` and expects it to refuse and exit; a server that starts
/// instead is killed after a while and fails the test. Returns stderr.
fn serve_refuses(data_dir: &Path, args: &[&str], code: &str) -> Result<String> {
    let mut all = vec!["serve", "--listen", "127.0.0.1:0"];
    all.extend_from_slice(args);
    let mut child = command(data_dir, &all, &[])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()?;
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if Instant::now() > deadline {
            child.kill()?;
            child.wait()?;
            anyhow::bail!("serve {args:?} started a server on {}", data_dir.display());
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().context("stderr")?, &mut stderr)?;
    ensure!(!status.success(), "serve {args:?} succeeded: {stderr}");
    ensure!(
        stderr.contains(&format!("error [{code}]")),
        "serve {args:?}: expected [{code}], got: {stderr}"
    );
    Ok(stderr)
}

#[test]
fn serve_refuses_a_data_directory_without_its_database() -> Result<()> {
    let dir = tempfile::tempdir()?;

    // A directory `init` never touched: run init first, and nothing is made.
    let fresh = dir.path().join("typo");
    let stderr = serve_refuses(&fresh, &[], "admin.not_initialized")?;
    assert!(
        stderr.contains(&format!("--data-dir {} init", fresh.display())),
        "{stderr}"
    );
    assert!(!fresh.exists(), "serve created {}", fresh.display());
    // A settings file given elsewhere does not make the directory a server.
    let config = dir.path().join("elsewhere.toml");
    std::fs::write(&config, "listen = \"127.0.0.1:0\"\n")?;
    serve_refuses(
        &fresh,
        &["--config", config.to_str().context("utf-8")?],
        "admin.not_initialized",
    )?;
    assert!(!fresh.exists());

    // A set-up directory whose database is gone (a failed disk, a bad
    // restore): refused, and not replaced by an empty one every phone would
    // have to enroll with again.
    let data = dir.path().join("data");
    ok(&data, &["init", "--listen", "127.0.0.1:0"])?;
    ok(&data, &["branch", "add", "--name", "一支部"])?;
    for name in ["server.sqlite3", "server.sqlite3-wal", "server.sqlite3-shm"] {
        let path = data.join(name);
        if path.exists() {
            std::fs::remove_file(path)?;
        }
    }
    let stderr = serve_refuses(&data, &[], "admin.not_initialized")?;
    assert!(
        stderr.contains("server.sqlite3") && stderr.contains("backup") && stderr.contains("init"),
        "{stderr}"
    );
    assert!(
        !data.join("server.sqlite3").exists(),
        "serve made a new database"
    );
    // The admin commands say the same.
    let stderr = fails(&data, &["devices", "list"], "admin.not_initialized")?;
    assert!(stderr.contains("backup"), "{stderr}");
    assert!(!data.join("server.sqlite3").exists());
    Ok(())
}

#[test]
fn the_language_follows_the_locale_unless_lang_is_given() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let nowhere = dir.path().join("nowhere");
    let refusal = |args: &[&str], locale: &[(&str, &str)]| -> Result<String> {
        let out = command(&nowhere, args, locale).output()?;
        ensure!(!out.status.success());
        Ok(String::from_utf8(out.stderr)?)
    };
    let zh = "错误 [admin.not_initialized]: ";
    let en = "error [admin.not_initialized]: ";
    for (locale, expected) in [
        (&[("LANG", "zh_CN.UTF-8")][..], zh),
        (&[("LANG", "en_US.UTF-8")][..], en),
        (
            &[("LC_MESSAGES", "zh_CN.UTF-8"), ("LANG", "en_US.UTF-8")][..],
            zh,
        ),
        (
            &[("LC_ALL", "en_US.UTF-8"), ("LANG", "zh_CN.UTF-8")][..],
            en,
        ),
        (
            &[("LC_ALL", "zh_TW.UTF-8"), ("LANG", "en_US.UTF-8")][..],
            zh,
        ),
        (&[("LANGUAGE", "zh_CN:en"), ("LANG", "en_US.UTF-8")][..], zh),
    ] {
        let stderr = refusal(&["branch", "list"], locale)?;
        assert!(stderr.starts_with(expected), "{locale:?}: {stderr}");
    }
    let stderr = refusal(&["branch", "list"], &[("LANG", "zh_CN.UTF-8")])?;
    assert!(stderr.contains("请先运行"), "the message too: {stderr}");
    // --lang wins over the locale, either way.
    let stderr = refusal(
        &["--lang", "en", "branch", "list"],
        &[("LANG", "zh_CN.UTF-8")],
    )?;
    assert!(stderr.starts_with(en), "{stderr}");
    let stderr = refusal(
        &["--lang", "zh", "branch", "list"],
        &[("LANG", "en_US.UTF-8")],
    )?;
    assert!(stderr.starts_with(zh), "{stderr}");

    // Output for people follows it too: the device list's header.
    let data = dir.path().join("data");
    ok(&data, &["init", "--listen", "127.0.0.1:0"])?;
    let out = command(&data, &["devices", "list"], &[("LANG", "zh_CN.UTF-8")]).output()?;
    ensure!(out.status.success());
    assert_eq!(
        String::from_utf8(out.stdout)?,
        "设备\t组织\t角色\t党员编号\t党员姓名\t状态\t设备名称\n"
    );
    Ok(())
}
