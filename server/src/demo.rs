//! `branchline-server demo`: the first thing a newcomer runs (part of the
//! `branchline-server` binary).
//!
//! Everything happens in this process, over real QUIC on 127.0.0.1 with
//! real SQLite files in a temporary directory: a server starts, a branch is
//! added, the secretary's phone and a member's phone enroll with one-time
//! invites, both lose the network and edit offline, then reconnect. The
//! member organizes the activity, so both may edit it: both add a sentence
//! to its minutes (text, merged word for word) and both correct its place
//! (a register, so the two values are kept as a conflict). The member also
//! edits a petition's description, which only the committee may change: the
//! server refuses that edit and her phone shows why.
//!
//! The demo states only what it has checked. Each sentence it prints about
//! the merge, the conflict and the refusal is verified first, on both phones
//! and on the server; a claim that does not hold fails the demo with its own
//! code (`demo.not_merged`, `demo.conflict_missing`, `demo.not_refused`, …)
//! and exit status 1 instead of being printed.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use automerge::{AutoCommit, Automerge, ChangeHash};
use branchline_core::conflict::{self, Conflict};
use branchline_core::model::{
    Activity, Category, Date, DocKind, Gender, Level, LocalDateTime, NewActivity, NewMember,
    NewPetition, Petition, Roster, SignInMode, Submitter,
};
use branchline_core::net::{ClientConfig, Status, SyncClient};
use branchline_core::refusal;
use branchline_core::store::Rejection;
use branchline_core::{BranchId, DeviceId, DocId, MemberId, Store};
use branchline_protocol::Role;
use branchline_server::{Admin, RunningServer, Server, ServerConfig};

use crate::{Failure, Lang};

/// How long any one wait may take before the demo gives up.
const PATIENCE: Duration = Duration::from_secs(30);

/// The demo's words and records in one language.
struct Script {
    lang: Lang,
    branch: &'static str,
    secretary: &'static str,
    secretary_post: &'static str,
    member: &'static str,
    new_member: &'static str,
    activity: &'static str,
    place: &'static str,
    /// The first line of the minutes, written before anyone goes offline.
    minutes: &'static str,
    /// What separates two sentences of the minutes.
    sentence_gap: &'static str,
    /// The sentence the secretary adds to the minutes offline.
    secretary_minutes: &'static str,
    /// The sentence the organizer adds to the same minutes offline.
    member_minutes: &'static str,
    secretary_place: &'static str,
    member_place: &'static str,
    petition_category: &'static str,
    petition_title: &'static str,
    petition_text: &'static str,
    progress: &'static str,
    /// The sentence the member tries to add to the petition's description.
    member_petition_adds: &'static str,
}

impl Script {
    fn new(lang: Lang) -> Self {
        match lang {
            Lang::En => Script {
                lang,
                branch: "Riverside Community Branch",
                secretary: "Li Wei",
                secretary_post: "Secretary",
                member: "Wang Fang",
                new_member: "Zhang Min",
                activity: "Theme day: river clean-up",
                place: "River bank",
                minutes: "Cleared 300 m of the river bank; 12 bags of rubbish.",
                sentence_gap: " ",
                secretary_minutes: "Next clean-up: the first Saturday of next month.",
                member_minutes: "Eight residents from building 5 came to help.",
                secretary_place: "River bank, east steps",
                member_place: "River bank, by the old bridge",
                petition_category: "Roads",
                petition_title: "Street light out at the north gate",
                petition_text: "The street light at the north gate has been dark for a week.",
                progress: "Reported to the power company; repair booked for Friday.",
                member_petition_adds: "The path to the bike shed is dark too.",
            },
            Lang::Zh => Script {
                lang,
                branch: "幸福里社区第一党支部",
                secretary: "李伟",
                secretary_post: "书记",
                member: "王芳",
                new_member: "张敏",
                activity: "主题党日：清理河道",
                place: "河岸",
                minutes: "清理河岸三百米，垃圾十二袋。",
                sentence_gap: "",
                secretary_minutes: "下次清理定在下月第一个星期六。",
                member_minutes: "5号楼八位居民前来帮忙。",
                secretary_place: "河岸东台阶",
                member_place: "河岸老桥边",
                petition_category: "道路交通",
                petition_title: "北门路灯不亮",
                petition_text: "北门的路灯已经一个星期不亮了。",
                progress: "已报修供电所，周五上门维修。",
                member_petition_adds: "通往车棚的小路也很黑。",
            },
        }
    }

    fn say(&self, en: &str, zh: &str) -> String {
        crate::say(self.lang, en, zh)
    }

    fn phone(&self, person: &str) -> String {
        self.say(&format!("{person}'s phone"), &format!("{person}的手机"))
    }

    /// `text` with `sentence` added at its end.
    fn appended(&self, text: &str, sentence: &str) -> String {
        if text.is_empty() {
            sentence.to_owned()
        } else {
            format!("{text}{}{sentence}", self.sentence_gap)
        }
    }

    /// A claim that turned out false: the demo stops with `code` instead of
    /// printing it.
    fn untrue(&self, code: &'static str, en: &str, zh: &str) -> anyhow::Error {
        Failure::new(code, self.say(en, zh)).into()
    }

    /// Why the server refuses, in the words every client uses
    /// ([`branchline_core::refusal`]). `None` for a code this build does not
    /// know: the server's own message is shown.
    fn explain(&self, code: &str) -> Option<String> {
        refusal::explain(code).map(|words| self.say(words.english, words.chinese))
    }
}

/// Numbered steps on stdout.
struct Steps {
    next: u32,
}

impl Steps {
    fn step(&mut self, text: &str) {
        println!("{}. {text}", self.next);
        self.next += 1;
    }
}

/// One phone: a store in its own directory and a sync client.
struct Phone {
    name: String,
    store: Arc<Mutex<Store>>,
    client: SyncClient,
}

impl Phone {
    async fn join(
        name: String,
        dir: &Path,
        invite: branchline_protocol::InviteLink,
    ) -> anyhow::Result<Phone> {
        std::fs::create_dir_all(dir)?;
        let store = Arc::new(Mutex::new(Store::open(dir.join("branchline.db"))?));
        let config = ClientConfig {
            backoff_min: Duration::from_millis(100),
            backoff_max: Duration::from_secs(1),
            ..ClientConfig::default()
        };
        let client = SyncClient::join(Arc::clone(&store), invite, &name, config);
        let phone = Phone {
            name,
            store,
            client,
        };
        phone.wait_in_sync().await?;
        Ok(phone)
    }

    fn store(&self) -> MutexGuard<'_, Store> {
        self.store
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    async fn wait_in_sync(&self) -> anyhow::Result<()> {
        self.client
            .wait_in_sync(PATIENCE)
            .await
            .with_context(|| format!("{} did not get in sync", self.name))
    }

    async fn go_offline(&self) -> anyhow::Result<()> {
        self.client.set_network_available(false);
        self.client
            .wait_for_status(PATIENCE, |s| *s == Status::Offline)
            .await
            .with_context(|| format!("{} did not go offline", self.name))?;
        Ok(())
    }

    /// Every document this phone holds, with its sorted heads.
    fn heads(&self) -> anyhow::Result<BTreeMap<DocId, Vec<ChangeHash>>> {
        let store = self.store();
        let mut all = BTreeMap::new();
        for summary in store.documents()? {
            let mut heads = store.load_document(summary.id)?.get_heads();
            heads.sort();
            all.insert(summary.id, heads);
        }
        Ok(all)
    }

    /// The fields with concurrent values this phone lists, in a stable order.
    fn conflicts(&self) -> anyhow::Result<Vec<Conflict>> {
        Ok(in_order(self.store().conflicts()?))
    }
}

/// Conflicts ordered by document, then field.
fn in_order(mut conflicts: Vec<Conflict>) -> Vec<Conflict> {
    conflicts.sort_by(|a, b| (a.doc.to_string(), &a.path).cmp(&(b.doc.to_string(), &b.path)));
    conflicts
}

/// The records the demo edits, by document.
#[derive(Clone, Copy)]
struct Records {
    roster: DocId,
    activity: DocId,
    petition: DocId,
}

/// What one replica shows of the records the demo edits.
#[derive(Debug, Clone, PartialEq, Eq)]
struct View {
    members: Vec<String>,
    minutes: String,
    signed_in: Vec<String>,
    place: String,
    description: String,
    progress: Vec<String>,
    /// Member names by id, to name who wrote a value.
    names: BTreeMap<MemberId, String>,
}

impl View {
    fn of(roster: &Roster, activity: &Activity, petition: &Petition) -> View {
        let mut members: Vec<String> = roster.members.values().map(|m| m.name.clone()).collect();
        members.sort();
        let name_of = |key: &String| {
            key.parse::<MemberId>()
                .ok()
                .and_then(|id| roster.member(id).ok())
                .map_or_else(|| key.clone(), |m| m.name.clone())
        };
        View {
            members,
            minutes: activity.minutes.as_str().to_owned(),
            signed_in: activity.sign_ins.keys().map(name_of).collect(),
            place: activity.place.clone().unwrap_or_default(),
            description: petition.description.as_str().to_owned(),
            progress: petition.progress.iter().map(|n| n.text.clone()).collect(),
            names: roster
                .members
                .values()
                .map(|m| (m.id, m.name.clone()))
                .collect(),
        }
    }

    fn from_store(store: &Store, records: Records) -> anyhow::Result<View> {
        Ok(View::of(
            &store.get(records.roster)?,
            &store.get(records.activity)?,
            &store.get(records.petition)?,
        ))
    }

    fn from_server(admin: &Admin, records: Records) -> anyhow::Result<View> {
        Ok(View::of(
            &admin.hydrate(records.roster)?,
            &admin.hydrate(records.activity)?,
            &admin.hydrate(records.petition)?,
        ))
    }

    fn print(&self, script: &Script, who: &str) {
        let list = |items: &[String]| {
            if items.is_empty() {
                "-".to_owned()
            } else {
                items.join(&script.say(", ", "、"))
            }
        };
        let quoted = |text: &str| {
            if text.is_empty() {
                "-".to_owned()
            } else {
                format!("“{text}”")
            }
        };
        println!("   {who}{}", script.say(":", "："));
        let rows = [
            (script.say("members", "党员"), list(&self.members)),
            (script.say("minutes", "会议记录"), quoted(&self.minutes)),
            (script.say("signed in", "已签到"), list(&self.signed_in)),
            (script.say("place", "地点"), quoted(&self.place)),
            (
                script.say("petition text", "诉求描述"),
                quoted(&self.description),
            ),
            (script.say("progress", "进展"), list(&self.progress)),
        ];
        for (label, value) in rows {
            // Chinese characters take two columns in a terminal.
            let width: usize = label
                .chars()
                .map(|c| if c >= '\u{2e80}' { 2 } else { 1 })
                .sum();
            let pad = " ".repeat(15usize.saturating_sub(width));
            println!("     {label}{pad}{value}");
        }
    }
}

/// What the demo showed, for its last line.
struct Outcome {
    documents: usize,
    conflicts: usize,
    refused: usize,
}

/// Runs the demo in `keep` (kept afterwards) or a temporary directory.
pub fn run(lang: Lang, keep: Option<PathBuf>) -> anyhow::Result<()> {
    let temp;
    let kept = keep.is_some();
    let root = match keep {
        Some(dir) => {
            let empty = !dir.exists()
                || std::fs::read_dir(&dir)
                    .with_context(|| format!("reading {}", dir.display()))?
                    .next()
                    .is_none();
            if !empty {
                return Err(Failure::new(
                    "demo.dir_not_empty",
                    crate::say(
                        lang,
                        &format!(
                            "{} is not empty; give --keep a new or empty directory",
                            dir.display()
                        ),
                        &format!(
                            "{} 不是空目录；请给 --keep 一个新的或空的目录",
                            dir.display()
                        ),
                    ),
                )
                .into());
            }
            std::fs::create_dir_all(&dir)?;
            dir
        }
        None => {
            temp = tempfile::Builder::new()
                .prefix("branchline-demo-")
                .tempdir()?;
            temp.path().to_owned()
        }
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let script = Script::new(lang);
    let outcome = runtime.block_on(demo(&script, &root));
    if kept {
        eprintln!(
            "{}",
            script.say(
                &format!(
                    "kept: server data in {0}/server (try `branchline-server --data-dir {0}/server audit`)",
                    root.display()
                ),
                &format!(
                    "已保留：服务器数据在 {0}/server（试试 `branchline-server --data-dir {0}/server audit`）",
                    root.display()
                ),
            )
        );
    }
    outcome
}

async fn demo(script: &Script, root: &Path) -> anyhow::Result<()> {
    let started = Instant::now();
    let mut steps = Steps { next: 1 };
    println!(
        "{}",
        script.say(
            "Branchline demo: a server and two phones on this machine, over QUIC on 127.0.0.1",
            "Branchline 演示：本机上的一台服务器和两部手机，经 127.0.0.1 上的 QUIC 通信",
        )
    );
    println!();

    let config = ServerConfig::new(root.join("server"), "127.0.0.1:0".parse()?);
    let server = Server::start(config).await?;
    let fingerprint: String = server.cert_sha256()[..4]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    steps.step(&script.say(
        &format!(
            "Server started on {} (certificate {fingerprint}…, pinned by every invite)",
            server.local_addr()
        ),
        &format!(
            "服务器已在 {} 启动（证书 {fingerprint}…，每个邀请都会固定它）",
            server.local_addr()
        ),
    ));
    let outcome = converge(script, &mut steps, &server, root).await;
    server.shutdown().await?;
    let outcome = outcome?;
    let seconds = started.elapsed().as_secs_f64();
    println!();
    println!(
        "{}",
        script.say(
            &format!(
                "converged in {seconds:.1} s: both phones and the server hold the same {} \
                 documents; minutes merged word for word; fields with concurrent values: {}; \
                 edits refused by the rules: {}",
                outcome.documents, outcome.conflicts, outcome.refused
            ),
            &format!(
                "已收敛（converged），用时 {seconds:.1} 秒：两部手机和服务器持有同样的 {} 份文档，完全一致；\
                 会议记录逐字合并；有并发值的字段：{}；被规则拒绝的修改：{}",
                outcome.documents, outcome.conflicts, outcome.refused
            ),
        )
    );
    Ok(())
}

/// The demo proper: every step, each claim checked before it is printed.
async fn converge(
    script: &Script,
    steps: &mut Steps,
    server: &RunningServer,
    root: &Path,
) -> anyhow::Result<Outcome> {
    let admin = server.admin();
    let branch: BranchId = admin.add_branch(script.branch, Level::Branch, None)?;
    steps.step(&script.say(
        &format!(
            "Branch “{}” added on the server (`branchline-server branch add`)",
            script.branch
        ),
        &format!(
            "在服务器上添加组织“{}”（`branchline-server branch add`）",
            script.branch
        ),
    ));

    // The secretary's phone joins and sets up the records.
    let invite = admin.create_invite(branch, Role::Secretary, None, Duration::from_secs(3600))?;
    let secretary_phone = script.phone(script.secretary);
    let secretary = Phone::join(
        secretary_phone.clone(),
        &root.join("phone-secretary"),
        invite,
    )
    .await?;
    let (records, wang_fang) = set_up(script, &mut secretary.store(), branch)?;
    secretary.wait_in_sync().await?;
    steps.step(&script.say(
        &format!(
            "{secretary_phone} (secretary) joined with a one-time invite and recorded: members \
             {}, {}; activity “{}”, organized by {}, with the first line of its minutes; a \
             resident's petition “{}”, owned by {}",
            script.secretary,
            script.member,
            script.activity,
            script.member,
            script.petition_title,
            script.member
        ),
        &format!(
            "{secretary_phone}（书记）用一次性邀请加入，并录入：党员{}、{}；活动“{}”，由{}组织，\
             已写下会议记录第一句；居民诉求“{}”，责任人{}",
            script.secretary,
            script.member,
            script.activity,
            script.member,
            script.petition_title,
            script.member
        ),
    ));

    // The member's phone joins, bound to her roster entry.
    let invite = admin.create_invite(
        branch,
        Role::Member,
        Some(wang_fang),
        Duration::from_secs(3600),
    )?;
    let member_phone = script.phone(script.member);
    let member = Phone::join(member_phone.clone(), &root.join("phone-member"), invite).await?;
    let seen = member.heads()?.len();
    steps.step(&script.say(
        &format!(
            "{member_phone} (member) joined with an invite bound to her roster entry; \
             it received the {seen} documents a member may read"
        ),
        &format!(
            "{member_phone}（党员）用绑定其花名册条目的邀请加入，收到党员可读的 {seen} 份文档"
        ),
    ));

    secretary.go_offline().await?;
    member.go_offline().await?;
    steps.step(&script.say(
        "Both phones lose the network: everything below happens offline",
        "两部手机都断网了：以下操作全部离线进行",
    ));

    {
        let mut store = secretary.store();
        store.add_member(
            branch,
            NewMember {
                name: script.new_member.into(),
                gender: Some(Gender::Female),
                category: Some(Category::Probationary),
                joined: Some(Date(chrono::Local::now().date_naive())),
                ..Default::default()
            },
        )?;
        add_to_minutes(script, &mut store, records, script.secretary_minutes)?;
        set_place(&mut store, records, script.secretary_place)?;
    }
    steps.step(&script.say(
        &format!(
            "{}, offline: adds member {}; adds to the theme day's minutes “{}”; corrects its \
             place to “{}”",
            script.secretary, script.new_member, script.secretary_minutes, script.secretary_place
        ),
        &format!(
            "{}离线：添加党员{}；在主题党日的会议记录末尾补一句“{}”；把地点改为“{}”",
            script.secretary, script.new_member, script.secretary_minutes, script.secretary_place
        ),
    ));

    {
        let mut store = member.store();
        store.sign_in(records.activity, wang_fang, SignInMode::Remote)?;
        add_to_minutes(script, &mut store, records, script.member_minutes)?;
        set_place(&mut store, records, script.member_place)?;
        store.add_progress(records.petition, Some(wang_fang), script.progress)?;
    }
    steps.step(&script.say(
        &format!(
            "{}, offline, as the theme day's organizer: signs in (remote); adds to the same \
             minutes “{}”; corrects the same place to “{}”; adds a progress note to the \
             petition she owns",
            script.member, script.member_minutes, script.member_place
        ),
        &format!(
            "{}离线，以主题党日组织者的身份：远程签到；在同一份会议记录末尾补一句“{}”；\
             把同一个地点改为“{}”；为她负责的诉求添加一条进展",
            script.member, script.member_minutes, script.member_place
        ),
    ));

    {
        let mut store = member.store();
        let adds = script.member_petition_adds;
        store.update(records.petition, |p: &mut Petition| {
            let text = script.appended(p.description.as_str(), adds);
            p.description.update(text);
            Ok(())
        })?;
    }
    steps.step(&script.say(
        &format!(
            "{}, offline, also adds a sentence to the petition's description: “{}”",
            script.member, script.member_petition_adds
        ),
        &format!(
            "{}离线时还在诉求描述末尾补了一句：“{}”",
            script.member, script.member_petition_adds
        ),
    ));

    let before = [
        View::from_store(&secretary.store(), records)?,
        View::from_store(&member.store(), records)?,
    ];
    check_offline(script, &before)?;
    steps.step(&script.say(
        "Before reconnecting, each phone sees only its own edits:",
        "重新联网之前，每部手机只看到自己的修改：",
    ));
    before[0].print(script, &secretary_phone);
    before[1].print(script, &member_phone);

    let reconnecting = Instant::now();
    secretary.client.set_network_available(true);
    member.client.set_network_available(true);
    let (converged, views) = wait_converged(&secretary, &member, &admin, records).await?;
    if !converged {
        return Err(script.untrue(
            "demo.diverged",
            "the phones and the server did not converge",
            "手机和服务器没有收敛到一致",
        ));
    }
    let documents = member.heads()?.len();
    steps.step(&script.say(
        &format!(
            "Both phones get the network back and sync by themselves ({:.1} s); the phones and \
             the server now hold the same {documents} documents and show:",
            reconnecting.elapsed().as_secs_f64()
        ),
        &format!(
            "两部手机恢复网络，自动同步（{:.1} 秒）；两部手机和服务器现在持有同样的 \
             {documents} 份文档，显示：",
            reconnecting.elapsed().as_secs_f64()
        ),
    ));
    let server_label = script.say("server", "服务器");
    for (view, who) in views
        .iter()
        .zip([&secretary_phone, &member_phone, &server_label])
    {
        view.print(script, who);
    }
    let merged = &views[0];

    // (a) One text field, edited by two people allowed to: merged word for word.
    check_merged(script, merged)?;
    steps.step(&script.say(
        &format!(
            "Nothing was lost: {} is on the roster, {}'s sign-in and progress note are in, and \
             the minutes merged word for word, after their first line, with both sentences \
             whole:",
            script.new_member, script.member
        ),
        &format!(
            "没有丢失任何修改：{}已在花名册上，{}的签到和进展都在；会议记录逐字合并，\
             第一句之后两句话都完整保留：",
            script.new_member, script.member
        ),
    ));
    for (sentence, by) in [
        (script.secretary_minutes, script.secretary),
        (script.member_minutes, script.member),
    ] {
        println!(
            "   {}",
            script.say(
                &format!("“{sentence}” ({by})"),
                &format!("“{sentence}”（{by}）")
            )
        );
    }

    // (b) One register field, set by two people allowed to: a conflict.
    let devices = [
        (secretary.store().device_id(), secretary_phone.clone()),
        (member.store().device_id(), member_phone.clone()),
    ];
    let conflicts = check_conflicts(script, &secretary, &member, &admin, records, merged)?;
    steps.step(&script.say(
        &format!(
            "Where both phones set the same field, both values are kept and everyone shows the \
             same one until a person settles it (`branchline conflicts settle`); fields with \
             concurrent values: {}",
            conflicts.len()
        ),
        &format!(
            "两部手机改了同一字段时，两个值都保留，所有人看到同一个值，直到有人裁定\
             （`branchline conflicts settle`）；有并发值的字段：{}",
            conflicts.len()
        ),
    ));
    for conflict in &conflicts {
        println!(
            "   - {}",
            conflict_line(script, conflict, records, merged, &devices)
        );
    }

    // (c) An edit the rules refuse, with its reason as the phone shows it.
    let refused = check_refused(script, &secretary, &member, records, merged)?;
    steps.step(&script.say(
        &format!(
            "The server's rules refused an edit: {}'s phone dropped it, kept her other edits and \
             shows why; the petition's description is unchanged everywhere; edits refused by the \
             rules: {}",
            script.member,
            refused.len()
        ),
        &format!(
            "服务器的规则拒绝了一项修改：{}的手机撤回了它，保留了她的其他修改，并显示原因；\
             诉求描述在各处都未改变；被规则拒绝的修改：{}",
            script.member,
            refused.len()
        ),
    ));
    for (phone, rejection) in &refused {
        println!("   - {}", refusal_line(script, phone, rejection, records));
    }

    member.client.shutdown().await;
    secretary.client.shutdown().await;
    Ok(Outcome {
        documents,
        conflicts: conflicts.len(),
        refused: refused.len(),
    })
}

/// The secretary records the branch's members, an activity organized by
/// the member, with the first line of its minutes, and a petition the
/// member owns.
fn set_up(
    script: &Script,
    store: &mut Store,
    branch: BranchId,
) -> anyhow::Result<(Records, MemberId)> {
    let today = Date(chrono::Local::now().date_naive());
    store.add_member(
        branch,
        NewMember {
            name: script.secretary.into(),
            gender: Some(Gender::Male),
            joined: Date::ymd(1998, 7, 1),
            category: Some(Category::Full),
            post: Some(script.secretary_post.into()),
            ..Default::default()
        },
    )?;
    let wang_fang = store.add_member(
        branch,
        NewMember {
            name: script.member.into(),
            gender: Some(Gender::Female),
            joined: Date::ymd(2015, 7, 1),
            category: Some(Category::Full),
            phone: Some("139 0000 0001".into()),
            ..Default::default()
        },
    )?;
    let at = |hour: u32| -> anyhow::Result<LocalDateTime> {
        Ok(LocalDateTime(
            today
                .0
                .and_hms_opt(hour, 0, 0)
                .context("a valid time of day")?,
        ))
    };
    let activity = store.create_activity(
        branch,
        NewActivity {
            kind: "theme_day".into(),
            title: script.activity.into(),
            starts_at: Some(at(9)?),
            ends_at: Some(at(11)?),
            place: Some(script.place.into()),
            organizer: Some(wang_fang),
            ..Default::default()
        },
    )?;
    store.write_minutes(activity, script.minutes)?;
    let petition = store.submit_petition(
        branch,
        NewPetition {
            category: script.petition_category.into(),
            title: script.petition_title.into(),
            description: script.petition_text.into(),
            location: None,
            submitter: Submitter {
                name: Some(script.say("a resident", "居民")),
                contact: Some("138 0000 0000".into()),
                member: None,
            },
        },
    )?;
    let deadline = Date(today.0 + chrono::Days::new(7));
    store.assign_petition(petition, wang_fang, deadline)?;
    let roster = store.branch_document(branch, DocKind::Roster)?;
    Ok((
        Records {
            roster,
            activity,
            petition,
        },
        wang_fang,
    ))
}

/// Adds `sentence` at the end of the activity's minutes.
fn add_to_minutes(
    script: &Script,
    store: &mut Store,
    records: Records,
    sentence: &str,
) -> anyhow::Result<()> {
    let minutes = store.get::<Activity>(records.activity)?.minutes;
    store.write_minutes(
        records.activity,
        &script.appended(minutes.as_str(), sentence),
    )?;
    Ok(())
}

/// Sets the activity's place.
fn set_place(store: &mut Store, records: Records, place: &str) -> anyhow::Result<()> {
    store.update(records.activity, |a: &mut Activity| {
        a.place = Some(place.to_owned());
        Ok(())
    })?;
    Ok(())
}

/// Checks "each phone sees only its own edits" before reconnecting.
fn check_offline(script: &Script, [secretary, member]: &[View; 2]) -> anyhow::Result<()> {
    let own = |view: &View, mine: &str, theirs: &str, place: &str| {
        view.minutes.contains(mine) && !view.minutes.contains(theirs) && view.place == place
    };
    let adds = script.member_petition_adds;
    let holds = own(
        secretary,
        script.secretary_minutes,
        script.member_minutes,
        script.secretary_place,
    ) && own(
        member,
        script.member_minutes,
        script.secretary_minutes,
        script.member_place,
    ) && secretary.members.iter().any(|m| m == script.new_member)
        && !member.members.iter().any(|m| m == script.new_member)
        && member.description.contains(adds)
        && !secretary.description.contains(adds);
    if holds {
        Ok(())
    } else {
        Err(script.untrue(
            "demo.offline_leak",
            "before reconnecting, a phone did not show its own edits only",
            "重新联网之前，某部手机显示的不只是自己的修改",
        ))
    }
}

/// Checks the merge: the minutes hold their first line and both sentences,
/// each whole, and nothing else; the new member, the sign-in and the
/// progress note are all in.
fn check_merged(script: &Script, merged: &View) -> anyhow::Result<()> {
    let (a, b) = (script.secretary_minutes, script.member_minutes);
    let either = [
        script.appended(&script.appended(script.minutes, a), b),
        script.appended(&script.appended(script.minutes, b), a),
    ];
    if !either.contains(&merged.minutes) {
        return Err(script.untrue(
            "demo.not_merged",
            &format!(
                "the merged minutes do not hold both sentences word for word: “{}”",
                merged.minutes
            ),
            &format!("合并后的会议记录没有逐字包含两句话：“{}”", merged.minutes),
        ));
    }
    let has = |list: &[String], item: &str| list.iter().any(|x| x == item);
    let kept = [script.secretary, script.member, script.new_member]
        .iter()
        .all(|name| has(&merged.members, name))
        && merged.signed_in == [script.member]
        && has(&merged.progress, script.progress);
    if !kept {
        return Err(script.untrue(
            "demo.edit_lost",
            "an edit allowed by the rules is missing after the merge",
            "合并之后缺少一项规则允许的修改",
        ));
    }
    Ok(())
}

/// The fields with concurrent values, checked: both phones and the server
/// list the same ones, and the activity's place holds both phones' values,
/// the one everyone shows being the one the views show.
fn check_conflicts(
    script: &Script,
    secretary: &Phone,
    member: &Phone,
    admin: &Admin,
    records: Records,
    merged: &View,
) -> anyhow::Result<Vec<Conflict>> {
    let of_secretary = secretary.conflicts()?;
    let member_docs: BTreeSet<DocId> = member.heads()?.into_keys().collect();
    let mut of_server = Vec::new();
    for doc in secretary.heads()?.into_keys() {
        let bytes = admin
            .document_bytes(doc)?
            .with_context(|| format!("the server has no document {doc}"))?;
        of_server.extend(conflict::find(doc, &AutoCommit::load(&bytes)?));
    }
    let of_server = in_order(of_server);
    let seen_by_member: Vec<Conflict> = of_secretary
        .iter()
        .filter(|c| member_docs.contains(&c.doc))
        .cloned()
        .collect();
    if of_server != of_secretary || member.conflicts()? != seen_by_member {
        return Err(script.untrue(
            "demo.conflict_mismatch",
            "the phones and the server do not list the same concurrent values",
            "两部手机和服务器列出的并发值不一致",
        ));
    }
    let devices = [secretary.store().device_id(), member.store().device_id()];
    let place = of_secretary
        .iter()
        .find(|c| c.doc == records.activity && c.path == "place");
    let holds = place.is_some_and(|c| {
        let values: BTreeSet<&str> = c.values.iter().map(|v| v.value.as_str()).collect();
        let writers: BTreeSet<Option<DeviceId>> = c.values.iter().map(|v| v.device).collect();
        let shown: Vec<&str> = c
            .values
            .iter()
            .filter(|v| v.winner)
            .map(|v| v.value.as_str())
            .collect();
        values == BTreeSet::from([script.secretary_place, script.member_place])
            && writers == devices.iter().copied().map(Some).collect()
            && shown == [merged.place.as_str()]
    });
    if !holds {
        return Err(script.untrue(
            "demo.conflict_missing",
            "the activity's place does not hold both phones' values as a conflict",
            "活动地点没有作为冲突保留两部手机的值",
        ));
    }
    Ok(of_secretary)
}

/// One conflict for people: the record, the field, each value with who
/// wrote it and which one everyone shows.
fn conflict_line(
    script: &Script,
    conflict: &Conflict,
    records: Records,
    merged: &View,
    devices: &[(DeviceId, String)],
) -> String {
    let values: Vec<String> = conflict
        .values
        .iter()
        .map(|v| {
            let phone = v
                .device
                .and_then(|d| devices.iter().find(|(id, _)| *id == d))
                .map(|(_, name)| name.clone());
            let person = v.member.and_then(|m| merged.names.get(&m)).cloned();
            let by = phone.or(person).unwrap_or_else(|| v.actor.clone());
            let shown = if v.winner {
                script.say("; shown now", "；当前显示")
            } else {
                String::new()
            };
            script.say(
                &format!("“{}” ({by}{shown})", v.value),
                &format!("“{}”（{by}{shown}）", v.value),
            )
        })
        .collect();
    let record = record_name(script, conflict.doc, records, None);
    let field = match conflict.path.as_str() {
        "place" => script.say("place", "地点"),
        other => other.to_owned(),
    };
    script.say(
        &format!("{record}, {field}: {}", values.join(", ")),
        &format!("{record}，{field}：{}", values.join("，")),
    )
}

/// The refusals recorded on either phone, checked: the member's edit of the
/// petition's description was refused, and no replica shows it.
fn check_refused(
    script: &Script,
    secretary: &Phone,
    member: &Phone,
    records: Records,
    merged: &View,
) -> anyhow::Result<Vec<(String, Rejection)>> {
    let mut refused = Vec::new();
    for phone in [secretary, member] {
        for rejection in phone.store().rejections(None)? {
            refused.push((phone.name.clone(), rejection));
        }
    }
    let of_member = refused
        .iter()
        .any(|(phone, r)| *phone == member.name && r.doc_id == records.petition);
    if !of_member || merged.description != script.petition_text {
        return Err(script.untrue(
            "demo.not_refused",
            &format!(
                "{}'s edit of the petition's description was not refused and dropped",
                script.member
            ),
            &format!("{}对诉求描述的修改没有被拒绝并撤回", script.member),
        ));
    }
    Ok(refused)
}

/// One refusal as the phone shows it: the record, the stable code, why in
/// words, and the server's own explanation.
fn refusal_line(script: &Script, phone: &str, r: &Rejection, records: Records) -> String {
    let record = record_name(script, r.doc_id, records, Some(&r.kind));
    let why = script.explain(&r.code).unwrap_or_else(|| r.message.clone());
    script.say(
        &format!(
            "{phone}: the server refused an edit to {record} [{}]: {why} (server: {})",
            r.code, r.message
        ),
        &format!(
            "{phone}：服务器拒绝了对{record}的修改 [{}]：{why}（服务器原文：{}）",
            r.code, r.message
        ),
    )
}

/// A record as people call it.
fn record_name(script: &Script, doc: DocId, records: Records, kind: Option<&str>) -> String {
    if doc == records.petition {
        script.say(
            &format!("the petition “{}”", script.petition_title),
            &format!("诉求“{}”", script.petition_title),
        )
    } else if doc == records.activity {
        script.say(
            &format!("the activity “{}”", script.activity),
            &format!("活动“{}”", script.activity),
        )
    } else if doc == records.roster {
        script.say("the roster", "花名册")
    } else {
        format!("{} {doc}", kind.unwrap_or("document"))
    }
}

/// Waits until both phones and the server hold the same heads for every
/// document the member's phone holds (the secretary's: for all of its own)
/// and show the same records; returns whether they did, and the three views.
async fn wait_converged(
    secretary: &Phone,
    member: &Phone,
    admin: &Admin,
    records: Records,
) -> anyhow::Result<(bool, Vec<View>)> {
    secretary.wait_in_sync().await?;
    member.wait_in_sync().await?;
    let deadline = Instant::now() + PATIENCE;
    loop {
        let server_heads = |doc: DocId| -> anyhow::Result<Option<Vec<ChangeHash>>> {
            let Some(bytes) = admin.document_bytes(doc)? else {
                return Ok(None);
            };
            let mut heads = Automerge::load(&bytes)?.get_heads();
            heads.sort();
            Ok(Some(heads))
        };
        let of_secretary = secretary.heads()?;
        let of_member = member.heads()?;
        let mut same = of_member
            .iter()
            .all(|(doc, heads)| of_secretary.get(doc) == Some(heads));
        for (doc, heads) in &of_secretary {
            same &= server_heads(*doc)?.as_ref() == Some(heads);
        }
        let views = vec![
            View::from_store(&secretary.store(), records)?,
            View::from_store(&member.store(), records)?,
            View::from_server(admin, records)?,
        ];
        if same && views.windows(2).all(|w| w[0] == w[1]) {
            return Ok((true, views));
        }
        if Instant::now() > deadline {
            return Ok((false, views));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code_of(e: &anyhow::Error) -> &'static str {
        e.downcast_ref::<Failure>().map_or("none", |f| f.code)
    }

    /// What both replicas show after an honest merge.
    fn merged(script: &Script) -> View {
        View {
            members: vec![
                script.secretary.into(),
                script.member.into(),
                script.new_member.into(),
            ],
            minutes: script.appended(
                &script.appended(script.minutes, script.member_minutes),
                script.secretary_minutes,
            ),
            signed_in: vec![script.member.into()],
            place: script.member_place.into(),
            description: script.petition_text.into(),
            progress: vec![script.progress.into()],
            names: BTreeMap::new(),
        }
    }

    #[test]
    fn a_merge_holding_both_sentences_whole_is_the_only_one_called_word_for_word() {
        for lang in [Lang::En, Lang::Zh] {
            let script = Script::new(lang);
            let view = merged(&script);
            assert!(check_merged(&script, &view).is_ok());
            let mut other_order = view.clone();
            other_order.minutes = script.appended(
                &script.appended(script.minutes, script.secretary_minutes),
                script.member_minutes,
            );
            assert!(check_merged(&script, &other_order).is_ok());

            let mut lost = view.clone();
            lost.minutes = script.appended(script.minutes, script.secretary_minutes);
            let e = check_merged(&script, &lost).unwrap_err();
            assert_eq!(code_of(&e), "demo.not_merged");
            let mut doubled = view.clone();
            doubled.minutes = script.appended(&view.minutes, script.member_minutes);
            assert_eq!(
                code_of(&check_merged(&script, &doubled).unwrap_err()),
                "demo.not_merged"
            );
            let mut no_sign_in = view.clone();
            no_sign_in.signed_in.clear();
            assert_eq!(
                code_of(&check_merged(&script, &no_sign_in).unwrap_err()),
                "demo.edit_lost"
            );
        }
    }

    #[test]
    fn a_phone_showing_the_other_phones_edit_before_reconnecting_fails_the_demo() {
        let script = Script::new(Lang::En);
        let secretary = View {
            members: vec![
                script.secretary.into(),
                script.member.into(),
                script.new_member.into(),
            ],
            minutes: script.appended(script.minutes, script.secretary_minutes),
            signed_in: Vec::new(),
            place: script.secretary_place.into(),
            description: script.petition_text.into(),
            progress: Vec::new(),
            names: BTreeMap::new(),
        };
        let member = View {
            members: vec![script.secretary.into(), script.member.into()],
            minutes: script.appended(script.minutes, script.member_minutes),
            signed_in: vec![script.member.into()],
            place: script.member_place.into(),
            description: script.appended(script.petition_text, script.member_petition_adds),
            progress: vec![script.progress.into()],
            names: BTreeMap::new(),
        };
        assert!(check_offline(&script, &[secretary.clone(), member.clone()]).is_ok());
        let mut leaked = member.clone();
        leaked.minutes = merged(&script).minutes;
        let e = check_offline(&script, &[secretary, leaked]).unwrap_err();
        assert_eq!(code_of(&e), "demo.offline_leak");
    }
}
