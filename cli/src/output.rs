//! What a command prints: for people in English or Chinese, or JSON for
//! scripts (`--json`).
//!
//! Human output goes to stdout; a command that creates something prints only
//! the new id on stdout (so `ID=$(branchline member add …)` works) and its
//! sentence for people on stderr. With `--json` every command prints one JSON
//! value on stdout, and a failure prints `{"error": {"code", "message"}}` on
//! stderr.

use std::fmt::Display;
use std::io::Write as _;

use branchline_core::model::Timestamp;
use clap::ValueEnum;
use serde::Serialize;
use unicode_width::UnicodeWidthStr as _;

use crate::failure::Failure;

/// The language of messages for people.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Lang {
    /// English.
    En,
    /// 中文.
    Zh,
}

impl Lang {
    /// The language of the system locale: Chinese for `zh*`, else English.
    pub fn from_locale() -> Self {
        match sys_locale::get_locale() {
            Some(locale) if locale.to_ascii_lowercase().starts_with("zh") => Lang::Zh,
            _ => Lang::En,
        }
    }

    /// Picks the text in this language.
    pub fn pick<'a>(self, en: &'a str, zh: &'a str) -> &'a str {
        match self {
            Lang::En => en,
            Lang::Zh => zh,
        }
    }
}

/// Where and how a command prints.
#[derive(Clone, Copy, Debug)]
pub struct Out {
    /// Language for people.
    pub lang: Lang,
    /// JSON for scripts instead.
    pub json: bool,
}

impl Out {
    /// Picks the text in the output language.
    pub fn say(&self, en: impl Into<String>, zh: impl Into<String>) -> String {
        match self.lang {
            Lang::En => en.into(),
            Lang::Zh => zh.into(),
        }
    }

    /// Something new was made: its id on stdout, the sentence on stderr.
    pub fn created(&self, id: impl Display, sentence: String) {
        if self.json {
            self.json_value(&serde_json::json!({ "id": id.to_string() }));
        } else {
            println!("{id}");
            eprintln!("{sentence}");
        }
    }

    /// An operation succeeded.
    pub fn done(&self, sentence: String) {
        if self.json {
            self.json_value(&serde_json::json!({ "ok": true }));
        } else {
            println!("{sentence}");
        }
    }

    /// A value for scripts, or its rendering for people.
    pub fn show<T: Serialize + ?Sized>(&self, value: &T, human: impl FnOnce()) {
        if self.json {
            self.json_value(value);
        } else {
            human();
        }
    }

    fn json_value<T: Serialize + ?Sized>(&self, value: &T) {
        let mut stdout = std::io::stdout().lock();
        // Serializing our own rows cannot fail; a closed stdout is not worth a panic.
        let _ = serde_json::to_writer_pretty(&mut stdout, value);
        let _ = writeln!(stdout);
    }

    /// Reports a failure on stderr.
    pub fn failure(&self, failure: &Failure) {
        if self.json {
            let value = serde_json::json!({
                "error": { "code": failure.code, "message": failure.message_in(self.lang) }
            });
            eprintln!("{value}");
        } else {
            let message = failure.message_in(self.lang);
            match self.lang {
                Lang::En => eprintln!("error [{}]: {message}", failure.code),
                Lang::Zh => eprintln!("错误 [{}]：{message}", failure.code),
            }
        }
    }
}

/// A table for people: columns padded to their widest cell, counting wide
/// (CJK) characters as two columns.
pub struct Table {
    rows: Vec<Vec<String>>,
}

impl Table {
    /// A table with this header row.
    pub fn new<const N: usize>(header: [&str; N]) -> Self {
        Self {
            rows: vec![header.iter().map(|h| (*h).to_owned()).collect()],
        }
    }

    /// Adds a row.
    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    /// Prints the table, or a line saying it is empty.
    pub fn print(&self, empty: &str) {
        if self.rows.len() == 1 {
            println!("{empty}");
            return;
        }
        let columns = self.rows.iter().map(Vec::len).max().unwrap_or(0);
        let widths: Vec<usize> = (0..columns)
            .map(|c| {
                self.rows
                    .iter()
                    .filter_map(|r| r.get(c))
                    .map(|cell| cell.width())
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        for row in &self.rows {
            let mut line = String::new();
            for (c, cell) in row.iter().enumerate() {
                line.push_str(cell);
                if c + 1 < row.len() {
                    line.extend(std::iter::repeat_n(' ', widths[c] - cell.width() + 2));
                }
            }
            println!("{}", line.trim_end());
        }
    }
}

/// Local wall-clock time of an instant, to the minute.
pub fn local_time(at: Timestamp) -> String {
    chrono::DateTime::from_timestamp_millis(at.0)
        .map(|t| {
            t.with_timezone(&chrono::Local)
                .format("%Y-%m-%d %H:%M")
                .to_string()
        })
        .unwrap_or_else(|| at.0.to_string())
}

/// An optional value, or `-`.
pub fn or_dash(value: Option<impl Display>) -> String {
    value.map_or_else(|| "-".to_owned(), |v| v.to_string())
}

/// The first eight characters of an id: enough to tell documents apart on
/// screen, and accepted back as a prefix.
pub fn short(id: impl Display) -> String {
    let mut text = id.to_string();
    text.truncate(8);
    text
}
