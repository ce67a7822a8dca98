//! `FeedbackBox`: one per branch, the suggestions members put in it (意见箱) and the
//! branch's answers.
//!
//! A member drops a suggestion in the box, anonymously if they wish; the committee
//! answers it and, once the answer is ready, publishes it on the branch's public
//! board ([`FeedbackBox::published`]). An answer is never public until someone
//! publishes it, and replacing an answer takes it off the board again, so a draft
//! reply is never shown by accident.
//!
//! Draft answers live in a document of their own, [`FeedbackDrafts`], which only
//! the committee's devices receive: members receive the box with its whole history,
//! so an answer written into it, even unpublished, would reach every member's phone.
//! Publishing copies the draft into the box.
//!
//! Merge semantics:
//! - suggestions are a map keyed by a random [`SuggestionId`], so suggestions added
//!   concurrently (two members' phones, or the server and a committee device) all
//!   survive the merge;
//! - the suggestion's text is automerge text;
//! - the answer is a register: each answer is written as a new object (it is keyed by
//!   its time), so two committee members answering concurrently keep one whole answer
//!   (never the words of one with the name of the other) and
//!   [`crate::conflict`] reports the other;
//! - whether an answer is published is a register inside that answer, not beside it.
//!   Publishing an answer on one device while it is replaced on another then leaves
//!   the new answer unpublished: the publish applied to the old one. (A flag beside
//!   the answer cannot do this: automerge drops a write of the value a field already
//!   holds, so "replace and unpublish" writes nothing to an unpublished flag and the
//!   concurrent publish would put the new, unreviewed answer on the board.)
//!
//! Anonymity: an anonymous suggestion has no author and records only the day it was
//! made, never the time. The document's history still names the automerge actor that
//! wrote each change, so a member's own device must not write an anonymous suggestion
//! into the box: the branch server writes every suggestion with its own actor (see
//! [`super::create_document`] and [`super::edit`]).

use std::collections::BTreeMap;

use autosurgeon::{Hydrate, Reconcile, Text};

use super::scalar::{Date, Timestamp};
use super::{DocKind, FieldPath, Meta, Record, required};
use crate::error::{Error, Result};
use crate::ids::{BranchId, MemberId, SuggestionId};

/// The most characters (Unicode scalar values) a suggestion may have, once trimmed.
pub const MAX_SUGGESTION_CHARS: usize = 2000;

/// The branch's answer to a suggestion.
#[derive(Clone, Debug, PartialEq, Eq, Hydrate, Reconcile)]
pub struct Answer {
    /// What the branch answers.
    pub text: String,
    /// The member who answered, if known.
    #[autosurgeon(missing = "Default::default")]
    pub by: Option<MemberId>,
    /// When it was answered. Also the answer's identity: a new answer replaces the
    /// old one as a whole instead of being merged into it field by field.
    #[key]
    pub at: Timestamp,
    /// Whether this answer is on the public board.
    #[autosurgeon(missing = "Default::default")]
    pub published: bool,
}

/// One suggestion in the box.
#[derive(Clone, Debug, PartialEq, Eq, Hydrate, Reconcile)]
pub struct Suggestion {
    /// What the member suggests.
    pub text: Text,
    /// The day it was made; no time of day, so it cannot be matched to who was where.
    pub on: Date,
    /// The member who made it; `None` when they chose to stay anonymous.
    #[autosurgeon(missing = "Default::default")]
    pub author: Option<MemberId>,
    /// The branch's answer, once answered.
    #[autosurgeon(missing = "Default::default")]
    pub answer: Option<Answer>,
}

impl Suggestion {
    /// Whether the suggestion's answer is on the public board.
    pub fn is_published(&self) -> bool {
        self.answer.as_ref().is_some_and(|a| a.published)
    }
}

/// One per branch: members' suggestions and the branch's answers.
#[derive(Clone, Debug, Hydrate, Reconcile)]
pub struct FeedbackBox {
    /// Document header.
    pub meta: Meta,
    /// Suggestions keyed by suggestion id.
    pub suggestions: BTreeMap<String, Suggestion>,
}

impl Record for FeedbackBox {
    const KIND: DocKind = DocKind::FeedbackBox;
    // Only the header is read by path; everything else is the committee's (rules.rs).
    const PATHS: &'static [FieldPath] = &[];

    fn meta(&self) -> &Meta {
        &self.meta
    }
}

impl FeedbackBox {
    /// An empty feedback box for `branch`.
    pub fn new(branch: BranchId) -> Self {
        FeedbackBox {
            meta: Meta::new(DocKind::FeedbackBox, branch),
            suggestions: BTreeMap::new(),
        }
    }

    /// The suggestion `id`, if it is in the box.
    pub fn suggestion(&self, id: SuggestionId) -> Option<&Suggestion> {
        self.suggestions.get(&id.to_string())
    }

    fn suggestion_mut(&mut self, id: SuggestionId) -> Result<&mut Suggestion> {
        self.suggestions
            .get_mut(&id.to_string())
            .ok_or(Error::UnknownSuggestion(id))
    }

    /// Puts a suggestion in the box; `author` is `None` for an anonymous one.
    ///
    /// The text is trimmed and must be 1 to [`MAX_SUGGESTION_CHARS`] characters.
    pub fn add_suggestion(
        &mut self,
        id: SuggestionId,
        text: &str,
        author: Option<MemberId>,
        on: Date,
    ) -> Result<()> {
        let text = required("suggestion", text)?;
        let found = text.chars().count();
        if found > MAX_SUGGESTION_CHARS {
            return Err(Error::SuggestionTooLong {
                found,
                max: MAX_SUGGESTION_CHARS,
            });
        }
        let key = id.to_string();
        if self.suggestions.contains_key(&key) {
            return Err(Error::DuplicateSuggestion(id));
        }
        self.suggestions.insert(
            key,
            Suggestion {
                text: Text::with_value(text),
                on,
                author,
                answer: None,
            },
        );
        Ok(())
    }

    /// Answers suggestion `id`. An earlier answer is replaced and taken off the
    /// public board until someone publishes the new one.
    pub fn answer(
        &mut self,
        id: SuggestionId,
        text: &str,
        by: Option<MemberId>,
        at: Timestamp,
    ) -> Result<()> {
        let text = required("answer", text)?;
        self.suggestion_mut(id)?.answer = Some(Answer {
            text,
            by,
            at,
            published: false,
        });
        Ok(())
    }

    /// Puts `answer` (a draft from [`FeedbackDrafts`]) on the public board as the
    /// answer to suggestion `id`.
    pub fn publish_answer(&mut self, id: SuggestionId, answer: Answer) -> Result<()> {
        self.suggestion_mut(id)?.answer = Some(Answer {
            published: true,
            ..answer
        });
        Ok(())
    }

    /// Puts the answer to suggestion `id` on the public board, or (with `false`)
    /// takes it off. Only an answered suggestion can be published.
    pub fn publish(&mut self, id: SuggestionId, published: bool) -> Result<()> {
        match &mut self.suggestion_mut(id)?.answer {
            Some(answer) => answer.published = published,
            None if published => return Err(Error::SuggestionNotAnswered(id)),
            None => {}
        }
        Ok(())
    }

    /// What members read on the public board: answered and published suggestions,
    /// oldest day first (ties in id order), with their ids.
    pub fn published(&self) -> impl Iterator<Item = (&str, &Suggestion)> {
        let mut board: Vec<(&str, &Suggestion)> = self
            .suggestions
            .iter()
            .filter(|(_, s)| s.is_published())
            .map(|(id, s)| (id.as_str(), s))
            .collect();
        board.sort_by_key(|(_, s)| s.on);
        board.into_iter()
    }
}

/// One per branch, read and written by the committee only: answers to
/// suggestions that are not published yet, keyed by suggestion id.
///
/// Each draft is a whole [`Answer`] keyed by its time, as in the box, so two
/// committee members drafting concurrently keep one whole draft and the other
/// shows as a conflict.
#[derive(Clone, Debug, Hydrate, Reconcile)]
pub struct FeedbackDrafts {
    /// Document header.
    pub meta: Meta,
    /// Draft answers keyed by suggestion id.
    pub answers: BTreeMap<String, Answer>,
}

impl Record for FeedbackDrafts {
    const KIND: DocKind = DocKind::FeedbackDrafts;
    const PATHS: &'static [FieldPath] = &[];

    fn meta(&self) -> &Meta {
        &self.meta
    }
}

impl FeedbackDrafts {
    /// No drafts, for `branch`.
    pub fn new(branch: BranchId) -> Self {
        FeedbackDrafts {
            meta: Meta::new(DocKind::FeedbackDrafts, branch),
            answers: BTreeMap::new(),
        }
    }

    /// Drafts (or redrafts) the answer to suggestion `id`.
    pub fn draft(
        &mut self,
        id: SuggestionId,
        text: &str,
        by: Option<MemberId>,
        at: Timestamp,
    ) -> Result<()> {
        let text = required("answer", text)?;
        self.answers.insert(
            id.to_string(),
            Answer {
                text,
                by,
                at,
                published: false,
            },
        );
        Ok(())
    }

    /// The draft answer to suggestion `id`, if there is one.
    pub fn answer(&self, id: SuggestionId) -> Option<&Answer> {
        self.answers.get(&id.to_string())
    }

    /// Takes the draft answer to suggestion `id` out, to publish it.
    pub fn take(&mut self, id: SuggestionId) -> Option<Answer> {
        self.answers.remove(&id.to_string())
    }
}

#[cfg(test)]
mod tests {
    use automerge::{ActorId, AutoCommit};

    use super::*;
    use crate::model::{self, create_document, edit};

    fn day(s: &str) -> Date {
        s.parse().unwrap()
    }

    fn box_with_one() -> (FeedbackBox, SuggestionId) {
        let mut fb = FeedbackBox::new(BranchId::random());
        let id = SuggestionId::random();
        fb.add_suggestion(id, "  希望党课多结合本社区实际  ", None, day("2025-03-05"))
            .unwrap();
        (fb, id)
    }

    #[test]
    fn a_suggestion_is_trimmed_and_kept_by_its_id() {
        let (fb, id) = box_with_one();
        let s = fb.suggestion(id).unwrap();
        assert_eq!(s.text.as_str(), "希望党课多结合本社区实际");
        assert_eq!(s.on, day("2025-03-05"));
        assert_eq!(s.author, None);
        assert!(s.answer.is_none() && !s.is_published());
        assert!(fb.suggestion(SuggestionId::random()).is_none());
    }

    #[test]
    fn a_suggestion_needs_text_within_the_limit() {
        let mut fb = FeedbackBox::new(BranchId::random());
        let on = day("2025-03-05");
        let err = fb
            .add_suggestion(SuggestionId::random(), " \n ", None, on)
            .unwrap_err();
        assert_eq!(err.code(), "input.empty");
        // The limit counts characters, not bytes: 2000 Chinese characters fit.
        let longest = "意".repeat(MAX_SUGGESTION_CHARS);
        fb.add_suggestion(SuggestionId::random(), &longest, None, on)
            .unwrap();
        let too_long = format!("{longest}见");
        let err = fb
            .add_suggestion(SuggestionId::random(), &too_long, None, on)
            .unwrap_err();
        assert_eq!(err.code(), "feedback.too_long");
        assert!(matches!(
            err,
            Error::SuggestionTooLong {
                found: 2001,
                max: 2000
            }
        ));
        assert_eq!(fb.suggestions.len(), 1);
    }

    #[test]
    fn the_same_suggestion_id_is_refused_twice() {
        let (mut fb, id) = box_with_one();
        let author = MemberId::random();
        let err = fb
            .add_suggestion(id, "另一条", Some(author), day("2025-03-06"))
            .unwrap_err();
        assert_eq!(err.code(), "feedback.duplicate_suggestion");
        assert_eq!(fb.suggestion(id).unwrap().author, None, "first one kept");
    }

    #[test]
    fn answering_again_replaces_the_answer_and_unpublishes_it() {
        let (mut fb, id) = box_with_one();
        let secretary = MemberId::random();
        fb.answer(id, "下季度党课请社区书记讲", Some(secretary), Timestamp(1))
            .unwrap();
        fb.publish(id, true).unwrap();
        assert!(fb.suggestion(id).unwrap().is_published());
        fb.answer(id, " 改为七月请社区书记讲 ", None, Timestamp(2))
            .unwrap();
        let s = fb.suggestion(id).unwrap();
        assert_eq!(
            s.answer,
            Some(Answer {
                text: "改为七月请社区书记讲".into(),
                by: None,
                at: Timestamp(2),
                published: false,
            })
        );
        assert!(
            !s.is_published(),
            "a replaced answer must be published again"
        );
        assert_eq!(
            fb.answer(id, "  ", None, Timestamp(3)).unwrap_err().code(),
            "input.empty"
        );
    }

    #[test]
    fn unknown_suggestions_are_refused() {
        let (mut fb, _) = box_with_one();
        let other = SuggestionId::random();
        assert_eq!(
            fb.answer(other, "x", None, Timestamp(1))
                .unwrap_err()
                .code(),
            "feedback.unknown_suggestion"
        );
        assert_eq!(
            fb.publish(other, true).unwrap_err().code(),
            "feedback.unknown_suggestion"
        );
    }

    #[test]
    fn only_an_answer_can_be_published() {
        let (mut fb, id) = box_with_one();
        assert_eq!(
            fb.publish(id, true).unwrap_err().code(),
            "feedback.no_answer"
        );
        fb.publish(id, false).unwrap();
        fb.answer(id, "已采纳", None, Timestamp(1)).unwrap();
        fb.publish(id, true).unwrap();
        fb.publish(id, false).unwrap();
        assert!(!fb.suggestion(id).unwrap().is_published());
    }

    #[test]
    fn the_board_shows_published_answers_oldest_day_first() {
        let mut fb = FeedbackBox::new(BranchId::random());
        let (late, early, draft, open) = (
            SuggestionId::random(),
            SuggestionId::random(),
            SuggestionId::random(),
            SuggestionId::random(),
        );
        fb.add_suggestion(late, "晚", None, day("2025-03-09"))
            .unwrap();
        fb.add_suggestion(early, "早", Some(MemberId::random()), day("2025-03-01"))
            .unwrap();
        fb.add_suggestion(draft, "草稿", None, day("2025-03-02"))
            .unwrap();
        fb.add_suggestion(open, "未答", None, day("2025-03-03"))
            .unwrap();
        for id in [late, early, draft] {
            fb.answer(id, "答复", None, Timestamp(1)).unwrap();
        }
        fb.publish(late, true).unwrap();
        fb.publish(early, true).unwrap();
        let board: Vec<String> = fb.published().map(|(id, _)| id.to_owned()).collect();
        assert_eq!(board, [early.to_string(), late.to_string()]);
    }

    #[test]
    fn the_box_round_trips_through_a_document() {
        let (mut fb, id) = box_with_one();
        fb.answer(id, "好", Some(MemberId::random()), Timestamp(7))
            .unwrap();
        fb.publish(id, true).unwrap();
        let doc = create_document(&fb, ActorId::random()).unwrap();
        let back: FeedbackBox = model::hydrate(&doc).unwrap();
        assert_eq!(back.meta, fb.meta);
        assert_eq!(back.suggestions, fb.suggestions);
    }

    #[test]
    fn the_server_writes_anonymous_suggestions_with_its_own_actor() {
        // Exactly what the branch server does: create the box, then add a suggestion
        // a member sent anonymously, both as the server's actor.
        let server = ActorId::from(b"branch-server".as_slice());
        let branch = BranchId::random();
        let mut doc = create_document(&FeedbackBox::new(branch), server.clone()).unwrap();
        doc.commit();
        let created = doc.get_heads();
        let id = SuggestionId::random();
        edit(&mut doc, |fb: &mut FeedbackBox| {
            fb.add_suggestion(id, "活动通知能否提前一周发", None, day("2025-03-05"))
        })
        .unwrap();
        doc.commit();
        let changes = doc.get_changes(&created);
        assert_eq!(changes.len(), 1);
        assert_eq!(changes[0].actor_id(), &server);
        assert_eq!(changes[0].timestamp(), 0, "no time of day in the history");
        let fb: FeedbackBox = model::hydrate(&doc).unwrap();
        assert_eq!(fb.meta.branch, branch);
        let s = fb.suggestion(id).unwrap();
        assert_eq!(s.author, None);
        assert_eq!(s.text.as_str(), "活动通知能否提前一周发");

        // A refused suggestion leaves the document as it was.
        let heads = doc.get_heads();
        let err = edit(&mut doc, |fb: &mut FeedbackBox| {
            fb.add_suggestion(id, "again", None, day("2025-03-05"))
        })
        .unwrap_err();
        assert_eq!(err.code(), "feedback.duplicate_suggestion");
        assert_eq!(doc.get_heads(), heads);
    }

    /// Two copies of `doc`, each edited by its own actor.
    fn fork(doc: &mut AutoCommit) -> (AutoCommit, AutoCommit) {
        let a = doc.fork().with_actor(ActorId::random());
        let b = doc.fork().with_actor(ActorId::random());
        (a, b)
    }

    #[test]
    fn concurrent_answers_keep_one_whole_answer_and_report_the_other() {
        let (fb, id) = box_with_one();
        let mut doc = create_document(&fb, ActorId::random()).unwrap();
        edit(&mut doc, |fb: &mut FeedbackBox| {
            fb.answer(id, "初稿", None, Timestamp(1))
        })
        .unwrap();
        let (mut a, mut b) = fork(&mut doc);
        let (ma, mb) = (MemberId::random(), MemberId::random());
        edit(&mut a, |fb: &mut FeedbackBox| {
            fb.answer(id, "甲的答复", Some(ma), Timestamp(2))
        })
        .unwrap();
        edit(&mut b, |fb: &mut FeedbackBox| {
            fb.answer(id, "乙的答复", Some(mb), Timestamp(3))
        })
        .unwrap();
        a.merge(&mut b).unwrap();
        let merged: FeedbackBox = model::hydrate(&a).unwrap();
        let answer = merged.suggestion(id).unwrap().answer.clone().unwrap();
        assert!(
            answer
                == Answer {
                    text: "甲的答复".into(),
                    by: Some(ma),
                    at: Timestamp(2),
                    published: false,
                }
                || answer
                    == Answer {
                        text: "乙的答复".into(),
                        by: Some(mb),
                        at: Timestamp(3),
                        published: false,
                    },
            "one whole answer wins, not a mix: {answer:?}"
        );
        let conflicts = crate::conflict::find(merged.meta.id, &a);
        let path = format!("suggestions/{id}/answer");
        assert!(
            conflicts.iter().any(|c| c.path == path),
            "the losing answer is reported: {conflicts:?}"
        );
    }

    #[test]
    fn publishing_while_the_answer_is_replaced_elsewhere_never_shows_the_new_one() {
        let (fb, id) = box_with_one();
        let mut doc = create_document(&fb, ActorId::random()).unwrap();
        edit(&mut doc, |fb: &mut FeedbackBox| {
            fb.answer(id, "初稿", None, Timestamp(1))
        })
        .unwrap();
        let (mut a, mut b) = fork(&mut doc);
        edit(&mut a, |fb: &mut FeedbackBox| fb.publish(id, true)).unwrap();
        edit(&mut b, |fb: &mut FeedbackBox| {
            fb.answer(id, "改稿", None, Timestamp(2))
        })
        .unwrap();
        for (mut into, mut from) in [(a.fork(), b.fork()), (b, a)] {
            into.merge(&mut from).unwrap();
            let merged: FeedbackBox = model::hydrate(&into).unwrap();
            let s = merged.suggestion(id).unwrap();
            assert_eq!(s.answer.as_ref().unwrap().text, "改稿");
            assert!(!s.is_published(), "the new answer was never reviewed");
            assert_eq!(merged.published().count(), 0);
        }
    }
}
