//! Convergence: random workflow operations on two or three replicas, partial syncs in
//! between (partitions), then a full exchange in random order. Every replica must end
//! with the same documents, the same lists and reports and the same conflicts, and
//! nothing an operation returned `Ok` for may be lost.

use std::collections::BTreeSet;

use automerge::AutoSerde;
use branchline_core::model::{
    Activity, Collection, Date, Level, MemberUpdate, NewActivity, NewLibraryEntry, NewMember,
    NewPetition, Petition, SignInMode, Stage, Submitter, Timestamp,
};
use branchline_core::report::Period;
use branchline_core::store::branch_work::LibraryFilter;
use branchline_core::store::query::{ActivityFilter, MemberFilter, PetitionFilter};
use branchline_core::{BranchId, DocId, EntryId, MemberId, Store};
use proptest::prelude::*;

#[derive(Clone, Debug)]
enum Op {
    AddMember(u8),
    SetPhone(u8, u16),
    SetGroup(u8, u8),
    TransferOut(u8),
    SignIn(u8, u8, bool),
    Leave(u8, u8),
    Minutes(u8, u8),
    Award(u8, u8, i8),
    Close(u8),
    Submit,
    Assign(u8, u8),
    Progress(u8),
    Resolve(u8),
    Rate(u8, u8),
    Reopen(u8),
    /// A member pays a month's dues (the year's ledger is opened on first use, on
    /// every replica that needs one: two ledgers of a year must read as one).
    PayDues(u8, u8),
    VoidPayment(u8),
    AwardBook(u8, i8),
    ThoughtReport(u8, bool),
    AddApplicant(u8),
    Stage(u8, u8),
    Introducer(u8, u8),
    LibraryAdd(u8),
    LibraryRevise(u8, u8),
    LibraryTag(u8, u8),
    /// Replica `from` sends everything it has to replica `to`.
    Sync(u8, u8),
}

fn op() -> impl Strategy<Value = Op> {
    let i = || any::<u8>();
    prop_oneof![
        1 => i().prop_map(Op::AddMember),
        1 => (i(), any::<u16>()).prop_map(|(m, p)| Op::SetPhone(m, p)),
        1 => (i(), i()).prop_map(|(m, g)| Op::SetGroup(m, g)),
        1 => i().prop_map(Op::TransferOut),
        4 => (i(), i(), any::<bool>()).prop_map(|(a, m, r)| Op::SignIn(a, m, r)),
        2 => (i(), i()).prop_map(|(a, m)| Op::Leave(a, m)),
        2 => (i(), i()).prop_map(|(a, t)| Op::Minutes(a, t)),
        1 => (i(), i(), prop_oneof![-3i8..0, 1i8..5]).prop_map(|(a, m, p)| Op::Award(a, m, p)),
        1 => i().prop_map(Op::Close),
        1 => Just(Op::Submit),
        2 => (i(), i()).prop_map(|(p, m)| Op::Assign(p, m)),
        3 => i().prop_map(Op::Progress),
        1 => i().prop_map(Op::Resolve),
        1 => (i(), 1u8..=5).prop_map(|(p, s)| Op::Rate(p, s)),
        1 => i().prop_map(Op::Reopen),
        2 => (i(), 1u8..=12).prop_map(|(m, month)| Op::PayDues(m, month)),
        1 => i().prop_map(Op::VoidPayment),
        2 => (i(), prop_oneof![-3i8..0, 1i8..6]).prop_map(|(m, p)| Op::AwardBook(m, p)),
        1 => (i(), any::<bool>()).prop_map(|(m, late)| Op::ThoughtReport(m, late)),
        1 => i().prop_map(Op::AddApplicant),
        1 => (i(), i()).prop_map(|(m, s)| Op::Stage(m, s)),
        1 => (i(), i()).prop_map(|(m, x)| Op::Introducer(m, x)),
        1 => i().prop_map(Op::LibraryAdd),
        1 => (i(), i()).prop_map(|(e, t)| Op::LibraryRevise(e, t)),
        1 => (i(), i()).prop_map(|(e, t)| Op::LibraryTag(e, t)),
        3 => (i(), i()).prop_map(|(a, b)| Op::Sync(a, b)),
    ]
}

const NOW: i64 = 1_741_132_800_000; // 2025-03-05
const GROUPS: [&str; 3] = ["第一党小组", "第二党小组", "第三党小组"];
const LINES: [&str; 4] = [
    "一、传达文件精神。",
    "二、讨论困难党员帮扶。",
    "三、安排志愿服务。",
    "Minutes in English, 混合文字 ✓",
];

fn pick<T: Copy>(items: &[T], i: u8) -> Option<T> {
    (!items.is_empty()).then(|| items[usize::from(i) % items.len()])
}

fn sync(from: &Store, to: &mut Store) {
    for doc in from.documents().unwrap() {
        to.merge(&from.export(doc.id).unwrap()).unwrap();
    }
}

struct World {
    replicas: Vec<Store>,
    branch: BranchId,
    signed_in: BTreeSet<(DocId, MemberId)>,
    notes: BTreeSet<(DocId, String)>,
    next_note: u32,
    /// Payments, awards and thought reports recorded: none may be lost.
    entries: BTreeSet<EntryId>,
}

impl World {
    fn new(n: usize) -> Self {
        let mut first = Store::open_in_memory().unwrap();
        first.set_clock(Box::new(|| Timestamp(NOW)));
        let branch = first
            .create_branch("测试支部", Level::Branch, None)
            .unwrap();
        for name in ["王秀英", "李强", "张伟"] {
            first
                .add_member(
                    branch,
                    NewMember {
                        name: name.into(),
                        ..Default::default()
                    },
                )
                .unwrap();
        }
        for day in [3, 10] {
            let start = format!("2025-03-{day:02}T14:30");
            let end = format!("2025-03-{day:02}T16:30");
            first
                .create_activity(
                    branch,
                    NewActivity {
                        kind: "theme_day".into(),
                        title: "主题党日".into(),
                        starts_at: start.parse().ok(),
                        ends_at: end.parse().ok(),
                        ..Default::default()
                    },
                )
                .unwrap();
        }
        let mut replicas = vec![first];
        for _ in 1..n {
            let mut r = Store::open_in_memory().unwrap();
            r.set_clock(Box::new(|| Timestamp(NOW)));
            sync(&replicas[0], &mut r);
            replicas.push(r);
        }
        World {
            replicas,
            branch,
            signed_in: BTreeSet::new(),
            notes: BTreeSet::new(),
            next_note: 0,
            entries: BTreeSet::new(),
        }
    }

    fn members(&self, r: usize) -> Vec<MemberId> {
        let rows = self.replicas[r]
            .list_members(self.branch, &MemberFilter::default())
            .unwrap();
        let mut ids: Vec<_> = rows.into_iter().map(|m| m.id).collect();
        ids.sort();
        ids
    }

    fn activities(&self, r: usize) -> Vec<DocId> {
        let rows = self.replicas[r]
            .list_activities(self.branch, &ActivityFilter::default())
            .unwrap();
        let mut ids: Vec<_> = rows.into_iter().map(|a| a.id).collect();
        ids.sort();
        ids
    }

    fn library(&self, r: usize) -> Vec<DocId> {
        let rows = self.replicas[r].library(&LibraryFilter::default()).unwrap();
        let mut ids: Vec<_> = rows.into_iter().map(|e| e.id).collect();
        ids.sort();
        ids
    }

    fn petitions(&self, r: usize) -> Vec<DocId> {
        let today = Date::ymd(2025, 3, 5).unwrap();
        let rows = self.replicas[r]
            .list_petitions(self.branch, &PetitionFilter::default(), today)
            .unwrap();
        let mut ids: Vec<_> = rows.into_iter().map(|p| p.id).collect();
        ids.sort();
        ids
    }

    /// Applies one operation; validation failures are expected and ignored, but any
    /// other error (storage, corruption) fails the test.
    fn apply(&mut self, r: usize, op: &Op) {
        let n = self.replicas.len();
        let members = self.members(r);
        let activities = self.activities(r);
        let petitions = self.petitions(r);
        let library = self.library(r);
        let branch = self.branch;
        let deadline = Date::ymd(2025, 3, 20).unwrap();
        let store = &mut self.replicas[r];
        let result = match *op {
            Op::AddMember(i) => store
                .add_member(
                    branch,
                    NewMember {
                        name: format!("新成员{i}"),
                        ..Default::default()
                    },
                )
                .map(drop),
            Op::SetPhone(m, phone) => match pick(&members, m) {
                Some(m) => store.update_member(
                    m,
                    MemberUpdate {
                        phone: Some(format!("138{phone:08}")),
                        ..Default::default()
                    },
                ),
                None => Ok(()),
            },
            Op::SetGroup(m, g) => match pick(&members, m) {
                Some(m) => store.update_member(
                    m,
                    MemberUpdate {
                        group: pick(&GROUPS, g).map(str::to_owned),
                        ..Default::default()
                    },
                ),
                None => Ok(()),
            },
            Op::TransferOut(m) => match pick(&members, m) {
                Some(m) => store.transfer_out(m, Date::ymd(2025, 3, 5).unwrap()),
                None => Ok(()),
            },
            Op::SignIn(a, m, remote) => match (pick(&activities, a), pick(&members, m)) {
                (Some(a), Some(m)) => {
                    let mode = if remote {
                        SignInMode::Remote
                    } else {
                        SignInMode::OnSite
                    };
                    let result = store.sign_in(a, m, mode);
                    if result.is_ok() {
                        self.signed_in.insert((a, m));
                    }
                    result
                }
                _ => Ok(()),
            },
            Op::Leave(a, m) => match (pick(&activities, a), pick(&members, m)) {
                (Some(a), Some(m)) => store.request_leave(a, m, "出差"),
                _ => Ok(()),
            },
            Op::Minutes(a, t) => match pick(&activities, a) {
                Some(a) => {
                    let current: Activity = store.get(a).unwrap();
                    let line = LINES[usize::from(t) % LINES.len()];
                    store.write_minutes(a, &format!("{}{line}\n", current.minutes.as_str()))
                }
                None => Ok(()),
            },
            Op::Award(a, m, points) => match (pick(&activities, a), pick(&members, m)) {
                (Some(a), Some(m)) => store.award_points(a, m, i64::from(points)),
                _ => Ok(()),
            },
            Op::Close(a) => match pick(&activities, a) {
                Some(a) => store.close_activity(a),
                None => Ok(()),
            },
            Op::Submit => store
                .submit_petition(
                    branch,
                    NewPetition {
                        category: "环境卫生".into(),
                        title: "垃圾清运".into(),
                        description: "垃圾桶满了".into(),
                        submitter: Submitter {
                            contact: Some("13900000000".into()),
                            ..Default::default()
                        },
                        ..Default::default()
                    },
                )
                .map(drop),
            Op::Assign(p, m) => match (pick(&petitions, p), pick(&members, m)) {
                (Some(p), Some(m)) => store.assign_petition(p, m, deadline),
                _ => Ok(()),
            },
            Op::Progress(p) => match pick(&petitions, p) {
                Some(p) => {
                    self.next_note += 1;
                    let text = format!("进展{}-{}", r, self.next_note);
                    let result = store.add_progress(p, None, &text);
                    if result.is_ok() {
                        self.notes.insert((p, text));
                    }
                    result
                }
                None => Ok(()),
            },
            Op::Resolve(p) => match pick(&petitions, p) {
                Some(p) => store.resolve_petition(p, None, "已解决"),
                None => Ok(()),
            },
            Op::Rate(p, score) => match pick(&petitions, p) {
                Some(p) => store.rate_petition(p, score, None),
                None => Ok(()),
            },
            Op::Reopen(p) => match pick(&petitions, p) {
                Some(p) => store.reopen_petition(p, None, "不满意"),
                None => Ok(()),
            },
            Op::PayDues(m, month) => match pick(&members, m) {
                Some(m) => {
                    let month = u32::from(month);
                    let paid = store.record_dues_payment(
                        branch,
                        m,
                        2025,
                        month..=month,
                        Some(2000),
                        Date::ymd(2025, 3, 5).unwrap(),
                    );
                    paid.map(|id| {
                        self.entries.insert(id);
                    })
                }
                None => Ok(()),
            },
            Op::VoidPayment(i) => {
                let view = store.dues_ledger_view(branch, 2025).unwrap();
                let ids: Vec<EntryId> = view.payments.iter().map(|p| p.entry).collect();
                match pick(&ids, i) {
                    Some(id) => {
                        store.void_dues_payment(id, "记错了", Date::ymd(2025, 3, 5).unwrap())
                    }
                    None => Ok(()),
                }
            }
            Op::AwardBook(m, points) => match pick(&members, m) {
                Some(m) => store
                    .award(
                        branch,
                        m,
                        None,
                        Some(i64::from(points)),
                        Some("志愿服务"),
                        Date::ymd(2025, 3, 5).unwrap(),
                    )
                    .map(|id| {
                        self.entries.insert(id);
                    }),
                None => Ok(()),
            },
            Op::ThoughtReport(m, late) => match pick(&members, m) {
                Some(m) => {
                    let due = Date::ymd(2025, 3, if late { 1 } else { 31 }).unwrap();
                    store
                        .record_thought_report(branch, m, due, Date::ymd(2025, 3, 5).unwrap())
                        .map(|id| {
                            self.entries.insert(id);
                        })
                }
                None => Ok(()),
            },
            Op::AddApplicant(m) => match pick(&members, m) {
                Some(m) => store
                    .add_applicant(branch, m, Date::ymd(2024, 1, 10).unwrap())
                    .map(drop),
                None => Ok(()),
            },
            Op::Stage(m, s) => match pick(&members, m) {
                Some(m) => {
                    let stage = Stage::ALL[usize::from(s) % Stage::ALL.len()];
                    let on = Date(
                        Date::ymd(2024, 2, 1).unwrap().0
                            + chrono::Days::new(u64::from(s % 7) * 100),
                    );
                    store.record_applicant_stage(m, stage, on, None)
                }
                None => Ok(()),
            },
            Op::Introducer(m, x) => match (pick(&members, m), pick(&members, x)) {
                (Some(m), Some(x)) => store.add_introducer(m, x),
                _ => Ok(()),
            },
            Op::LibraryAdd(t) => store
                .write_library_entry(
                    branch,
                    NewLibraryEntry {
                        collection: if t % 2 == 0 {
                            Collection::Problem
                        } else {
                            Collection::Case
                        },
                        title: format!("经验{t}"),
                        problem: "问题".into(),
                        solution: LINES[usize::from(t) % LINES.len()].into(),
                        tags: vec![],
                        written_on: Date::ymd(2025, 3, 5).unwrap(),
                    },
                )
                .map(drop),
            Op::LibraryRevise(e, t) => match pick(&library, e) {
                Some(e) => {
                    let current = store.library_entry(e).unwrap();
                    let line = LINES[usize::from(t) % LINES.len()];
                    let solution = format!("{}{line}", current.solution.as_str());
                    store.revise_library_entry(e, None, None, Some(&solution))
                }
                None => Ok(()),
            },
            Op::LibraryTag(e, t) => match pick(&library, e) {
                Some(e) => store.tag_library_entry(e, &[GROUPS[usize::from(t) % 3].to_owned()]),
                None => Ok(()),
            },
            Op::Sync(from, to) => {
                let (from, to) = (usize::from(from) % n, usize::from(to) % n);
                if from != to {
                    let (a, b) = if from < to {
                        let (left, right) = self.replicas.split_at_mut(to);
                        (&left[from], &mut right[0])
                    } else {
                        let (left, right) = self.replicas.split_at_mut(from);
                        (&right[0], &mut left[to])
                    };
                    sync(a, b);
                }
                Ok(())
            }
        };
        if let Err(e) = result {
            let code = e.code();
            assert!(
                code.starts_with("activity.")
                    || code.starts_with("petition.")
                    || code.starts_with("member.")
                    || code.starts_with("ledger.")
                    || code.starts_with("applicant.")
                    || code.starts_with("input."),
                "unexpected error {code}: {e}"
            );
        }
    }

    /// Everything a user can see, for comparing replicas.
    fn view(&self, r: usize) -> String {
        let store = &self.replicas[r];
        let today = Date::ymd(2025, 3, 5).unwrap();
        let period = Period::new(
            Date::ymd(2025, 1, 1).unwrap(),
            Date::ymd(2025, 12, 31).unwrap(),
        )
        .unwrap();
        let mut out = String::new();
        for doc in store.documents().unwrap() {
            let automerge = store.load_document(doc.id).unwrap();
            let json = serde_json::to_string(&AutoSerde::from(&automerge)).unwrap();
            out += &format!("{} {:?} {json}\n", doc.id, doc.heads);
        }
        out += &format!(
            "{:?}\n",
            store
                .list_members(self.branch, &MemberFilter::default())
                .unwrap()
        );
        out += &format!(
            "{:?}\n",
            store
                .list_activities(self.branch, &ActivityFilter::default())
                .unwrap()
        );
        for a in self.activities(r) {
            out += &format!("{:?}\n", store.attendance(a).unwrap());
        }
        out += &format!(
            "{:?}\n",
            store
                .list_petitions(self.branch, &PetitionFilter::default(), today)
                .unwrap()
        );
        out += &format!("{:?}\n", store.report(self.branch, period, today).unwrap());
        out += &format!("{:?}\n", store.dues_ledger_view(self.branch, 2025).unwrap());
        out += &format!(
            "{:?}\n",
            store.dues_overview(self.branch, 2025, today).unwrap()
        );
        out += &format!("{:?}\n", store.ranking(self.branch, period).unwrap());
        out += &format!("{:?}\n", store.applicants(self.branch).unwrap());
        out += &format!("{:?}\n", store.library(&LibraryFilter::default()).unwrap());
        out += &format!("{:?}\n", store.conflicts().unwrap());
        out
    }
}

fn period_2025() -> Period {
    Period::new(
        Date::ymd(2025, 1, 1).unwrap(),
        Date::ymd(2025, 12, 31).unwrap(),
    )
    .unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn replicas_converge_and_lose_nothing(
        n in 2usize..=3,
        ops in prop::collection::vec((0usize..3, op()), 1..60),
        order in prop::collection::vec((0usize..3, 0usize..3), 0..12),
    ) {
        let mut world = World::new(n);
        for (r, op) in &ops {
            world.apply(r % n, op);
        }
        // Heal the partition: some random exchanges, then everyone with everyone.
        for (from, to) in order {
            world.apply(0, &Op::Sync(from as u8, to as u8));
        }
        for _ in 0..2 {
            for from in 0..n {
                for to in 0..n {
                    world.apply(0, &Op::Sync(from as u8, to as u8));
                }
            }
        }
        let first = world.view(0);
        for r in 1..n {
            prop_assert_eq!(&world.view(r), &first, "replica {} differs", r);
        }
        for (activity, member) in &world.signed_in {
            let rows = world.replicas[0].attendance(*activity).unwrap();
            prop_assert!(rows.iter().any(|row| row.member == *member && row.present), "lost sign-in");
        }
        let view = world.replicas[0].dues_ledger_view(world.branch, 2025).unwrap();
        let mut recorded: BTreeSet<EntryId> = view.payments.iter().map(|p| p.entry).collect();
        recorded.extend(world.replicas[0].awards(world.branch, period_2025()).unwrap().iter().map(|a| a.entry));
        for m in world.members(0) {
            recorded.extend(world.replicas[0].thought_reports(m).unwrap().iter().map(|t| t.entry));
        }
        for entry in &world.entries {
            prop_assert!(recorded.contains(entry), "lost ledger entry {}", entry);
        }
        for (petition, text) in &world.notes {
            let p: Petition = world.replicas[0].get(*petition).unwrap();
            prop_assert!(p.progress.iter().any(|note| &note.text == text), "lost note {}", text);
        }
    }
}
