//! The `branchline` binary against a real server on 127.0.0.1: enrollment,
//! offline edits on two desktops, sync, live updates, bad input, residents'
//! requests, the feedback box, and edits the server refuses.

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use branchline_core::model::{Activity, Level};
use branchline_core::{BranchId, DocId, MemberId, Store};
use branchline_protocol::{InviteLink, Role};
use branchline_server::{Admin, RunningServer, Server, ServerConfig};
use serde_json::Value;
use tempfile::TempDir;

/// A server on 127.0.0.1 with its own data directory and runtime.
struct Hq {
    runtime: tokio::runtime::Runtime,
    server: Option<RunningServer>,
    dir: TempDir,
}

impl Hq {
    fn start() -> Self {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let config = ServerConfig::new(dir.path().to_path_buf(), "127.0.0.1:0".parse().unwrap());
        let server = runtime.block_on(Server::start(config)).unwrap();
        Self {
            runtime,
            server: Some(server),
            dir,
        }
    }

    fn admin(&self) -> Admin {
        Admin::open(self.dir.path()).unwrap()
    }

    fn branch(&self) -> BranchId {
        self.admin()
            .add_branch("Riverside", Level::Branch, None)
            .unwrap()
    }

    /// Stops the server, as when the network is gone.
    fn stop(&mut self) {
        if let Some(server) = self.server.take() {
            self.runtime.block_on(server.shutdown()).unwrap();
        }
    }

    fn invite(&self, branch: BranchId, role: Role, member: Option<MemberId>) -> InviteLink {
        self.admin()
            .create_invite(branch, role, member, Duration::from_secs(3600))
            .unwrap()
    }
}

impl Drop for Hq {
    fn drop(&mut self) {
        if let Some(server) = self.server.take() {
            let _ = self.runtime.block_on(server.shutdown());
        }
    }
}

fn branchline(home: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_branchline"))
        .arg("--home")
        .arg(home)
        .args(["--lang", "en"])
        .args(args)
        .env_remove("BRANCHLINE_HOME")
        .env_remove("RUST_LOG")
        .output()
        .unwrap()
}

fn describe(args: &[&str], out: &Output) -> String {
    format!(
        "branchline {args:?}: {}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Runs a command that must succeed; returns its stdout, trimmed.
fn ok(home: &Path, args: &[&str]) -> String {
    let out = branchline(home, args);
    assert!(out.status.success(), "{}", describe(args, &out));
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// Runs a command with `--json` that must succeed; returns the value.
fn json(home: &Path, args: &[&str]) -> Value {
    let mut all = vec!["--json"];
    all.extend_from_slice(args);
    serde_json::from_str(&ok(home, &all)).unwrap()
}

/// Runs a command that must fail with `exit` and, if given, the error `code`.
fn fails(home: &Path, args: &[&str], exit: i32, code: Option<&str>) -> String {
    let out = branchline(home, args);
    let text = describe(args, &out);
    assert_eq!(out.status.code(), Some(exit), "{text}");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    if let Some(code) = code {
        assert!(stderr.contains(&format!("[{code}]")), "{text}");
    }
    stderr
}

#[test]
fn two_desktops_edit_offline_sync_and_converge() {
    let hq = Hq::start();
    let branch = hq.branch();
    let homes = tempfile::tempdir().unwrap();
    let alice = homes.path().join("alice");
    let bob = homes.path().join("bob");

    let link = hq.invite(branch, Role::Secretary, None).to_string();
    let enrolled = ok(&alice, &["enroll", &link, "--name", "Alice's PC"]);
    assert!(enrolled.contains("Riverside"), "{enrolled}");
    let li = ok(
        &alice,
        &[
            "member",
            "add",
            "Li Wei",
            "--gender",
            "male",
            "--birth",
            "1980-05-01",
        ],
    );
    let wang = ok(&alice, &["member", "add", "Wang Fang", "--group", "North"]);
    let activity = ok(
        &alice,
        &[
            "activity",
            "create",
            "--kind",
            "branch_meeting",
            "--title",
            "March meeting",
            "--starts",
            "2026-03-05T14:30",
            "--ends",
            "2026-03-05T16:30",
            "--place",
            "Hall",
        ],
    );
    let petition = ok(
        &alice,
        &[
            "petition",
            "submit",
            "--category",
            "roads",
            "--title",
            "Broken street light",
            "--description",
            "North gate, two weeks",
            "--submitter",
            "Mr Zhao",
        ],
    );
    let status = json(&alice, &["status"]);
    assert!(status["pending_changes"].as_u64().unwrap() > 0, "{status}");
    ok(&alice, &["sync", "--timeout", "30"]);
    let status = json(&alice, &["status"]);
    assert_eq!(status["pending_changes"], 0, "{status}");
    assert!(status["last_synced_ms"].as_i64().is_some(), "{status}");

    let member: MemberId = wang.parse().unwrap();
    let link = hq.invite(branch, Role::Member, Some(member)).to_string();
    ok(&bob, &["enroll", &link]);
    assert_eq!(json(&bob, &["member", "list"]).as_array().unwrap().len(), 2);

    // Offline on both desktops.
    ok(
        &alice,
        &[
            "activity",
            "minutes",
            &activity[..8],
            "Agreed on the spring clean-up.",
        ],
    );
    ok(
        &alice,
        &["activity", "sign-in", &activity, "--member", "Li Wei"],
    );
    ok(
        &alice,
        &[
            "petition",
            "assign",
            &petition[..8],
            "--owner",
            &li,
            "--deadline",
            "2026-12-31",
        ],
    );
    ok(&bob, &["activity", "sign-in", &activity[..8], "--remote"]);
    // A member's device may not change the roster: refused before it is made.
    fails(
        &bob,
        &["member", "update", "Wang Fang", "--phone", "1380000"],
        3,
        Some("access.read_only"),
    );

    ok(&alice, &["sync"]);
    ok(&bob, &["sync"]);
    ok(&alice, &["sync"]);

    let on_alice = json(&alice, &["activity", "show", &activity]);
    let on_bob = json(&bob, &["activity", "show", &activity]);
    assert_eq!(on_alice, on_bob);
    assert_eq!(on_alice["minutes"], "Agreed on the spring clean-up.");
    assert_eq!(
        on_alice["attendance"].as_array().unwrap().len(),
        2,
        "{on_alice}"
    );
    assert_eq!(
        json(&alice, &["member", "list"]),
        json(&bob, &["member", "list"])
    );
    // A member who neither owns nor submitted a petition does not see it.
    assert!(
        json(&bob, &["petition", "list"])
            .as_array()
            .unwrap()
            .is_empty()
    );
    let petitions = json(&alice, &["petition", "list"]);
    assert_eq!(petitions[0]["owner"], li.as_str(), "{petitions}");
    for home in [&alice, &bob] {
        assert_eq!(json(home, &["status"])["pending_changes"], 0);
    }

    // The rest of the petition workflow, and the report that counts it.
    ok(
        &alice,
        &[
            "petition",
            "progress",
            &petition,
            "Reported to the street office",
        ],
    );
    ok(
        &alice,
        &[
            "petition",
            "resolve",
            &petition,
            "Light replaced",
            "--by",
            "Li Wei",
        ],
    );
    ok(
        &alice,
        &["petition", "rate", &petition, "5", "--comment", "Quick"],
    );
    let report = json(
        &alice,
        &[
            "report",
            "--from",
            "2026-01-01",
            "--to",
            "2026-12-31",
            "--as-of",
            "2026-12-31",
        ],
    );
    assert_eq!(report["petitions"]["resolved"], 1, "{report}");
    assert_eq!(report["petitions"]["average_satisfaction"], 5.0, "{report}");
    let text = ok(
        &alice,
        &["report", "--from", "2026-01-01", "--to", "2026-12-31"],
    );
    assert!(text.contains("Attendance by member"), "{text}");
    assert!(
        json(&alice, &["conflicts", "list"])
            .as_array()
            .unwrap()
            .is_empty()
    );
    assert!(
        json(&alice, &["activity", "kinds"])
            .as_array()
            .unwrap()
            .len()
            >= 5
    );
}

#[test]
fn sync_watch_receives_live_changes_and_stops_on_ctrl_c() {
    let hq = Hq::start();
    let branch = hq.branch();
    let homes = tempfile::tempdir().unwrap();
    let alice = homes.path().join("alice");
    let bob = homes.path().join("bob");
    ok(
        &alice,
        &[
            "enroll",
            &hq.invite(branch, Role::Secretary, None).to_string(),
        ],
    );
    ok(
        &bob,
        &[
            "enroll",
            &hq.invite(branch, Role::Committee, None).to_string(),
        ],
    );

    let mut watch = Command::new(env!("CARGO_BIN_EXE_branchline"))
        .arg("--home")
        .arg(&bob)
        .args(["--json", "sync", "--watch"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = watch.stdout.take().unwrap();
    let (lines_tx, lines) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead as _;
        for line in std::io::BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if lines_tx.send(line).is_err() {
                break;
            }
        }
    });
    let wait_for = |what: &dyn Fn(&Value) -> bool| loop {
        let line = lines
            .recv_timeout(Duration::from_secs(30))
            .expect("sync --watch printed nothing more in 30 s");
        let value: Value = serde_json::from_str(&line).unwrap();
        if what(&value) {
            return value;
        }
    };
    wait_for(&|v| v["status"] == "in_sync");

    let member = ok(&alice, &["member", "add", "Zhou Min"]);
    ok(&alice, &["sync"]);
    wait_for(&|v| v["event"] == "updated");
    // The watcher stored it: the new member is on bob's roster.
    let roster = json(&bob, &["member", "list"]);
    assert_eq!(roster[0]["id"], member.as_str(), "{roster}");

    let interrupted = Command::new("kill")
        .args(["-INT", &watch.id().to_string()])
        .status()
        .unwrap();
    assert!(interrupted.success());
    let status = watch.wait().unwrap();
    assert!(status.success(), "sync --watch ended with {status}");
}

#[test]
fn bad_input_gets_a_clear_error_and_writes_nothing() {
    let hq = Hq::start();
    let branch = hq.branch();
    let homes = tempfile::tempdir().unwrap();
    let alice = homes.path().join("alice");

    // Invites: malformed, expired, pointing at no server. The home is not created.
    let nowhere = homes.path().join("nowhere");
    fails(
        &nowhere,
        &["enroll", "https://example.org/join"],
        3,
        Some("invite.malformed"),
    );
    assert!(!nowhere.exists());
    let expired = hq
        .admin()
        .create_invite(branch, Role::Member, None, Duration::from_secs(1))
        .unwrap()
        .to_string();
    std::thread::sleep(Duration::from_millis(1500));
    let stderr = fails(&nowhere, &["enroll", &expired, "--timeout", "20"], 5, None);
    assert!(stderr.contains("invite"), "{stderr}");
    assert!(!nowhere.exists());
    let unreachable = format!(
        "branchline://127.0.0.1:9/ABCD-EFGH?cert={}",
        "00".repeat(32)
    );
    fails(
        &nowhere,
        &["enroll", &unreachable, "--timeout", "2"],
        4,
        Some("net.unreachable"),
    );
    assert!(
        !nowhere.exists(),
        "a failed enrollment leaves nothing behind"
    );

    // Homes that are not enrolled Branchline stores.
    fails(&nowhere, &["member", "list"], 6, Some("home.not_enrolled"));
    assert!(!nowhere.exists(), "a read never creates a store");
    let junk = homes.path().join("junk");
    std::fs::create_dir(&junk).unwrap();
    std::fs::write(junk.join("branchline.db"), b"not a database at all").unwrap();
    fails(&junk, &["status"], 6, Some("store.not_a_store"));
    assert_eq!(
        std::fs::read(junk.join("branchline.db")).unwrap(),
        b"not a database at all"
    );
    let file = homes.path().join("a-file");
    std::fs::write(&file, b"x").unwrap();
    fails(&file, &["status"], 6, Some("home.not_a_directory"));

    // Records: each refusal leaves the store as it was.
    ok(
        &alice,
        &[
            "enroll",
            &hq.invite(branch, Role::Secretary, None).to_string(),
        ],
    );
    let li = ok(&alice, &["member", "add", "Li Wei"]);
    let activity = ok(
        &alice,
        &[
            "activity",
            "create",
            "--kind",
            "branch_meeting",
            "--title",
            "April",
            "--starts",
            "2026-04-02T09:00",
            "--ends",
            "2026-04-02T10:00",
        ],
    );
    let petition = ok(
        &alice,
        &[
            "petition",
            "submit",
            "--category",
            "noise",
            "--title",
            "Night works",
            "--description",
            "After 22:00",
        ],
    );
    let before = (
        json(&alice, &["status"])["pending_changes"].clone(),
        json(&alice, &["member", "list"]),
        json(&alice, &["activity", "show", &activity]),
        json(&alice, &["petition", "show", &petition]),
    );

    let stderr = fails(
        &alice,
        &["member", "add", "Zhao", "--birth", "1980-13-01"],
        2,
        None,
    );
    assert!(stderr.contains("1980-13-01"), "{stderr}");
    fails(
        &alice,
        &[
            "activity",
            "create",
            "--kind",
            "branch_meeting",
            "--title",
            "x",
            "--starts",
            "2026-04-02T10:00",
            "--ends",
            "2026-04-02T09:00",
        ],
        3,
        Some("activity.end_before_start"),
    );
    fails(
        &alice,
        &[
            "activity",
            "create",
            "--kind",
            "karaoke",
            "--title",
            "x",
            "--starts",
            "2026-04-02T10:00",
            "--ends",
            "2026-04-02T11:00",
        ],
        3,
        Some("activity.unknown_kind"),
    );
    let stranger = MemberId::random().to_string();
    fails(
        &alice,
        &["activity", "sign-in", &activity, "--member", &stranger],
        3,
        Some("member.unknown"),
    );
    fails(
        &alice,
        &["activity", "sign-in", &activity, "--member", "Nobody"],
        3,
        Some("member.unknown"),
    );
    fails(
        &alice,
        &["activity", "sign-in", &activity],
        3,
        Some("input.member_required"),
    );
    fails(
        &alice,
        &["activity", "minutes", "ffffffff", "text"],
        3,
        Some("doc.not_found"),
    );
    fails(
        &alice,
        &[
            "petition",
            "assign",
            &petition,
            "--owner",
            &li,
            "--deadline",
            "someday",
        ],
        2,
        None,
    );
    fails(
        &alice,
        &["petition", "rate", &petition, "5"],
        3,
        Some("petition.not_resolved"),
    );
    fails(
        &alice,
        &["petition", "resolve", &petition, "Done"],
        3,
        Some("petition.no_owner"),
    );
    fails(
        &alice,
        &["conflicts", "settle", &activity, "/title", "1"],
        3,
        Some("conflict.not_found"),
    );
    let stderr = fails(
        &alice,
        &["--json", "member", "update", "Nobody", "--phone", "1"],
        3,
        None,
    );
    let error: Value = serde_json::from_str(stderr.trim()).unwrap();
    assert_eq!(error["error"]["code"], "member.unknown", "{stderr}");

    // Nothing changed.
    let after = (
        json(&alice, &["status"])["pending_changes"].clone(),
        json(&alice, &["member", "list"]),
        json(&alice, &["activity", "show", &activity]),
        json(&alice, &["petition", "show", &petition]),
    );
    assert_eq!(before, after);
}

#[test]
fn a_resident_files_a_request_and_members_use_the_feedback_box() {
    let mut hq = Hq::start();
    let branch = hq.branch();
    let homes = tempfile::tempdir().unwrap();
    let secretary = homes.path().join("secretary");
    let member = homes.path().join("member");
    let resident = homes.path().join("resident");

    ok(
        &secretary,
        &[
            "enroll",
            &hq.invite(branch, Role::Secretary, None).to_string(),
        ],
    );
    let wang = ok(&secretary, &["member", "add", "Wang Fang"]);
    ok(&secretary, &["sync"]);
    let link = hq.invite(branch, Role::Member, Some(wang.parse().unwrap()));
    ok(&member, &["enroll", &link.to_string()]);

    // The secretary shows the public code; only the committee may.
    let shown = ok(&secretary, &["submission-code", "--qr"]);
    let mut lines = shown.lines();
    let code = lines.next().unwrap().to_owned();
    assert!(code.starts_with("branchline://"), "{shown}");
    assert!(lines.count() > 10, "no QR code drawn: {shown}");
    assert_eq!(
        json(&secretary, &["submission-code"])["link"],
        code.as_str()
    );
    fails(&member, &["submission-code"], 3, Some("access.read_only"));

    // A resident scans it, enrolls and files a request through the server.
    ok(&resident, &["enroll", &code]);
    assert_eq!(json(&resident, &["status"])["role"], "resident");
    let petition = ok(
        &resident,
        &[
            "petition",
            "submit",
            "--category",
            "道路交通",
            "--title",
            "东门路灯不亮",
            "--description",
            "小区东门的路灯坏了一个星期",
            "--submitter",
            "陈阿姨",
            "--contact",
            "13800000000",
        ],
    );
    let own = json(&resident, &["petition", "list"]);
    assert_eq!(own.as_array().unwrap().len(), 1, "{own}");
    assert_eq!(own[0]["id"], petition.as_str(), "{own}");
    assert_eq!(json(&resident, &["status"])["pending_changes"], 0);
    // The secretary sees it after a sync.
    ok(&secretary, &["sync"]);
    let seen = json(&secretary, &["petition", "show", &petition]);
    assert_eq!(seen["title"], "东门路灯不亮", "{seen}");
    assert_eq!(seen["status"], "open", "{seen}");
    // The feedback box is not a resident's.
    fails(&resident, &["suggest", "x"], 3, Some("access.denied"));

    // A member suggests anonymously; the secretary sees no name.
    let suggestion = ok(
        &member,
        &["suggest", "希望周末也能开放活动室", "--anonymous"],
    );
    ok(&secretary, &["sync"]);
    let listed = json(&secretary, &["feedback", "list"]);
    assert_eq!(listed.as_array().unwrap().len(), 1, "{listed}");
    assert_eq!(listed[0]["id"], suggestion.as_str(), "{listed}");
    assert_eq!(listed[0]["anonymous"], true, "{listed}");
    assert_eq!(listed[0]["author"], Value::Null, "{listed}");
    assert_eq!(listed[0]["text"], "希望周末也能开放活动室", "{listed}");
    let text = ok(&secretary, &["feedback", "list"]);
    assert!(text.contains("anonymous"), "{text}");

    // Only the committee answers and publishes.
    fails(
        &member,
        &["feedback", "answer", &suggestion[..8], "Yes"],
        3,
        Some("access.read_only"),
    );
    ok(
        &secretary,
        &["feedback", "answer", &suggestion[..8], "下月起周六开放"],
    );
    // A draft answer stays off the board.
    ok(&secretary, &["sync"]);
    ok(&member, &["sync"]);
    let board = json(&member, &["feedback", "list", "--published"]);
    assert!(board.as_array().unwrap().is_empty(), "{board}");
    let all = json(&member, &["feedback", "list"]);
    assert_eq!(all[0]["answer"], Value::Null, "a draft shown: {all}");
    ok(&secretary, &["feedback", "publish", &suggestion[..8]]);
    ok(&secretary, &["sync"]);
    ok(&member, &["sync"]);
    let board = json(&member, &["feedback", "list", "--published"]);
    assert_eq!(board.as_array().unwrap().len(), 1, "{board}");
    assert_eq!(board[0]["answer"]["text"], "下月起周六开放", "{board}");
    assert_eq!(board[0]["published"], true, "{board}");
    let text = ok(&member, &["feedback", "list", "--published"]);
    assert!(text.contains("下月起周六开放"), "{text}");

    // A named suggestion carries its author's name.
    ok(&member, &["suggest", "建议增加学习资料"]);
    let listed = json(&member, &["feedback", "list"]);
    let named = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["text"] == "建议增加学习资料")
        .unwrap_or_else(|| panic!("the named suggestion: {listed}"));
    assert_eq!(named["author_name"], "Wang Fang", "{listed}");

    // Without the server, a resident's request fails clearly.
    hq.stop();
    fails(
        &resident,
        &[
            "petition",
            "submit",
            "--category",
            "噪音",
            "--title",
            "夜间施工",
            "--description",
            "22点以后",
            "--timeout",
            "2",
        ],
        4,
        Some("net.unreachable"),
    );
    fails(
        &member,
        &["suggest", "x", "--timeout", "2"],
        4,
        Some("net.unreachable"),
    );
}

#[test]
fn an_edit_the_server_refuses_is_reported_by_sync_and_listed() {
    let hq = Hq::start();
    let branch = hq.branch();
    let homes = tempfile::tempdir().unwrap();
    let secretary = homes.path().join("secretary");
    let member = homes.path().join("member");
    ok(
        &secretary,
        &[
            "enroll",
            &hq.invite(branch, Role::Secretary, None).to_string(),
        ],
    );
    let zhao = ok(&secretary, &["member", "add", "Zhao Qiang"]);
    let meeting = ok(
        &secretary,
        &[
            "activity",
            "create",
            "--kind",
            "branch_meeting",
            "--title",
            "April meeting",
            "--starts",
            "2026-04-01T09:00",
            "--ends",
            "2026-04-01T11:00",
        ],
    );
    ok(&secretary, &["sync"]);
    let link = hq.invite(branch, Role::Member, Some(zhao.parse().unwrap()));
    ok(&member, &["enroll", &link.to_string()]);
    assert!(
        json(&member, &["rejections"])
            .as_array()
            .unwrap()
            .is_empty()
    );

    // The CLI would not rename someone else's meeting, but a library (or an
    // older build) can: the rename, then an honest sign-in after it.
    {
        let mut store = Store::open(member.join("branchline.db")).unwrap();
        let id: DocId = meeting.parse().unwrap();
        store
            .update(id, |a: &mut Activity| {
                a.title = "My title".into();
                Ok(())
            })
            .unwrap();
    }
    ok(&member, &["activity", "sign-in", &meeting]);

    let stderr = fails(&member, &["sync"], 5, Some("rule.organizer_only"));
    assert!(
        stderr.contains("only the activity's organizer or the committee may change it"),
        "{stderr}"
    );
    assert!(
        stderr.contains("\"April meeting\""),
        "the record by its title: {stderr}"
    );
    let listed = json(&member, &["rejections"]);
    assert_eq!(listed.as_array().unwrap().len(), 1, "{listed}");
    assert_eq!(listed[0]["code"], "rule.organizer_only", "{listed}");
    assert_eq!(listed[0]["doc"], meeting.as_str(), "{listed}");
    assert_eq!(listed[0]["kind"], "activity", "{listed}");
    assert_eq!(listed[0]["replayed_changes"], 1, "{listed}");
    let text = ok(&member, &["rejections"]);
    assert!(text.contains("rule.organizer_only"), "{text}");
    assert!(text.contains(&meeting[..8]), "{text}");

    // The refusal is old news at the next sync, which succeeds; the sign-in
    // reached the secretary and the rename never did.
    ok(&member, &["sync"]);
    assert_eq!(json(&member, &["status"])["pending_changes"], 0);
    ok(&secretary, &["sync"]);
    let shown = json(&secretary, &["activity", "show", &meeting]);
    assert_eq!(shown["title"], "April meeting", "{shown}");
    assert_eq!(shown["attendance"].as_array().unwrap().len(), 1, "{shown}");
    assert_eq!(
        json(&member, &["activity", "show", &meeting])["title"],
        "April meeting"
    );
}

/// Runs `branchline` in `lang` ("en", "zh", or `None` for the locale's),
/// with `env` set and `stdin` fed in.
fn branchline_with(
    home: &Path,
    lang: Option<&str>,
    args: &[&str],
    env: &[(&str, &str)],
    stdin: Option<&[u8]>,
) -> Output {
    use std::io::Write as _;
    let mut command = Command::new(env!("CARGO_BIN_EXE_branchline"));
    command.arg("--home").arg(home);
    if let Some(lang) = lang {
        command.args(["--lang", lang]);
    }
    command
        .args(args)
        .env_remove("BRANCHLINE_HOME")
        .env_remove("RUST_LOG")
        .env_remove("LC_ALL")
        .env_remove("LC_MESSAGES")
        .env("LANG", "C.UTF-8")
        .envs(env.iter().copied())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = command.spawn().unwrap();
    let mut input = child.stdin.take().unwrap();
    let bytes = stdin.unwrap_or_default().to_vec();
    let feeder = std::thread::spawn(move || {
        let _ = input.write_all(&bytes);
    });
    let output = child.wait_with_output().unwrap();
    feeder.join().unwrap();
    output
}

/// Runs a command in Chinese that must succeed; returns stdout and stderr.
fn ok_zh(home: &Path, args: &[&str]) -> (String, String) {
    let out = branchline_with(home, Some("zh"), args, &[], None);
    assert!(out.status.success(), "{}", describe(args, &out));
    (
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

/// A secretary's desktop enrolled in a fresh branch.
fn secretary(hq: &Hq, branch: BranchId, home: &Path) {
    ok(
        home,
        &[
            "enroll",
            &hq.invite(branch, Role::Secretary, None).to_string(),
        ],
    );
}

fn meeting(home: &Path, title: &str) -> String {
    ok(
        home,
        &[
            "activity",
            "create",
            "--kind",
            "branch_meeting",
            "--title",
            title,
            "--starts",
            "2026-03-05T14:30",
            "--ends",
            "2026-03-05T16:30",
            "--place",
            "Community hall",
        ],
    )
}

#[test]
fn messages_and_lists_name_people_and_records_not_ids() {
    let hq = Hq::start();
    let branch = hq.branch();
    let homes = tempfile::tempdir().unwrap();
    let alice = homes.path().join("alice");
    secretary(&hq, branch, &alice);
    let li = ok(&alice, &["member", "add", "Li Wei", "--gender", "male"]);
    ok(
        &alice,
        &["member", "add", "Wang Fang", "--gender", "female"],
    );
    let march = meeting(&alice, "March branch meeting");

    let said = ok(
        &alice,
        &["activity", "sign-in", &march, "--member", "Wang Fang"],
    );
    assert_eq!(said, "Wang Fang signed in to March branch meeting");
    let (said, _) = ok_zh(
        &alice,
        &[
            "activity",
            "leave",
            &march,
            "--member",
            "Li Wei",
            "--reason",
            "出差在外",
        ],
    );
    assert!(
        said.contains("Li Wei") && said.contains("March branch meeting"),
        "{said}"
    );
    assert!(!said.contains(&li[..8]), "an id instead of a name: {said}");

    // The leave reason is shown, in text and in JSON.
    let shown = json(&alice, &["activity", "show", &march]);
    let rows = shown["attendance"].as_array().unwrap();
    let leave = rows.iter().find(|r| r["present"] == false).unwrap();
    assert_eq!(leave["reason"], "出差在外", "{shown}");
    assert_eq!(leave["name"], "Li Wei", "{shown}");
    let text = ok(&alice, &["activity", "show", &march]);
    assert!(text.contains("出差在外"), "{text}");

    let petition = ok(
        &alice,
        &[
            "petition",
            "submit",
            "--category",
            "roads",
            "--title",
            "Broken street light",
            "--description",
            "North gate",
        ],
    );
    let said = ok(
        &alice,
        &[
            "petition",
            "assign",
            &petition,
            "--owner",
            "Li Wei",
            "--deadline",
            "2030-06-30",
        ],
    );
    assert_eq!(
        said,
        "Broken street light assigned to Li Wei, due 2030-06-30"
    );
    let ledger = ok(&alice, &["petition", "list"]);
    assert!(ledger.contains("Li Wei"), "{ledger}");
    let shown = json(&alice, &["petition", "show", &petition]);
    assert_eq!(shown["owner_name"], "Li Wei", "{shown}");
}

#[test]
fn conflicts_name_the_record_and_each_writer() {
    let hq = Hq::start();
    let branch = hq.branch();
    let homes = tempfile::tempdir().unwrap();
    let alice = homes.path().join("alice");
    let li_pc = homes.path().join("li");
    let wang_pc = homes.path().join("wang");
    secretary(&hq, branch, &alice);
    let li: MemberId = ok(&alice, &["member", "add", "Li Wei", "--gender", "male"])
        .parse()
        .unwrap();
    let wang: MemberId = ok(
        &alice,
        &["member", "add", "Wang Fang", "--gender", "female"],
    )
    .parse()
    .unwrap();
    ok(&alice, &["sync"]);
    // Two committee members' desktops, each bound to its member.
    let link = hq.invite(branch, Role::Committee, Some(li)).to_string();
    ok(&li_pc, &["enroll", &link]);
    let link = hq.invite(branch, Role::Committee, Some(wang)).to_string();
    ok(&wang_pc, &["enroll", &link]);

    // Both change Wang Fang's phone offline, to different numbers.
    ok(
        &li_pc,
        &["member", "update", "Wang Fang", "--phone", "13800000001"],
    );
    ok(
        &wang_pc,
        &["member", "update", "Wang Fang", "--phone", "13900000002"],
    );
    ok(&li_pc, &["sync"]);
    ok(&wang_pc, &["sync"]);
    ok(&li_pc, &["sync"]);

    let listed = json(&li_pc, &["conflicts", "list"]);
    let conflicts = listed.as_array().unwrap();
    assert_eq!(conflicts.len(), 1, "{listed}");
    assert_eq!(conflicts[0]["record"], "Wang Fang", "{listed}");
    assert_eq!(conflicts[0]["kind"], "roster", "{listed}");
    let mut writers: Vec<(String, bool)> = conflicts[0]["values"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            (
                v["member_name"].as_str().unwrap_or("?").to_owned(),
                v["this_device"].as_bool().unwrap(),
            )
        })
        .collect();
    writers.sort();
    assert_eq!(
        writers,
        [("Li Wei".to_owned(), true), ("Wang Fang".to_owned(), false)],
        "{listed}"
    );
    let text = ok(&li_pc, &["conflicts", "list"]);
    assert!(text.contains("Wang Fang (roster"), "{text}");
    assert!(text.contains("Li Wei, this device"), "{text}");
    assert!(text.contains("Wang Fang"), "{text}");
    let (text, _) = ok_zh(&li_pc, &["conflicts", "list"]);
    assert!(text.contains("Li Wei，本机"), "{text}");
}

#[test]
fn a_joint_activity_says_which_partner_branch_a_sign_in_comes_from() {
    let hq = Hq::start();
    let host = hq.branch();
    let partner = hq
        .admin()
        .add_branch("Hillside", Level::Branch, None)
        .unwrap();
    hq.admin()
        .add_alliance("River and hill", &[host, partner])
        .unwrap();
    let homes = tempfile::tempdir().unwrap();
    let alice = homes.path().join("alice");
    let hill = homes.path().join("hill");
    secretary(&hq, host, &alice);
    secretary(&hq, partner, &hill);
    ok(&alice, &["member", "add", "Li Wei", "--gender", "male"]);
    let joint = ok(
        &alice,
        &[
            "activity",
            "create",
            "--kind",
            "joint",
            "--title",
            "Riverbank clean-up",
            "--starts",
            "2026-04-11T09:00",
            "--ends",
            "2026-04-11T11:00",
        ],
    );
    let said = ok(
        &alice,
        &[
            "activity",
            "share",
            &joint,
            "--partner",
            &partner.to_string(),
        ],
    );
    assert!(said.starts_with("Riverbank clean-up shared with"), "{said}");
    ok(&alice, &["sync"]);
    ok(
        &alice,
        &["activity", "sign-in", &joint, "--member", "Li Wei"],
    );
    ok(&alice, &["sync"]);

    ok(&hill, &["member", "add", "Zhou Min", "--gender", "female"]);
    ok(&hill, &["sync"]);
    let said = ok(
        &hill,
        &["activity", "sign-in", &joint, "--member", "Zhou Min"],
    );
    assert_eq!(said, "Zhou Min signed in to Riverbank clean-up");
    ok(&hill, &["sync"]);
    ok(&alice, &["sync"]);

    let shown = json(&alice, &["activity", "show", &joint]);
    let rows = shown["attendance"].as_array().unwrap();
    assert_eq!(rows.len(), 2, "{shown}");
    let zhou = rows.iter().find(|r| r["name"] != "Li Wei").unwrap();
    assert_eq!(zhou["branch"], partner.to_string().as_str(), "{shown}");
    let text = ok(&alice, &["activity", "show", &joint]);
    let partner_words = format!("a member of partner branch {}", &partner.to_string()[..8]);
    assert!(text.contains(&partner_words), "{text}");
    // On the partner's own desktop she has her name.
    let there = json(&hill, &["activity", "show", &joint]);
    assert!(
        there["attendance"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["name"] == "Zhou Min"),
        "{there}"
    );
}

#[test]
fn chinese_covers_help_values_and_errors() {
    let hq = Hq::start();
    let branch = hq.branch();
    let homes = tempfile::tempdir().unwrap();
    let alice = homes.path().join("alice");
    secretary(&hq, branch, &alice);

    // Help, by --lang and by the locale.
    let (help, _) = ok_zh(&alice, &["member", "add", "--help"]);
    assert!(help.contains("姓名") && help.contains("性别"), "{help}");
    assert!(help.contains("用法") && help.contains("显示帮助"), "{help}");
    assert!(
        !help.contains("Full name") && !help.contains("Print help"),
        "{help}"
    );
    let (help, _) = ok_zh(&alice, &["help", "activity", "minutes"]);
    assert!(help.contains("会议记录"), "{help}");
    let by_locale = branchline_with(&alice, None, &["--help"], &[("LANG", "zh_CN.UTF-8")], None);
    let help = String::from_utf8_lossy(&by_locale.stdout);
    assert!(help.contains("支部") && help.contains("退出状态"), "{help}");
    let (help, _) = (ok(&alice, &["member", "add", "--help"]), ());
    assert!(help.contains("Full name"), "{help}");

    // Values people read.
    ok(&alice, &["member", "add", "Li Wei", "--gender", "male"]);
    let march = meeting(&alice, "三月支部党员大会");
    ok(
        &alice,
        &["activity", "sign-in", &march, "--member", "Li Wei"],
    );
    ok(
        &alice,
        &[
            "petition",
            "submit",
            "--category",
            "roads",
            "--title",
            "路灯不亮",
            "--description",
            "北门",
        ],
    );
    let (roster, _) = ok_zh(&alice, &["member", "list"]);
    for word in ["男", "正式党员", "在册"] {
        assert!(roster.contains(word), "{word} in {roster}");
    }
    assert!(
        !roster.contains("male") && !roster.contains("active"),
        "{roster}"
    );
    let (shown, _) = ok_zh(&alice, &["activity", "show", &march]);
    for word in ["支部党员大会", "进行中", "现场", "已签到"] {
        assert!(shown.contains(word), "{word} in {shown}");
    }
    assert!(!shown.contains("on_site"), "{shown}");
    let (listed, _) = ok_zh(&alice, &["activity", "list"]);
    assert!(listed.contains("支部党员大会"), "{listed}");
    let (ledger, _) = ok_zh(&alice, &["petition", "list"]);
    assert!(
        ledger.contains("待分派") && ledger.contains("道路交通"),
        "{ledger}"
    );
    // JSON keeps the stable names.
    assert_eq!(json(&alice, &["member", "list"])[0]["gender"], "male");

    // Errors: the code stays, the sentence is Chinese.
    let petition = json(&alice, &["petition", "list"])[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let cases: [(&[&str], &str, &str); 4] = [
        (
            &["activity", "sign-in", &march, "--member", "Nobody"],
            "member.unknown",
            "没有与“Nobody”相符的成员",
        ),
        (
            &["activity", "sign-in", &march, "--member", "Li Wei"],
            "activity.already_signed_in",
            "Li Wei 已经签到",
        ),
        (
            &["petition", "rate", &petition, "5"],
            "petition.not_resolved",
            "诉求尚未办结",
        ),
        (
            &["activity", "minutes", "ffffffff", "x"],
            "doc.not_found",
            "没有与“ffffffff”相符的活动",
        ),
    ];
    for (args, code, sentence) in cases {
        let out = branchline_with(&alice, Some("zh"), args, &[], None);
        assert_eq!(out.status.code(), Some(3), "{}", describe(args, &out));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains(&format!("错误 [{code}]：{sentence}")),
            "{}",
            describe(args, &out)
        );
    }
    let out = branchline_with(
        &alice,
        Some("zh"),
        &["member", "add", "Zhao", "--birth", "1980-13-01"],
        &[],
        None,
    );
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("错误：参数 --birth"), "{stderr}");
    assert!(stderr.contains("1980-13-01"), "{stderr}");
}

/// The first placeholder in `text` written in ASCII capitals, as clap makes
/// them from argument ids: `<NAME>`, `[TEXT]`.
fn ascii_placeholder(text: &str) -> Option<&str> {
    let bytes = text.as_bytes();
    for (start, &open) in bytes.iter().enumerate() {
        let close = match open {
            b'<' => b'>',
            b'[' => b']',
            _ => continue,
        };
        let inside = bytes[start + 1..]
            .iter()
            .take_while(|b| {
                b.is_ascii_uppercase() || b.is_ascii_digit() || matches!(b, b'_' | b'-')
            })
            .count();
        let end = start + 1 + inside;
        let capital = bytes[start + 1..end].iter().any(u8::is_ascii_uppercase);
        if capital && bytes.get(end) == Some(&close) {
            return Some(&text[start..=end]);
        }
    }
    None
}

#[test]
fn chinese_help_is_chinese_on_every_screen() {
    // The finder itself finds what it must.
    assert_eq!(ascii_placeholder("用法：x [OPTIONS]"), Some("[OPTIONS]"));
    assert_eq!(ascii_placeholder("--name <NAME>  名称"), Some("<NAME>"));
    assert_eq!(ascii_placeholder("--name <名称>  [选项] <命令>"), None);

    let home = tempfile::tempdir().unwrap();
    // Every screen, found from the command lists of the screens above it.
    let mut todo: Vec<Vec<String>> = vec![Vec::new()];
    let mut seen: Vec<String> = Vec::new();
    while let Some(path) = todo.pop() {
        let mut args: Vec<&str> = path.iter().map(String::as_str).collect();
        args.push("--help");
        let (help, _) = ok_zh(home.path(), &args);
        let what = format!("`branchline --lang zh {}`:\n{help}", args.join(" "));
        for english in [
            "Usage",
            "Options",
            "[OPTIONS]",
            "Commands",
            "<COMMAND>",
            "Arguments",
            "Print help",
            "Print version",
            "[default:",
            "[possible values:",
            "[env:",
            "参数:",
            "选项:",
            "命令:",
        ] {
            assert!(!help.contains(english), "{english:?} in {what}");
        }
        if let Some(placeholder) = ascii_placeholder(&help) {
            panic!("{placeholder} in {what}");
        }
        assert!(help.contains("用法：branchline"), "{what}");
        assert!(
            help.contains("选项：") && help.contains("显示帮助"),
            "{what}"
        );
        if let Some((_, list)) = help.split_once("命令：\n") {
            assert!(help.contains("<命令>"), "{what}");
            for line in list.lines().take_while(|l| !l.trim().is_empty()) {
                let name = line.split_whitespace().next().unwrap();
                let mut sub = path.clone();
                sub.push(name.to_owned());
                todo.push(sub);
            }
        }
        seen.push(path.join(" "));
    }
    for screen in [
        "",
        "enroll",
        "member add",
        "activity create",
        "activity minutes",
        "petition submit",
        "conflicts settle",
        "feedback publish",
        "rejections",
    ] {
        assert!(
            seen.iter().any(|s| s == screen),
            "{screen:?} not in {seen:?}"
        );
    }
    // The top screen has the version flag, in Chinese too.
    let (top, _) = ok_zh(home.path(), &["--help"]);
    assert!(top.contains("显示版本"), "{top}");
    // Placeholders and defaults are in Chinese on the screens people use.
    let (enroll, _) = ok_zh(home.path(), &["enroll", "--help"]);
    assert!(enroll.contains("enroll [选项] <邀请链接>"), "{enroll}");
    assert!(enroll.contains("--timeout <秒数>"), "{enroll}");
    assert!(enroll.contains("（默认：30）"), "{enroll}");
    assert!(enroll.contains("参数：\n"), "{enroll}");
    let (create, _) = ok_zh(home.path(), &["activity", "create", "--help"]);
    assert!(create.contains("--kind <类型>"), "{create}");
    // A mistyped command is named, with the Chinese usage line.
    let out = branchline_with(home.path(), Some("zh"), &["memebr"], &[], None);
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        describe(&["memebr"], &out)
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("没有这个命令：memebr"), "{stderr}");
    assert!(
        stderr.contains("用法：branchline [选项] <命令>"),
        "{stderr}"
    );
    // English stays English.
    let english = ok(home.path(), &["enroll", "--help"]);
    assert!(
        english.contains("Usage: branchline enroll [OPTIONS] <LINK>"),
        "{english}"
    );
}

#[test]
fn activities_can_be_corrected_and_take_long_minutes_from_a_file_or_stdin() {
    let hq = Hq::start();
    let branch = hq.branch();
    let homes = tempfile::tempdir().unwrap();
    let alice = homes.path().join("alice");
    let wang_pc = homes.path().join("wang");
    secretary(&hq, branch, &alice);
    let wang: MemberId = ok(
        &alice,
        &["member", "add", "Wang Fang", "--gender", "female"],
    )
    .parse()
    .unwrap();
    let march = meeting(&alice, "March meting");

    // Title and place.
    let said = ok(
        &alice,
        &[
            "activity",
            "edit",
            &march,
            "--title",
            "March branch meeting",
            "--place",
            "Room 2",
        ],
    );
    assert!(said.contains("March branch meeting"), "{said}");
    let shown = json(&alice, &["activity", "show", &march]);
    assert_eq!(shown["title"], "March branch meeting", "{shown}");
    assert_eq!(shown["place"], "Room 2", "{shown}");
    assert_eq!(
        json(&alice, &["activity", "list"])[0]["title"],
        "March branch meeting"
    );
    fails(
        &alice,
        &["activity", "edit", &march, "--title", " "],
        3,
        Some("input.empty"),
    );
    fails(
        &alice,
        &["activity", "edit", &march],
        3,
        Some("input.nothing_to_change"),
    );
    // A member who does not organize it may not: the server would refuse.
    ok(&alice, &["sync"]);
    let link = hq.invite(branch, Role::Member, Some(wang)).to_string();
    ok(&wang_pc, &["enroll", &link]);
    fails(
        &wang_pc,
        &["activity", "edit", &march, "--title", "Mine"],
        3,
        Some("access.read_only"),
    );

    // Minutes from standard input: a megabyte of text, every character kept.
    let line = "会议讨论了春季大扫除的安排，每个党小组负责一段河岸。Agreed.\n";
    let mut minutes = String::new();
    while minutes.len() < 1 << 20 {
        minutes.push_str(line);
    }
    let args = ["activity", "minutes", &march, "-"];
    let out = branchline_with(&alice, Some("en"), &args, &[], Some(minutes.as_bytes()));
    assert!(out.status.success(), "{}", describe(&args, &out));
    let shown = json(&alice, &["activity", "show", &march]);
    assert_eq!(shown["minutes"].as_str().unwrap().len(), minutes.len());
    assert!(shown["minutes"] == minutes.as_str());

    // From a file, replacing them.
    let file = homes.path().join("minutes.txt");
    std::fs::write(&file, "Short minutes, from a file.").unwrap();
    ok(
        &alice,
        &[
            "activity",
            "minutes",
            &march,
            "--file",
            file.to_str().unwrap(),
        ],
    );
    let shown = json(&alice, &["activity", "show", &march]);
    assert_eq!(shown["minutes"], "Short minutes, from a file.");
    std::fs::write(&file, b"\xff\xfe not text").unwrap();
    fails(
        &alice,
        &[
            "activity",
            "minutes",
            &march,
            "--file",
            file.to_str().unwrap(),
        ],
        3,
        Some("input.not_text"),
    );
    fails(
        &alice,
        &["activity", "minutes", &march, "--file", "/no/such/file"],
        1,
        Some("cli.io"),
    );
}

#[test]
fn a_member_added_without_a_gender_is_not_recorded_as_male() {
    let hq = Hq::start();
    let branch = hq.branch();
    let homes = tempfile::tempdir().unwrap();
    let alice = homes.path().join("alice");
    secretary(&hq, branch, &alice);
    let out = branchline(&alice, &["member", "add", "Zhao Lei"]);
    assert!(out.status.success(), "{}", describe(&[], &out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("gender not recorded"), "{stderr}");
    assert!(stderr.contains("--gender"), "{stderr}");
    let roster = json(&alice, &["member", "list"]);
    assert_eq!(roster[0]["gender"], "unknown", "{roster}");
    let (text, _) = ok_zh(&alice, &["member", "list"]);
    assert!(text.contains("未登记") && !text.contains('男'), "{text}");
}

#[test]
fn failures_are_one_clear_line_without_log_noise() {
    let hq = Hq::start();
    let branch = hq.branch();
    let homes = tempfile::tempdir().unwrap();
    let nowhere = homes.path().join("nowhere");
    let expired = hq
        .admin()
        .create_invite(branch, Role::Member, None, Duration::from_secs(1))
        .unwrap()
        .to_string();
    std::thread::sleep(Duration::from_millis(1500));
    let args = ["enroll", expired.as_str(), "--timeout", "20"];
    let out = branchline_with(&nowhere, Some("en"), &args, &[], None);
    assert_eq!(out.status.code(), Some(5), "{}", describe(&args, &out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "{stderr}");
    assert!(
        lines[0].starts_with("error [auth.invite_expired]"),
        "{stderr}"
    );
    // Logs are there for whoever asks.
    let out = branchline_with(&nowhere, Some("en"), &args, &[("RUST_LOG", "warn")], None);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("WARN"), "{stderr}");
}

#[test]
fn a_resident_is_told_which_branch_they_joined() {
    let hq = Hq::start();
    let branch = hq.branch();
    let homes = tempfile::tempdir().unwrap();
    let resident = homes.path().join("chen");
    let code = hq
        .admin()
        .submission_link(branch, false)
        .unwrap()
        .to_string();
    let said = ok(&resident, &["enroll", &code, "--name", "Mrs Chen's phone"]);
    // A resident's device holds none of the branch's records, not even its
    // profile: the name comes from the server's Welcome.
    assert!(said.contains("enrolled in Riverside as resident"), "{said}");
    // In Chinese, and for scripts.
    let neighbour = homes.path().join("wu");
    let (said, _) = ok_zh(&neighbour, &["enroll", &code]);
    assert!(said.contains("已加入Riverside，身份：群众"), "{said}");
    let elder = homes.path().join("sun");
    let enrolled = json(&elder, &["enroll", &code]);
    assert_eq!(enrolled["branch_name"], "Riverside", "{enrolled}");
    assert_eq!(
        enrolled["branch"],
        branch.to_string().as_str(),
        "{enrolled}"
    );
    // A secretary's device, which holds the profile, says the name too.
    let office = homes.path().join("office");
    let said = ok(
        &office,
        &[
            "enroll",
            &hq.invite(branch, Role::Secretary, None).to_string(),
        ],
    );
    assert!(
        said.contains("enrolled in Riverside as secretary"),
        "{said}"
    );
    let (said, _) = ok_zh(&resident, &["status"]);
    assert!(said.contains("群众"), "{said}");
    // The server's Welcome named the branch: status says its name, not only
    // the id, though the device holds none of its records.
    assert!(said.contains("支部: Riverside ("), "{said}");
    let text = ok(&resident, &["status"]);
    assert!(text.contains("branch: Riverside ("), "{text}");
    let value = json(&resident, &["status"]);
    assert_eq!(value["branch"], branch.to_string().as_str(), "{value}");
    assert_eq!(value["branch_name"], "Riverside", "{value}");
}

#[test]
fn a_revoked_desktop_reads_its_records_and_refuses_edits() {
    let hq = Hq::start();
    let branch = hq.branch();
    let homes = tempfile::tempdir().unwrap();
    let alice = homes.path().join("alice");
    let pc = homes.path().join("committee");
    secretary(&hq, branch, &alice);
    ok(&alice, &["member", "add", "Li Wei", "--gender", "male"]);
    let march = meeting(&alice, "March branch meeting");
    ok(&alice, &["sync"]);
    ok(
        &pc,
        &[
            "enroll",
            &hq.invite(branch, Role::Committee, None).to_string(),
        ],
    );
    let device: branchline_protocol::DeviceId = json(&pc, &["status"])["device_id"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    hq.admin().revoke_device(device).unwrap();

    let stderr = fails(&pc, &["sync"], 5, Some("auth.device_revoked"));
    assert!(stderr.contains("revoked"), "{stderr}");

    // The store remembers the revocation; nothing else is written beside it.
    let revocation = Store::open(pc.join("branchline.db"))
        .unwrap()
        .revocation()
        .unwrap()
        .expect("the store keeps the revocation");
    assert_eq!(revocation.device_id, device);
    assert!(!pc.join("revoked.json").exists());

    // What it holds is still readable, and it says why it cannot do more.
    let status = json(&pc, &["status"]);
    assert_eq!(status["revoked"], true, "{status}");
    assert_eq!(status["branch_name"], "Riverside", "{status}");
    assert_eq!(status["device_id"], device.to_string().as_str(), "{status}");
    assert_eq!(status["revoked_at_ms"], revocation.revoked_at.0, "{status}");
    // What only the forgotten account knew is not made up.
    assert_eq!(status["role"], Value::Null, "{status}");
    assert_eq!(status["server"], Value::Null, "{status}");
    let text = ok(&pc, &["status"]);
    assert!(text.contains("REVOKED"), "{text}");
    assert!(text.contains(&device.to_string()), "{text}");
    let (text, _) = ok_zh(&pc, &["status"]);
    assert!(text.contains("已吊销"), "{text}");
    assert_eq!(json(&pc, &["member", "list"])[0]["name"], "Li Wei");
    assert_eq!(
        json(&pc, &["activity", "show", &march])["title"],
        "March branch meeting"
    );
    ok(
        &pc,
        &["report", "--from", "2026-01-01", "--to", "2026-12-31"],
    );

    // Edits and sync are refused, with the same code, and change nothing.
    let pending = json(&pc, &["status"])["pending_changes"].clone();
    fails(
        &pc,
        &["member", "add", "Zhao", "--gender", "male"],
        5,
        Some("auth.device_revoked"),
    );
    fails(
        &pc,
        &["activity", "sign-in", &march, "--member", "Li Wei"],
        5,
        Some("auth.device_revoked"),
    );
    fails(&pc, &["sync"], 5, Some("auth.device_revoked"));
    for args in [
        &["suggest", "more chairs"][..],
        &["feedback", "answer", "abcd", "yes"][..],
    ] {
        fails(&pc, args, 5, Some("auth.device_revoked"));
    }
    let out = branchline_with(&pc, Some("zh"), &["member", "add", "Zhao"], &[], None);
    assert_eq!(
        out.status.code(),
        Some(5),
        "{}",
        describe(&["member"], &out)
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("错误 [auth.device_revoked]：服务器已吊销此设备"),
        "{stderr}"
    );
    assert_eq!(json(&pc, &["status"])["pending_changes"], pending);

    // A `revoked.json` an earlier build wrote beside the store goes once
    // the store has its own record.
    std::fs::write(pc.join("revoked.json"), "{}").unwrap();
    ok(&pc, &["member", "list"]);
    assert!(!pc.join("revoked.json").exists());

    // A new invite makes it a working desktop again, records and all.
    ok(
        &pc,
        &[
            "enroll",
            &hq.invite(branch, Role::Committee, None).to_string(),
        ],
    );
    assert_eq!(json(&pc, &["status"])["revoked"], false);
    ok(&pc, &["activity", "sign-in", &march, "--member", "Li Wei"]);
    ok(&pc, &["sync"]);
}

#[test]
fn a_desktop_revoked_by_an_earlier_build_still_reads_and_refuses() {
    // An earlier build forgot the account without a record in the store and
    // wrote who the device was to `revoked.json` beside it.
    let homes = tempfile::tempdir().unwrap();
    let pc = homes.path().join("committee");
    std::fs::create_dir_all(&pc).unwrap();
    let branch = Store::open(pc.join("branchline.db"))
        .unwrap()
        .create_branch("Riverside", Level::Branch, None)
        .unwrap();
    let device = "5f2b6c1e-7d3a-4e9b-8c21-0a6f4d3e2b1c";
    let legacy = serde_json::json!({
        "server": "127.0.0.1:4433",
        "device_id": device,
        "device_name": "Committee PC",
        "branch": branch.to_string(),
        "member": null,
        "role": "committee",
        "revoked_at_ms": 1_741_132_800_000_i64,
    });
    std::fs::write(pc.join("revoked.json"), legacy.to_string()).unwrap();

    let status = json(&pc, &["status"]);
    assert_eq!(status["revoked"], true, "{status}");
    assert_eq!(status["device_id"], device, "{status}");
    assert_eq!(status["revoked_at_ms"], 1_741_132_800_000_i64, "{status}");
    assert_eq!(status["branch_name"], "Riverside", "{status}");
    assert_eq!(json(&pc, &["member", "list"]), serde_json::json!([]));
    fails(
        &pc,
        &["member", "add", "Zhao", "--gender", "male"],
        5,
        Some("auth.device_revoked"),
    );
    fails(&pc, &["sync"], 5, Some("auth.device_revoked"));
    // Reading it leaves it: it is all that says the device was revoked.
    assert!(pc.join("revoked.json").exists());

    // A file that does not read is no revocation: the home is not enrolled.
    std::fs::write(pc.join("revoked.json"), "not json").unwrap();
    fails(&pc, &["status"], 6, Some("home.not_enrolled"));
}

/// Runs a command in Chinese that must fail with exit status 3 and `code`;
/// returns stderr, which must be Chinese.
fn fails_zh(home: &Path, args: &[&str], code: &str) -> String {
    let out = branchline_with(home, Some("zh"), args, &[], None);
    let text = describe(args, &out);
    assert_eq!(out.status.code(), Some(3), "{text}");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(stderr.contains(&format!("错误 [{code}]：")), "{text}");
    assert!(!stderr.is_ascii(), "{text}");
    stderr
}

/// The cells of one sheet of an XLSX workbook, as text.
fn sheet(path: &Path, name: &str) -> Vec<Vec<String>> {
    use calamine::Reader as _;
    let mut workbook: calamine::Xlsx<_> = calamine::open_workbook(path).unwrap();
    let range = workbook.worksheet_range(name).unwrap_or_else(|e| {
        panic!("{name} in {:?}: {e}", workbook.sheet_names());
    });
    range
        .rows()
        .map(|row| row.iter().map(|c| c.to_string()).collect())
        .collect()
}

#[test]
fn dues_are_paid_voided_spent_published_and_exported() {
    let hq = Hq::start();
    let branch = hq.branch();
    let homes = tempfile::tempdir().unwrap();
    let alice = homes.path().join("alice");
    let wang_pc = homes.path().join("wang");
    secretary(&hq, branch, &alice);
    ok(&alice, &["member", "add", "Li Wei", "--gender", "male"]);
    let wang: MemberId = ok(
        &alice,
        &["member", "add", "Wang Fang", "--gender", "female"],
    )
    .parse()
    .unwrap();

    // Without a monthly amount the payment needs one.
    fails(
        &alice,
        &["dues", "pay", "Li Wei", "--months", "1-3", "--year", "2026"],
        3,
        Some("input.empty"),
    );
    assert_eq!(
        ok(&alice, &["branch", "set-dues", "30"]),
        "members pay 30.00 yuan a month"
    );
    assert_eq!(json(&alice, &["branch", "show"])["monthly_dues_fen"], 3000);

    let q1 = ok(
        &alice,
        &[
            "dues",
            "pay",
            "Li Wei",
            "--months",
            "1-3",
            "--on",
            "2026-03-10",
        ],
    );
    let out = branchline(
        &alice,
        &[
            "dues",
            "pay",
            "Li Wei",
            "--months",
            "4",
            "--amount",
            "30.00",
            "--on",
            "2026-04-02",
        ],
    );
    assert!(out.status.success(), "{}", describe(&["dues", "pay"], &out));
    let april = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    let said = String::from_utf8(out.stderr).unwrap();
    assert_eq!(
        said.trim(),
        "Li Wei paid 30.00 yuan for 2026 months 4 on 2026-04-02"
    );
    ok(
        &alice,
        &[
            "dues",
            "pay",
            "Wang Fang",
            "--months",
            "1",
            "--on",
            "2026-01-20",
        ],
    );
    let said = ok(
        &alice,
        &[
            "dues",
            "void",
            &april[..8],
            "--reason",
            "recorded twice",
            "--year",
            "2026",
        ],
    );
    assert_eq!(
        said,
        "Li Wei's payment of 30.00 yuan (months 4) voided: recorded twice"
    );
    let spent = ok(
        &alice,
        &[
            "dues",
            "spend",
            "45.50",
            "--category",
            "study_materials",
            "--purpose",
            "学习读本",
            "--approved-by",
            "支委会",
            "--on",
            "2026-05-06",
        ],
    );
    assert!(spent.parse::<branchline_core::EntryId>().is_ok(), "{spent}");

    let ledger = json(&alice, &["dues", "ledger", "--year", "2026"]);
    assert_eq!(ledger["collected_fen"], 12000, "{ledger}");
    assert_eq!(ledger["spent_fen"], 4550, "{ledger}");
    assert_eq!(ledger["balance_fen"], 7450, "{ledger}");
    let payments = ledger["payments"].as_array().unwrap();
    assert_eq!(payments.len(), 3, "{ledger}");
    assert!(
        payments.iter().any(|p| p["entry"] == q1.as_str()),
        "{ledger}"
    );
    let text = ok(&alice, &["dues", "ledger", "--year", "2026"]);
    for words in [
        "dues ledger 2026",
        "Li Wei",
        "1-3",
        "90.00",
        "VOIDED: recorded twice",
        "study materials",
        "学习读本",
        "balance 74.50 yuan",
    ] {
        assert!(text.contains(words), "{words:?} in {text}");
    }
    let (text, _) = ok_zh(&alice, &["dues", "ledger", "--year", "2026"]);
    for words in ["党费公示", "已作废", "学习资料", "结余 74.50 元"] {
        assert!(text.contains(words), "{words:?} in {text}");
    }

    // Who is behind on 10 June: Li Wei for April and May, Wang Fang since February.
    let behind = json(&alice, &["dues", "overdue", "--as-of", "2026-06-10"]);
    let behind = behind.as_array().unwrap();
    assert_eq!(behind[0]["name"], "Wang Fang", "{behind:?}");
    assert_eq!(behind[0]["overdue_months"], serde_json::json!([2, 3, 4, 5]));
    assert_eq!(behind[1]["name"], "Li Wei");
    assert_eq!(behind[1]["owed_fen"], 6000);
    let text = ok(&alice, &["dues", "overdue", "--as-of", "2026-06-10"]);
    assert!(text.contains("Wang Fang") && text.contains("2-5"), "{text}");

    // A member's own amount, and back to the branch's.
    assert_eq!(
        ok(
            &alice,
            &["dues", "set-amount", "Wang Fang", "12.50", "--year", "2026"]
        ),
        "Wang Fang pays 12.50 yuan a month in 2026"
    );
    let status = json(
        &alice,
        &[
            "dues",
            "status",
            "Wang Fang",
            "--year",
            "2026",
            "--as-of",
            "2026-06-10",
        ],
    );
    assert_eq!(status["monthly_fen"], 1250, "{status}");
    assert_eq!(status["owed_fen"], 5000, "{status}");
    ok(
        &alice,
        &[
            "dues",
            "set-amount",
            "Wang Fang",
            "--default",
            "--year",
            "2026",
        ],
    );
    let text = ok(
        &alice,
        &[
            "dues",
            "status",
            "Li Wei",
            "--year",
            "2026",
            "--as-of",
            "2026-06-10",
        ],
    );
    for words in [
        "Li Wei — dues 2026",
        "months paid: 1-3",
        "OVERDUE: 4-5 (60.00 yuan)",
    ] {
        assert!(text.contains(words), "{words:?} in {text}");
    }

    // Bad input: a clear error with a stable code, and nothing written.
    let before = json(&alice, &["status"])["pending_changes"].clone();
    let cases: [(&[&str], &str); 8] = [
        (
            &["dues", "pay", "Nobody", "--months", "1"],
            "member.unknown",
        ),
        (
            &["dues", "pay", "Li Wei", "--months", "13-14"],
            "input.invalid",
        ),
        (
            &["dues", "pay", "Li Wei", "--months", "5-4"],
            "input.invalid",
        ),
        (
            &[
                "dues", "pay", "Li Wei", "--months", "5", "--amount", "-30.00",
            ],
            "input.invalid",
        ),
        (
            &[
                "dues", "pay", "Li Wei", "--months", "5", "--amount", "thirty",
            ],
            "input.invalid",
        ),
        (
            &[
                "dues",
                "spend",
                "-5",
                "--category",
                "education",
                "--purpose",
                "x",
                "--approved-by",
                "y",
            ],
            "input.invalid",
        ),
        (
            &[
                "dues", "void", "ffffffff", "--reason", "x", "--year", "2026",
            ],
            "ledger.unknown_entry",
        ),
        (
            &[
                "dues", "void", &april, "--reason", "again", "--year", "2026",
            ],
            "ledger.already_voided",
        ),
    ];
    for (args, code) in cases {
        fails(&alice, args, 3, Some(code));
    }
    assert_eq!(json(&alice, &["status"])["pending_changes"], before);
    fails(
        &alice,
        &[
            "dues",
            "spend",
            "5",
            "--category",
            "party_dinner",
            "--purpose",
            "x",
            "--approved-by",
            "y",
        ],
        2,
        None,
    );
    let stderr = fails_zh(
        &alice,
        &["dues", "pay", "Li Wei", "--months", "13-14"],
        "input.invalid",
    );
    assert!(stderr.contains("月份须在 1 到 12 之间"), "{stderr}");
    let stderr = fails_zh(
        &alice,
        &[
            "dues", "void", &april, "--reason", "again", "--year", "2026",
        ],
        "ledger.already_voided",
    );
    assert!(stderr.contains("已经作废"), "{stderr}");

    // The ledger as CSV files and a workbook.
    let dir = homes.path().join("export");
    let files = json(
        &alice,
        &[
            "dues",
            "export",
            "--format",
            "all",
            "--out",
            dir.to_str().unwrap(),
            "--year",
            "2026",
        ],
    );
    assert_eq!(files["files"].as_array().unwrap().len(), 4, "{files}");
    let payments = std::fs::read_to_string(dir.join("dues-payments-2026.csv")).unwrap();
    assert!(payments.starts_with("entry,paid on,name,"), "{payments}");
    assert!(payments.contains("Li Wei,1,3,90.00,"), "{payments}");
    assert!(
        payments.contains("2026-04-02,Li Wei,4,4,30.00,"),
        "{payments}"
    );
    let summary = std::fs::read_to_string(dir.join("dues-summary-2026.csv")).unwrap();
    assert!(summary.contains("balance,74.50"), "{summary}");
    let cells = sheet(&dir.join("dues-ledger-2026.xlsx"), "Spending");
    assert_eq!(cells[1][3], "学习读本", "{cells:?}");
    assert_eq!(cells[1][5], "45.5", "{cells:?}");

    // A member reads the public ledger and their own dues, and may not write it.
    ok(&alice, &["sync"]);
    let link = hq.invite(branch, Role::Member, Some(wang)).to_string();
    ok(&wang_pc, &["enroll", &link]);
    let own = json(
        &wang_pc,
        &["dues", "status", "--year", "2026", "--as-of", "2026-02-10"],
    );
    assert_eq!(own["name"], "Wang Fang", "{own}");
    assert_eq!(own["paid_months"], serde_json::json!([1]), "{own}");
    assert_eq!(
        json(&wang_pc, &["dues", "ledger", "--year", "2026"])["balance_fen"],
        7450
    );
    fails(
        &wang_pc,
        &["dues", "pay", "Wang Fang", "--months", "2"],
        3,
        Some("access.read_only"),
    );
}

#[test]
fn points_are_awarded_ranked_withdrawn_and_exported() {
    let hq = Hq::start();
    let branch = hq.branch();
    let homes = tempfile::tempdir().unwrap();
    let alice = homes.path().join("alice");
    secretary(&hq, branch, &alice);
    ok(&alice, &["member", "add", "Li Wei", "--gender", "male"]);
    ok(
        &alice,
        &["member", "add", "Wang Fang", "--gender", "female"],
    );

    // The usual rules come with the branch; the committee changes them.
    let rules = json(&alice, &["points", "rules", "list"]);
    let codes: Vec<&str> = rules
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["code"].as_str().unwrap())
        .collect();
    assert!(
        codes.contains(&"thought_report") && codes.contains(&"major_task"),
        "{rules}"
    );
    ok(
        &alice,
        &[
            "points",
            "rules",
            "set",
            "flood_duty",
            "--points",
            "8",
            "--description",
            "防汛值守",
        ],
    );
    let (text, _) = ok_zh(&alice, &["points", "rules", "list"]);
    assert!(
        text.contains("防汛值守") && text.contains("基础分"),
        "{text}"
    );

    let out = branchline(
        &alice,
        &[
            "points",
            "award",
            "Li Wei",
            "--rule",
            "flood_duty",
            "--on",
            "2026-04-10",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        describe(&["points", "award"], &out)
    );
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        said.contains("Li Wei: +8 points for 防汛值守 (2026-04-10)"),
        "{said}"
    );
    let helped = ok(
        &alice,
        &[
            "points",
            "award",
            "Wang Fang",
            "--points",
            "3",
            "--reason",
            "organized the clean-up",
            "--on",
            "2026-05-01",
        ],
    );
    let said = ok(
        &alice,
        &[
            "points",
            "report-received",
            "Li Wei",
            "--due",
            "2026-04-30",
            "--on",
            "2026-04-28",
        ],
    );
    assert!(!said.is_empty());
    ok(
        &alice,
        &[
            "points",
            "report-received",
            "Wang Fang",
            "--due",
            "2026-04-30",
            "--on",
            "2026-05-03",
        ],
    );

    let ranking = json(&alice, &["points", "ranking", "--quarter", "2026-Q2"]);
    assert_eq!(ranking["period"], "2026-Q2", "{ranking}");
    let rows = ranking["rows"].as_array().unwrap();
    assert_eq!(rows[0]["name"], "Li Wei", "{ranking}");
    assert_eq!(rows[0]["total"], 10, "{ranking}");
    assert_eq!(rows[0]["report_points"], 2, "{ranking}");
    assert_eq!(rows[1]["name"], "Wang Fang", "{ranking}");
    assert_eq!(rows[1]["total"], 3, "{ranking}");
    let text = ok(&alice, &["points", "ranking", "--year", "2026"]);
    assert!(
        text.contains("Points ranking 2026 (2026-01-01 .. 2026-12-31)"),
        "{text}"
    );
    let first = text.lines().find(|l| l.starts_with('1')).unwrap();
    assert!(first.contains("Li Wei") && first.ends_with("10"), "{text}");
    let (text, _) = ok_zh(&alice, &["points", "ranking", "--quarter", "2026-Q2"]);
    assert!(text.contains("积分排名") && text.contains("总分"), "{text}");
    // Nothing in the first quarter.
    let q1 = json(&alice, &["points", "ranking", "--quarter", "2026-Q1"]);
    assert!(
        q1["rows"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["total"] == 0),
        "{q1}"
    );

    let said = ok(
        &alice,
        &["points", "withdraw", &helped[..8], "--year", "2026"],
    );
    assert_eq!(
        said,
        "Wang Fang's award of +3 points (2026-05-01) withdrawn"
    );
    let ranking = json(&alice, &["points", "ranking", "--quarter", "2026-Q2"]);
    assert_eq!(ranking["rows"][1]["total"], 0, "{ranking}");

    let before = json(&alice, &["status"])["pending_changes"].clone();
    let cases: [(&[&str], &str); 7] = [
        (
            &["points", "award", "Li Wei", "--rule", "karaoke"],
            "points.unknown_rule",
        ),
        (
            &[
                "points", "award", "Nobody", "--points", "2", "--reason", "x",
            ],
            "member.unknown",
        ),
        (
            &[
                "points", "award", "Li Wei", "--points", "0", "--reason", "x",
            ],
            "input.invalid",
        ),
        (
            &["points", "award", "Li Wei", "--points", "2"],
            "input.empty",
        ),
        (
            &["points", "ranking", "--quarter", "2026-Q5"],
            "input.invalid",
        ),
        (
            &["points", "withdraw", &helped, "--year", "2026"],
            "ledger.unknown_entry",
        ),
        (
            &["points", "withdraw", "ffffffff", "--year", "2026"],
            "ledger.unknown_entry",
        ),
    ];
    for (args, code) in cases {
        fails(&alice, args, 3, Some(code));
    }
    assert_eq!(json(&alice, &["status"])["pending_changes"], before);
    // Neither a rule nor points: clap says what is missing.
    fails(&alice, &["points", "award", "Li Wei"], 2, None);
    let stderr = fails_zh(
        &alice,
        &["points", "award", "Li Wei", "--rule", "karaoke"],
        "points.unknown_rule",
    );
    assert!(stderr.contains("支部没有积分项目"), "{stderr}");

    let dir = homes.path().join("ranking");
    ok(
        &alice,
        &[
            "points",
            "export",
            "--out",
            dir.to_str().unwrap(),
            "--quarter",
            "2026-Q2",
        ],
    );
    let csv = std::fs::read_to_string(dir.join("ranking-2026-Q2.csv")).unwrap();
    assert!(
        csv.starts_with("rank,name,attendance,thought reports,awards,total\n"),
        "{csv}"
    );
    assert!(csv.contains("1,Li Wei,0,2,8,10\n"), "{csv}");
    let cells = sheet(&dir.join("ranking-2026-Q2.xlsx"), "Ranking");
    assert_eq!(cells[1][1], "Li Wei", "{cells:?}");
    assert_eq!(cells[1][5], "10", "{cells:?}");
}

#[test]
fn an_applicant_moves_step_by_step_with_introducers_and_reminders() {
    let hq = Hq::start();
    let branch = hq.branch();
    let homes = tempfile::tempdir().unwrap();
    let alice = homes.path().join("alice");
    secretary(&hq, branch, &alice);
    ok(&alice, &["member", "add", "Li Wei", "--gender", "male"]);
    ok(
        &alice,
        &["member", "add", "Wang Fang", "--gender", "female"],
    );
    ok(
        &alice,
        &[
            "member",
            "add",
            "Zhao Lei",
            "--gender",
            "male",
            "--category",
            "applicant",
        ],
    );

    ok(
        &alice,
        &["applicant", "add", "Zhao Lei", "--applied", "2024-03-01"],
    );
    fails(
        &alice,
        &["applicant", "add", "Zhao Lei", "--applied", "2024-03-01"],
        3,
        Some("applicant.exists"),
    );
    let reminders = json(&alice, &["applicant", "reminders", "--as-of", "2024-04-02"]);
    assert_eq!(reminders[0]["name"], "Zhao Lei", "{reminders}");
    assert_eq!(reminders[0]["due"]["stage"], "activist", "{reminders}");
    let said = ok(
        &alice,
        &[
            "applicant",
            "step",
            "Zhao Lei",
            "activist",
            "--on",
            "2024-03-20",
            "--note",
            "支委会",
        ],
    );
    assert_eq!(said, "Zhao Lei: activist on 2024-03-20");
    fails(
        &alice,
        &[
            "applicant",
            "step",
            "Zhao Lei",
            "candidate",
            "--on",
            "2025-01-01",
        ],
        3,
        Some("applicant.too_early"),
    );
    fails(
        &alice,
        &[
            "applicant",
            "step",
            "Zhao Lei",
            "full",
            "--on",
            "2026-01-01",
        ],
        3,
        Some("applicant.out_of_order"),
    );
    let stderr = fails_zh(
        &alice,
        &[
            "applicant",
            "step",
            "Zhao Lei",
            "candidate",
            "--on",
            "2025-01-01",
        ],
        "applicant.too_early",
    );
    assert!(
        stderr.contains("“发展对象”最早可在 2025-03-20 登记"),
        "{stderr}"
    );
    ok(
        &alice,
        &[
            "applicant",
            "step",
            "Zhao Lei",
            "candidate",
            "--on",
            "2025-03-20",
        ],
    );
    fails(
        &alice,
        &[
            "applicant",
            "step",
            "Zhao Lei",
            "probationary",
            "--on",
            "2025-07-01",
        ],
        3,
        Some("applicant.introducers_missing"),
    );
    let said = ok(&alice, &["applicant", "introducer", "Zhao Lei", "Li Wei"]);
    assert_eq!(said, "Li Wei is an introducer of Zhao Lei");
    ok(
        &alice,
        &["applicant", "introducer", "Zhao Lei", "Wang Fang"],
    );
    fails(
        &alice,
        &["applicant", "introducer", "Zhao Lei", "Nobody"],
        3,
        Some("member.unknown"),
    );
    ok(
        &alice,
        &[
            "applicant",
            "step",
            "Zhao Lei",
            "probationary",
            "--on",
            "2025-07-01",
        ],
    );
    ok(
        &alice,
        &[
            "points",
            "report-received",
            "Zhao Lei",
            "--due",
            "2025-09-30",
            "--on",
            "2025-09-28",
        ],
    );

    let list = json(&alice, &["applicant", "list"]);
    assert_eq!(list[0]["stage"], "probationary", "{list}");
    assert_eq!(list[0]["thought_reports"], 1, "{list}");
    let text = ok(&alice, &["applicant", "list"]);
    assert!(
        text.contains("Zhao Lei") && text.contains("Li Wei, Wang Fang"),
        "{text}"
    );
    // The roster moved along with the steps.
    let roster = json(&alice, &["member", "list", "--name", "Zhao"]);
    assert_eq!(roster[0]["category"], "probationary", "{roster}");

    let shown = json(&alice, &["applicant", "show", "Zhao Lei"]);
    assert_eq!(shown["steps"].as_array().unwrap().len(), 4, "{shown}");
    assert_eq!(shown["steps"][1]["note"], "支委会", "{shown}");
    assert_eq!(shown["introducers"][0]["name"], "Li Wei", "{shown}");
    assert_eq!(shown["next"]["stage"], "full", "{shown}");
    let text = ok(&alice, &["applicant", "show", "Zhao Lei"]);
    for words in [
        "Zhao Lei (probationary member)",
        "2024-03-20  activist  支委会",
        "introducers: Li Wei, Wang Fang",
        "thought reports: 1",
        "2025-09-28  (due 2025-09-30)  on time",
        "next: full member from 2026-07-01",
    ] {
        assert!(text.contains(words), "{words:?} in {text}");
    }
    let (text, _) = ok_zh(&alice, &["applicant", "show", "Zhao Lei"]);
    assert!(
        text.contains("预备党员") && text.contains("入党介绍人"),
        "{text}"
    );

    let due = json(&alice, &["applicant", "reminders", "--as-of", "2026-07-02"]);
    let due = due.as_array().unwrap();
    assert!(
        due.iter()
            .any(|r| r["due"]["what"] == "step" && r["due"]["stage"] == "full"),
        "{due:?}"
    );
    assert!(
        due.iter().any(|r| r["due"]["what"] == "thought_report"),
        "{due:?}"
    );
    let text = ok(&alice, &["applicant", "reminders", "--as-of", "2026-07-02"]);
    assert!(
        text.contains("step: full member") && text.contains("thought report"),
        "{text}"
    );

    fails(
        &alice,
        &["applicant", "show", "Li Wei"],
        3,
        Some("applicant.unknown"),
    );
    let stderr = fails_zh(
        &alice,
        &["applicant", "show", "Li Wei"],
        "applicant.unknown",
    );
    assert!(stderr.contains("Li Wei 不在入党流程中"), "{stderr}");
    fails(
        &alice,
        &[
            "applicant",
            "step",
            "Zhao Lei",
            "elder",
            "--on",
            "2026-07-02",
        ],
        2,
        None,
    );
}

#[test]
fn library_entries_are_written_found_revised_and_shared() {
    let hq = Hq::start();
    let branch = hq.branch();
    let partner = hq
        .admin()
        .add_branch("Hillside", Level::Branch, None)
        .unwrap();
    let homes = tempfile::tempdir().unwrap();
    let alice = homes.path().join("alice");
    secretary(&hq, branch, &alice);

    let light = ok(
        &alice,
        &[
            "library",
            "add",
            "--collection",
            "problem",
            "--title",
            "路灯坏了没人管",
            "--problem",
            "老旧小区路灯",
            "--solution",
            "联系街道",
            "--tag",
            "路灯",
            "--tag",
            "老旧小区",
            "--on",
            "2026-05-01",
        ],
    );
    ok(
        &alice,
        &[
            "library",
            "add",
            "--collection",
            "case",
            "--title",
            "Saturday lectures",
            "--problem",
            "Members work on weekdays",
            "--solution",
            "Lectures moved to Saturday mornings",
            "--on",
            "2026-06-01",
        ],
    );
    let all = json(&alice, &["library", "list"]);
    assert_eq!(all.as_array().unwrap().len(), 2, "{all}");
    assert_eq!(all[0]["title"], "Saturday lectures", "newest first: {all}");
    let tagged = json(&alice, &["library", "list", "--tag", "路灯"]);
    assert_eq!(tagged.as_array().unwrap().len(), 1, "{tagged}");
    assert_eq!(tagged[0]["id"], light.as_str(), "{tagged}");
    let cases = json(&alice, &["library", "list", "--collection", "case"]);
    assert_eq!(cases[0]["title"], "Saturday lectures", "{cases}");
    let found = json(&alice, &["library", "list", "--title-contains", "路灯"]);
    assert_eq!(found.as_array().unwrap().len(), 1, "{found}");
    let (text, _) = ok_zh(&alice, &["library", "list"]);
    assert!(text.contains("问题库") && text.contains("案例集"), "{text}");

    // Named by title or id prefix.
    ok(
        &alice,
        &[
            "library",
            "revise",
            "路灯坏了没人管",
            "--solution",
            "街道出资修好",
        ],
    );
    ok(&alice, &["library", "tag", &light[..8], "照明"]);
    let said = ok(
        &alice,
        &["library", "share", "路灯坏了没人管", &partner.to_string()],
    );
    assert!(said.contains("路灯坏了没人管"), "{said}");
    let said = ok(&alice, &["library", "share-down", "路灯坏了没人管"]);
    assert!(said.contains("every branch below"), "{said}");
    let shown = json(&alice, &["library", "show", "路灯坏了没人管"]);
    assert_eq!(shown["solution"], "街道出资修好", "{shown}");
    assert_eq!(shown["shared_down"], true, "{shown}");
    assert_eq!(
        shown["shared_with"][0]["branch"],
        partner.to_string(),
        "{shown}"
    );
    assert!(
        shown["tags"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t == "照明"),
        "{shown}"
    );
    ok(&alice, &["library", "share-down", &light, "--off"]);
    let text = ok(&alice, &["library", "show", &light[..8]]);
    assert!(
        text.contains("街道出资修好") && text.contains("Riverside"),
        "{text}"
    );
    assert!(!text.contains("every branch below"), "{text}");

    fails(
        &alice,
        &["library", "show", "No such title"],
        3,
        Some("doc.not_found"),
    );
    fails(
        &alice,
        &["library", "revise", &light],
        3,
        Some("input.nothing_to_change"),
    );
    fails(
        &alice,
        &["library", "revise", &light, "--title", " "],
        3,
        Some("input.empty"),
    );
    fails(
        &alice,
        &["library", "share", &light, "Nowhere"],
        3,
        Some("branch.unknown"),
    );
    fails(
        &alice,
        &["library", "share", &light, "Riverside"],
        3,
        Some("input.invalid"),
    );
    fails(
        &alice,
        &[
            "library",
            "add",
            "--collection",
            "recipe",
            "--title",
            "x",
            "--problem",
            "y",
            "--solution",
            "z",
        ],
        2,
        None,
    );
    let stderr = fails_zh(
        &alice,
        &["library", "share", &light, "Nowhere"],
        "branch.unknown",
    );
    assert!(stderr.contains("Nowhere"), "{stderr}");
}

#[test]
fn the_committee_rolls_up_the_branches_below_and_rates_them() {
    let hq = Hq::start();
    let admin = hq.admin();
    let committee = admin
        .add_branch("Street Committee", Level::Committee, None)
        .unwrap();
    let riverside = admin
        .add_branch("Riverside", Level::Branch, Some(committee))
        .unwrap();
    let hillside = admin
        .add_branch("Hillside", Level::Branch, Some(committee))
        .unwrap();
    let homes = tempfile::tempdir().unwrap();
    let river_pc = homes.path().join("river");
    let hill_pc = homes.path().join("hill");
    let hq_pc = homes.path().join("committee");
    secretary(&hq, riverside, &river_pc);
    secretary(&hq, hillside, &hill_pc);
    secretary(&hq, committee, &hq_pc);

    // Riverside collects every month's dues; Hillside only January's.
    for (pc, months) in [(&river_pc, "1-6"), (&hill_pc, "1")] {
        ok(pc, &["branch", "set-dues", "10.00"]);
        ok(pc, &["member", "add", "Li Wei", "--gender", "male"]);
        ok(
            pc,
            &[
                "dues",
                "pay",
                "Li Wei",
                "--months",
                months,
                "--on",
                "2026-01-15",
                "--year",
                "2026",
            ],
        );
        ok(pc, &["sync"]);
    }
    ok(
        &hq_pc,
        &[
            "branch",
            "rating",
            "set-indicator",
            "dues_collection",
            "--weight",
            "60",
            "--target",
            "100",
        ],
    );
    ok(&hq_pc, &["branch", "rating", "set-stars", "10,30,50,70,90"]);
    let settings = json(&hq_pc, &["branch", "show"]);
    assert_eq!(
        settings["star_thresholds"],
        serde_json::json!([10, 30, 50, 70, 90])
    );
    ok(&hq_pc, &["sync"]);

    let period = [
        "--from",
        "2026-01-01",
        "--to",
        "2026-06-30",
        "--as-of",
        "2026-07-01",
    ];
    let mut args = vec!["report", "--branches"];
    args.extend(period);
    let rollup = json(&hq_pc, &args);
    let branches = rollup["branches"].as_array().unwrap();
    let names: Vec<&str> = branches
        .iter()
        .map(|b| b["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["Hillside", "Riverside"], "{rollup}");
    assert_eq!(branches[1]["dues"]["rate"], 1.0, "{rollup}");
    let hill_rate = branches[0]["dues"]["rate"].as_f64().unwrap();
    assert!((hill_rate - 1.0 / 6.0).abs() < 1e-9, "{rollup}");
    assert!(
        branches[1]["score"].as_f64() > branches[0]["score"].as_f64(),
        "{rollup}"
    );
    let text = ok(&hq_pc, &args);
    for words in [
        "Street Committee — branches below, 2026-01-01 .. 2026-06-30",
        "Riverside",
        "Hillside",
        "100%",
        "17%",
        "dues collection 60 (full at 100%)",
        "Scores for 1 to 5 stars: 10, 30, 50, 70, 90",
        "★",
    ] {
        assert!(text.contains(words), "{words:?} in {text}");
    }
    let mut zh_args = args.clone();
    zh_args.push("--xlsx");
    let book = homes.path().join("out").join("rollup.xlsx");
    zh_args.push(book.to_str().unwrap());
    let (text, _) = ok_zh(&hq_pc, &zh_args);
    assert!(
        text.contains("下级支部汇总") && text.contains("党费收缴"),
        "{text}"
    );
    // One row per branch after the header; the meetings sheet has one per
    // branch and required kind.
    for sheet_name in ["汇总", "党费收缴", "群众诉求", "换届", "星级评定"] {
        let cells = sheet(&book, sheet_name);
        assert_eq!(cells.len(), 3, "{sheet_name}: {cells:?}");
    }
    let dues = sheet(&book, "党费收缴");
    assert_eq!(dues[2][0], "Riverside", "{dues:?}");
    assert_eq!(dues[2][1], "60", "{dues:?}");
    let meetings = sheet(&book, "组织生活");
    assert_eq!(meetings[0][1], "类型", "{meetings:?}");
    assert!(
        meetings
            .iter()
            .any(|r| r[0] == "Riverside" && r[1] == "支委会" && r[2] == "每月" && r[3] == "6"),
        "{meetings:?}"
    );

    // A branch has no branches below it; --xlsx is for the roll-up only.
    let mut args = vec!["report", "--branches"];
    args.extend(period);
    fails(&river_pc, &args, 3, Some("input.invalid"));
    fails(
        &hq_pc,
        &["report", "--xlsx", book.to_str().unwrap()],
        2,
        None,
    );
    fails(
        &hq_pc,
        &["branch", "rating", "set-stars", "50,40,60,80,95"],
        3,
        Some("input.invalid"),
    );
    fails(
        &hq_pc,
        &[
            "branch",
            "rating",
            "set-indicator",
            "satisfaction",
            "--weight",
            "10",
            "--target",
            "150",
        ],
        3,
        Some("input.invalid"),
    );
    fails(
        &hq_pc,
        &["branch", "set-dues", "-3"],
        3,
        Some("input.invalid"),
    );
}
