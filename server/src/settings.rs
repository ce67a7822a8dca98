//! The server's settings file, `branchline-server.toml` in the data
//! directory (part of the `branchline-server` binary).
//!
//! `init` writes the file with every setting and a comment on each; `serve`
//! reads it when present (or the file given with `--config`). A flag given
//! to `serve` overrides the file, and the file overrides the built-in
//! default. Unknown keys are refused, so a misspelt setting is an error
//! rather than silently ignored.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use branchline_server::ServerConfig;
use serde::Deserialize;

use crate::Failure;

/// The file name of the settings file inside the data directory.
pub const FILE_NAME: &str = "branchline-server.toml";

/// The listen address when neither flag nor file gives one.
pub const DEFAULT_LISTEN: &str = "0.0.0.0:4433";

/// Settings as the file holds them: each may be absent.
#[derive(Debug, Default, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// The UDP address to listen on.
    pub listen: Option<SocketAddr>,
    /// The `host:port` devices reach the server at.
    pub public_addr: Option<String>,
    /// Connections beyond this many are refused.
    pub max_connections: Option<usize>,
    /// At most this many documents stay loaded in memory.
    pub max_loaded_docs: Option<usize>,
    /// A loaded document unused this many seconds is unloaded.
    pub idle_unload_secs: Option<u64>,
}

impl Settings {
    /// `self` with every setting `over` gives replaced by it (flags over
    /// the file).
    pub fn overridden_by(self, over: Settings) -> Settings {
        Settings {
            listen: over.listen.or(self.listen),
            public_addr: over.public_addr.or(self.public_addr),
            max_connections: over.max_connections.or(self.max_connections),
            max_loaded_docs: over.max_loaded_docs.or(self.max_loaded_docs),
            idle_unload_secs: over.idle_unload_secs.or(self.idle_unload_secs),
        }
    }

    /// The server configuration these settings describe, defaults filling
    /// the gaps.
    pub fn server_config(&self, data_dir: PathBuf) -> Result<ServerConfig, Failure> {
        let mut config = ServerConfig::new(data_dir, self.listen.unwrap_or_else(default_listen));
        if let Some(addr) = &self.public_addr {
            config.public_addr = Some(check_public_addr(addr)?);
        }
        if let Some(max) = self.max_connections {
            config.max_connections = positive("max_connections", max)?;
        }
        if let Some(max) = self.max_loaded_docs {
            config.max_loaded_docs = positive("max_loaded_docs", max)?;
        }
        if let Some(secs) = self.idle_unload_secs {
            config.idle_unload = Duration::from_secs(positive("idle_unload_secs", secs)?);
        }
        Ok(config)
    }
}

fn positive<T: PartialEq + Default + std::fmt::Display>(
    what: &str,
    value: T,
) -> Result<T, Failure> {
    if value == T::default() {
        Err(Failure::new(
            "config.invalid",
            format!("{what} must be greater than 0"),
        ))
    } else {
        Ok(value)
    }
}

/// Checks a `host:port` address for invite links.
pub fn check_public_addr(addr: &str) -> Result<String, Failure> {
    let addr = addr.trim();
    let valid = addr
        .rsplit_once(':')
        .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p > 0));
    if valid {
        Ok(addr.to_owned())
    } else {
        Err(Failure::new(
            "config.invalid",
            format!("public address {addr:?}: expected host:port, e.g. branch.example.org:4433"),
        ))
    }
}

/// The default listen address.
pub fn default_listen() -> SocketAddr {
    DEFAULT_LISTEN
        .parse()
        .expect("the default listen address is valid")
}

/// The address written into invite links when none is configured: the
/// listen address, with `localhost` for an unspecified IP (as the server
/// itself derives it).
pub fn derived_public_addr(listen: SocketAddr) -> String {
    if listen.ip().is_unspecified() {
        format!("localhost:{}", listen.port())
    } else {
        listen.to_string()
    }
}

/// Reads a settings file; a malformed one is a `config.invalid` error
/// naming the file, line and column.
pub fn load(path: &Path) -> Result<Settings, Failure> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        Failure::new(
            "config.unreadable",
            format!("cannot read {}: {e}", path.display()),
        )
    })?;
    parse(&text).map_err(|(line, column, message)| {
        Failure::new(
            "config.invalid",
            format!(
                "{}, line {line}, column {column}: {message}",
                path.display()
            ),
        )
    })
}

/// Parses settings; an error carries the 1-based line and column.
fn parse(text: &str) -> Result<Settings, (usize, usize, String)> {
    toml::from_str(text).map_err(|e: toml::de::Error| {
        let at = e.span().map_or(0, |span| span.start.min(text.len()));
        let before = &text[..at];
        let line = before.matches('\n').count() + 1;
        let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        (line, column, e.message().trim().to_owned())
    })
}

/// The text of a new settings file, every setting explained. A public
/// address given at `init` is written as a setting; otherwise it stays a
/// comment, so it keeps following `listen`.
pub fn template(listen: SocketAddr, public_addr: Option<&str>) -> String {
    let public = match public_addr {
        Some(addr) => format!("public_addr = {}", toml_string(addr)),
        None => format!(
            "# public_addr = {}",
            toml_string(&derived_public_addr(listen))
        ),
    };
    let defaults = ServerConfig::new(PathBuf::new(), listen);
    format!(
        "# Branchline server settings, read by `branchline-server serve`.
# Every setting is also a flag of `serve` (e.g. --max-connections 500),
# which overrides this file. Log levels come from RUST_LOG (e.g. RUST_LOG=debug).

# The UDP address the server listens on (QUIC).
listen = {listen}

# The host:port devices reach this server at; it is written into invite links.
# Default: the listen address, with localhost for 0.0.0.0.
{public}

# Connections beyond this many are refused; above 80 % of it, new devices must
# first prove their address. A hostile device can make the server buffer up to
# about 256 MiB, so lower this on a small machine.
max_connections = {max_connections}

# At most this many documents stay loaded in memory (least recently used first out).
max_loaded_docs = {max_loaded_docs}

# A loaded document unused for this many seconds is unloaded from memory.
idle_unload_secs = {idle}
",
        listen = toml_string(&listen.to_string()),
        max_connections = defaults.max_connections,
        max_loaded_docs = defaults.max_loaded_docs,
        idle = defaults.idle_unload.as_secs(),
    )
}

fn toml_string(text: &str) -> String {
    toml::Value::String(text.to_owned()).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_template_parses_back_to_its_settings() {
        let listen: SocketAddr = "127.0.0.1:5000".parse().unwrap();
        let settings = parse(&template(listen, Some("branch.example.org:5000"))).unwrap();
        assert_eq!(settings.listen, Some(listen));
        assert_eq!(
            settings.public_addr.as_deref(),
            Some("branch.example.org:5000")
        );
        assert_eq!(settings.max_connections, Some(1000));
        let derived = parse(&template(default_listen(), None)).unwrap();
        assert_eq!(derived.public_addr, None);
    }

    #[test]
    fn flags_override_the_file() {
        let file = Settings {
            listen: Some("127.0.0.1:1".parse().unwrap()),
            max_connections: Some(10),
            ..Settings::default()
        };
        let flags = Settings {
            max_connections: Some(20),
            ..Settings::default()
        };
        let merged = file.overridden_by(flags);
        assert_eq!(merged.max_connections, Some(20));
        assert_eq!(merged.listen, Some("127.0.0.1:1".parse().unwrap()));
        let config = merged.server_config(PathBuf::from("d")).unwrap();
        assert_eq!(config.max_connections, 20);
        assert_eq!(config.max_loaded_docs, 1000);
    }

    #[test]
    fn errors_name_the_line() {
        let (line, column, message) =
            parse("listen = \"127.0.0.1:1\"\nmax_connections = \"many\"\n").unwrap_err();
        assert_eq!((line, column), (2, 19), "{message}");
        let (line, _, message) = parse("\n\nmax_conections = 3\n").unwrap_err();
        assert_eq!(line, 3);
        assert!(message.contains("max_conections"), "{message}");
        let zero = Settings {
            max_connections: Some(0),
            ..Settings::default()
        };
        assert_eq!(
            zero.server_config(PathBuf::new()).unwrap_err().code,
            "config.invalid"
        );
        assert!(check_public_addr("nohost").is_err());
        assert!(check_public_addr(":443").is_err());
        assert!(check_public_addr("example.org:0").is_err());
        assert_eq!(derived_public_addr(default_listen()), "localhost:4433");
    }
}
