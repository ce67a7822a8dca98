//! One function per subcommand, over a [`Home`](crate::home::Home).

mod activity;
mod feedback;
mod member;
mod network;
mod petition;
mod rejection;
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
        Command::Petition(command) => petition::run(Home::open(&home_dir)?, command, out),
        Command::Report { from, to, as_of } => {
            report::report(&Home::open(&home_dir)?, from, to, as_of, out)
        }
        Command::Conflicts(command) => report::conflicts(&mut Home::open(&home_dir)?, command, out),
        Command::SubmissionCode { qr, timeout } => {
            network::submission_code(Home::open(&home_dir)?, qr, timeout, out)
        }
        Command::Suggest {
            text,
            anonymous,
            timeout,
        } => network::suggest(Home::open(&home_dir)?, &text, anonymous, timeout, out),
        Command::Feedback(command) => feedback::run(&mut Home::open(&home_dir)?, command, out),
        Command::Rejections => rejection::list(&Home::open(&home_dir)?, out),
    }
}
