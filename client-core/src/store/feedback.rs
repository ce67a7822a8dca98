//! The branch's feedback box (意见箱) through the store: finding it, answering and
//! publishing.
//!
//! A branch has one box. The branch server creates it and writes every suggestion
//! into it with its own automerge actor, so a suggestion made anonymously names no
//! member's device in the document's history. That is why the store offers no
//! "add a suggestion" operation: on a member's device it would sign the change with
//! the device's id. Devices receive the box by sync like any other document; the
//! committee answers and publishes on it here.
//!
//! Should two boxes for one branch ever exist (two committee devices creating one
//! offline), the one with the lowest document id is the branch's box, the same rule
//! [`Store::branch_document`] follows.

use super::Store;
use crate::error::{Error, Result};
use crate::ids::{BranchId, DocId, MemberId, SuggestionId};
use crate::model::{self, Answer, DocKind, FeedbackBox, FeedbackDrafts};

impl Store {
    /// The branch's feedback box and its document id, if one has been created or
    /// has arrived by sync.
    pub fn feedback_box(&self, branch: BranchId) -> Result<Option<(DocId, FeedbackBox)>> {
        match self.feedback_box_id(branch)? {
            Some(id) => Ok(Some((id, self.get(id)?))),
            None => Ok(None),
        }
    }

    /// Creates the branch's feedback box (on a committee device, or in tests; the
    /// branch server normally creates it). Refused if the branch has one.
    pub fn create_feedback_box(&mut self, branch: BranchId) -> Result<DocId> {
        if let Some(existing) = self.feedback_box_id(branch)? {
            return Err(Error::FeedbackBoxExists(existing));
        }
        self.create(&FeedbackBox::new(branch))
    }

    /// Answers a suggestion in the branch's box, as this device's member (if the
    /// device belongs to one), now. A previous answer is replaced and unpublished.
    ///
    /// The answer is a draft, kept in the branch's [`FeedbackDrafts`] (created here
    /// if the branch has none), which only the committee's devices receive; it
    /// reaches the box, and members, when it is published.
    pub fn answer_suggestion(
        &mut self,
        branch: BranchId,
        suggestion: SuggestionId,
        text: &str,
    ) -> Result<()> {
        let box_id = self.required_feedback_box(branch)?;
        let feedback: FeedbackBox = self.get(box_id)?;
        let published = match feedback.suggestion(suggestion) {
            None => return Err(Error::UnknownSuggestion(suggestion)),
            Some(s) => s.is_published(),
        };
        let by = self.own_member()?;
        let at = self.now();
        match self.drafts_ids(branch)?.first() {
            Some(&drafts) => self.update(drafts, |d: &mut FeedbackDrafts| {
                d.draft(suggestion, text, by, at)
            })?,
            None => {
                let mut drafts = FeedbackDrafts::new(branch);
                drafts.draft(suggestion, text, by, at)?;
                self.create(&drafts)?;
            }
        }
        if published {
            // The board no longer shows an answer the committee is replacing.
            self.update(box_id, |fb: &mut FeedbackBox| fb.publish(suggestion, false))?;
        }
        Ok(())
    }

    /// The committee's unpublished answer to a suggestion, if there is one (on a
    /// device that receives the branch's drafts).
    pub fn draft_answer(
        &self,
        branch: BranchId,
        suggestion: SuggestionId,
    ) -> Result<Option<Answer>> {
        let mut newest: Option<Answer> = None;
        for id in self.drafts_ids(branch)? {
            let drafts: FeedbackDrafts = self.get(id)?;
            if let Some(answer) = drafts.answer(suggestion)
                && newest.as_ref().is_none_or(|n| answer.at > n.at)
            {
                newest = Some(answer.clone());
            }
        }
        Ok(newest)
    }

    /// Puts the answer to a suggestion on the branch's public board, or (with
    /// `false`) takes it off. Publishing moves the draft answer into the box, in
    /// one transaction with its removal from the drafts.
    pub fn publish_answer(
        &mut self,
        branch: BranchId,
        suggestion: SuggestionId,
        published: bool,
    ) -> Result<()> {
        let box_id = self.required_feedback_box(branch)?;
        let draft = if published {
            self.draft_answer(branch, suggestion)?
        } else {
            None
        };
        let Some(draft) = draft else {
            // Unpublishing, or an answer already in the box (written before
            // drafts had a document of their own).
            return self.update(box_id, |fb: &mut FeedbackBox| {
                fb.publish(suggestion, published)
            });
        };
        let actor = self.actor();
        let drafts_ids = self.drafts_ids(branch)?;
        let tx = self.conn.transaction()?;
        let mut feedback = super::load(&tx, &self.docs, box_id, Some(actor.clone()))?;
        model::edit(&mut feedback.doc, |fb: &mut FeedbackBox| {
            fb.publish_answer(suggestion, draft)
        })?;
        super::save(&tx, &self.docs, &mut feedback, super::Origin::Local)?;
        let mut changed = vec![box_id];
        for id in drafts_ids {
            let mut drafts = super::load(&tx, &self.docs, id, Some(actor.clone()))?;
            model::edit(&mut drafts.doc, |d: &mut FeedbackDrafts| {
                d.take(suggestion);
                Ok(())
            })?;
            if super::save(&tx, &self.docs, &mut drafts, super::Origin::Local)? {
                changed.push(id);
            }
        }
        tx.commit()?;
        for id in changed {
            self.changed_locally(id);
        }
        Ok(())
    }

    /// The branch's drafts documents, lowest id first (two committee devices may
    /// each have created one offline; drafts in either count).
    fn drafts_ids(&self, branch: BranchId) -> Result<Vec<DocId>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT doc_id FROM documents WHERE kind = ?1 AND branch_id = ?2 ORDER BY doc_id",
        )?;
        let ids = stmt.query_map(
            rusqlite::params![DocKind::FeedbackDrafts.as_str(), branch.to_string()],
            |r| r.get::<_, String>(0),
        )?;
        ids.map(|id| id?.parse()).collect()
    }

    fn feedback_box_id(&self, branch: BranchId) -> Result<Option<DocId>> {
        match self.branch_document(branch, DocKind::FeedbackBox) {
            Ok(id) => Ok(Some(id)),
            Err(Error::MissingBranchDocument(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn required_feedback_box(&self, branch: BranchId) -> Result<DocId> {
        self.feedback_box_id(branch)?
            .ok_or(Error::MissingBranchDocument(DocKind::FeedbackBox.as_str()))
    }

    /// The member this device belongs to, as its account says.
    fn own_member(&self) -> Result<Option<MemberId>> {
        Ok(self.account()?.and_then(|account| account.member))
    }
}

#[cfg(test)]
mod tests {
    use automerge::{ActorId, AutoCommit};
    use branchline_protocol::{DeviceSecret, Role};

    use super::*;
    use crate::model::{self, Date, Level, Timestamp};
    use crate::store::Account;

    const NOW: Timestamp = Timestamp(1_741_132_800_000); // 2025-03-05

    fn day(s: &str) -> Date {
        s.parse().unwrap()
    }

    fn store() -> Store {
        let mut store = Store::open_in_memory().unwrap();
        store.set_clock(Box::new(|| NOW));
        store
    }

    fn enroll(store: &mut Store, branch: BranchId, member: MemberId) {
        store
            .save_account(&Account {
                server: "branch.example.org:4433".into(),
                cert_sha256: [0xab; 32],
                device_id: branchline_protocol::DeviceId::new_random(),
                secret: DeviceSecret::from_bytes([0x5e; 32]),
                branch,
                member: Some(member),
                role: Role::Secretary,
                device_name: "书记的手机".into(),
                branch_name: None,
            })
            .unwrap();
    }

    /// The branch server: creates the box and writes suggestions as its own actor.
    struct Server {
        doc: AutoCommit,
    }

    impl Server {
        fn actor() -> ActorId {
            ActorId::from(b"branch-server".as_slice())
        }

        fn create_box(branch: BranchId) -> Self {
            let doc = model::create_document(&FeedbackBox::new(branch), Self::actor()).unwrap();
            Server { doc }
        }

        fn suggest(&mut self, text: &str, author: Option<MemberId>) -> SuggestionId {
            let id = SuggestionId::random();
            model::edit(&mut self.doc, |fb: &mut FeedbackBox| {
                fb.add_suggestion(id, text, author, day("2025-03-04"))
            })
            .unwrap();
            id
        }
    }

    #[test]
    fn a_box_from_the_server_is_answered_and_published_on_a_device() {
        let mut store = store();
        let branch = store
            .create_branch("幸福里第一党支部", Level::Branch, None)
            .unwrap();
        assert!(store.feedback_box(branch).unwrap().is_none());

        let mut server = Server::create_box(branch);
        let anonymous = server.suggest("希望支部活动多安排在周末", None);
        let wang = MemberId::random();
        let signed = server.suggest("建议建立党员志愿服务积分", Some(wang));
        let id = store.merge(&server.doc.save()).unwrap();

        let (found, fb) = store.feedback_box(branch).unwrap().unwrap();
        assert_eq!(found, id);
        assert_eq!(fb.suggestions.len(), 2);
        assert_eq!(fb.suggestion(anonymous).unwrap().author, None);
        assert_eq!(fb.suggestion(signed).unwrap().author, Some(wang));
        assert!(store.feedback_box(BranchId::random()).unwrap().is_none());
        let summary = store.documents().unwrap();
        let summary = summary.iter().find(|d| d.id == id).unwrap();
        assert_eq!(summary.kind, "feedback_box");
        assert_eq!(summary.branch, branch);

        let secretary = MemberId::random();
        enroll(&mut store, branch, secretary);
        assert_eq!(
            store
                .publish_answer(branch, anonymous, true)
                .unwrap_err()
                .code(),
            "feedback.no_answer"
        );
        store
            .answer_suggestion(branch, anonymous, "已调整：主题党日改到周六上午")
            .unwrap();
        store.publish_answer(branch, anonymous, true).unwrap();
        store
            .answer_suggestion(branch, signed, "正在研究，下次支委会讨论")
            .unwrap();
        assert_eq!(
            store.unacked_changes(id).unwrap(),
            1,
            "the published answer waits for the server like any other edit"
        );

        let (_, fb) = store.feedback_box(branch).unwrap().unwrap();
        // The unpublished answer is a draft, outside the box members receive.
        assert!(fb.suggestion(signed).unwrap().answer.is_none());
        let draft = store.draft_answer(branch, signed).unwrap().unwrap();
        assert_eq!(draft.text, "正在研究，下次支委会讨论");
        assert_eq!(
            store.draft_answer(branch, anonymous).unwrap(),
            None,
            "published, so no longer a draft"
        );
        let answer = fb.suggestion(anonymous).unwrap().answer.clone().unwrap();
        assert_eq!(answer.by, Some(secretary));
        assert_eq!(answer.at, NOW);
        let board: Vec<&str> = fb.published().map(|(id, _)| id).collect();
        assert_eq!(board, [anonymous.to_string()]);

        store.publish_answer(branch, anonymous, false).unwrap();
        let (_, fb) = store.feedback_box(branch).unwrap().unwrap();
        assert_eq!(fb.published().count(), 0);
        assert!(store.conflicts().unwrap().is_empty());
    }

    #[test]
    fn one_box_per_branch_and_no_workflow_without_it() {
        let mut store = store();
        let branch = BranchId::random();
        let suggestion = SuggestionId::random();
        assert_eq!(
            store
                .answer_suggestion(branch, suggestion, "x")
                .unwrap_err()
                .code(),
            "doc.missing_branch_document"
        );
        assert_eq!(
            store
                .publish_answer(branch, suggestion, true)
                .unwrap_err()
                .code(),
            "doc.missing_branch_document"
        );
        let id = store.create_feedback_box(branch).unwrap();
        let err = store.create_feedback_box(branch).unwrap_err();
        assert_eq!(err.code(), "feedback.box_exists");
        assert!(matches!(err, Error::FeedbackBoxExists(existing) if existing == id));
        assert_eq!(
            store
                .answer_suggestion(branch, suggestion, "x")
                .unwrap_err()
                .code(),
            "feedback.unknown_suggestion"
        );
        assert_eq!(
            store
                .publish_answer(branch, suggestion, true)
                .unwrap_err()
                .code(),
            "feedback.unknown_suggestion"
        );

        // Without an account the answer names no member.
        store
            .update(id, |fb: &mut FeedbackBox| {
                fb.add_suggestion(suggestion, "会议室太冷", None, day("2025-03-01"))
            })
            .unwrap();
        store
            .answer_suggestion(branch, suggestion, "已修空调")
            .unwrap();
        let draft = store.draft_answer(branch, suggestion).unwrap().unwrap();
        assert_eq!(draft.by, None);
        assert_eq!(
            store
                .answer_suggestion(branch, suggestion, "  ")
                .unwrap_err()
                .code(),
            "input.empty"
        );
    }

    /// Sends every document of `from` to `to`.
    fn sync(from: &Store, to: &mut Store) {
        for doc in from.documents().unwrap() {
            to.merge(&from.export(doc.id).unwrap()).unwrap();
        }
    }

    #[test]
    fn suggestions_added_on_two_devices_offline_both_survive() {
        let mut a = store();
        let mut b = store();
        let branch = BranchId::random();
        let id = a.create_feedback_box(branch).unwrap();
        sync(&a, &mut b);
        assert_eq!(b.feedback_box(branch).unwrap().unwrap().0, id);
        assert_eq!(
            b.create_feedback_box(branch).unwrap_err().code(),
            "feedback.box_exists"
        );

        let (first, second) = (SuggestionId::random(), SuggestionId::random());
        a.update(id, |fb: &mut FeedbackBox| {
            fb.add_suggestion(first, "学习资料能否发电子版", None, day("2025-03-02"))
        })
        .unwrap();
        b.update(id, |fb: &mut FeedbackBox| {
            fb.add_suggestion(second, "希望组织参观红色教育基地", None, day("2025-03-03"))
        })
        .unwrap();
        sync(&a, &mut b);
        sync(&b, &mut a);

        for store in [&a, &b] {
            let (_, fb) = store.feedback_box(branch).unwrap().unwrap();
            assert_eq!(fb.suggestions.len(), 2);
            assert!(fb.suggestion(first).is_some() && fb.suggestion(second).is_some());
        }
        assert_eq!(
            a.load_document(id).unwrap().get_heads(),
            b.load_document(id).unwrap().get_heads()
        );
    }

    #[test]
    fn answers_written_on_two_devices_offline_are_a_conflict_to_settle() {
        let mut a = store();
        let mut b = store();
        let branch = BranchId::random();
        let suggestion = SuggestionId::random();
        let id = a.create_feedback_box(branch).unwrap();
        a.update(id, |fb: &mut FeedbackBox| {
            fb.add_suggestion(suggestion, "食堂菜价偏高", None, day("2025-03-02"))
        })
        .unwrap();
        a.answer_suggestion(branch, suggestion, "正在了解").unwrap();
        sync(&a, &mut b);
        a.set_clock(Box::new(|| Timestamp(NOW.0 + 30_000)));
        b.set_clock(Box::new(|| Timestamp(NOW.0 + 60_000)));
        a.answer_suggestion(branch, suggestion, "已与食堂沟通")
            .unwrap();
        b.answer_suggestion(branch, suggestion, "下月起调价")
            .unwrap();
        sync(&b, &mut a);

        let conflicts = a.conflicts().unwrap();
        assert_eq!(conflicts.len(), 1, "{conflicts:?}");
        assert_eq!(conflicts[0].path, format!("answers/{suggestion}"));
        let drafts = conflicts[0].doc;
        let chosen = conflicts[0].values[1].value.clone();
        a.settle_conflict(drafts, &conflicts[0].path, 1).unwrap();
        assert!(a.conflicts().unwrap().is_empty());
        a.publish_answer(branch, suggestion, true).unwrap();
        let (_, fb) = a.feedback_box(branch).unwrap().unwrap();
        let kept = fb.suggestion(suggestion).unwrap().answer.clone().unwrap();
        assert!(chosen.contains(&kept.text), "{chosen} kept as {kept:?}");
        assert!(kept.published);
        assert_ne!(drafts, id, "the drafts are a document of their own");
    }

    #[test]
    fn two_devices_drafting_without_a_drafts_document_keep_the_newest_draft() {
        let mut a = store();
        let mut b = store();
        let branch = BranchId::random();
        let suggestion = SuggestionId::random();
        let id = a.create_feedback_box(branch).unwrap();
        a.update(id, |fb: &mut FeedbackBox| {
            fb.add_suggestion(suggestion, "食堂菜价偏高", None, day("2025-03-02"))
        })
        .unwrap();
        sync(&a, &mut b);
        b.set_clock(Box::new(|| Timestamp(NOW.0 + 60_000)));
        a.answer_suggestion(branch, suggestion, "已与食堂沟通")
            .unwrap();
        b.answer_suggestion(branch, suggestion, "下月起调价")
            .unwrap();
        sync(&b, &mut a);
        // Each created a drafts document offline: both count, the newest wins.
        let draft = a.draft_answer(branch, suggestion).unwrap().unwrap();
        assert_eq!(draft.text, "下月起调价");
        a.publish_answer(branch, suggestion, true).unwrap();
        assert_eq!(
            a.draft_answer(branch, suggestion).unwrap(),
            None,
            "taken from both"
        );
        let (_, fb) = a.feedback_box(branch).unwrap().unwrap();
        assert_eq!(
            fb.suggestion(suggestion)
                .unwrap()
                .answer
                .as_ref()
                .unwrap()
                .text,
            "下月起调价"
        );
    }
}
