//! One function per subcommand, over a [`Home`](crate::home::Home).

mod activity;
mod applicant;
mod branch;
mod dues;
mod feedback;
mod library;
mod member;
mod network;
mod petition;
mod points;
mod rejection;
mod report;
mod rollup;

use crate::cli::{Cli, Command};
use crate::failure::Result;
use crate::home::{Home, default_home};
use crate::output::Out;

/// Runs the command line.
pub fn run(cli: Cli, out: Out) -> Result<()> {
    let home_dir = cli.home.unwrap_or_else(default_home);
    let command = match cli.command {
        Command::Enroll {
            link,
            name,
            timeout,
        } => return network::enroll(&home_dir, &link, &name, timeout, out),
        Command::Sync { watch, timeout } => {
            return network::sync(&home_dir, watch, timeout, out);
        }
        other => other,
    };
    let mut home = Home::open(&home_dir)?;
    if command.edits() {
        home.require_writable()?;
    }
    match command {
        Command::Enroll { .. } | Command::Sync { .. } => unreachable!("handled above"),
        Command::Status => report::status(&home, out),
        Command::Member(command) => member::run(&mut home, command, out),
        Command::Activity(command) => activity::run(&mut home, command, out),
        Command::Petition(command) => petition::run(home, command, out),
        Command::Dues(command) => dues::run(&mut home, command, out),
        Command::Points(command) => points::run(&mut home, command, out),
        Command::Applicant(command) => applicant::run(&mut home, command, out),
        Command::Library(command) => library::run(&mut home, command, out),
        Command::Branch(command) => branch::run(&mut home, command, out),
        Command::Report {
            from,
            to,
            as_of,
            branches,
            xlsx,
        } => {
            let period = report::period(from, to)?;
            if branches {
                let as_of = as_of.unwrap_or_else(crate::today);
                rollup::rollup(&home, period, as_of, xlsx.as_deref(), out)
            } else {
                report::report(&home, period, as_of, out)
            }
        }
        Command::Conflicts(command) => report::conflicts(&mut home, command, out),
        Command::SubmissionCode { qr, timeout } => network::submission_code(home, qr, timeout, out),
        Command::Suggest {
            text,
            anonymous,
            timeout,
        } => network::suggest(home, &text, anonymous, timeout, out),
        Command::Feedback(command) => feedback::run(&mut home, command, out),
        Command::Rejections => rejection::list(&home, out),
    }
}
