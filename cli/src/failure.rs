//! Why a command failed: a stable code for scripts, a message for people, and
//! the process exit status.
//!
//! Exit statuses group failures by what the person can do about them:
//!
//! | status | meaning |
//! |---|---|
//! | 0 | done |
//! | 1 | an unexpected failure (disk, database) |
//! | 2 | the command line itself was wrong (from clap) |
//! | 3 | invalid input (also a request the server found invalid), or a rule of the records refused it |
//! | 4 | the server could not be reached in time |
//! | 5 | the server refused (invite expired or used, device revoked, no access, an edit against the branch's rules, too many requests) |
//! | 6 | the home directory is not a usable Branchline store |

use std::fmt;

use branchline_core::net::NetError;

/// Exit status: an unexpected failure.
pub const EXIT_FAILURE: u8 = 1;
/// Exit status: invalid input or a refused operation.
pub const EXIT_INVALID: u8 = 3;
/// Exit status: the server could not be reached.
pub const EXIT_NETWORK: u8 = 4;
/// Exit status: the server refused.
pub const EXIT_REFUSED: u8 = 5;
/// Exit status: the home directory is not usable.
pub const EXIT_HOME: u8 = 6;

/// A failed command.
#[derive(Debug)]
pub struct Failure {
    /// Stable code, e.g. `member.unknown` or `home.not_enrolled`.
    pub code: String,
    /// What went wrong, for people.
    pub message: String,
    /// The process exit status.
    pub exit: u8,
}

impl Failure {
    /// A failure with its code, message and exit status.
    pub fn new(code: impl Into<String>, message: impl Into<String>, exit: u8) -> Self {
        Self {
            code: code.into(),
            message: message.into(),
            exit,
        }
    }

    /// Invalid input (exit status 3).
    pub fn invalid(code: impl Into<String>, message: impl Into<String>) -> Self {
        Self::new(code, message, EXIT_INVALID)
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[{}] {}", self.code, self.message)
    }
}

impl From<branchline_core::Error> for Failure {
    fn from(e: branchline_core::Error) -> Self {
        let code = e.code();
        let exit = match code {
            "store.sqlite" => EXIT_FAILURE,
            _ if code.starts_with("store.") => EXIT_HOME,
            _ => EXIT_INVALID,
        };
        Self::new(code, e.to_string(), exit)
    }
}

impl From<NetError> for Failure {
    fn from(e: NetError) -> Self {
        let exit = match &e {
            NetError::Store(_) => match e {
                NetError::Store(inner) => return inner.into(),
                _ => EXIT_FAILURE,
            },
            NetError::NotEnrolled => EXIT_HOME,
            NetError::Offline | NetError::Connection(_) | NetError::Timeout => EXIT_NETWORK,
            // A request with a bad field is the person's input to fix.
            NetError::Refused { code, .. } if code.as_str() == "request.invalid" => EXIT_INVALID,
            NetError::Refused { .. } => EXIT_REFUSED,
            _ => EXIT_FAILURE,
        };
        Self::new(e.code(), e.to_string(), exit)
    }
}

impl From<std::io::Error> for Failure {
    fn from(e: std::io::Error) -> Self {
        Self::new("cli.io", e.to_string(), EXIT_FAILURE)
    }
}

/// A command's result.
pub type Result<T, E = Failure> = std::result::Result<T, E>;
