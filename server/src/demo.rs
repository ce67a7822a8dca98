//! `branchline-server demo`: the first thing a newcomer runs (part of the
//! `branchline-server` binary).
//!
//! Everything happens in this process, over real QUIC on 127.0.0.1 with
//! real SQLite files in a temporary directory: a server starts, a branch is
//! added, the secretary's phone and a member's phone enroll with one-time
//! invites, both lose the network and edit offline — the same activity,
//! the same petition, even the same field — then reconnect. The demo prints
//! each step with what each phone sees, then the merged result on both
//! phones and the server, and fails (exit code 1) unless all three hold
//! identical documents.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use automerge::{Automerge, ChangeHash};
use branchline_core::model::{
    Activity, Category, Date, DocKind, Gender, Level, LocalDateTime, NewActivity, NewMember,
    NewPetition, Petition, Roster, SignInMode, Submitter,
};
use branchline_core::net::{ClientConfig, Status, SyncClient};
use branchline_core::{BranchId, DocId, MemberId, Store};
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
    petition_category: &'static str,
    petition_title: &'static str,
    petition_text: &'static str,
    minutes: &'static str,
    secretary_adds: &'static str,
    member_adds: &'static str,
    secretary_location: &'static str,
    member_location: &'static str,
    progress: &'static str,
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
                place: "River bank, east steps",
                petition_category: "Roads",
                petition_title: "Street light out at the north gate",
                petition_text: "The street light at the north gate has been dark for a week.",
                minutes: "Cleared 300 m of the river bank; 12 bags of rubbish.",
                secretary_adds: " The property office has ordered a new lamp.",
                member_adds: " The path to the bike shed is dark too.",
                secretary_location: "North gate, lamp post 3",
                member_location: "North gate",
                progress: "Reported to the power company; repair booked for Friday.",
            },
            Lang::Zh => Script {
                lang,
                branch: "幸福里社区第一党支部",
                secretary: "李伟",
                secretary_post: "书记",
                member: "王芳",
                new_member: "张敏",
                activity: "主题党日：清理河道",
                place: "河东台阶",
                petition_category: "道路交通",
                petition_title: "北门路灯不亮",
                petition_text: "北门的路灯已经一个星期不亮了。",
                minutes: "清理河岸三百米，垃圾十二袋。",
                secretary_adds: "物业已订购新灯。",
                member_adds: "通往车棚的小路也很黑。",
                secretary_location: "北门3号灯杆",
                member_location: "北门",
                progress: "已报修供电所，周五上门维修。",
            },
        }
    }

    fn say(&self, en: &str, zh: &str) -> String {
        crate::say(self.lang, en, zh)
    }

    fn phone(&self, person: &str) -> String {
        self.say(&format!("{person}'s phone"), &format!("{person}的手机"))
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
    description: String,
    location: String,
    progress: Vec<String>,
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
            description: petition.description.as_str().to_owned(),
            location: petition.location.clone().unwrap_or_default(),
            progress: petition.progress.iter().map(|n| n.text.clone()).collect(),
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
                items.join(", ")
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
            (
                script.say("petition text", "问题描述"),
                quoted(&self.description),
            ),
            (
                script.say("location", "地点"),
                if self.location.is_empty() {
                    "-".to_owned()
                } else {
                    self.location.clone()
                },
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
                    format!(
                        "{} is not empty; give --keep a new or empty directory",
                        dir.display()
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
    let (documents, conflicts) = outcome?;
    println!();
    println!(
        "{}",
        script.say(
            &format!(
                "converged: both phones and the server hold the same {documents} documents, \
                 nothing lost ({conflicts} field(s) with concurrent values, kept and shown) \
                 in {:.1} s",
                started.elapsed().as_secs_f64()
            ),
            &format!(
                "已收敛（converged）：两部手机和服务器上的 {documents} 份文档完全一致，\
                 没有丢失任何修改（{conflicts} 个字段有并发的不同值，均已保留并标出），\
                 用时 {:.1} 秒",
                started.elapsed().as_secs_f64()
            ),
        )
    );
    Ok(())
}

/// The demo proper; returns how many documents converged and how many
/// fields hold concurrent values.
async fn converge(
    script: &Script,
    steps: &mut Steps,
    server: &RunningServer,
    root: &Path,
) -> anyhow::Result<(usize, usize)> {
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
    let records = {
        let mut store = secretary.store();
        let today = Date(chrono::Local::now().date_naive());
        let li_wei = store.add_member(
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
                organizer: Some(li_wei),
                ..Default::default()
            },
        )?;
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
        (
            Records {
                roster,
                activity,
                petition,
            },
            wang_fang,
        )
    };
    let (records, wang_fang) = records;
    secretary.wait_in_sync().await?;
    steps.step(&script.say(
        &format!(
            "{secretary_phone} (secretary) joined with a one-time invite and recorded: members \
             {}, {}; activity “{}”; a resident's petition “{}”, owned by {}",
            script.secretary, script.member, script.activity, script.petition_title, script.member
        ),
        &format!(
            "{secretary_phone}（书记）用一次性邀请加入，并录入：党员{}、{}；活动“{}”；\
             居民诉求“{}”，责任人{}",
            script.secretary, script.member, script.activity, script.petition_title, script.member
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
        store.write_minutes(records.activity, script.minutes)?;
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
        let adds = script.secretary_adds;
        let location = script.secretary_location;
        store.update(records.petition, |p: &mut Petition| {
            let text = format!("{}{adds}", p.description.as_str());
            p.description.update(text);
            p.location = Some(location.to_owned());
            Ok(())
        })?;
    }
    steps.step(&script.say(
        &format!(
            "{}, offline: writes the minutes, adds member {}, adds a sentence to the \
             petition's text and sets its location to “{}”",
            script.secretary, script.new_member, script.secretary_location
        ),
        &format!(
            "{}离线：写会议记录，添加党员{}，在问题描述末尾补一句，把地点设为“{}”",
            script.secretary, script.new_member, script.secretary_location
        ),
    ));

    {
        let mut store = member.store();
        store.sign_in(records.activity, wang_fang, SignInMode::Remote)?;
        store.add_progress(records.petition, Some(wang_fang), script.progress)?;
        let adds = script.member_adds;
        let location = script.member_location;
        store.update(records.petition, |p: &mut Petition| {
            let text = format!("{}{adds}", p.description.as_str());
            p.description.update(text);
            p.location = Some(location.to_owned());
            Ok(())
        })?;
    }
    steps.step(&script.say(
        &format!(
            "{}, offline: signs in to the theme day (remote), adds a progress note, adds \
             a sentence to the same petition's text and sets its location to “{}”",
            script.member, script.member_location
        ),
        &format!(
            "{}离线：远程签到主题党日，添加一条进展，在同一问题描述末尾补一句，把地点设为“{}”",
            script.member, script.member_location
        ),
    ));

    steps.step(&script.say(
        "Before reconnecting, each phone sees only its own edits:",
        "重新联网之前，每部手机只看到自己的修改：",
    ));
    View::from_store(&secretary.store(), records)?.print(script, &secretary_phone);
    View::from_store(&member.store(), records)?.print(script, &member_phone);

    let reconnecting = Instant::now();
    secretary.client.set_network_available(true);
    member.client.set_network_available(true);
    let (converged, views) = wait_converged(&secretary, &member, &admin, records).await?;
    steps.step(&script.say(
        &format!(
            "Both phones get the network back and sync by themselves ({:.1} s)",
            reconnecting.elapsed().as_secs_f64()
        ),
        &format!(
            "两部手机恢复网络，自动同步（{:.1} 秒）",
            reconnecting.elapsed().as_secs_f64()
        ),
    ));
    steps.step(&script.say(
        "After the merge, the phones and the server show:",
        "合并之后，两部手机和服务器显示：",
    ));
    let server_label = script.say("server", "服务器");
    for (view, who) in views
        .iter()
        .zip([&secretary_phone, &member_phone, &server_label])
    {
        view.print(script, who);
    }

    let devices = [
        (secretary.store().device_id(), secretary_phone.clone()),
        (member.store().device_id(), member_phone.clone()),
    ];
    let conflicts = secretary.store().conflicts()?;
    let mut lines = Vec::new();
    for conflict in &conflicts {
        let values: Vec<String> = conflict
            .values
            .iter()
            .map(|v| {
                let by = v
                    .device
                    .and_then(|d| devices.iter().find(|(id, _)| *id == d))
                    .map_or_else(|| v.actor.clone(), |(_, name)| name.clone());
                let shown = if v.winner {
                    script.say(", shown now", "，当前显示")
                } else {
                    String::new()
                };
                format!("“{}” ({by}{shown})", v.value)
            })
            .collect();
        let doc = if conflict.doc == records.petition {
            script.say("petition", "问题")
        } else if conflict.doc == records.activity {
            script.say("activity", "活动")
        } else if conflict.doc == records.roster {
            script.say("roster", "花名册")
        } else {
            conflict.doc.to_string()
        };
        let field = match conflict.path.as_str() {
            "location" => script.say("location", "地点"),
            other => other.to_owned(),
        };
        lines.push(format!("{doc} {field}: {}", values.join(", ")));
    }
    steps.step(&script.say(
        "Text merged word for word and every sign-in, note and member was kept. Where both \
         phones set the same field, both values are kept and everyone shows the same one \
         until a person settles it:",
        "文字逐字合并，签到、进展和党员一个不少。两部手机改了同一字段时，两个值都保留，\
         所有人看到同一个值，直到有人裁定：",
    ));
    if lines.is_empty() {
        println!("   -");
    }
    for line in &lines {
        println!("   {line}");
    }

    let identical = views.windows(2).all(|w| w[0] == w[1]);
    if !(converged && identical) {
        return Err(Failure::new(
            "demo.diverged",
            script.say(
                "the phones and the server did not converge",
                "手机和服务器没有收敛到一致",
            ),
        )
        .into());
    }
    let documents = member.heads()?.len();
    member.client.shutdown().await;
    secretary.client.shutdown().await;
    Ok((documents, conflicts.len()))
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
