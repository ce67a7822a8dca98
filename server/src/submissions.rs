//! Requests the server turns into documents it writes itself: a resident's
//! petition (民情直通车) and a member's suggestion for the branch's feedback
//! box (意见箱).
//!
//! Both arrive on a request stream rather than through document sync, so
//! the server can check them as a whole (required fields, bounded lengths),
//! limit how often one device sends them, and write them under its own
//! automerge actor. A petition's document then belongs to the device that
//! sent it (access treats that device as its creator), which is how a
//! resident with no member id follows their own request and sees nothing
//! else.
//!
//! Limits, per device, `submissions_per_device_per_day` of each kind in any
//! 24 hours:
//!
//! - **petitions** are counted from the audit log (`petition.submitted`
//!   rows of the device), so a restart does not reset the count;
//! - **suggestions** are counted in memory only ([`RateWindow`]): an
//!   anonymous suggestion must leave nothing on disk that links it to the
//!   device, so the count is lost on restart, by design.

use std::collections::{HashMap, VecDeque};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use branchline_protocol::DeviceId;

use crate::audit::event;
use crate::error::Result;
use crate::sql::{Sql, params};

/// The window both per-device limits count in.
pub(crate) const DAY: Duration = Duration::from_secs(24 * 3600);

/// Longest category, in characters.
pub(crate) const MAX_CATEGORY: usize = 50;
/// Longest petition title, in characters.
pub(crate) const MAX_TITLE: usize = 200;
/// Longest petition description, in characters.
pub(crate) const MAX_DESCRIPTION: usize = 5000;
/// Longest location, in characters.
pub(crate) const MAX_LOCATION: usize = 200;
/// Longest submitter name, in characters.
pub(crate) const MAX_NAME: usize = 100;
/// Longest contact (phone, WeChat id…), in characters.
pub(crate) const MAX_CONTACT: usize = 100;
/// Longest suggestion, in characters (the feedback box's own bound).
pub(crate) const MAX_SUGGESTION: usize = branchline_core::model::MAX_SUGGESTION_CHARS;

/// A request field that failed validation: the message sent back with
/// `request.invalid`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Invalid {
    /// The field, as the protocol names it.
    pub field: &'static str,
    /// Why, for logs and developers (apps show their own wording).
    pub reason: String,
}

impl std::fmt::Display for Invalid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.field, self.reason)
    }
}

/// The fields of a `SubmitPetition`, trimmed; optional ones left blank
/// are `None`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PetitionFields {
    pub category: String,
    pub title: String,
    pub description: String,
    pub location: Option<String>,
    pub name: Option<String>,
    pub contact: Option<String>,
}

fn required(field: &'static str, value: &str, max: usize) -> Result<String, Invalid> {
    let value = value.trim();
    if value.is_empty() {
        return Err(Invalid {
            field,
            reason: "required".into(),
        });
    }
    bounded(field, value, max)
}

fn optional(
    field: &'static str,
    value: Option<&str>,
    max: usize,
) -> Result<Option<String>, Invalid> {
    match value.map(str::trim).filter(|v| !v.is_empty()) {
        None => Ok(None),
        Some(value) => bounded(field, value, max).map(Some),
    }
}

fn bounded(field: &'static str, value: &str, max: usize) -> Result<String, Invalid> {
    if value.chars().count() > max {
        return Err(Invalid {
            field,
            reason: format!("at most {max} characters"),
        });
    }
    Ok(value.to_owned())
}

impl PetitionFields {
    /// Checks and trims a petition request: category, title and
    /// description required; every field bounded.
    pub(crate) fn validate(
        category: &str,
        title: &str,
        description: &str,
        location: Option<&str>,
        name: Option<&str>,
        contact: Option<&str>,
    ) -> Result<PetitionFields, Invalid> {
        Ok(PetitionFields {
            category: required("category", category, MAX_CATEGORY)?,
            title: required("title", title, MAX_TITLE)?,
            description: required("description", description, MAX_DESCRIPTION)?,
            location: optional("location", location, MAX_LOCATION)?,
            name: optional("name", name, MAX_NAME)?,
            contact: optional("contact", contact, MAX_CONTACT)?,
        })
    }
}

/// Checks and trims a suggestion's text.
pub(crate) fn validate_suggestion(text: &str) -> Result<String, Invalid> {
    required("text", text, MAX_SUGGESTION)
}

/// Petitions the server wrote for `device` since `since_ms` (from the
/// audit log).
pub(crate) fn petitions_submitted_since(
    conn: &dyn Sql,
    device: DeviceId,
    since_ms: i64,
) -> Result<u64> {
    let count = conn
        .query_one(
            "SELECT count(*) FROM audit WHERE event = ?1 AND at_ms >= ?2 AND device_id = ?3",
            params![event::PETITION_SUBMITTED, since_ms, &device.to_string()],
        )?
        .int(0)?;
    Ok(count.max(0) as u64)
}

/// A sliding-window counter per device, in memory only.
///
/// Holds at most `limit` instants per device that used it within the
/// window; devices whose instants all expired are dropped when the map
/// grows, so memory stays bounded by the devices active in one window.
#[derive(Debug)]
pub(crate) struct RateWindow {
    window_ms: i64,
    /// Each device's uses in the window, in milliseconds since the epoch.
    uses: Mutex<HashMap<DeviceId, VecDeque<i64>>>,
}

/// Sweep expired devices out of a [`RateWindow`] once it holds this many.
const SWEEP_ABOVE: usize = 1024;

impl RateWindow {
    /// A counter over `window`.
    pub(crate) fn new(window: Duration) -> Self {
        RateWindow {
            window_ms: i64::try_from(window.as_millis()).unwrap_or(i64::MAX),
            uses: Mutex::new(HashMap::new()),
        }
    }

    /// Counts one use by `device` at `now` and returns true, unless it
    /// already used `limit` within the window before `now` (then nothing
    /// is counted).
    pub(crate) fn try_take(&self, device: DeviceId, limit: u32, now_ms: i64) -> bool {
        let mut uses = self.uses.lock().unwrap_or_else(PoisonError::into_inner);
        let window = self.window_ms;
        // A clock set back makes earlier uses look newer, never expired:
        // the limit holds however the time moves.
        let expired = |at: &i64| now_ms.saturating_sub(*at) >= window;
        if uses.len() >= SWEEP_ABOVE {
            uses.retain(|_, times| {
                times.retain(|at| !expired(at));
                !times.is_empty()
            });
        }
        let times = uses.entry(device).or_default();
        while times.front().is_some_and(expired) {
            times.pop_front();
        }
        if times.len() >= limit as usize {
            return false;
        }
        times.push_back(now_ms);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn petition_fields_are_trimmed_required_and_bounded() {
        let ok = PetitionFields::validate(
            " 环境卫生 ",
            " 垃圾站满了 ",
            "三号楼旁的垃圾站一周没有清运。\n",
            Some("  "),
            Some(" 王阿姨"),
            Some("138 0000 0000"),
        )
        .unwrap();
        assert_eq!(ok.category, "环境卫生");
        assert_eq!(ok.title, "垃圾站满了");
        assert_eq!(ok.description, "三号楼旁的垃圾站一周没有清运。");
        assert_eq!(ok.location, None);
        assert_eq!(ok.name.as_deref(), Some("王阿姨"));

        let field = |r: Result<PetitionFields, Invalid>| r.unwrap_err().field;
        assert_eq!(
            field(PetitionFields::validate(" ", "t", "d", None, None, None)),
            "category"
        );
        assert_eq!(
            field(PetitionFields::validate("c", "", "d", None, None, None)),
            "title"
        );
        assert_eq!(
            field(PetitionFields::validate("c", "t", "\n\t", None, None, None)),
            "description"
        );
        // Lengths count characters, not bytes: 200 Chinese characters fit.
        let title = "路".repeat(MAX_TITLE);
        assert!(PetitionFields::validate("c", &title, "d", None, None, None).is_ok());
        let title = "路".repeat(MAX_TITLE + 1);
        assert_eq!(
            field(PetitionFields::validate("c", &title, "d", None, None, None)),
            "title"
        );
        let long = "x".repeat(MAX_DESCRIPTION + 1);
        assert_eq!(
            field(PetitionFields::validate("c", "t", &long, None, None, None)),
            "description"
        );
        let contact = "1".repeat(MAX_CONTACT + 1);
        assert_eq!(
            field(PetitionFields::validate(
                "c",
                "t",
                "d",
                None,
                None,
                Some(&contact)
            )),
            "contact"
        );
    }

    #[test]
    fn suggestions_are_required_and_bounded() {
        assert_eq!(
            validate_suggestion("  多组织线上学习 ").unwrap(),
            "多组织线上学习"
        );
        assert_eq!(validate_suggestion("   ").unwrap_err().field, "text");
        assert!(validate_suggestion(&"字".repeat(MAX_SUGGESTION + 1)).is_err());
    }

    #[test]
    fn rate_window_counts_per_device_and_forgets_old_uses() {
        let window = RateWindow::new(Duration::from_secs(60));
        let start = 1_700_000_000_000_i64;
        let (a, b) = (DeviceId::new_random(), DeviceId::new_random());
        assert!(window.try_take(a, 2, start));
        assert!(window.try_take(a, 2, start + 10_000));
        assert!(!window.try_take(a, 2, start + 20_000));
        // Refused uses are not counted, and other devices are unaffected.
        assert!(window.try_take(b, 2, start + 20_000));
        // The first use leaves the window after 60 s: one slot again.
        assert!(window.try_take(a, 2, start + 60_000));
        assert!(!window.try_take(a, 2, start + 61_000));
        assert!(!window.try_take(a, 0, start));
    }

    #[test]
    fn rate_window_sweeps_idle_devices() {
        let window = RateWindow::new(Duration::from_secs(1));
        let start = 1_700_000_000_000_i64;
        for _ in 0..SWEEP_ABOVE {
            assert!(window.try_take(DeviceId::new_random(), 1, start));
        }
        assert!(window.try_take(DeviceId::new_random(), 1, start + 2_000));
        assert_eq!(window.uses.lock().unwrap().len(), 1);
    }

    #[test]
    fn petitions_are_counted_per_device_from_the_audit_log() {
        let dir = tempfile::tempdir().unwrap();
        let conn = crate::db::open(&dir.path().join(crate::db::FILE_NAME)).unwrap();
        let (a, b) = (DeviceId::new_random(), DeviceId::new_random());
        let now = crate::db::now_ms();
        for device in [a, a, b] {
            let mut record = crate::audit::AuditRecord::new(event::PETITION_SUBMITTED);
            record.device = Some(device);
            record.insert(&conn).unwrap();
        }
        // An older submission, outside the window.
        Sql::execute(
            &conn,
            "INSERT INTO audit (at_ms, event, device_id) VALUES (?1, ?2, ?3)",
            params![
                now - 25 * 3600 * 1000,
                event::PETITION_SUBMITTED,
                &a.to_string()
            ],
        )
        .unwrap();
        let since = now - DAY.as_millis() as i64;
        assert_eq!(petitions_submitted_since(&conn, a, since).unwrap(), 2);
        assert_eq!(petitions_submitted_since(&conn, b, since).unwrap(), 1);
        assert_eq!(
            petitions_submitted_since(&conn, DeviceId::new_random(), since).unwrap(),
            0
        );
    }
}
