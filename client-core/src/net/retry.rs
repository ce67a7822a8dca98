//! Trying a document's sync again after the server failed on its side.
//!
//! A node whose database is restarting answers a document sync with
//! `server.unavailable` (or `server.internal`, `server.busy`): nothing was
//! stored, and the same sync can succeed a moment later. The connection
//! itself is fine, so instead of dropping the document until the next
//! reconnect, the device starts its sync again on the same connection after
//! a growing delay. A document that keeps failing ends the connection after
//! [`MAX_ATTEMPTS`], and the ordinary reconnect (with its own longer backoff,
//! and another node when there are several) takes over.

use std::collections::HashMap;
use std::time::Duration;

use tokio::time::Instant;

use crate::DocId;

/// Retries of one document on one connection before the connection is
/// given up: with the delays below, about half a minute of failures.
pub(crate) const MAX_ATTEMPTS: u32 = 6;

/// The first delay; each further failure doubles it.
const FIRST_DELAY: Duration = Duration::from_millis(500);

/// Documents waiting to be synced again, and how often each has failed.
#[derive(Debug, Default)]
pub(crate) struct DocRetries {
    /// When each waiting document is due.
    due: HashMap<DocId, Instant>,
    /// Failures in a row per document, since the server last did something
    /// for it.
    failures: HashMap<DocId, u32>,
}

/// A document failed more often than a connection tries it.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct GaveUp {
    pub doc: DocId,
    pub attempts: u32,
}

impl DocRetries {
    /// `doc`'s sync failed on the server's side at `now`: schedules the next
    /// try, or gives up when it has failed [`MAX_ATTEMPTS`] times in a row.
    pub(crate) fn failed(&mut self, doc: DocId, now: Instant) -> Result<Duration, GaveUp> {
        let failures = self.failures.entry(doc).or_default();
        *failures += 1;
        if *failures > MAX_ATTEMPTS {
            return Err(GaveUp {
                doc,
                attempts: *failures - 1,
            });
        }
        let delay = delay_after(*failures);
        self.due.insert(doc, now + delay);
        Ok(delay)
    }

    /// The server stored or sent something for `doc`: its failures are over.
    pub(crate) fn succeeded(&mut self, doc: DocId) {
        self.failures.remove(&doc);
    }

    /// When the next waiting document is due.
    pub(crate) fn next_due(&self) -> Option<Instant> {
        self.due.values().min().copied()
    }

    /// The documents due at `now`, no longer waiting.
    pub(crate) fn take_due(&mut self, now: Instant) -> Vec<DocId> {
        let due: Vec<DocId> = self
            .due
            .iter()
            .filter(|(_, at)| **at <= now)
            .map(|(doc, _)| *doc)
            .collect();
        for doc in &due {
            self.due.remove(doc);
        }
        due
    }

    /// No document is waiting for another try.
    pub(crate) fn is_empty(&self) -> bool {
        self.due.is_empty()
    }
}

/// The delay before try `failures + 1`: 0.5 s, 1 s, 2 s … 16 s.
fn delay_after(failures: u32) -> Duration {
    FIRST_DELAY.saturating_mul(1 << failures.saturating_sub(1).min(16))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc() -> DocId {
        DocId::random()
    }

    #[test]
    fn delays_double_until_the_connection_gives_up() {
        let (mut retries, at) = (DocRetries::default(), Instant::now());
        let doc = doc();
        let delays: Vec<_> = (0..MAX_ATTEMPTS)
            .map(|_| retries.failed(doc, at).unwrap().as_millis())
            .collect();
        assert_eq!(delays, [500, 1000, 2000, 4000, 8000, 16000]);
        assert_eq!(
            retries.failed(doc, at),
            Err(GaveUp {
                doc,
                attempts: MAX_ATTEMPTS
            })
        );
    }

    #[test]
    fn a_success_starts_the_count_again() {
        let (mut retries, at) = (DocRetries::default(), Instant::now());
        let doc = doc();
        for _ in 0..MAX_ATTEMPTS {
            retries.failed(doc, at).unwrap();
        }
        retries.succeeded(doc);
        assert_eq!(retries.failed(doc, at), Ok(FIRST_DELAY));
    }

    #[test]
    fn only_due_documents_are_taken_and_each_once() {
        let (mut retries, at) = (DocRetries::default(), Instant::now());
        let (first, second) = (doc(), doc());
        retries.failed(first, at).unwrap();
        retries.failed(second, at).unwrap();
        retries.failed(second, at).unwrap();
        assert_eq!(retries.next_due(), Some(at + FIRST_DELAY));
        assert_eq!(retries.take_due(at), Vec::<DocId>::new());
        assert_eq!(retries.take_due(at + FIRST_DELAY), [first]);
        assert!(!retries.is_empty());
        assert_eq!(retries.take_due(at + Duration::from_secs(1)), [second]);
        assert!(retries.is_empty());
        assert_eq!(retries.next_due(), None);
    }
}
