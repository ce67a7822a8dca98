//! A seeded generator of realistic branches, for tests and benchmarks.
//!
//! The default is the branch of the field surveys: 60 members over two years, four
//! activities a month with about 80% attendance and some leave, 300 resident petitions
//! with three to six progress notes each, Chinese names and text. Every record is
//! built through the same workflow operations the app uses, one automerge change per
//! operation, each by the device of the person who did it, so the documents have the
//! history real ones would. The same seed gives the same branch, ids included.

use std::collections::BTreeMap;

use automerge::{ActorId, AutoCommit};
use chrono::{Duration, Months, NaiveDate, NaiveTime};
use rand::seq::IndexedRandom;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::error::Result;
use crate::ids::{BranchId, DeviceId, DocId, EntryId, MemberId};
use crate::model::{
    self, Activity, Applicant, BranchProfile, Category, Collection, Date, DocKind, DuesLedger,
    EvaluationGrade, Gender, Level, LibraryEntry, LocalDateTime, MemberFile, NewActivity,
    NewLibraryEntry, NewMember, NewPetition, Petition, PointsBook, Record, Roster, SignInMode,
    SpendingCategory, Stage, Submitter, Timestamp,
};

/// What branch to generate.
#[derive(Clone, Debug)]
pub struct WorkloadSpec {
    /// Seed: the same seed gives the same branch.
    pub seed: u64,
    /// Members on the roster (including activists and applicants).
    pub members: usize,
    /// Years of history.
    pub years: u32,
    /// Activities held each month.
    pub activities_per_month: u32,
    /// Chance an expected member signs in.
    pub attendance: f64,
    /// Chance an expected member who does not come asks for leave.
    pub leave: f64,
    /// Petitions over the whole history.
    pub petitions: usize,
    /// The first day of the history.
    pub start: Date,
    /// The general branch or committee above the branch, if any.
    pub parent: Option<BranchId>,
    /// The branch's number in its community (第一党支部, 第二党支部…), from 1.
    pub number: u32,
}

impl Default for WorkloadSpec {
    fn default() -> Self {
        WorkloadSpec {
            seed: 1,
            members: 60,
            years: 2,
            activities_per_month: 4,
            attendance: 0.8,
            leave: 0.4,
            petitions: 300,
            start: Date(NaiveDate::from_ymd_opt(2024, 1, 1).expect("a valid date")),
            parent: None,
            number: 1,
        }
    }
}

impl WorkloadSpec {
    /// The last day of the history.
    pub fn end(&self) -> Date {
        let end = self.start.0 + Months::new(12 * self.years);
        Date(end.pred_opt().unwrap_or(end))
    }
}

/// One generated document, saved.
#[derive(Clone, Debug)]
pub struct GeneratedDoc {
    /// Its id.
    pub id: DocId,
    /// Its kind.
    pub kind: DocKind,
    /// Its automerge bytes (`save()`).
    pub bytes: Vec<u8>,
}

/// A generated branch: the typed records (the truth tests compare against) and the
/// saved documents.
#[derive(Clone, Debug)]
pub struct GeneratedBranch {
    /// The spec it was made from.
    pub spec: WorkloadSpec,
    /// The branch.
    pub branch: BranchId,
    /// Its profile.
    pub profile: BranchProfile,
    /// Its roster.
    pub roster: Roster,
    /// One file per member.
    pub member_files: Vec<MemberFile>,
    /// Every activity.
    pub activities: Vec<Activity>,
    /// Every petition.
    pub petitions: Vec<Petition>,
    /// One dues ledger per year.
    pub dues_ledgers: Vec<DuesLedger>,
    /// One points book per year.
    pub points_books: Vec<PointsBook>,
    /// One file per applicant and activist.
    pub applicants: Vec<Applicant>,
    /// The branch's problem-library and case-collection entries.
    pub library: Vec<LibraryEntry>,
    /// All documents, saved.
    pub documents: Vec<GeneratedDoc>,
    /// Who wrote as each actor: every change's author, for replaying the
    /// branch's traffic as the devices that made it.
    pub authors: BTreeMap<DeviceId, Author>,
}

/// The person behind a device of the generated branch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Author {
    /// The secretary's phone.
    Secretary,
    /// A member's phone.
    Member(MemberId),
    /// A resident's phone, which filed one petition.
    Resident,
}

const SURNAMES: &[&str] = &[
    "王", "李", "张", "刘", "陈", "杨", "黄", "赵", "吴", "周", "徐", "孙", "马", "朱", "胡", "郭",
    "何", "高", "林", "罗", "郑", "梁", "谢", "宋", "唐", "许", "韩", "冯", "邓", "曹",
];
const GIVEN: &[&str] = &[
    "伟", "芳", "娜", "秀英", "敏", "静", "丽", "强", "磊", "军", "洋", "勇", "艳", "杰", "娟",
    "涛", "明", "超", "秀兰", "霞", "平", "刚", "桂英", "建华", "国强", "志明", "海燕", "红梅",
    "建国", "玉兰", "春生", "德胜", "淑珍", "立新", "卫东",
];
const GROUPS: &[&str] = &["第一党小组", "第二党小组", "第三党小组", "第四党小组"];
const CATEGORIES: &[(&str, &[&str])] = &[
    (
        "环境卫生",
        &["楼道堆放杂物", "垃圾清运不及时", "绿化带杂草丛生"],
    ),
    ("道路交通", &["路灯损坏", "路面坑洼积水", "电动车乱停放"]),
    ("邻里纠纷", &["楼上漏水", "噪音扰民", "宠物扰邻"]),
    (
        "养老助残",
        &["独居老人需要照护", "无障碍通道被占用", "助餐点开放时间"],
    ),
    ("物业服务", &["电梯故障", "门禁失灵", "供暖不热"]),
];
const PLACES: &[&str] = &[
    "党群服务中心",
    "村委会会议室",
    "社区活动室",
    "新时代文明实践站",
];
const STEPS: &[&str] = &[
    "已电话联系居民了解情况",
    "已到现场查看",
    "已协调物业公司处理",
    "已上报街道相关科室",
    "施工队已进场",
    "已回访居民确认进展",
];

/// Builds one document through workflow operations, one change per operation.
struct Builder {
    doc: AutoCommit,
}

impl Builder {
    fn new<R: Record>(record: &R, actor: DeviceId) -> Result<Self> {
        let mut doc = model::create_document(record, actor_of(actor))?;
        doc.commit();
        Ok(Builder { doc })
    }

    fn edit<R: Record, T>(
        &mut self,
        actor: DeviceId,
        op: impl FnOnce(&mut R) -> Result<T>,
    ) -> Result<T> {
        self.doc.set_actor(actor_of(actor));
        let out = model::edit(&mut self.doc, op)?;
        self.doc.commit();
        Ok(out)
    }

    fn finish<R: Record>(mut self) -> Result<(R, GeneratedDoc)> {
        let record: R = model::hydrate(&self.doc)?;
        let doc = GeneratedDoc {
            id: record.meta().id,
            kind: R::KIND,
            bytes: self.doc.save(),
        };
        Ok((record, doc))
    }
}

fn actor_of(device: DeviceId) -> ActorId {
    ActorId::from(device.as_bytes().as_slice())
}

/// Milliseconds of a branch wall-clock time, taking branch time as UTC+8.
fn instant(local: chrono::NaiveDateTime) -> Timestamp {
    Timestamp((local - Duration::hours(8)).and_utc().timestamp_millis())
}

struct Gen {
    rng: ChaCha8Rng,
}

impl Gen {
    fn id(&mut self) -> [u8; 16] {
        let mut bytes: [u8; 16] = self.rng.random();
        // Shape the bytes as a version 4 UUID, as real ids are.
        bytes[6] = (bytes[6] & 0x0f) | 0x40;
        bytes[8] = (bytes[8] & 0x3f) | 0x80;
        bytes
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        items.choose(&mut self.rng).expect("a non-empty list")
    }

    fn name(&mut self) -> String {
        format!("{}{}", self.pick(SURNAMES), self.pick(GIVEN))
    }

    fn day_between(&mut self, from: NaiveDate, to: NaiveDate) -> NaiveDate {
        let span = (to - from).num_days().max(0);
        from + Duration::days(self.rng.random_range(0..=span))
    }
}

/// Generates the branch described by `spec`.
pub fn generate(spec: &WorkloadSpec) -> Result<GeneratedBranch> {
    let mut g = Gen {
        rng: ChaCha8Rng::seed_from_u64(spec.seed),
    };
    let branch = BranchId::from_bytes(g.id());
    let start = spec.start.0;
    let end = spec.end().0;
    let secretary_device = DeviceId::from_bytes(g.id());
    let mut authors = BTreeMap::new();
    let mut documents = Vec::new();

    // Profile: the usual kinds, groups, a committee term and the dues rate.
    let name = format!("幸福里社区第{}党支部", chinese_number(spec.number));
    let mut profile = BranchProfile::new(branch, &name, Level::Branch, spec.parent)?;
    profile.meta.id = DocId::from_bytes(g.id());
    let mut b = Builder::new(&profile, secretary_device)?;
    b.edit(secretary_device, |p: &mut BranchProfile| {
        for group in GROUPS {
            p.add_group(group)?;
        }
        // A five-year term ending four months after the history: renewal is due.
        let term_end = start + Months::new(12 * spec.years + 4);
        p.set_term(Date(term_end - Months::new(60)), Date(term_end))?;
        p.monthly_dues_fen = 2000;
        Ok(())
    })?;
    let (profile, doc) = b.finish::<BranchProfile>()?;
    documents.push(doc);

    // Roster: most are full members; a few joined during the history, left, or died.
    let mut roster = Roster::new(branch);
    roster.meta.id = DocId::from_bytes(g.id());
    let mut b = Builder::new(&roster, secretary_device)?;
    let mut devices = BTreeMap::new();
    for i in 0..spec.members {
        let id = MemberId::from_bytes(g.id());
        devices.insert(id, DeviceId::from_bytes(g.id()));
        let category = match i * 60 / spec.members.max(1) {
            0..=49 => Category::Full,
            50..=53 => Category::Probationary,
            54..=56 => Category::Activist,
            _ => Category::Applicant,
        };
        let birth = g.day_between(
            NaiveDate::from_ymd_opt(1948, 1, 1).expect("date"),
            NaiveDate::from_ymd_opt(2002, 12, 31).expect("date"),
        );
        let earliest_join = birth + Months::new(12 * 18);
        // One in ten joined during the history, the others before it.
        let joined = if g.rng.random_bool(0.1) && earliest_join < start {
            g.day_between(start, end)
        } else {
            g.day_between(earliest_join.min(start), start.max(earliest_join))
        };
        let new = NewMember {
            name: g.name(),
            gender: Some(if g.rng.random_bool(0.45) {
                Gender::Female
            } else {
                Gender::Male
            }),
            birth_date: Some(Date(birth)),
            joined: Some(Date(joined.max(birth + Duration::days(1)))),
            category: Some(category),
            group: Some((*g.pick(GROUPS)).to_owned()),
            post: match i {
                0 => Some("书记".to_owned()),
                1 => Some("组织委员".to_owned()),
                2 => Some("宣传委员".to_owned()),
                _ => None,
            },
            phone: Some(format!(
                "1{}",
                g.rng.random_range(3_000_000_000u64..9_999_999_999)
            )),
        };
        b.edit(secretary_device, |r: &mut Roster| {
            r.add_member_with_id(id, new)
        })?;
    }
    let member_ids: Vec<MemberId> = devices.keys().copied().collect();
    // One member in twelve is silent (attends about 30%); the others attend a little
    // more than the mean, so the branch as a whole attends `spec.attendance`.
    const SILENT: f64 = 0.3;
    let keen = (spec.attendance + (spec.attendance - SILENT) / 11.0).min(1.0);
    let propensity: BTreeMap<MemberId, f64> = member_ids
        .iter()
        .enumerate()
        .map(|(i, id)| (*id, if i % 12 == 7 { SILENT } else { keen }))
        .collect();
    for (n, id) in member_ids.iter().rev().take(3).enumerate() {
        let day = Date(g.day_between(start, end));
        if n < 2 {
            b.edit(secretary_device, |r: &mut Roster| r.transfer_out(*id, day))?;
        } else {
            b.edit(secretary_device, |r: &mut Roster| r.mark_deceased(*id, day))?;
        }
    }
    let (roster, doc) = b.finish::<Roster>()?;
    documents.push(doc);
    let committee: Vec<MemberId> = member_ids.iter().take(3).copied().collect();

    // Member files: details, trainings and one evaluation per year.
    let mut member_files = Vec::new();
    for id in &member_ids {
        let mut file = MemberFile::new(branch, *id);
        file.meta.id = DocId::from_bytes(g.id());
        let mut b = Builder::new(&file, secretary_device)?;
        let id_number = format!("1101{:014}", g.rng.random_range(0..100_000_000_000_000u64));
        let address = format!(
            "幸福里{}号楼{}单元",
            g.rng.random_range(1..30),
            g.rng.random_range(1..6)
        );
        b.edit(secretary_device, |f: &mut MemberFile| {
            f.set_details(Some(&id_number), Some(&address));
            Ok(())
        })?;
        for _ in 0..g.rng.random_range(1..4) {
            let day = Date(g.day_between(start, end));
            let hours = f64::from(g.rng.random_range(1..9u32));
            b.edit(secretary_device, |f: &mut MemberFile| {
                f.add_training(day, "党的二十大精神专题学习", hours)
            })?;
        }
        for year in 0..spec.years {
            let grade = if g.rng.random_bool(0.2) {
                EvaluationGrade::Excellent
            } else {
                EvaluationGrade::Qualified
            };
            let year = chrono::Datelike::year(&start) + year as i32;
            b.edit(secretary_device, |f: &mut MemberFile| {
                f.set_evaluation(year, grade, None)
            })?;
        }
        let (file, doc) = b.finish::<MemberFile>()?;
        member_files.push(file);
        documents.push(doc);
    }

    // Activities: each month a committee meeting, a theme day, a group meeting and one
    // more (a lecture or branch meeting every quarter, otherwise volunteer service).
    let mut activities = Vec::new();
    let months = spec.years * 12;
    for month in 0..months {
        let first = start + Months::new(month);
        for slot in 0..spec.activities_per_month {
            let (kind, title, group) = match (slot % 4, month % 3) {
                (0, _) => ("committee_meeting", "支委会", None),
                (1, _) => ("theme_day", "主题党日", None),
                (2, _) => (
                    "group_meeting",
                    "党小组会",
                    Some((*g.pick(GROUPS)).to_owned()),
                ),
                (_, 0) => ("lecture", "书记讲党课", None),
                (_, 1) => ("branch_meeting", "支部党员大会", None),
                _ => ("volunteer", "志愿服务", None),
            };
            let day = first + Duration::days(g.rng.random_range(0..28));
            let starts = day.and_time(NaiveTime::from_hms_opt(14, 30, 0).expect("time"));
            let mut activity = Activity::new(
                branch,
                NewActivity {
                    kind: kind.to_owned(),
                    title: format!("{}月{}", first.format("%Y年%-m"), title),
                    starts_at: Some(LocalDateTime(starts)),
                    ends_at: Some(LocalDateTime(starts + Duration::hours(2))),
                    place: Some((*g.pick(PLACES)).to_owned()),
                    organizer: Some(*g.pick(&committee)),
                    group,
                    agenda: Some("一、学习文件\n二、讨论本月工作\n三、布置下月任务".to_owned()),
                },
            )?;
            activity.meta.id = DocId::from_bytes(g.id());
            let mut b = Builder::new(&activity, secretary_device)?;
            for member in roster.members.values() {
                let device = devices[&member.id];
                let day = Date(day);
                let expected = member.category.is_member()
                    && member.joined.is_none_or(|j| j <= day)
                    && (member.status == model::MemberStatus::Active
                        || member.status_since.is_some_and(|s| s > day))
                    && activity
                        .group
                        .as_ref()
                        .is_none_or(|g| member.group.as_ref() == Some(g));
                let at = instant(starts + Duration::minutes(g.rng.random_range(-20..15)));
                if expected && g.rng.random_bool(propensity[&member.id]) {
                    let mode = if g.rng.random_bool(0.85) {
                        SignInMode::OnSite
                    } else {
                        SignInMode::Remote
                    };
                    b.edit(device, |a: &mut Activity| a.sign_in(member.id, at, mode))?;
                } else if expected && g.rng.random_bool(spec.leave) {
                    let at = instant(starts - Duration::days(1));
                    b.edit(device, |a: &mut Activity| {
                        a.request_leave(member.id, "外出务工", at)
                    })?;
                } else if !expected && !member.category.is_member() && g.rng.random_bool(0.3) {
                    // Activists come too; they are welcome but not expected.
                    b.edit(device, |a: &mut Activity| {
                        a.sign_in(member.id, at, SignInMode::OnSite)
                    })?;
                }
            }
            if g.rng.random_bool(0.1) {
                let member = *g.pick(&member_ids);
                let entry = crate::ids::EntryId::from_bytes(g.id());
                b.edit(secretary_device, |a: &mut Activity| {
                    a.award_points_as(entry, member, 5)
                })?;
            }
            b.edit(secretary_device, |a: &mut Activity| {
                let minutes = format!(
                    "{title}，实到{}人，请假{}人。会议传达学习了上级文件精神，讨论了近期社区重点工作，并对下阶段任务作了安排。",
                    a.sign_ins.len(),
                    a.leaves.len()
                );
                a.write_minutes(&minutes)
            })?;
            b.edit(secretary_device, Activity::close)?;
            let (activity, doc) = b.finish::<Activity>()?;
            activities.push(activity);
            documents.push(doc);
        }
    }

    // Petitions: residents submit through the branch's code; an owner follows up.
    let mut petitions = Vec::new();
    let last_submission = end - Duration::days(1);
    for _ in 0..spec.petitions {
        let (category, titles) = *g.pick(CATEGORIES);
        let title = *g.pick(titles);
        let submitted_day = g.day_between(start, last_submission);
        let submitted = submitted_day
            .and_time(NaiveTime::from_hms_opt(g.rng.random_range(7..21), 0, 0).expect("time"));
        let resident = DeviceId::from_bytes(g.id());
        authors.insert(resident, Author::Resident);
        let mut petition = Petition::submit(
            branch,
            NewPetition {
                category: category.to_owned(),
                title: title.to_owned(),
                description: format!("居民反映：{title}，已持续一段时间，希望尽快解决。"),
                location: Some(format!("幸福里{}号楼", g.rng.random_range(1..30))),
                submitter: Submitter {
                    name: Some(g.name()),
                    contact: Some(format!(
                        "1{}",
                        g.rng.random_range(3_000_000_000u64..9_999_999_999)
                    )),
                    member: None,
                },
            },
            instant(submitted),
        )?;
        petition.meta.id = DocId::from_bytes(g.id());
        let mut b = Builder::new(&petition, resident)?;
        let owner = *g.pick(&member_ids[..member_ids.len().saturating_sub(3).max(1)]);
        let owner_device = devices[&owner];
        let deadline = submitted_day + Duration::days(g.rng.random_range(7..31));
        b.edit(secretary_device, |p: &mut Petition| {
            p.assign(owner, Date(deadline))
        })?;
        let notes = g.rng.random_range(3..=6);
        let mut when = submitted;
        for _ in 0..notes {
            when += Duration::hours(g.rng.random_range(4..72));
            let step = *g.pick(STEPS);
            b.edit(owner_device, |p: &mut Petition| {
                p.add_progress(Some(owner), step, instant(when))
            })?;
        }
        let resolve_at = when + Duration::hours(g.rng.random_range(1..48));
        if resolve_at.date() <= end && g.rng.random_bool(0.92) {
            b.edit(owner_device, |p: &mut Petition| {
                p.resolve(Some(owner), "问题已解决，已向居民反馈", instant(resolve_at))
            })?;
            if g.rng.random_bool(0.8) {
                let score = *g.pick(&[5u8, 5, 5, 5, 5, 5, 4, 4, 4, 3]);
                let rated = instant(resolve_at + Duration::days(1));
                b.edit(resident, |p: &mut Petition| {
                    p.rate(score, Some("感谢社区"), rated)
                })?;
            }
        }
        let (petition, doc) = b.finish::<Petition>()?;
        petitions.push(petition);
        documents.push(doc);
    }

    let work = BranchWork {
        branch,
        secretary: secretary_device,
        roster: &roster,
        start,
        end,
    };
    let dues_ledgers = work.dues(&mut g, &mut documents)?;
    let points_books = work.points(&mut g, &mut documents)?;
    let applicants = work.applicants(&mut g, &mut documents)?;
    let library = work.library(&mut g, &mut documents)?;

    authors.insert(secretary_device, Author::Secretary);
    authors.extend(
        devices
            .iter()
            .map(|(member, device)| (*device, Author::Member(*member))),
    );
    Ok(GeneratedBranch {
        spec: spec.clone(),
        branch,
        profile,
        roster,
        member_files,
        activities,
        petitions,
        dues_ledgers,
        points_books,
        applicants,
        library,
        documents,
        authors,
    })
}

/// A generated committee (党委) over general branches (党总支) over branches.
#[derive(Clone, Debug)]
pub struct GeneratedCommittee {
    /// The committee's profile.
    pub committee: BranchProfile,
    /// The general branches' profiles.
    pub general_branches: Vec<BranchProfile>,
    /// The branches, each with its whole history.
    pub branches: Vec<GeneratedBranch>,
    /// The committee's and general branches' documents, saved (the branches'
    /// are in each [`GeneratedBranch`]).
    pub documents: Vec<GeneratedDoc>,
}

impl GeneratedCommittee {
    /// Every document of the committee and all branches below it.
    pub fn all_documents(&self) -> impl Iterator<Item = &GeneratedDoc> {
        self.documents
            .iter()
            .chain(self.branches.iter().flat_map(|b| &b.documents))
    }
}

/// Generates a committee over `general_branches` general branches with
/// `branches` branches shared out among them, each branch generated from `spec`
/// with its own seed (`spec.seed` plus its number).
pub fn generate_committee(
    spec: &WorkloadSpec,
    general_branches: u32,
    branches: u32,
) -> Result<GeneratedCommittee> {
    let mut g = Gen {
        rng: ChaCha8Rng::seed_from_u64(spec.seed ^ 0x5eed_c0de),
    };
    let secretary = DeviceId::from_bytes(g.id());
    let mut documents = Vec::new();
    let mut level = |name: &str, level: Level, parent: Option<BranchId>| -> Result<BranchProfile> {
        let branch = BranchId::from_bytes(g.id());
        let mut profile = BranchProfile::new(branch, name, level, parent)?;
        profile.meta.id = DocId::from_bytes(g.id());
        let (profile, doc) = Builder::new(&profile, secretary)?.finish::<BranchProfile>()?;
        documents.push(doc);
        let mut roster = Roster::new(branch);
        roster.meta.id = DocId::from_bytes(g.id());
        let (_, doc) = Builder::new(&roster, secretary)?.finish::<Roster>()?;
        documents.push(doc);
        Ok(profile)
    };
    let committee = level("幸福街道党工委", Level::Committee, None)?;
    let general: Vec<BranchProfile> = (1..=general_branches.max(1))
        .map(|n| {
            level(
                &format!("幸福里第{}社区党总支", chinese_number(n)),
                Level::GeneralBranch,
                Some(committee.meta.branch),
            )
        })
        .collect::<Result<_>>()?;
    let branches = (1..=branches)
        .map(|n| {
            let parent = &general[(n as usize - 1) % general.len()];
            generate(&WorkloadSpec {
                seed: spec.seed.wrapping_add(u64::from(n)),
                parent: Some(parent.meta.branch),
                number: n,
                ..spec.clone()
            })
        })
        .collect::<Result<_>>()?;
    Ok(GeneratedCommittee {
        committee,
        general_branches: general,
        branches,
        documents,
    })
}

/// 1 to 99 in Chinese numerals (一, 十二, 二十…), as branches are numbered.
fn chinese_number(n: u32) -> String {
    const DIGITS: [&str; 10] = ["零", "一", "二", "三", "四", "五", "六", "七", "八", "九"];
    match n {
        0..=9 => DIGITS[n as usize].to_owned(),
        10..=19 => format!(
            "十{}",
            if n == 10 {
                ""
            } else {
                DIGITS[(n % 10) as usize]
            }
        ),
        20..=99 => format!(
            "{}十{}",
            DIGITS[(n / 10) as usize],
            if n.is_multiple_of(10) {
                ""
            } else {
                DIGITS[(n % 10) as usize]
            }
        ),
        _ => n.to_string(),
    }
}

/// The branch work of a generated branch: dues, points, applicants, the library,
/// written by the secretary over the history.
struct BranchWork<'a> {
    branch: BranchId,
    secretary: DeviceId,
    roster: &'a Roster,
    start: NaiveDate,
    end: NaiveDate,
}

impl BranchWork<'_> {
    fn years(&self) -> std::ops::RangeInclusive<i32> {
        chrono::Datelike::year(&self.start)..=chrono::Datelike::year(&self.end)
    }

    /// Members pay each quarter's dues early in the next quarter; about one payment
    /// in eight is missed, so some members are behind. The committee buys study
    /// materials twice a year.
    fn dues(&self, g: &mut Gen, documents: &mut Vec<GeneratedDoc>) -> Result<Vec<DuesLedger>> {
        let mut out = Vec::new();
        for year in self.years() {
            let mut ledger = DuesLedger::new(self.branch, i64::from(year));
            ledger.meta.id = DocId::from_bytes(g.id());
            let mut b = Builder::new(&ledger, self.secretary)?;
            for member in self.roster.members.values() {
                if !member.category.is_member() || g.rng.random_bool(0.1) {
                    continue;
                }
                if g.rng.random_bool(0.15) {
                    let fen = *g.pick(&[1000i64, 3000, 5000]);
                    b.edit(self.secretary, |l: &mut DuesLedger| {
                        l.set_monthly(member.id, Some(fen))
                    })?;
                }
            }
            for quarter in 0..4u32 {
                let Some(paid_on) = NaiveDate::from_ymd_opt(year, quarter * 3 + 1, 1)
                    .and_then(|d| d.checked_add_months(Months::new(3)))
                    .map(|d| d + Duration::days(g.rng.random_range(0..10)))
                else {
                    continue;
                };
                if paid_on > self.end {
                    break;
                }
                for member in self.roster.members.values() {
                    if !member.category.is_member()
                        || member.joined.is_some_and(|j| j.0 > paid_on)
                        || g.rng.random_bool(0.125)
                    {
                        continue;
                    }
                    let entry = EntryId::from_bytes(g.id());
                    b.edit(self.secretary, |l: &mut DuesLedger| {
                        let monthly = l.monthly_of(member.id).unwrap_or(2000);
                        let months = quarter * 3 + 1..=quarter * 3 + 3;
                        l.record_payment(entry, member.id, months, monthly * 3, Date(paid_on))
                    })?;
                }
            }
            for (month, purpose) in [(5, "订阅党报党刊"), (11, "购买学习资料")] {
                let Some(day) = NaiveDate::from_ymd_opt(year, month, 15).filter(|d| *d <= self.end)
                else {
                    continue;
                };
                let entry = EntryId::from_bytes(g.id());
                let fen = g.rng.random_range(5_000..20_000);
                b.edit(self.secretary, |l: &mut DuesLedger| {
                    l.record_spending(
                        entry,
                        fen,
                        SpendingCategory::StudyMaterials,
                        purpose,
                        "支委会",
                        Date(day),
                    )
                })?;
            }
            let (ledger, doc) = b.finish::<DuesLedger>()?;
            out.push(ledger);
            documents.push(doc);
        }
        Ok(out)
    }

    /// A few bonus awards a year, and a thought report a quarter from each activist
    /// and applicant, one in five late.
    fn points(&self, g: &mut Gen, documents: &mut Vec<GeneratedDoc>) -> Result<Vec<PointsBook>> {
        let mut out = Vec::new();
        let people: Vec<&model::Member> = self.roster.members.values().collect();
        for year in self.years() {
            let mut book = PointsBook::new(self.branch, i64::from(year));
            book.meta.id = DocId::from_bytes(g.id());
            let mut b = Builder::new(&book, self.secretary)?;
            for _ in 0..g.rng.random_range(2..6) {
                let member = g.pick(&people).id;
                let (rule, points) = *g.pick(&[("major_task", 5i64), ("commendation", 5)]);
                let day = Date(
                    g.day_between(
                        NaiveDate::from_ymd_opt(year, 1, 1)
                            .expect("date")
                            .max(self.start),
                        NaiveDate::from_ymd_opt(year, 12, 31)
                            .expect("date")
                            .min(self.end),
                    ),
                );
                let entry = EntryId::from_bytes(g.id());
                b.edit(self.secretary, |p: &mut PointsBook| {
                    p.award(entry, member, points, Some(rule), None, day)
                })?;
            }
            for quarter in 0..4u32 {
                let Some(due) = NaiveDate::from_ymd_opt(year, quarter * 3 + 1, 1)
                    .and_then(|d| d.checked_add_months(Months::new(3)))
                    .and_then(|d| d.pred_opt())
                else {
                    continue;
                };
                if due > self.end {
                    break;
                }
                for person in people.iter().filter(|m| !m.category.is_member()) {
                    let received = if g.rng.random_bool(0.2) {
                        due + Duration::days(g.rng.random_range(1..20))
                    } else {
                        due - Duration::days(g.rng.random_range(0..20))
                    };
                    if chrono::Datelike::year(&received) != year || received > self.end {
                        continue;
                    }
                    let entry = EntryId::from_bytes(g.id());
                    b.edit(self.secretary, |p: &mut PointsBook| {
                        p.receive_thought_report(entry, person.id, Date(due), Date(received))
                    })?;
                }
            }
            let (book, doc) = b.finish::<PointsBook>()?;
            out.push(book);
            documents.push(doc);
        }
        Ok(out)
    }

    /// A file for each applicant and activist, with the steps their category says
    /// they took, and introducers for the activists.
    fn applicants(&self, g: &mut Gen, documents: &mut Vec<GeneratedDoc>) -> Result<Vec<Applicant>> {
        let full: Vec<MemberId> = self
            .roster
            .members
            .values()
            .filter(|m| m.category == Category::Full)
            .map(|m| m.id)
            .collect();
        let mut out = Vec::new();
        for person in self.roster.members.values() {
            if person.category.is_member() {
                continue;
            }
            let applied = person.joined.unwrap_or(Date(self.start));
            let mut file = Applicant::new(self.branch, person.id, applied);
            file.meta.id = DocId::from_bytes(g.id());
            let mut b = Builder::new(&file, self.secretary)?;
            if person.category == Category::Activist {
                let day = Date(applied.0 + Duration::days(g.rng.random_range(5..28)));
                b.edit(self.secretary, |a: &mut Applicant| {
                    a.record_stage(Stage::Activist, day, Some("支委会研究确定"))
                })?;
                for introducer in full.sample(&mut g.rng, 2) {
                    b.edit(self.secretary, |a: &mut Applicant| {
                        a.add_introducer(*introducer)
                    })?;
                }
            }
            let (file, doc) = b.finish::<Applicant>()?;
            out.push(file);
            documents.push(doc);
        }
        Ok(out)
    }

    /// Two entries: a problem shared down the hierarchy and a case kept at home.
    fn library(&self, g: &mut Gen, documents: &mut Vec<GeneratedDoc>) -> Result<Vec<LibraryEntry>> {
        let entries = [
            (
                Collection::Problem,
                "老旧小区路灯长期不亮",
                "居民多次反映北门路灯不亮，物业推诿。",
                "支部牵头联系街道和结对单位，两周内更换。",
                true,
            ),
            (
                Collection::Case,
                "云党日让流动党员按时参加组织生活",
                "外出务工党员难以到场参会。",
                "开通远程签到，会后推送会议纪要，参与率提高四成。",
                false,
            ),
        ];
        let mut out = Vec::new();
        for (collection, title, problem, solution, down) in entries {
            let written_on = Date(g.day_between(self.start, self.end));
            let mut entry = LibraryEntry::new(
                self.branch,
                NewLibraryEntry {
                    collection,
                    title: title.to_owned(),
                    problem: problem.to_owned(),
                    solution: solution.to_owned(),
                    tags: vec!["基层治理".to_owned()],
                    written_on,
                },
            )?;
            entry.meta.id = DocId::from_bytes(g.id());
            let mut b = Builder::new(&entry, self.secretary)?;
            if down {
                b.edit(self.secretary, |e: &mut LibraryEntry| {
                    e.share_down(true);
                    Ok(())
                })?;
            }
            let (entry, doc) = b.finish::<LibraryEntry>()?;
            out.push(entry);
            documents.push(doc);
        }
        Ok(out)
    }
}
