//! `branchline`: the Branchline desktop client.
//!
//! A secretary's PC, an integrator's shell, a tester's script: every workflow
//! of the branch's records, offline against the local store in `--home`, and
//! `sync` to meet the branch server. Edits never wait for the network; they
//! merge when the device next syncs.
//!
//! Output is for people (English or Chinese, from the locale or `--lang`) or,
//! with `--json`, for scripts. Exit statuses are listed in [`failure`].

mod cli;
mod commands;
mod failure;
mod home;
mod output;

use std::process::ExitCode;

use branchline_core::model::Date;
use clap::Parser as _;

use crate::cli::Cli;
use crate::output::{Lang, Out};

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let out = Out {
        lang: cli.lang.unwrap_or_else(Lang::from_locale),
        json: cli.json,
    };
    match commands::run(cli, out) {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            out.failure(&failure);
            ExitCode::from(failure.exit)
        }
    }
}

/// Today in the device's own time zone.
pub(crate) fn today() -> Date {
    Date(chrono::Local::now().date_naive())
}
