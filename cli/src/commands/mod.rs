//! One function per subcommand, over a [`Home`](crate::home::Home).

mod activity;
mod member;
mod network;
mod petition;
mod report;

use crate::cli::{Cli, Command};
use crate::failure::Result;
use crate::home::{Home, default_home};
use crate::output::Out;

/// Runs the command line.
pub fn run(cli: Cli, out: Out) -> Result<()> {
    let home_dir = cli.home.unwrap_or_else(default_home);
    match cli.command {
        Command::Enroll {
            link,
            name,
            timeout,
        } => network::enroll(&home_dir, &link, &name, timeout, out),
        Command::Sync { watch, timeout } => network::sync(&home_dir, watch, timeout, out),
        Command::Status => report::status(&Home::open(&home_dir)?, out),
        Command::Member(command) => member::run(&mut Home::open(&home_dir)?, command, out),
        Command::Activity(command) => activity::run(&mut Home::open(&home_dir)?, command, out),
        Command::Petition(command) => petition::run(&mut Home::open(&home_dir)?, command, out),
        Command::Report { from, to, as_of } => {
            report::report(&Home::open(&home_dir)?, from, to, as_of, out)
        }
        Command::Conflicts(command) => report::conflicts(&mut Home::open(&home_dir)?, command, out),
    }
}
