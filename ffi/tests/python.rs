//! The Python suite (`ffi/python/test_branchline.py`) against a real server.
//!
//! Generates the Python bindings from the built library with the workspace's own
//! `uniffi-bindgen` (the way the Kotlin and Swift bindings are made), starts a
//! server on 127.0.0.1 with a branch and two invites, and runs `python3 -m
//! unittest`. Python's output is shown when it fails (and with `--nocapture`).

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use anyhow::{Context as _, Result, bail, ensure};
use branchline_protocol::Role;

#[test]
fn the_python_suite_passes_against_a_real_server() -> Result<()> {
    let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".to_owned());
    let version = Command::new(&python).arg("--version").output();
    let Ok(version) = version.as_ref().map(|o| o.status.success()) else {
        panic!(
            "the Python suite needs `{python}` (CPython 3.8 or later, standard library only); \
             install it or point the PYTHON variable at one"
        );
    };
    assert!(version, "`{python} --version` failed");

    let lib = common::cdylib()?;
    let bindings = tempfile::tempdir()?;
    let generated = Command::new(env!("CARGO_BIN_EXE_uniffi-bindgen"))
        .args(["generate", "--library"])
        .arg(&lib)
        .args(["--language", "python", "--out-dir"])
        .arg(bindings.path())
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .context("running uniffi-bindgen")?;
    ensure!(
        generated.status.success(),
        "uniffi-bindgen failed:\n{}",
        String::from_utf8_lossy(&generated.stderr)
    );
    // The bindings load the library from their own directory.
    let lib_name = lib.file_name().context("library has no name")?;
    link_or_copy(&lib, &bindings.path().join(lib_name))?;

    let server = common::TestServer::start()?;
    let branch = server.branch("和平社区第一支部")?;
    let partner = server.branch("和平社区第二支部")?;
    server.ally(branch, partner)?;
    let secretary = server.invite(branch, Role::Secretary)?;
    let resident = server.invite(branch, Role::Resident)?;

    let suite = Path::new(env!("CARGO_MANIFEST_DIR")).join("python");
    let started = Instant::now();
    let run = Command::new(&python)
        .args(["-m", "unittest", "-v", "test_branchline"])
        .current_dir(&suite)
        .env("PYTHONPATH", bindings.path())
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .env("BRANCHLINE_BRANCH_ID", branch.to_string())
        .env("BRANCHLINE_PARTNER_ID", partner.to_string())
        .env("BRANCHLINE_SECRETARY_INVITE", &secretary)
        .env("BRANCHLINE_RESIDENT_INVITE", &resident)
        .output()
        .context("running the Python suite")?;
    let output = format!(
        "{}{}",
        String::from_utf8_lossy(&run.stdout),
        String::from_utf8_lossy(&run.stderr)
    );
    if !run.status.success() {
        bail!("the Python suite failed ({}):\n{output}", run.status);
    }
    println!("{output}");
    println!("python suite took {:.1?}", started.elapsed());
    ensure!(
        !output.contains("skipped"),
        "the Python suite skipped tests:\n{output}"
    );
    Ok(())
}

fn link_or_copy(from: &Path, to: &Path) -> Result<()> {
    #[cfg(unix)]
    if std::os::unix::fs::symlink(from, to).is_ok() {
        return Ok(());
    }
    std::fs::copy(from, to)?;
    Ok(())
}
