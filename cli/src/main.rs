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
mod export;
mod failure;
mod help;
mod home;
mod output;
mod words;

use std::ffi::OsString;
use std::process::ExitCode;

use branchline_core::model::Date;
use clap::FromArgMatches as _;

use crate::cli::Cli;
use crate::output::{Lang, Out};

fn main() -> ExitCode {
    let args: Vec<OsString> = std::env::args_os().collect();
    // The language decides the help text, so it is read before clap parses.
    let lang = lang_in(&args).unwrap_or_else(Lang::from_locale);
    let args = match lang {
        Lang::Zh => help::help_subcommand_as_flag(args),
        Lang::En => args,
    };
    let cli = match help::command(lang)
        .try_get_matches_from(args)
        .and_then(|matches| Cli::from_arg_matches(&matches))
    {
        Ok(cli) => cli,
        Err(e) => command_line_error(e, lang),
    };
    // Log lines are for whoever asks with RUST_LOG; a person reads the one
    // error line a failure prints.
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("off")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let out = Out {
        lang: cli.lang.unwrap_or(lang),
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

/// The language `--lang` asks for, if it is on the command line.
fn lang_in(args: &[OsString]) -> Option<Lang> {
    let mut words = args.iter().skip(1).map(|a| a.to_string_lossy());
    while let Some(word) = words.next() {
        let value = match word.strip_prefix("--lang") {
            Some("") => words.next()?.into_owned(),
            Some(rest) if rest.starts_with('=') => rest[1..].to_owned(),
            _ => continue,
        };
        return match value.as_str() {
            "zh" => Some(Lang::Zh),
            "en" => Some(Lang::En),
            _ => None,
        };
    }
    None
}

/// Prints help, the version, or what is wrong with the command line (in
/// Chinese where there are words for it), and exits.
fn command_line_error(e: clap::Error, lang: Lang) -> ! {
    if lang == Lang::Zh
        && let Some(text) = help::error_zh(&e)
    {
        eprintln!("{text}");
        std::process::exit(e.exit_code());
    }
    e.exit()
}

/// Today in the device's own time zone.
pub(crate) fn today() -> Date {
    Date(chrono::Local::now().date_naive())
}
