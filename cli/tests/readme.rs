//! README.md's five-minute walk-through, run as written against the built
//! `branchline` and `branchline-server` binaries, so the README and the
//! programs cannot drift apart.
//!
//! The shell blocks of the section "Five-minute walk-through" run in order in
//! one `bash -euo pipefail` script, in an empty directory, with the binaries
//! on `PATH`. The one change made to the text: the server's port `4433` is
//! replaced by a free one, so the test never collides with a server already
//! running on the machine (and a trap stops the background server if a step
//! fails).

use std::path::{Path, PathBuf};
use std::process::Command;

const SECTION: &str = "## Five-minute walk-through";

/// The shell blocks of the walk-through section, joined.
fn walkthrough_script(readme: &str) -> String {
    let start = readme
        .find(SECTION)
        .expect("README has the walk-through section");
    let rest = &readme[start + SECTION.len()..];
    let section = rest.find("\n## ").map_or(rest, |end| &rest[..end]);
    let mut script = String::new();
    let mut in_block = false;
    for line in section.lines() {
        match (in_block, line.trim_start()) {
            (false, fence) if fence.starts_with("```sh") => in_block = true,
            (true, fence) if fence.starts_with("```") => in_block = false,
            (true, _) => {
                script.push_str(line);
                script.push('\n');
            }
            _ => {}
        }
    }
    script
}

/// The directory the test binaries were built into (`target/<profile>`).
fn bin_dir() -> PathBuf {
    Path::new(env!("CARGO_BIN_EXE_branchline"))
        .parent()
        .expect("the binary is in a directory")
        .to_path_buf()
}

/// `branchline-server` next to `branchline`, brought up to date: `cargo test`
/// of this crate alone does not build another package's binaries.
///
/// It is built as `cargo test --workspace` builds it, so that under that command
/// (the README's and CI's) this finds everything fresh and compiles nothing: a plain
/// `cargo build -p branchline-server` would resolve features for the server alone
/// and recompile its dependencies into a second copy.
fn server_binary(dir: &Path) -> PathBuf {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut build = Command::new(cargo);
    build.args(["test", "--workspace", "--no-run", "--quiet"]);
    if dir.ends_with("release") {
        build.arg("--release");
    }
    let status = build.status().expect("run cargo build");
    assert!(status.success(), "building branchline-server failed");
    let server = dir.join("branchline-server");
    assert!(server.exists(), "{} is missing", server.display());
    server
}

fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

#[test]
fn the_readme_walkthrough_works_as_written() {
    let readme_path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../README.md");
    let readme = std::fs::read_to_string(&readme_path).expect("read README.md");
    let script = walkthrough_script(&readme);
    assert!(
        script.contains("branchline-server"),
        "no commands found:\n{script}"
    );
    assert!(script.contains("4433"), "the walk-through names port 4433");
    // Whatever happens, the server the walk-through starts in the background
    // stops with the script.
    let script = format!(
        "trap 'kill $(jobs -p) 2>/dev/null || true' EXIT\n{}",
        script.replace("4433", &free_udp_port().to_string())
    );

    let dir = bin_dir();
    server_binary(&dir);
    let work = tempfile::tempdir().expect("temp dir");
    let path = format!(
        "{}:{}",
        dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let output = Command::new("bash")
        .args(["-euo", "pipefail", "-c", &script])
        .current_dir(work.path())
        .env("PATH", path)
        .env("LANG", "C.UTF-8")
        .env_remove("RUST_LOG")
        .env_remove("BRANCHLINE_HOME")
        .output()
        .expect("run bash");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "the walk-through failed ({}):\n--- script\n{script}\n--- stdout\n{stdout}\n--- stderr\n{stderr}",
        output.status
    );

    // What the reader is told to expect.
    assert!(stdout.contains("Agreed the spring clean-up."), "{stdout}");
    assert!(
        stdout.contains("Li Wei") && stdout.contains("Wang Fang"),
        "{stdout}"
    );
    assert!(stdout.contains("Attendance by member"), "{stdout}");
    // People and meetings are named, not numbered.
    assert!(
        stdout.contains("Wang Fang signed in to March branch meeting"),
        "{stdout}"
    );
    for name in ["Wang Fang", "Li Wei"] {
        assert!(
            stdout
                .lines()
                .any(|l| l.starts_with(name) && l.contains("signed in")),
            "{name} is not in the attendance of `activity show`:\n{stdout}"
        );
    }
    // Dues, points and the committee's roll-up, by name.
    for words in [
        "Riverside Community — dues ledger 2026 (monthly dues 30.00 yuan)",
        "collected 120.00  spent 0.00  balance 120.00 yuan",
        "Points ranking 2026-Q2",
        "Riverside Street Committee — branches below",
    ] {
        assert!(stdout.contains(words), "{words:?} not in:\n{stdout}");
    }
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with("1 ") && l.contains("Li Wei") && l.ends_with(" 5")),
        "Li Wei does not lead the ranking with 5 points:\n{stdout}"
    );
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with("Riverside Community") && l.contains("33%") && l.contains('☆')),
        "the branch's dues (4 of 12 months) and stars are not in the roll-up:\n{stdout}"
    );
    assert!(
        work.path().join("rollup.xlsx").is_file(),
        "the roll-up workbook was not written:\n{stdout}\n{stderr}"
    );
    for file in [
        "roster.csv",
        "attendance.csv",
        "petitions.csv",
        "branchline-export.xlsx",
    ] {
        assert!(
            work.path().join("export").join(file).is_file(),
            "{file} was not exported:\n{stdout}\n{stderr}"
        );
    }
}
