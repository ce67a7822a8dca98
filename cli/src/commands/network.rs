//! The commands that talk to the server: `enroll`, `sync`, and the requests
//! only the server can answer (`submission-code`, `suggest`, a resident's
//! `petition submit`). Everything else works offline on the store.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use branchline_core::Store;
use branchline_core::model::{NewPetition, Petition};
use branchline_core::net::{
    ClientConfig, ClientEvent, NetError, SessionReport, Status, SyncClient,
};
use branchline_core::store::Rejection;
use branchline_core::sync::SyncEvent;
use branchline_protocol::{InviteLink, Role};
use serde_json::json;
use tokio::sync::broadcast::Receiver;
use tokio::sync::broadcast::error::RecvError;

use crate::commands::rejection::{self, RejectionView};
use crate::failure::{EXIT_FAILURE, EXIT_HOME, EXIT_NETWORK, EXIT_REFUSED, Failure, Result};
use crate::home::{Home, forget_legacy_revocation, known_branch_name, revoked_failure, store_path};
use crate::output::{Out, local_time, short};
use crate::words;

/// The server's code for a revoked device.
const DEVICE_REVOKED: &str = "auth.device_revoked";

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(Failure::from)
}

/// Status in words, for people and for `--json` lines.
fn describe(status: &Status, out: Out) -> (String, String) {
    match status {
        Status::Offline => ("offline".into(), out.say("offline", "离线")),
        Status::Connecting => ("connecting".into(), out.say("connecting…", "正在连接…")),
        Status::Syncing => ("syncing".into(), out.say("syncing…", "正在同步…")),
        Status::InSync => ("in_sync".into(), out.say("in sync", "已同步")),
        Status::Waiting { retry_in } => (
            "waiting".into(),
            out.say(
                format!(
                    "server unreachable; retrying in {} s",
                    retry_in.as_secs().max(1)
                ),
                format!("无法连接服务器；{} 秒后重试", retry_in.as_secs().max(1)),
            ),
        ),
        Status::Refused { code } => (
            "refused".into(),
            out.say(
                format!("refused by the server ({code})"),
                format!("服务器拒绝（{code}）"),
            ),
        ),
        Status::Stopped => ("stopped".into(), out.say("stopped", "已停止")),
    }
}

/// How a wait for the first in-sync ended.
enum Outcome {
    InSync,
    Refused(String),
    TimedOut { last_error: Option<String> },
}

/// Waits until the client is in sync, is refused for good, or `timeout` passes,
/// handing every event that arrives meanwhile to `on_event`.
async fn until_in_sync(
    client: &SyncClient,
    events: &mut Receiver<ClientEvent>,
    timeout: Duration,
    on_event: &mut dyn FnMut(ClientEvent),
) -> Outcome {
    let mut last_error = None;
    let deadline = tokio::time::Instant::now() + timeout;
    let wait = client.wait_for_status(timeout, |s| {
        matches!(s, Status::InSync | Status::Refused { .. } | Status::Stopped)
    });
    tokio::pin!(wait);
    loop {
        tokio::select! {
            status = &mut wait => {
                return match status {
                    Ok(Status::InSync) => Outcome::InSync,
                    Ok(Status::Refused { code }) => Outcome::Refused(code.as_str().to_owned()),
                    _ => Outcome::TimedOut { last_error },
                };
            }
            event = events.recv() => match event {
                Ok(ClientEvent::Disconnected { reason }) => last_error = Some(reason),
                Ok(event) => on_event(event),
                Err(RecvError::Lagged(_)) => {}
                Err(RecvError::Closed) => {
                    tokio::time::sleep_until(deadline).await;
                }
            },
        }
    }
}

/// Runs `work` to its end, handing every event that arrives meanwhile (and
/// those already waiting when it ends) to `on_event`.
async fn pumping<T>(
    work: impl Future<Output = T>,
    events: &mut Receiver<ClientEvent>,
    on_event: &mut dyn FnMut(ClientEvent),
) -> T {
    tokio::pin!(work);
    let mut open = true;
    loop {
        tokio::select! {
            biased;
            event = events.recv(), if open => match event {
                Ok(event) => on_event(event),
                Err(RecvError::Lagged(_)) => {}
                Err(RecvError::Closed) => open = false,
            },
            done = &mut work => {
                while let Ok(event) = events.try_recv() {
                    on_event(event);
                }
                return done;
            }
        }
    }
}

fn refused(code: String, out: Out) -> Failure {
    if code == DEVICE_REVOKED {
        return revoked_failure();
    }
    let message = out.say(
        format!("the server refused this device ({code}); ask your secretary for a new invite"),
        format!("服务器拒绝了此设备（{code}）；请向书记索取新的邀请"),
    );
    Failure::new(code, message, EXIT_REFUSED)
}

fn unreachable(server: &str, timeout: u64, last_error: Option<String>, out: Out) -> Failure {
    let detail = last_error.map(|e| format!(" ({e})")).unwrap_or_default();
    Failure::new(
        "net.unreachable",
        out.say(
            format!("could not sync with the server at {server} within {timeout} s{detail}"),
            format!("{timeout} 秒内无法与服务器 {server} 同步{detail}"),
        ),
        EXIT_NETWORK,
    )
}

/// Enrolls this device with an invite link and runs its first sync.
///
/// Nothing is left behind when enrollment fails: a store this command
/// created is removed again (and the home directory, if it made it).
pub fn enroll(home: &Path, link: &str, name: &str, timeout: u64, out: Out) -> Result<()> {
    let invite: InviteLink = link
        .parse()
        .map_err(|e: branchline_protocol::InviteParseError| {
            Failure::invalid("invite.malformed", format!("{e}: {link:?}"))
                .zh(format!("这不是有效的邀请链接（{}）：{link:?}", e.code()))
        })?;
    if home.exists() && !home.is_dir() {
        return Err(Failure::new(
            "home.not_a_directory",
            format!("{} is a file, not a directory", home.display()),
            EXIT_HOME,
        )
        .zh(format!("{} 是文件，不是目录", home.display())));
    }
    let path = store_path(home);
    let created_dir = !home.exists();
    let created_store = !path.exists();
    if !created_store && Store::open(&path)?.account()?.is_some() {
        return Err(Failure::invalid(
            "home.already_enrolled",
            format!("{} already belongs to an enrolled device", home.display()),
        )
        .zh(format!("{} 已属于一台已加入支部的设备", home.display())));
    }
    std::fs::create_dir_all(home)?;
    let server = invite.server.clone();
    let result = enroll_in(&path, invite, name, timeout, out);
    if let Err(failure) = result {
        let enrolled = Store::open(&path)
            .ok()
            .and_then(|s| s.account().ok().flatten())
            .is_some();
        if enrolled {
            eprintln!(
                "{}",
                out.say(
                    format!(
                        "enrolled, but the first sync did not finish: {}; run `branchline sync`",
                        failure.message_in(out.lang)
                    ),
                    format!(
                        "已加入，但首次同步未完成：{}；请运行 branchline sync",
                        failure.message_in(out.lang)
                    ),
                )
            );
            forget_legacy_revocation(home);
            return print_enrolled(&path, out);
        }
        if created_store {
            for suffix in ["", "-wal", "-shm", "-journal"] {
                let mut file = path.clone().into_os_string();
                file.push(suffix);
                let _ = std::fs::remove_file(file);
            }
        }
        if created_dir {
            let _ = std::fs::remove_dir(home);
        }
        tracing::debug!(%server, "enrollment failed; nothing kept");
        return Err(failure);
    }
    // Saving the new account ended the store's revocation.
    forget_legacy_revocation(home);
    print_enrolled(&path, out)
}

fn enroll_in(path: &Path, invite: InviteLink, name: &str, timeout: u64, out: Out) -> Result<()> {
    let store = Arc::new(Mutex::new(Store::open(path)?));
    let server = invite.server.clone();
    runtime()?.block_on(async {
        let client = SyncClient::join(store, invite, name, ClientConfig::default());
        let mut events = client.subscribe();
        let outcome = until_in_sync(
            &client,
            &mut events,
            Duration::from_secs(timeout),
            &mut |_| {},
        )
        .await;
        client.shutdown().await;
        match outcome {
            Outcome::InSync => Ok(()),
            Outcome::Refused(code) => Err(refused(code, out)),
            Outcome::TimedOut { last_error } => Err(unreachable(&server, timeout, last_error, out)),
        }
    })
}

fn print_enrolled(path: &Path, out: Out) -> Result<()> {
    let store = Store::open(path)?;
    let account = store
        .account()?
        .ok_or_else(|| Failure::new("cli.error", "the account was not saved", EXIT_FAILURE))?;
    // A resident's device receives no branch profile: the name is the one
    // the server's Welcome gave.
    let branch_name = known_branch_name(&store, account.branch, account.branch_name.clone());
    let documents = store.documents()?.len();
    if out.json {
        out.show(
            &json!({
                "device_id": account.device_id.to_string(),
                "branch": account.branch.to_string(),
                "branch_name": branch_name,
                "role": account.role.to_string(),
                "member": account.member.map(|m| m.to_string()),
                "documents": documents,
            }),
            || {},
        );
        return Ok(());
    }
    let role = words::value(account.role.as_str(), out.lang);
    let branch = match &branch_name {
        Some(name) => name.clone(),
        None => out.say(
            format!("branch {}", short(account.branch)),
            format!("支部 {}", short(account.branch)),
        ),
    };
    println!(
        "{}",
        out.say(
            format!(
                "enrolled in {branch} as {role} (device {}); {documents} documents on this device",
                account.device_id,
            ),
            format!(
                "已加入{branch}，身份：{role}（设备 {}）；本机共 {documents} 份文档",
                account.device_id,
            ),
        )
    );
    Ok(())
}

/// Syncs once, or stays connected with `watch` until Ctrl-C.
///
/// When the server says the device is revoked, client-core forgets the
/// account and the store remembers the revocation: later commands read it
/// from there.
pub fn sync(home: &Path, watch: bool, timeout: u64, out: Out) -> Result<()> {
    let opened = Home::open(home)?;
    opened.require_writable()?;
    let server = opened.account()?.server.clone();
    let store = Arc::new(Mutex::new(opened.store));
    runtime()?.block_on(async {
        let client = SyncClient::resume(Arc::clone(&store), ClientConfig::default())?;
        let result = if watch {
            watch_loop(&client, out).await
        } else {
            sync_once(&client, &store, &server, timeout, out).await
        };
        client.shutdown().await;
        result
    })
}

async fn sync_once(
    client: &SyncClient,
    store: &Arc<Mutex<Store>>,
    server: &str,
    timeout: u64,
    out: Out,
) -> Result<()> {
    let mut events = client.subscribe();
    // Refusals recorded before this sync are not news.
    let seen_before = lock(store)?.rejections(None)?.last().map(|r| r.id);
    let mut updated = std::collections::BTreeSet::new();
    let mut failed = Vec::new();
    let mut refusals: Vec<Rejection> = Vec::new();
    let mut on_event = |event: ClientEvent| match event {
        ClientEvent::Sync(SyncEvent::DocUpdated(doc)) => {
            updated.insert(doc);
        }
        // A failure on the server's side is retried before the device is in
        // sync again; only the others are the person's to hear about.
        ClientEvent::Sync(SyncEvent::DocFailed { doc, code, message }) if !code.is_transient() => {
            failed.push((doc, code, message));
        }
        ClientEvent::Sync(SyncEvent::Rejected(rejection)) => {
            if !out.json {
                let title = title_in(store, rejection.doc_id);
                eprintln!("{}", rejection::sentence(&rejection, title.as_deref(), out));
            }
            refusals.push(rejection);
        }
        _ => {}
    };
    let outcome = until_in_sync(
        client,
        &mut events,
        Duration::from_secs(timeout),
        &mut on_event,
    )
    .await;
    match outcome {
        Outcome::InSync => {}
        Outcome::Refused(code) => return Err(refused(code, out)),
        Outcome::TimedOut { last_error } => {
            return Err(unreachable(server, timeout, last_error, out));
        }
    }
    // Wait for acknowledgements of what this sync sent, then report.
    pumping(
        client.wait_in_sync(Duration::from_secs(timeout)),
        &mut events,
        &mut on_event,
    )
    .await
    .map_err(Failure::from)?;
    // The store has every refusal, even one whose event was lost to a
    // lagging receiver.
    for rejection in lock(store)?.rejections(seen_before)? {
        if !refusals.iter().any(|r| r.id == rejection.id) {
            if !out.json {
                let title = title_in(store, rejection.doc_id);
                eprintln!("{}", rejection::sentence(&rejection, title.as_deref(), out));
            }
            refusals.push(rejection);
        }
    }
    let report = client.report();
    let pending = lock(store)?.pending_changes()?;
    print_sync(&report, updated.len(), pending, &refusals, out);
    if let Some(first) = refusals.first() {
        return Err(Failure::new(
            first.code.clone(),
            out.say(
                format!(
                    "the server refused {} edits of this device; they were dropped here (see `branchline rejections`)",
                    refusals.len()
                ),
                format!(
                    "服务器拒绝了本机的 {} 条修改，已在本机撤销（见 branchline rejections）",
                    refusals.len()
                ),
            ),
            EXIT_REFUSED,
        ));
    }
    // Changes the server refused stay pending here; say which, and fail.
    let Some((_, code, _)) = failed.first() else {
        return Ok(());
    };
    for (doc, code, message) in &failed {
        eprintln!(
            "{} {doc}: [{}] {message}",
            out.lang.pick("refused:", "被拒绝："),
            code.as_str()
        );
    }
    Err(Failure::new(
        code.as_str(),
        out.say(
            format!("the server refused changes to {} documents", failed.len()),
            format!("服务器拒绝了 {} 份文档的修改", failed.len()),
        ),
        EXIT_REFUSED,
    ))
}

/// The title of a record in the shared store, if it holds one.
fn title_in(store: &Arc<Mutex<Store>>, doc: branchline_core::DocId) -> Option<String> {
    store
        .lock()
        .ok()
        .and_then(|s| rejection::record_title(&s, doc))
}

fn lock(store: &Arc<Mutex<Store>>) -> Result<std::sync::MutexGuard<'_, Store>> {
    store
        .lock()
        .map_err(|_| Failure::new("cli.error", "the store lock was poisoned", EXIT_FAILURE))
}

fn print_sync(
    report: &SessionReport,
    updated: usize,
    pending: usize,
    refusals: &[Rejection],
    out: Out,
) {
    let refusals: Vec<RejectionView> = refusals
        .iter()
        .map(|r| RejectionView::new(r, out.lang))
        .collect();
    out.show(
        &json!({
            "in_sync": true,
            "rejections": refusals,
            "documents_updated": updated,
            "documents_synced": report.docs_synced,
            "pending_changes": pending,
            "round_trips": report.manifest_round_trips,
            "bytes_sent": report.udp_bytes_sent,
            "bytes_received": report.udp_bytes_received,
        }),
        || {
            println!(
                "{}",
                out.say(
                    format!(
                        "in sync: {updated} documents updated from the server, {} synced, {pending} changes waiting; {} B sent, {} B received",
                        report.docs_synced, report.udp_bytes_sent, report.udp_bytes_received
                    ),
                    format!(
                        "已同步：从服务器更新 {updated} 份文档，同步 {} 份，待同步修改 {pending} 条；发送 {} 字节，接收 {} 字节",
                        report.docs_synced, report.udp_bytes_sent, report.udp_bytes_received
                    ),
                )
            );
        },
    );
}

/// Stays connected, printing what happens, until Ctrl-C.
async fn watch_loop(client: &SyncClient, out: Out) -> Result<()> {
    let mut events = client.subscribe();
    let mut shown = None;
    let mut tick = tokio::time::interval(Duration::from_millis(200));
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    loop {
        tokio::select! {
            _ = &mut ctrl_c => return Ok(()),
            _ = tick.tick() => {
                let status = client.status();
                if shown.as_ref() != Some(&status) {
                    let (key, text) = describe(&status, out);
                    if out.json {
                        println!("{}", json!({ "event": "status", "status": key }));
                    } else {
                        println!("{} {text}", now());
                    }
                    if let Status::Refused { code } = &status {
                        return Err(refused(code.as_str().to_owned(), out));
                    }
                    shown = Some(status);
                }
            }
            event = events.recv() => match event {
                Ok(ClientEvent::Sync(SyncEvent::DocUpdated(doc))) => {
                    if out.json {
                        println!("{}", json!({ "event": "updated", "doc": doc.to_string() }));
                    } else {
                        let what = title_in(client.store(), doc).unwrap_or_else(|| doc.to_string());
                        println!("{} {} {what}", now(), out.lang.pick("updated", "已更新"));
                    }
                }
                Ok(ClientEvent::Sync(SyncEvent::Rejected(rejection))) => {
                    if out.json {
                        println!("{}", json!({ "event": "rejected", "rejection": RejectionView::new(&rejection, out.lang) }));
                    } else {
                        let title = title_in(client.store(), rejection.doc_id);
                        println!("{} {}", now(), rejection::sentence(&rejection, title.as_deref(), out));
                    }
                }
                Ok(ClientEvent::Sync(SyncEvent::DocFailed { doc, code, message })) => {
                    // The device tries a server-side failure again by itself.
                    let (event, word) = if code.is_transient() {
                        ("retrying", out.lang.pick("will retry", "稍后重试"))
                    } else {
                        ("failed", out.lang.pick("failed", "失败"))
                    };
                    if out.json {
                        println!("{}", json!({ "event": event, "doc": doc.to_string(), "code": code.as_str(), "message": message }));
                    } else {
                        println!("{} {word} {doc}: [{}] {message}", now(), code.as_str());
                    }
                }
                Ok(_) | Err(RecvError::Lagged(_)) => {}
                Err(RecvError::Closed) => return Ok(()),
            },
        }
    }
}

fn now() -> String {
    local_time(branchline_core::model::Timestamp::now())
}

/// Connects with this device's account, gets in sync, then runs `request` on
/// the live connection; the client is shut down however it ends. Refusals of
/// this device's edits that turn up meanwhile are told on stderr.
fn with_connection<T>(
    home: Home,
    timeout: u64,
    out: Out,
    request: impl AsyncFnOnce(&SyncClient, &mut Receiver<ClientEvent>) -> Result<T>,
) -> Result<T> {
    let server = home.account()?.server.clone();
    let store = Arc::new(Mutex::new(home.store));
    runtime()?.block_on(async {
        let client = SyncClient::resume(Arc::clone(&store), ClientConfig::default())?;
        let mut events = client.subscribe();
        let mut on_event = |event: ClientEvent| {
            if let ClientEvent::Sync(SyncEvent::Rejected(rejection)) = event
                && !out.json
            {
                let title = title_in(&store, rejection.doc_id);
                eprintln!("{}", rejection::sentence(&rejection, title.as_deref(), out));
            }
        };
        let outcome = until_in_sync(
            &client,
            &mut events,
            Duration::from_secs(timeout),
            &mut on_event,
        )
        .await;
        let result = match outcome {
            Outcome::InSync => request(&client, &mut events).await,
            Outcome::Refused(code) => Err(refused(code, out)),
            Outcome::TimedOut { last_error } => Err(unreachable(&server, timeout, last_error, out)),
        };
        client.shutdown().await;
        result
    })
}

/// A request the server did not answer as hoped: its refusal in words, or the
/// network failure.
fn request_failed(e: NetError, server: &str, timeout: u64, out: Out) -> Failure {
    match &e {
        NetError::Refused { code, message } => {
            let why = rejection::explain(code.as_str(), out.lang).unwrap_or(message);
            let message = out.say(
                format!("the server refused: {why}"),
                format!("服务器拒绝：{why}"),
            );
            // The status follows the code, as for every other refusal.
            Failure::from(e).saying(message)
        }
        NetError::Offline | NetError::Connection(_) | NetError::Timeout => {
            unreachable(server, timeout, Some(e.to_string()), out)
        }
        _ => Failure::from(e),
    }
}

/// Prints the branch's public submission code, and with `qr` a QR code of it
/// residents can scan off the screen or a printed poster.
pub fn submission_code(home: Home, qr: bool, timeout: u64, out: Out) -> Result<()> {
    home.require_committee("show the branch's submission code")?;
    let server = home.account()?.server.clone();
    let link = with_connection(home, timeout, out, async |client, _| {
        within(timeout, client.submission_link())
            .await
            .map_err(|e| request_failed(e, &server, timeout, out))
    })?
    .to_string();
    if out.json {
        out.show(&json!({ "link": link }), || {});
        return Ok(());
    }
    println!("{link}");
    if qr {
        print!("{}", qr_code(&link)?);
    }
    eprintln!(
        "{}",
        out.say(
            "the branch's public submission code: residents scan it to send requests",
            "支部公开提交码：群众扫码即可提交诉求",
        )
    );
    Ok(())
}

/// The link as a QR code drawn with half-block characters, light modules on
/// dark, with its quiet zone, so it scans from a dark or light terminal.
fn qr_code(link: &str) -> Result<String> {
    branchline_core::qr::terminal(link).map_err(|e| {
        Failure::new(
            "cli.qr",
            format!("cannot draw a QR code: {e}"),
            EXIT_FAILURE,
        )
        .zh(format!("无法生成二维码：{e}"))
    })
}

/// Puts a suggestion in the branch's feedback box through the server, then
/// waits (up to `timeout`) for the box to bring it back, so `feedback list`
/// shows it at once. Prints the suggestion's id.
pub fn suggest(home: Home, text: &str, anonymous: bool, timeout: u64, out: Out) -> Result<()> {
    let account = home.account()?;
    match account.role {
        Role::Resident => {
            return Err(Failure::invalid(
                "access.denied",
                out.say(
                    "the feedback box is for the branch's members; a resident sends a request with `branchline petition submit`",
                    "意见箱仅供本支部党员使用；群众请用 branchline petition submit 提交诉求",
                ),
            ));
        }
        _ if !anonymous && account.member.is_none() => {
            return Err(Failure::invalid(
                "input.member_required",
                out.say(
                    "this device belongs to no member: add --anonymous",
                    "此设备不属于任何党员：请加 --anonymous 匿名提交",
                ),
            ));
        }
        _ => {}
    }
    let server = account.server.clone();
    let branch = home.branch();
    let id = with_connection(home, timeout, out, async |client, events| {
        let (_, id) = within(timeout, client.submit_suggestion(text, anonymous))
            .await
            .map_err(|e| request_failed(e, &server, timeout, out))?;
        arrived(client, events, timeout, |s| {
            s.feedback_box(branch)
                .ok()
                .flatten()
                .is_some_and(|(_, b)| b.suggestion(id).is_some())
        })
        .await;
        Ok(id)
    })?;
    out.created(
        id,
        if anonymous {
            out.say(
                "your suggestion is in the feedback box, without your name",
                "您的意见已匿名放入意见箱",
            )
        } else {
            out.say(
                "your suggestion is in the feedback box",
                "您的意见已放入意见箱",
            )
        },
    );
    Ok(())
}

/// Files a request through the server, as a resident's device does (it may
/// not write a petition itself), then waits (up to `timeout`) for the
/// petition to arrive by sync. Prints the petition's id.
pub fn submit_petition(home: Home, new: NewPetition, timeout: u64, out: Out) -> Result<()> {
    let server = home.account()?.server.clone();
    let title = new.title.clone();
    let (id, here) = with_connection(home, timeout, out, async |client, events| {
        let id = within(timeout, client.submit_petition(&new))
            .await
            .map_err(|e| request_failed(e, &server, timeout, out))?;
        let here = arrived(client, events, timeout, |s| s.get::<Petition>(id).is_ok()).await;
        Ok((id, here))
    })?;
    let mut sentence = out.say(
        format!("request {title:?} sent to the branch"),
        format!("诉求“{title}”已提交给支部"),
    );
    if !here {
        sentence.push_str(&out.say(
            "; it reaches this device at the next `branchline sync`",
            "；下次 branchline sync 时同步到本机",
        ));
    }
    out.created(id, sentence);
    Ok(())
}

/// Runs a request, giving up after `timeout` seconds.
async fn within<T>(
    timeout: u64,
    request: impl Future<Output = Result<T, NetError>>,
) -> Result<T, NetError> {
    tokio::time::timeout(Duration::from_secs(timeout), request)
        .await
        .unwrap_or(Err(NetError::Timeout))
}

/// Waits until `here` holds for the store, checking after every document
/// update, for at most `timeout` seconds; whether it came to hold.
async fn arrived(
    client: &SyncClient,
    events: &mut Receiver<ClientEvent>,
    timeout: u64,
    here: impl Fn(&Store) -> bool,
) -> bool {
    let check = || client.store().lock().is_ok_and(|s| here(&s));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(timeout);
    while !check() {
        match tokio::time::timeout_at(deadline, events.recv()).await {
            Err(_) | Ok(Err(RecvError::Closed)) => return false,
            Ok(_) => {}
        }
    }
    true
}
