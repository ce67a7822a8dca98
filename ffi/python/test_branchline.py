"""The Branchline mobile library, driven through its generated Python bindings.

The same bindings generator makes the Kotlin and Swift code, so what works here is
what the apps get. `ffi/tests/python.rs` builds the library, generates
`branchline_ffi.py`, starts a real server on 127.0.0.1, and runs this suite with:

- BRANCHLINE_BRANCH_ID: the branch the server set up;
- BRANCHLINE_SECRETARY_INVITE: a one-time secretary invite into it;
- BRANCHLINE_RESIDENT_INVITE: a one-time resident invite into it.

Two phones (a secretary's and a member's) enroll, edit offline, sync, watch their
status, receive each other's changes, settle a conflict, and get typed errors for bad
input. A resident's phone enrolls with the branch's submission link and files a
request; the committee answers a member's anonymous suggestion; a member's edit the
rules forbid is refused by the server, dropped and recorded; 30 KB of minutes sync
whole; a program whose exception escapes with live clients exits as it should
(`escaping_exception.py`, in a process of its own). Every exported method is
recorded when called; the last tests fail if one was never called, or never refused
bad input (unless listed in NO_BAD_INPUT with why), or if an observer was ever
called on a thread other than the library's.

Standard library only.
"""

import asyncio
import atexit
import collections
import functools
import gc
import inspect
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import uuid
import weakref

import branchline_ffi as bl
from branchline_ffi import BranchlineClient, BranchlineError

BRANCH = os.environ.get("BRANCHLINE_BRANCH_ID", "")
# A branch allied with BRANCH: activities are shared only with allies.
PARTNER = os.environ.get("BRANCHLINE_PARTNER_ID", "")
SECRETARY_INVITE = os.environ.get("BRANCHLINE_SECRETARY_INVITE", "")
RESIDENT_INVITE = os.environ.get("BRANCHLINE_RESIDENT_INVITE", "")

PATIENCE = 20.0  # seconds; generous for a busy CI machine, far above normal

# --- recording every exported call -------------------------------------------------

EXPORTED = (bl.BranchlineClient, bl.SyncHandle, bl.ObserverHandle)
CALLED = collections.Counter()
REFUSED = collections.defaultdict(set)  # method -> error codes it raised

# Methods that take no input the library could refuse, and why.
NO_BAD_INPUT = {
    "BranchlineClient.device_id": "no arguments; reads a value fixed at open",
    "BranchlineClient.status": "no arguments; reads the cached status line",
    "BranchlineClient.set_network_available": "a boolean: both values are valid",
    "BranchlineClient.list_documents": "no arguments",
    "BranchlineClient.conflicts": "no arguments",
    "BranchlineClient.account": "no arguments",
    "BranchlineClient.clock_offset_ms": "no arguments; reads what the last Welcome measured",
    "BranchlineClient.today": "no arguments; the corrected clock's date",
    "BranchlineClient.library": "optional filters of typed values: every value is valid",
    "BranchlineClient.observe_sync_status": "any observer object is accepted",
    "BranchlineClient.observe_documents": "any observer object is accepted",
    "BranchlineClient.observe_conflicts": "any observer object is accepted",
    "BranchlineClient.observe_errors": "any observer object is accepted",
    "BranchlineClient.observe_rejections": "any observer object is accepted",
    "BranchlineClient.rejections": "an optional record id: every value is valid (ids only grow)",
    "BranchlineClient.shutdown": "no arguments; harmless when nothing runs (tested)",
    "SyncHandle.cancel": "no arguments; cancelling twice is harmless (tested)",
    "SyncHandle.is_active": "no arguments",
    "ObserverHandle.cancel": "no arguments; cancelling twice is harmless (tested)",
}


def exported_methods():
    """Public methods of every exported class, as `Class.method`."""
    names = []
    for cls in EXPORTED:
        for name, attr in vars(cls).items():
            if name.startswith("_"):
                continue
            if isinstance(attr, classmethod) or inspect.isfunction(attr):
                names.append(f"{cls.__name__}.{name}")
    return sorted(names)


def _note_error(key, error):
    if isinstance(error, BranchlineError):
        REFUSED[key].add(error.code)


# Observer registrations still live: cancelled when the interpreter exits (below).
WATCHES = weakref.WeakSet()


def _recording(key, fn):
    if inspect.iscoroutinefunction(fn):

        @functools.wraps(fn)
        async def wrapper(*args, **kwargs):
            CALLED[key] += 1
            try:
                return await fn(*args, **kwargs)
            except BaseException as error:
                _note_error(key, error)
                raise

    else:

        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            CALLED[key] += 1
            try:
                result = fn(*args, **kwargs)
            except BaseException as error:
                _note_error(key, error)
                raise
            if isinstance(result, bl.ObserverHandle):
                WATCHES.add(result)
            return result

    return wrapper


def _install_recorders():
    for cls in EXPORTED:
        for name, attr in list(vars(cls).items()):
            if name.startswith("_"):
                continue
            key = f"{cls.__name__}.{name}"
            if isinstance(attr, classmethod):
                setattr(cls, name, classmethod(_recording(key, attr.__func__)))
            elif inspect.isfunction(attr):
                setattr(cls, name, _recording(key, attr))


_install_recorders()


@atexit.register
def _stop_watching():
    """What the README asks of a Python program: clients may outlive a failed test,
    and a library thread must not call an observer while the interpreter finalizes
    (that aborts the process), so every observer is cancelled at exit."""
    for watch in list(WATCHES):
        watch.cancel()


# --- helpers ----------------------------------------------------------------------


def thread_name():
    """The operating system's name of the calling thread."""
    try:
        with open(f"/proc/self/task/{threading.get_native_id()}/comm") as comm:
            return comm.read().strip()
    except FileNotFoundError:
        return "?"


# Every callback of every Observer: (callback, whether on the main thread, its thread's name).
CALLBACKS = []


class Observer(bl.SyncStatusObserver, bl.DocumentsObserver, bl.ConflictsObserver, bl.ErrorObserver,
               bl.RejectionsObserver):
    """Records every callback, and the thread each came on (the library's, always)."""

    def __init__(self):
        self.lock = threading.Lock()
        self.statuses = []
        self.documents = []
        self.conflict_lists = []
        self.errors = []
        self.rejected = []

    def _called(self, what):
        CALLBACKS.append((what, threading.current_thread() is threading.main_thread(), thread_name()))

    def on_status(self, status):
        self._called("on_status")
        with self.lock:
            self.statuses.append(status)

    def on_documents_changed(self, doc_ids):
        self._called("on_documents_changed")
        with self.lock:
            self.documents.extend(doc_ids)

    def on_conflicts(self, conflicts):
        self._called("on_conflicts")
        with self.lock:
            self.conflict_lists.append(conflicts)

    def on_error(self, error):
        self._called("on_error")
        with self.lock:
            self.errors.append(error)

    def on_rejected(self, rejection):
        self._called("on_rejected")
        with self.lock:
            self.rejected.append(rejection)

    def seen_state(self, predicate):
        with self.lock:
            return any(predicate(s.state) for s in self.statuses)

    def last_status(self):
        with self.lock:
            return self.statuses[-1] if self.statuses else None

    def error_codes(self):
        with self.lock:
            return [e.code for e in self.errors]


async def eventually(predicate, what, timeout=PATIENCE):
    """Waits until `predicate()` (sync or async) is true."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for: {what}")
        await asyncio.sleep(0.05)


def library_threads():
    """Threads of this process named by the library's runtime."""
    names = []
    for tid in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{tid}/comm") as comm:
                names.append(comm.read().strip())
        except FileNotFoundError:
            pass  # the thread ended while we looked
    return names


class State:
    """What the ordered scenario steps share."""


S = State()


class Test1Scenario(unittest.IsolatedAsyncioTestCase):
    """Two phones on one branch, step by step (tests run in name order)."""

    maxDiff = None

    @classmethod
    def setUpClass(cls):
        if not (BRANCH and SECRETARY_INVITE and RESIDENT_INVITE):
            raise unittest.SkipTest("run through `cargo test -p branchline-ffi --test python`")
        S.dir = tempfile.mkdtemp(prefix="branchline-py-")

    @classmethod
    def tearDownClass(cls):
        for name in ("sec", "mem", "res", "sec_sync", "mem_sync", "invite", "mem_obs", "sec_obs",
                     "sec_handles", "mem_handles"):
            if hasattr(S, name):
                delattr(S, name)
        gc.collect()
        shutil.rmtree(S.dir, ignore_errors=True)

    async def assertRefused(self, variant, code, call):
        """`call()` (a coroutine or a thunk) fails with `variant` and `code`."""
        with self.assertRaises(variant) as caught:
            result = call() if callable(call) else call
            if inspect.isawaitable(result):
                await result
        self.assertEqual(caught.exception.code, code, str(caught.exception))
        self.assertTrue(caught.exception.reason)

    # --- opening and calls before enrollment --------------------------------------

    async def test_01_open_refuses_bad_directories(self):
        await self.assertRefused(BranchlineError.InvalidInput, "input.empty", BranchlineClient.open("  "))
        a_file = os.path.join(S.dir, "a-file")
        with open(a_file, "w") as f:
            f.write("not a directory")
        await self.assertRefused(BranchlineError.Storage, "store.io", BranchlineClient.open(a_file))
        foreign = os.path.join(S.dir, "foreign")
        os.makedirs(foreign)
        with open(os.path.join(foreign, "branchline.db"), "wb") as f:
            f.write(b"this is not an SQLite database at all" * 100)
        await self.assertRefused(BranchlineError.Storage, "store.not_a_store", BranchlineClient.open(foreign))

        S.sec = await BranchlineClient.open(os.path.join(S.dir, "secretary"))
        S.mem = await BranchlineClient.open(os.path.join(S.dir, "member"))
        self.assertEqual(str(uuid.UUID(S.sec.device_id())), S.sec.device_id())
        self.assertNotEqual(S.sec.device_id(), S.mem.device_id())
        self.assertIsNone(await S.sec.account())
        status = S.sec.status()
        self.assertTrue(status.state.is_stopped())
        self.assertEqual(status.pending_changes, 0)
        self.assertIsNone(status.last_sync_ms)

    async def test_02_sync_control_needs_an_enrolled_device(self):
        c = S.sec
        for call in (c.sync_now, c.network_changed, c.sync_report):
            await self.assertRefused(BranchlineError.Network, "net.not_running", call)
        await self.assertRefused(BranchlineError.Network, "net.not_running", c.wait_in_sync(100))
        await c.shutdown()  # nothing to stop: harmless
        await self.assertRefused(
            BranchlineError.Network, "net.not_running", c.create_invite(bl.Role.MEMBER, None, 60)
        )
        await self.assertRefused(BranchlineError.Network, "net.not_running", c.revoke_device(str(uuid.uuid4())))
        await self.assertRefused(BranchlineError.Network, "net.not_enrolled", c.start_sync)

    async def test_03_enroll_refuses_bad_invites(self):
        c = S.sec
        await self.assertRefused(BranchlineError.InvalidInput, "invite.scheme", c.enroll("https://example.org", "phone"))
        await self.assertRefused(BranchlineError.InvalidInput, "invite.server", c.enroll("branchline://nohost/CODE?cert=00", "phone"))
        await self.assertRefused(BranchlineError.InvalidInput, "input.empty", c.enroll(SECRETARY_INVITE, " "))
        c.set_network_available(False)
        await self.assertRefused(BranchlineError.Network, "net.offline", c.enroll(SECRETARY_INVITE, "phone"))
        c.set_network_available(True)
        # A well-formed link with a code the server never issued.
        head, _, tail = SECRETARY_INVITE.rpartition("?")
        server, _, _code = head.rpartition("/")
        forged = f"{server}/NOSUCHCODE123?{tail}"
        await self.assertRefused(BranchlineError.Refused, "auth.invite_invalid", c.enroll(forged, "phone"))
        self.assertIsNone(await c.account())
        # The refusal ended that sync; the status line keeps its code.
        await eventually(lambda: c.status().state.is_refused(), "the status line says refused")
        self.assertEqual(c.status().state.code, "auth.invite_invalid")

    # --- the secretary sets the branch up ----------------------------------------

    async def test_04_secretary_enrolls_and_sets_up_the_branch(self):
        c = S.sec
        S.sec_obs = Observer()
        S.sec_handles = [
            c.observe_sync_status(S.sec_obs),
            c.observe_documents(S.sec_obs),
            c.observe_conflicts(S.sec_obs),
            c.observe_errors(S.sec_obs),
        ]
        # Told the current status at once, on a library thread (so a moment later).
        await eventually(lambda: S.sec_obs.statuses, "told the current status")
        first = S.sec_obs.statuses[0].state
        self.assertTrue(first.is_refused() and first.code == "auth.invite_invalid", str(first))
        S.sec_sync = await c.enroll(SECRETARY_INVITE, "书记的手机")
        self.assertTrue(S.sec_sync.is_active())
        account = await c.account()
        self.assertEqual(account.role, bl.Role.SECRETARY)
        self.assertEqual(account.branch_id, BRANCH)
        self.assertEqual(account.branch_name, "和平社区第一支部", "the server named the branch")
        self.assertEqual(account.device_name, "书记的手机")
        await c.wait_in_sync(int(PATIENCE * 1000))
        await self.assertRefused(BranchlineError.Refused, "auth.invite_used", S.mem.enroll(SECRETARY_INVITE, "phone"))

        profile = await c.profile(BRANCH)
        self.assertEqual(profile.branch_id, BRANCH)
        self.assertIn("theme_day", [k.code for k in profile.activity_kinds])
        await self.assertRefused(BranchlineError.InvalidInput, "input.invalid", c.profile("not-an-id"))
        await self.assertRefused(BranchlineError.NotFound, "doc.missing_branch_document", c.profile(str(uuid.uuid4())))

        await c.set_term(BRANCH, "2023-01-01", "2026-06-30")
        await self.assertRefused(BranchlineError.InvalidInput, "input.invalid", c.set_term(BRANCH, "2026-01-01", "2025-01-01"))
        await c.add_group(BRANCH, "第一党小组")
        await self.assertRefused(BranchlineError.InvalidInput, "input.empty", c.add_group(BRANCH, "  "))
        await c.set_activity_kind(BRANCH, "study", bl.ActivityKindRule(name="学习会", frequency=bl.Frequency.MONTHLY, attendance_points=1))
        await self.assertRefused(
            BranchlineError.InvalidInput, "input.empty",
            c.set_activity_kind(BRANCH, "", bl.ActivityKindRule(name="x", attendance_points=1)),
        )
        await c.set_silent_threshold(BRANCH, 60)
        await self.assertRefused(BranchlineError.InvalidInput, "input.invalid", c.set_silent_threshold(BRANCH, 150))
        profile = await c.profile(BRANCH)
        self.assertEqual(profile.term, bl.Term(start="2023-01-01", end="2026-06-30"))
        self.assertIn("第一党小组", profile.groups)
        self.assertEqual(profile.silent_threshold_percent, 60)

        # The roster.
        S.alice = await c.add_member(BRANCH, bl.NewMember(
            name="王秀英", gender=bl.Gender.FEMALE, birth_date="1970-05-01", joined="1995-07-01", group="第一党小组"))
        S.dave = await c.add_member(BRANCH, bl.NewMember(name="李建国", birth_date="1958-03-02", joined="1980-07-01"))
        S.bob = await c.add_member(BRANCH, bl.NewMember(name="张伟", joined="2001-07-01"))
        S.carol = await c.add_member(BRANCH, bl.NewMember(name="陈芳", category=bl.Category.PROBATIONARY))
        await self.assertRefused(BranchlineError.InvalidInput, "input.empty", c.add_member(BRANCH, bl.NewMember(name=" ")))
        await self.assertRefused(BranchlineError.InvalidInput, "input.invalid", c.add_member(BRANCH, bl.NewMember(name="x", birth_date="1970-13-45")))
        await c.update_member(S.alice, bl.MemberUpdate(phone="13800000000", post="宣传委员"))
        await self.assertRefused(BranchlineError.NotFound, "member.unknown", c.update_member(str(uuid.uuid4()), bl.MemberUpdate(name="x")))
        await self.assertRefused(BranchlineError.InvalidInput, "input.invalid", c.update_member("42", bl.MemberUpdate()))
        await c.transfer_out(S.bob, "2025-02-01")
        await self.assertRefused(BranchlineError.InvalidState, "member.not_active", c.transfer_out(S.bob, "2025-03-01"))
        await c.mark_deceased(S.carol, "2025-04-01")
        await self.assertRefused(BranchlineError.InvalidState, "member.not_active", c.mark_deceased(S.carol, "2025-04-02"))
        await self.assertRefused(BranchlineError.InvalidInput, "input.invalid", c.mark_deceased(S.alice, "yesterday"))
        await self.assertRefused(BranchlineError.NotFound, "member.unknown", c.transfer_out(str(uuid.uuid4()), "2025-01-01"))

        members = await c.list_members(BRANCH, bl.MemberFilter())
        self.assertEqual(sorted(m.name for m in members), sorted(["王秀英", "李建国", "张伟", "陈芳"]))
        active = await c.list_members(BRANCH, bl.MemberFilter(status=bl.MemberStatus.ACTIVE))
        self.assertEqual(sorted(m.id for m in active), sorted([S.alice, S.dave]))
        alice = [m for m in members if m.id == S.alice][0]
        self.assertEqual((alice.phone, alice.post, alice.gender), ("13800000000", "宣传委员", bl.Gender.FEMALE))
        await self.assertRefused(BranchlineError.InvalidInput, "input.invalid", c.list_members("x", bl.MemberFilter()))

        # Alice's confidential file.
        await c.set_member_details(S.alice, "110101197005010000", "北京市东城区")
        await c.add_training(S.alice, "2025-03-01", "党章学习", 2.5)
        await c.add_commendation(S.alice, "2024-07-01", "优秀共产党员", "街道党工委")
        await c.set_evaluation(S.alice, 2024, bl.EvaluationGrade.EXCELLENT, "表现突出")
        await self.assertRefused(BranchlineError.InvalidInput, "input.invalid", c.add_training(S.alice, "2025-03-01", "x", -1.0))
        await self.assertRefused(BranchlineError.InvalidInput, "input.empty", c.add_commendation(S.alice, "2024-07-01", " ", None))
        await self.assertRefused(BranchlineError.InvalidInput, "input.invalid", c.set_evaluation(S.alice, 1800, bl.EvaluationGrade.QUALIFIED, None))
        await self.assertRefused(BranchlineError.NotFound, "member.unknown", c.set_member_details(str(uuid.uuid4()), "1", None))
        file = await c.member_file(S.alice)
        self.assertEqual(file.member_id, S.alice)
        self.assertEqual(file.address, "北京市东城区")
        self.assertEqual(file.training_hours, 2.5)
        self.assertEqual(file.evaluations, [bl.Evaluation(year=2024, grade=bl.EvaluationGrade.EXCELLENT, comment="表现突出")])
        self.assertEqual(file.commendations[0].issuer, "街道党工委")
        await self.assertRefused(BranchlineError.NotFound, "member.unknown", c.member_file(str(uuid.uuid4())))

        # An activity.
        new = bl.NewActivity(kind="theme_day", title="三月主题党日", starts_at="2025-03-01T09:00",
                             ends_at="2025-03-01T11:00", place="社区活动室", organizer=S.alice, agenda="学习")
        S.activity = await c.create_activity(BRANCH, new)
        await self.assertRefused(BranchlineError.InvalidInput, "activity.end_before_start", c.create_activity(BRANCH, bl.NewActivity(
            kind="theme_day", title="x", starts_at="2025-03-01T11:00", ends_at="2025-03-01T09:00")))
        await self.assertRefused(BranchlineError.InvalidInput, "activity.unknown_kind", c.create_activity(BRANCH, bl.NewActivity(
            kind="karaoke", title="x", starts_at="2025-03-01T09:00", ends_at="2025-03-01T11:00")))
        await self.assertRefused(BranchlineError.InvalidInput, "input.invalid", c.create_activity(BRANCH, bl.NewActivity(
            kind="theme_day", title="x", starts_at="nine o'clock", ends_at="2025-03-01T11:00")))
        await c.set_agenda(S.activity, "一、学习党章\n二、讨论")
        # The first award creates Alice's counter; later awards on any device add up.
        await c.award_points(S.activity, S.alice, 1)
        await self.assertRefused(BranchlineError.NotFound, "doc.not_found", c.set_agenda(str(uuid.uuid4()), "x"))
        await self.assertRefused(BranchlineError.InvalidInput, "activity.end_before_start",
                                 c.reschedule_activity(S.activity, "2025-03-01T10:00", "2025-03-01T10:00"))

        # A petition through its whole life.
        S.petition = await c.submit_petition(BRANCH, bl.NewPetition(
            category="环境卫生", title="楼道堆放杂物", description="三单元楼道堆满杂物。",
            location="三单元", submitter=bl.Submitter(name="赵阿姨", contact="13900000000")))
        await self.assertRefused(BranchlineError.InvalidInput, "input.empty", c.submit_petition(BRANCH, bl.NewPetition(
            category=" ", title="x", description="", submitter=bl.Submitter())))
        p = S.petition
        await self.assertRefused(BranchlineError.InvalidState, "petition.no_owner", c.add_progress(p, None, "已联系"))
        await self.assertRefused(BranchlineError.InvalidState, "petition.no_owner", c.resolve_petition(p, None, "已清理"))
        await self.assertRefused(BranchlineError.InvalidState, "petition.not_resolved", c.rate_petition(p, 5, None))
        await self.assertRefused(BranchlineError.InvalidState, "petition.not_resolved", c.reopen_petition(p, None, "x"))
        await self.assertRefused(BranchlineError.InvalidInput, "petition.deadline_before_submission", c.assign_petition(p, S.alice, "2000-01-01"))
        await c.assign_petition(p, S.alice, "2099-12-31")
        await c.add_progress(p, S.alice, "已联系物业")
        await c.resolve_petition(p, S.alice, "杂物已清理")
        await self.assertRefused(BranchlineError.InvalidInput, "petition.rating_out_of_range", c.rate_petition(p, 9, None))
        await c.rate_petition(p, 4, "满意")
        await self.assertRefused(BranchlineError.InvalidState, "petition.already_rated", c.rate_petition(p, 5, None))
        await self.assertRefused(BranchlineError.InvalidState, "petition.already_resolved", c.resolve_petition(p, None, "again"))
        await self.assertRefused(BranchlineError.InvalidInput, "input.empty", c.reopen_petition(p, None, " "))
        await c.reopen_petition(p, S.alice, "又堆起来了")
        await c.resolve_petition(p, S.alice, "再次清理并张贴告示")
        details = await c.petition(p)
        self.assertEqual(details.status, bl.PetitionStatus.RESOLVED)
        self.assertEqual(details.submitter.contact, "13900000000")
        self.assertEqual([n.kind for n in details.progress], [bl.ProgressKind.NOTE, bl.ProgressKind.REOPENED])
        self.assertIsNone(details.rating, "reopening cleared the rating")
        await self.assertRefused(BranchlineError.InvalidInput, "input.invalid", c.add_progress(p, "nobody", "x"))
        await self.assertRefused(BranchlineError.InvalidInput, "input.invalid", c.assign_petition(p, S.alice, "soon"))

        # Everything reaches the server; the status line says so.
        await c.wait_in_sync(int(PATIENCE * 1000))
        await eventually(lambda: S.sec_obs.seen_state(lambda s: s.is_idle()), "secretary idle")
        await eventually(lambda: S.sec.status().pending_changes == 0, "secretary's changes acknowledged")
        self.assertIsNotNone(S.sec.status().last_sync_ms)
        report = c.sync_report()
        self.assertGreaterEqual(report.connections, 1)
        self.assertGreater(report.bytes_sent, 0)

    # --- the member's phone joins ------------------------------------------------

    async def test_05_member_enrolls_with_an_invite_from_the_secretary(self):
        c = S.sec
        await self.assertRefused(BranchlineError.InvalidInput, "input.invalid", c.create_invite(bl.Role.MEMBER, S.alice, 0))
        await self.assertRefused(BranchlineError.InvalidInput, "input.invalid", c.create_invite(bl.Role.MEMBER, "alice", 600))
        invite = await c.create_invite(bl.Role.MEMBER, S.alice, 600)
        self.assertTrue(invite.link.startswith("branchline://"))
        self.assertGreater(invite.expires_at_ms, int(time.time() * 1000))

        m = S.mem
        S.mem_obs = Observer()
        S.mem_handles = [
            m.observe_sync_status(S.mem_obs),
            m.observe_documents(S.mem_obs),
            m.observe_conflicts(S.mem_obs),
            m.observe_errors(S.mem_obs),
        ]
        S.mem_sync = await m.enroll(invite.link, "Alice's phone")
        await m.wait_in_sync(int(PATIENCE * 1000))
        account = await m.account()
        self.assertEqual((account.role, account.member_id), (bl.Role.MEMBER, S.alice))
        # Everything the secretary wrote that a member may read arrived.
        activity = await m.activity(S.activity)
        self.assertEqual(activity.agenda, "一、学习党章\n二、讨论")
        self.assertEqual(activity.organizer, S.alice)
        members = await m.list_members(BRANCH, bl.MemberFilter(status=bl.MemberStatus.ACTIVE))
        self.assertEqual(sorted(x.id for x in members), sorted([S.alice, S.dave]))
        self.assertIn("第一党小组", (await m.profile(BRANCH)).groups)
        listed = await m.list_activities(BRANCH, bl.ActivityFilter())
        self.assertEqual([a.id for a in listed], [S.activity])
        # A member may neither invite nor revoke.
        await self.assertRefused(BranchlineError.Refused, "access.denied", m.create_invite(bl.Role.MEMBER, None, 600))
        sec_device = (await c.account()).device_id
        await self.assertRefused(BranchlineError.Refused, "access.denied", m.revoke_device(sec_device))
        await self.assertRefused(BranchlineError.InvalidInput, "input.invalid", m.revoke_device("device-1"))

        # Enrolling again is refused on the phone, with the used invite or a fresh
        # one, and the running sync keeps running.
        fresh = await c.create_invite(bl.Role.MEMBER, S.alice, 600)
        for link in (invite.link, fresh.link):
            await self.assertRefused(BranchlineError.InvalidState, "net.already_enrolled", m.enroll(link, "again"))
        self.assertTrue(S.mem_sync.is_active(), "the refused enroll left sync running")
        await m.wait_in_sync(int(PATIENCE * 1000))
        self.assertFalse(m.status().state.is_stopped())
        self.assertEqual((await m.account()).device_name, "Alice's phone")

    # --- offline edits on both phones merge -------------------------------------------

    async def test_06_offline_edits_on_two_phones_merge(self):
        sec, mem, act = S.sec, S.mem, S.activity
        sec.set_network_available(False)
        mem.set_network_available(False)
        await eventually(lambda: sec.status().state.is_offline(), "secretary offline")
        await eventually(lambda: mem.status().state.is_offline(), "member offline")
        await eventually(lambda: S.mem_obs.seen_state(lambda s: s.is_offline()), "member's observer told")

        await sec.write_minutes(act, "会议记录：学习党章第一章。")
        await sec.reschedule_activity(act, "2025-03-01T10:00", "2025-03-01T12:00")
        await sec.award_points(act, S.alice, 2)
        await mem.sign_in(act, S.alice, bl.SignInMode.ON_SITE)
        await mem.reschedule_activity(act, "2025-03-01T11:00", "2025-03-01T12:30")
        await mem.award_points(act, S.alice, 3)
        await eventually(lambda: sec.status().pending_changes > 0, "secretary has pending changes")
        await eventually(lambda: mem.status().pending_changes > 0, "member has pending changes")

        def observer_told_pending():
            last = S.mem_obs.last_status()
            return last.state.is_offline() and last.pending_changes > 0

        await eventually(observer_told_pending, "member's observer told of pending changes")

        sec.set_network_available(True)
        mem.set_network_available(True)
        await sec.wait_in_sync(int(PATIENCE * 1000))
        await mem.wait_in_sync(int(PATIENCE * 1000))

        async def merged(client):
            a = await client.activity(act)
            return (
                [s.member_id for s in a.sign_ins] == [S.alice]
                and a.minutes == "会议记录：学习党章第一章。"
                and [(b.member_id, b.points) for b in a.bonus_points] == [(S.alice, 6)]
            )

        await eventually(lambda: merged(sec), "the secretary has the member's sign-in")
        await eventually(lambda: merged(mem), "the member has the secretary's minutes")
        await eventually(lambda: act in S.sec_obs.documents, "secretary told the activity changed")
        await eventually(lambda: act in S.mem_obs.documents, "member told the activity changed")
        await eventually(lambda: sec.status().pending_changes == 0, "secretary's edits acknowledged")
        await eventually(lambda: mem.status().pending_changes == 0, "member's edits acknowledged")

        attendance = await sec.attendance(act)
        self.assertEqual([(r.member_id, r.present, r.mode, r.name) for r in attendance],
                         [(S.alice, True, bl.SignInMode.ON_SITE, "王秀英")])
        await self.assertRefused(BranchlineError.InvalidInput, "input.invalid", sec.attendance("act"))

    async def test_07_concurrent_reschedules_are_a_conflict_a_person_settles(self):
        sec, mem, act = S.sec, S.mem, S.activity

        async def conflicting_paths(client):
            return sorted(c.path for c in await client.conflicts() if c.doc_id == act)

        await eventually(lambda: conflicting_paths(sec), "the secretary sees the conflict")
        paths = await conflicting_paths(sec)
        self.assertIn("starts_at", paths)
        await eventually(lambda: any(lst for lst in S.sec_obs.conflict_lists), "conflict observer told")
        starts = [c for c in await sec.conflicts() if c.path == "starts_at"][0]
        self.assertEqual(sorted(v.value for v in starts.values), ["2025-03-01T10:00", "2025-03-01T11:00"])
        self.assertEqual(sum(v.winner for v in starts.values), 1)
        devices = {v.device_id for v in starts.values}
        self.assertEqual(devices, {sec.device_id(), mem.device_id()})

        await self.assertRefused(BranchlineError.NotFound, "conflict.not_found", sec.settle_conflict(act, "no/such/field", 0))
        await self.assertRefused(BranchlineError.NotFound, "conflict.not_found", sec.settle_conflict(act, "starts_at", 7))
        await self.assertRefused(BranchlineError.InvalidInput, "input.invalid", sec.settle_conflict("x", "starts_at", 0))
        keep = [i for i, v in enumerate(starts.values) if v.value == "2025-03-01T10:00"][0]
        await sec.settle_conflict(act, "starts_at", keep)
        # Settling the start keeps the end the same edit gave it; settle what is left.
        for path in await conflicting_paths(sec):
            await sec.settle_conflict(act, path, 0)
        self.assertEqual(await conflicting_paths(sec), [])
        await eventually(lambda: S.sec_obs.conflict_lists[-1] == [], "observer told the list is empty")
        await sec.wait_in_sync(int(PATIENCE * 1000))
        await eventually(
            lambda: _starts_at(mem, act, "2025-03-01T10:00"), "the member has the settled time"
        )
        await eventually(lambda: _no_conflicts(mem), "the member's conflict is gone too")
        await eventually(lambda: S.mem_obs.conflict_lists and S.mem_obs.conflict_lists[-1] == [],
                         "member's conflict observer told it is settled")

    async def test_08_member_rules_are_kept_on_the_phone(self):
        mem, act = S.mem, S.activity
        await self.assertRefused(BranchlineError.InvalidState, "activity.already_signed_in", mem.sign_in(act, S.alice, bl.SignInMode.REMOTE))
        await self.assertRefused(BranchlineError.InvalidState, "activity.already_signed_in", mem.request_leave(act, S.alice, "出差"))
        await self.assertRefused(BranchlineError.InvalidState, "member.not_active", mem.request_leave(act, S.bob, "已转出"))
        await self.assertRefused(BranchlineError.NotFound, "member.unknown", mem.sign_in(act, str(uuid.uuid4()), bl.SignInMode.ON_SITE))
        await self.assertRefused(BranchlineError.InvalidInput, "input.empty", mem.request_leave(act, S.dave, " "))
        await mem.request_leave(act, S.dave, "出差在外")
        await self.assertRefused(BranchlineError.InvalidInput, "input.invalid", mem.award_points(act, S.dave, 0))
        await self.assertRefused(BranchlineError.InvalidInput, "input.invalid", mem.reschedule_activity(act, "2025-03-01", "2025-03-01T12:00"))
        await mem.wait_in_sync(int(PATIENCE * 1000))

        async def on_leave():
            a = await S.sec.activity(act)
            return [l.member_id for l in a.leaves] == [S.dave]

        await eventually(on_leave, "the secretary sees the leave request")

    # --- closing, lists and reports --------------------------------------------------

    async def test_09_close_list_and_report(self):
        c, act = S.sec, S.activity
        partner = PARTNER
        await c.share_activity(act, partner)
        await self.assertRefused(BranchlineError.InvalidInput, "input.invalid", c.share_activity(act, BRANCH))
        await c.close_activity(act)
        await self.assertRefused(BranchlineError.InvalidState, "activity.closed", c.close_activity(act))
        await self.assertRefused(BranchlineError.InvalidState, "activity.closed", c.write_minutes(act, "late"))
        await self.assertRefused(BranchlineError.InvalidState, "activity.closed", c.sign_in(act, S.dave, bl.SignInMode.ON_SITE))
        a = await c.activity(act)
        self.assertEqual((a.status, a.shared_with), (bl.ActivityStatus.CLOSED, [partner]))
        await self.assertRefused(BranchlineError.NotFound, "doc.not_found", c.activity(str(uuid.uuid4())))

        closed = await c.list_activities(BRANCH, bl.ActivityFilter(status=bl.ActivityStatus.CLOSED))
        self.assertEqual([(r.id, r.sign_ins, r.leaves) for r in closed], [(act, 1, 1)])
        in_2024 = await c.list_activities(BRANCH, bl.ActivityFilter(to="2024-12-31"))
        self.assertEqual(in_2024, [])
        await self.assertRefused(BranchlineError.InvalidInput, "input.invalid", c.list_activities(BRANCH, bl.ActivityFilter(to="end of year")))

        ledger = await c.list_petitions(BRANCH, bl.PetitionFilter(), "2025-06-01")
        self.assertEqual([(r.id, r.status, r.owner, r.progress_notes) for r in ledger],
                         [(S.petition, bl.PetitionStatus.RESOLVED, S.alice, 2)])
        self.assertEqual(await c.list_petitions(BRANCH, bl.PetitionFilter(overdue_only=True), "2025-06-01"), [])
        await self.assertRefused(BranchlineError.InvalidInput, "input.invalid", c.list_petitions(BRANCH, bl.PetitionFilter(), "today"))
        await self.assertRefused(BranchlineError.InvalidInput, "input.invalid", c.list_petitions(BRANCH, bl.PetitionFilter(owner="me"), "2025-06-01"))
        await self.assertRefused(BranchlineError.InvalidInput, "input.invalid", c.petition("p-1"))

        report = await c.report(BRANCH, "2025-01-01", "2025-12-31", "2026-02-01")
        attendance = {m.member_id: m for m in report.attendance.members}
        self.assertEqual((attendance[S.alice].attended, attendance[S.alice].expected), (1, 1))
        self.assertEqual(attendance[S.dave].on_leave, 1)
        self.assertTrue(attendance[S.dave].silent)
        self.assertEqual(report.attendance.silent_threshold_percent, 60)
        self.assertIsNotNone(report.term)
        self.assertTrue(report.term.due, "term ends 2026-06-30, within six months of 2026-02-01")
        self.assertEqual(report.petitions.resolved, 0, "the petition was submitted today, not in 2025")
        self.assertEqual(report.attendance, await c.attendance_report(BRANCH, "2025-01-01", "2025-12-31"))
        self.assertEqual(report.compliance, await c.compliance_report(BRANCH, "2025-01-01", "2025-12-31"))
        self.assertEqual(report.term, await c.term_reminder(BRANCH, "2026-02-01"))
        self.assertEqual(report.ages, await c.age_structure(BRANCH, "2026-02-01"))
        today = time.strftime("%Y-%m-%d", time.gmtime())
        petitions = await c.petition_report(BRANCH, "2025-01-01", "2099-12-31", today)
        self.assertEqual((petitions.submitted, petitions.resolved, petitions.resolved_in_time), (1, 1, 1))
        theme_days = [k for k in report.compliance if k.kind == "theme_day"][0]
        march = [p for p in theme_days.periods if p.start == "2025-03-01"][0]
        self.assertEqual((march.held, march.met), (1, True))
        self.assertEqual(sum(b.members for b in report.ages.bands), 2)

        bad_period = ("2025-12-31", "2025-01-01")
        await self.assertRefused(BranchlineError.InvalidInput, "input.invalid", c.report(BRANCH, *bad_period, "2025-06-01"))
        await self.assertRefused(BranchlineError.InvalidInput, "input.invalid", c.attendance_report(BRANCH, *bad_period))
        await self.assertRefused(BranchlineError.InvalidInput, "input.invalid", c.petition_report(BRANCH, *bad_period, "2025-06-01"))
        await self.assertRefused(BranchlineError.InvalidInput, "input.invalid", c.compliance_report("b", "2025-01-01", "2025-12-31"))
        await self.assertRefused(BranchlineError.InvalidInput, "input.invalid", c.term_reminder(BRANCH, "02/01/2026"))
        await self.assertRefused(BranchlineError.InvalidInput, "input.invalid", c.age_structure(BRANCH, ""))

        docs = await c.list_documents()
        kinds = collections.Counter(d.kind for d in docs)
        self.assertEqual((kinds["branch_profile"], kinds["roster"], kinds["activity"], kinds["petition"]), (1, 1, 1, 1))
        self.assertTrue(all(d.branch_id == BRANCH and d.stored_bytes > 0 for d in docs))

        # A branch set up on the phone alone (a committee's own unit, offline).
        local = await c.create_branch("新建支部", bl.Level.BRANCH, BRANCH)
        self.assertEqual((await c.profile(local)).parent, BRANCH)
        await self.assertRefused(BranchlineError.InvalidInput, "input.empty", c.create_branch(" ", bl.Level.BRANCH, None))
        await self.assertRefused(BranchlineError.InvalidInput, "input.invalid", c.create_branch("x", bl.Level.BRANCH, "parent"))

    # --- errors reported in the background ------------------------------------------

    async def test_10_the_server_refusing_a_document_reaches_the_error_observer(self):
        # Members may read the profile but not write it: the phone accepts the edit
        # (it is offline-first), the server refuses it, and the app hears why.
        await S.mem.add_group(BRANCH, "成员自建小组")
        await eventually(lambda: "access.read_only" in S.mem_obs.error_codes(), "member told of the refusal")
        refusal = [e for e in S.mem_obs.errors if e.code == "access.read_only"][0]
        self.assertIsInstance(refusal, BranchlineError.Refused)

    async def test_11_revoking_a_device_stops_it(self):
        invite = await S.sec.create_invite(bl.Role.RESIDENT, None, 600)
        S.res = await BranchlineClient.open(os.path.join(S.dir, "resident"))
        observer = Observer()
        handle = S.res.observe_errors(observer)
        status = S.res.observe_sync_status(observer)
        sync = await S.res.enroll(invite.link, "居民的手机")
        self.assertTrue(sync.is_active())
        device = (await S.res.account()).device_id
        await S.sec.revoke_device(device)
        await eventually(lambda: S.res.status().state.is_refused(), "the revoked device stops")
        self.assertEqual(S.res.status().state.code, "auth.device_revoked")
        self.assertFalse(sync.is_active(), "the handle knows its sync is over")
        await self.assertRefused(BranchlineError.Network, "net.not_running", S.res.sync_now)
        await eventually(lambda: "auth.device_revoked" in observer.error_codes(), "told it was revoked")
        await eventually(lambda: _no_account(S.res), "the revoked device forgot its account")
        await self.assertRefused(BranchlineError.Network, "net.not_enrolled", S.res.start_sync)
        self.assertTrue(S.res.status().state.is_refused(), "still says why")
        await self.assertRefused(BranchlineError.Refused, "access.denied", S.sec.revoke_device(str(uuid.uuid4())))
        handle.cancel()
        status.cancel()
        del S.res

    async def test_11a_a_revoked_phone_still_reads_its_records_but_cannot_change_them(self):
        directory = os.path.join(S.dir, "committee-revoked")
        invite = await S.sec.create_invite(bl.Role.COMMITTEE, None, 600)
        phone = await BranchlineClient.open(directory)
        sync = await phone.enroll(invite.link, "委员的手机")
        await phone.wait_in_sync(int(PATIENCE * 1000))
        self.assertIsNone(phone.status().revoked_at_ms)
        members = await phone.list_members(BRANCH, bl.MemberFilter())
        self.assertIn(S.alice, [m.id for m in members])
        await phone.add_group(BRANCH, "撤销前的小组")  # writes work while enrolled

        await S.sec.revoke_device((await phone.account()).device_id)
        await eventually(lambda: phone.status().revoked_at_ms is not None, "the status says revoked")
        self.assertEqual(phone.status().state.code, "auth.device_revoked")
        self.assertFalse(sync.is_active(), "the handle knows its sync is over")

        # Reads still work, with the records it held.
        self.assertEqual(await phone.list_members(BRANCH, bl.MemberFilter()), members)
        self.assertIn("撤销前的小组", (await phone.profile(BRANCH)).groups)
        # Every write is refused with the revoked code, and changes nothing.
        pending = phone.status().pending_changes
        await self.assertRefused(BranchlineError.Refused, "auth.device_revoked", phone.add_group(BRANCH, "撤销后的小组"))
        await self.assertRefused(BranchlineError.Refused, "auth.device_revoked", phone.add_member(
            BRANCH, bl.NewMember(name="赵六")))
        self.assertNotIn("撤销后的小组", (await phone.profile(BRANCH)).groups)
        self.assertEqual(phone.status().pending_changes, pending)

        # After a restart the phone still knows it was revoked, and still reads.
        revoked_at = phone.status().revoked_at_ms
        del sync, phone
        gc.collect()
        again = await BranchlineClient.open(directory)
        self.assertEqual(again.status().revoked_at_ms, revoked_at)
        self.assertIn(S.alice, [m.id for m in await again.list_members(BRANCH, bl.MemberFilter())])
        await self.assertRefused(BranchlineError.Refused, "auth.device_revoked", again.add_group(BRANCH, "重启后的小组"))
        del again
        gc.collect()

    # --- sync handles and observer handles --------------------------------------------

    async def test_12_handles_stop_and_restart_sync(self):
        mem = S.mem
        self.assertTrue(S.mem_sync.is_active())
        mem.network_changed()
        mem.sync_now()
        await mem.wait_in_sync(int(PATIENCE * 1000))
        S.mem_sync.cancel()
        S.mem_sync.cancel()  # harmless
        self.assertFalse(S.mem_sync.is_active())
        # Shutting down after a cancel waits for the cancelled sync's goodbye.
        await asyncio.wait_for(mem.shutdown(), PATIENCE)
        await asyncio.wait_for(mem.shutdown(), PATIENCE)  # and again: harmless
        await eventually(lambda: mem.status().state.is_stopped(), "cancelled sync stops")
        self.assertIsNone(mem.status().state.failure, "a cancelled sync stopped without a failure")
        await self.assertRefused(BranchlineError.Network, "net.not_running", mem.sync_now)

        again = mem.start_sync()
        self.assertTrue(again.is_active())
        self.assertTrue(mem.start_sync().is_active(), "a second start returns the running sync")
        await mem.wait_in_sync(int(PATIENCE * 1000))
        mem.set_network_available(False)
        await eventually(lambda: mem.status().state.is_offline(), "member offline")
        await self.assertRefused(BranchlineError.Network, "net.timeout", mem.wait_in_sync(200))
        mem.set_network_available(True)
        await mem.wait_in_sync(int(PATIENCE * 1000))
        await mem.shutdown()
        self.assertFalse(again.is_active())
        await eventually(lambda: mem.status().state.is_stopped(), "shut down sync stops")

        # A cancelled observer hears nothing more: once cancel() returns, no callback
        # is under way either.
        for handle in S.mem_handles:
            handle.cancel()
            handle.cancel()  # harmless
        heard = len(S.mem_obs.statuses)
        restarted = mem.start_sync()
        await mem.wait_in_sync(int(PATIENCE * 1000))
        self.assertEqual(len(S.mem_obs.statuses), heard)
        restarted.cancel()

    # --- community input: requests, suggestions; refused changes ---------------------

    async def test_13_a_resident_files_a_request_through_the_submission_link(self):
        sec = S.sec
        S.mem_sync = S.mem.start_sync()
        await S.mem.wait_in_sync(int(PATIENCE * 1000))
        res = await BranchlineClient.open(os.path.join(S.dir, "resident-by-link"))
        # Before enrolling, nothing can reach the server.
        request = bl.NewPetition(
            category="道路交通", title="东门路灯不亮", description="小区东门的路灯坏了一个星期，晚上很黑。",
            location="东门", submitter=bl.Submitter(name="陈阿姨", contact="13800000000"))
        await self.assertRefused(BranchlineError.Network, "net.not_running", res.submission_link())
        await self.assertRefused(BranchlineError.Network, "net.not_running", res.submit_request(request))
        await self.assertRefused(BranchlineError.Network, "net.not_running", res.submit_suggestion("x", True))

        # The secretary's phone shows the branch's public code; a resident scans it.
        link = await sec.submission_link()
        self.assertTrue(link.startswith("branchline://"), link)
        self.assertEqual(await sec.submission_link(), link, "the same public code every time")
        self.assertIn("<svg", sec.qr_svg(link), "the code to show as a QR image")
        await self.assertRefused(BranchlineError.InvalidInput, "input.invalid", lambda: sec.qr_svg("x" * 8000))
        await self.assertRefused(BranchlineError.Refused, "access.denied", S.mem.submission_link())
        await res.enroll(link, "居民的手机")
        account = await res.account()
        self.assertEqual((account.role, account.member_id, account.branch_id), (bl.Role.RESIDENT, None, BRANCH))
        # A resident holds none of the branch's records, yet sees which branch it joined.
        self.assertEqual(account.branch_name, "和平社区第一支部")
        self.assertEqual(await res.list_documents(), [], "a resident sees nothing of the branch")
        await self.assertRefused(BranchlineError.Refused, "access.denied", res.submission_link())

        # Bad requests, refused on the phone or by the server.
        def variant(**fields):
            values = dict(category=request.category, title=request.title, description=request.description,
                          location=request.location, submitter=request.submitter)
            values.update(fields)
            return bl.NewPetition(**values)

        await self.assertRefused(BranchlineError.InvalidInput, "input.empty", res.submit_request(variant(title="  ")))
        await self.assertRefused(BranchlineError.InvalidInput, "input.empty", res.submit_request(variant(description="")))
        await self.assertRefused(BranchlineError.InvalidInput, "input.invalid", res.submit_request(
            variant(submitter=bl.Submitter(name="陈阿姨", member_id=S.alice))))
        await self.assertRefused(BranchlineError.InvalidInput, "request.invalid", res.submit_request(variant(title="灯" * 201)))
        res.set_network_available(False)
        await eventually(lambda: res.status().state.is_offline(), "resident offline")
        await self.assertRefused(BranchlineError.Network, "net.offline", res.submit_request(request))
        res.set_network_available(True)
        await res.wait_in_sync(int(PATIENCE * 1000))

        petition = await res.submit_request(request)
        self.assertEqual(str(uuid.UUID(petition)), petition)
        await eventually(lambda: _has_petition(res, petition), "the resident's own request arrives")
        mine = await res.petition(petition)
        self.assertEqual((mine.title, mine.status, mine.branch_id), ("东门路灯不亮", bl.PetitionStatus.OPEN, BRANCH))
        self.assertEqual((mine.submitter.name, mine.submitter.contact), ("陈阿姨", "13800000000"))
        self.assertEqual([d.id for d in await res.list_documents()], [petition], "and nothing else")
        today = time.strftime("%Y-%m-%d", time.gmtime())

        async def on_the_ledger():
            rows = await sec.list_petitions(BRANCH, bl.PetitionFilter(status=bl.PetitionStatus.OPEN), today)
            return [r.title for r in rows if r.id == petition] == ["东门路灯不亮"]

        await eventually(on_the_ledger, "the committee's ledger has the request")
        # The feedback box is for members.
        await self.assertRefused(BranchlineError.Refused, "access.denied", res.submit_suggestion("建议", True))
        self.assertEqual(await res.rejections(None), [])
        del res
        gc.collect()

    async def test_14_the_committee_answers_an_anonymous_suggestion_members_read(self):
        sec, mem = S.sec, S.mem
        self.assertIsNone(await sec.feedback_box(BRANCH), "no box until the first suggestion")

        await self.assertRefused(BranchlineError.InvalidInput, "input.empty", mem.submit_suggestion(" \n ", True))
        await self.assertRefused(BranchlineError.InvalidInput, "request.invalid", mem.submit_suggestion("意" * 2001, True))
        mem.set_network_available(False)
        await eventually(lambda: mem.status().state.is_offline(), "member offline")
        await self.assertRefused(BranchlineError.Network, "net.offline", mem.submit_suggestion("周末开放活动室", True))
        mem.set_network_available(True)
        await mem.wait_in_sync(int(PATIENCE * 1000))
        anonymous = await mem.submit_suggestion("  希望周末也能开放活动室  ", True)
        named = await mem.submit_suggestion("建议增加党员学习资料", False)
        self.assertNotEqual(anonymous, named)

        async def box_with(client, *ids):
            found = await client.feedback_box(BRANCH)
            return found if found and set(ids) <= {s.id for s in found.suggestions} else None

        box = await eventually(lambda: box_with(sec, anonymous, named), "the committee sees both suggestions")
        self.assertEqual(box.branch_id, BRANCH)
        by_id = {s.id: s for s in box.suggestions}
        self.assertEqual((by_id[anonymous].text, by_id[anonymous].author, by_id[anonymous].answer),
                         ("希望周末也能开放活动室", None, None))
        self.assertEqual(by_id[named].author, S.alice)
        self.assertRegex(by_id[anonymous].on, r"^\d{4}-\d{2}-\d{2}$")
        await self.assertRefused(BranchlineError.InvalidInput, "input.invalid", sec.feedback_box("branch-1"))
        self.assertIsNone(await sec.feedback_box(str(uuid.uuid4())))

        # Answering and publishing, with what is refused.
        await self.assertRefused(BranchlineError.InvalidInput, "input.empty", sec.answer_suggestion(BRANCH, anonymous, "  "))
        await self.assertRefused(BranchlineError.NotFound, "feedback.unknown_suggestion",
                                 sec.answer_suggestion(BRANCH, str(uuid.uuid4()), "答复"))
        await self.assertRefused(BranchlineError.InvalidInput, "input.invalid", sec.answer_suggestion(BRANCH, "s-1", "答复"))
        await self.assertRefused(BranchlineError.NotFound, "doc.missing_branch_document",
                                 sec.answer_suggestion(str(uuid.uuid4()), anonymous, "答复"))
        await self.assertRefused(BranchlineError.InvalidState, "feedback.no_answer", sec.publish_answer(BRANCH, named, True))
        await self.assertRefused(BranchlineError.NotFound, "feedback.unknown_suggestion",
                                 sec.publish_answer(BRANCH, str(uuid.uuid4()), True))
        await self.assertRefused(BranchlineError.InvalidInput, "input.invalid", sec.publish_answer("b", anonymous, True))
        await sec.answer_suggestion(BRANCH, anonymous, "下月起周六上午开放活动室")
        self.assertIsNone({s.id: s for s in (await sec.feedback_box(BRANCH)).suggestions}[anonymous].answer,
                          "a new answer is a draft, kept out of the box members receive")
        answer = await sec.draft_answer(BRANCH, anonymous)
        self.assertEqual((answer.text, answer.by, answer.published), ("下月起周六上午开放活动室", None, False),
                         "the secretary's device belongs to no member")
        self.assertIsNone(await sec.draft_answer(BRANCH, named))
        self.assertIsNone(await mem.draft_answer(BRANCH, anonymous), "members never receive drafts")
        await self.assertRefused(BranchlineError.InvalidInput, "input.invalid", sec.draft_answer(BRANCH, "s-1"))
        await sec.publish_answer(BRANCH, anonymous, True)
        self.assertIsNone(await sec.draft_answer(BRANCH, anonymous), "published, so no longer a draft")
        await sec.wait_in_sync(int(PATIENCE * 1000))

        async def published_on_the_members_phone():
            found = await box_with(mem, anonymous)
            if not found:
                return False
            s = {s.id: s for s in found.suggestions}[anonymous]
            return s.author is None and s.answer is not None and s.answer.published and s.answer.text == answer.text

        await eventually(published_on_the_members_phone, "the member reads the published answer, with no author")

    async def test_15_a_forbidden_edit_is_refused_dropped_and_recorded(self):
        mem, p = S.mem, S.petition
        observer = Observer()
        handles = [mem.observe_errors(observer), mem.observe_rejections(observer)]
        earlier = await mem.rejections(None)
        since = earlier[-1].id if earlier else None
        # Alice owns the petition but did not submit it: only its submitter may rate
        # it. Her phone accepts the rating (it is offline-first); the server refuses.
        await mem.rate_petition(p, 5, "处理得好")
        self.assertEqual((await mem.petition(p)).rating.score, 5)

        await eventually(lambda: observer.rejected, "the rejection observer told")
        told = observer.rejected[0]
        self.assertEqual((told.doc_id, told.kind, told.code, told.document_removed),
                         (p, "petition", "rule.submitter_only", False))
        self.assertGreaterEqual(told.dropped_changes, 1)
        self.assertTrue(told.message and told.change)
        # The people's words for the refusal, from the table the desktop uses too.
        self.assertEqual((told.reason_english, told.reason_chinese),
                         ("only the person who submitted the petition may rate it", "只有诉求提交人可以评价"))
        await eventually(lambda: "rule.submitter_only" in observer.error_codes(), "the error observer told")
        refusal = [e for e in observer.errors if e.code == "rule.submitter_only"][0]
        self.assertIsInstance(refusal, BranchlineError.Refused)

        # Recorded, so the app can still show it after a restart.
        self.assertEqual(await mem.rejections(since), [told])
        self.assertEqual(await mem.rejections(told.id), [])
        self.assertEqual((await mem.rejections(-1))[-1], told)
        self.assertIsNone((await mem.petition(p)).rating, "the phone dropped the refused rating")
        await mem.wait_in_sync(int(PATIENCE * 1000))
        await eventually(lambda: mem.status().pending_changes == 0, "nothing left to send")
        self.assertIsNone((await S.sec.petition(p)).rating, "the committee never got it")
        for handle in handles:
            handle.cancel()

    async def test_16_thirty_kilobytes_of_minutes_are_written_edited_and_synced(self):
        sec, mem = S.sec, S.mem
        act = await sec.create_activity(BRANCH, bl.NewActivity(
            kind="branch_meeting", title="年度总结会", starts_at="2025-12-20T14:00", ends_at="2025-12-20T17:00"))
        # Long minutes: Chinese, English, combining accents and emoji, several per line.
        line = "第{n}项：讨论社区清洁与志愿服务安排，café au lait ☕, 👍🏽 agreed; next step {n}.\n"
        minutes, n = "", 0
        while len(minutes.encode()) < 30_000:
            minutes += line.format(n=n)
            n += 1
        await sec.write_minutes(act, minutes)
        self.assertEqual((await sec.activity(act)).minutes, minutes)
        # An edit in the middle and one at the end: only what differs is written.
        middle = len(minutes) // 2
        edited = minutes[:middle] + "（此处补充：会后张贴告示。）" + minutes[middle:] + "散会。\n"
        await sec.write_minutes(act, edited)
        self.assertEqual((await sec.activity(act)).minutes, edited)
        await sec.wait_in_sync(int(PATIENCE * 1000))

        async def member_has_it():
            try:
                return (await mem.activity(act)).minutes == edited
            except BranchlineError.NotFound:
                return False

        await eventually(member_has_it, "the member's phone has the 30 KB minutes")

    async def test_17_a_program_whose_exception_escapes_with_live_clients_exits_as_it_should(self):
        links = [(await S.sec.create_invite(role, member, 600)).link
                 for role, member in ((bl.Role.COMMITTEE, None), (bl.Role.MEMBER, S.dave))]
        script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "escaping_exception.py")
        directory = os.path.join(S.dir, "escaping")
        program = await asyncio.create_subprocess_exec(
            sys.executable, script, directory, *links, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            out, err = await asyncio.wait_for(program.communicate(), PATIENCE * 3)
        except asyncio.TimeoutError:
            program.kill()
            self.fail("the program hung at exit")
        out, err = out.decode(), err.decode()
        self.assertIn("phones busy", out, err)
        self.assertTrue(err.rstrip().endswith("RuntimeError: an exception escapes with live clients"), err)
        self.assertEqual(program.returncode, 1, f"exit status {program.returncode} (-6 is an abort):\n{err}")


    # --- the branch work: dues, points, applicants, the library, the roll-up --------

    async def test_18_dues_points_applicants_library_and_the_roll_up(self):
        c = await BranchlineClient.open(os.path.join(S.dir, "committee-office"))
        bad_id = "not-an-id"
        committee = await c.create_branch("幸福街道党工委", bl.Level.COMMITTEE, None)
        branch = await c.create_branch("幸福里第一党支部", bl.Level.BRANCH, committee)
        wang = await c.add_member(branch, bl.NewMember(name="王建国", joined="2000-07-01"))
        li = await c.add_member(branch, bl.NewMember(name="李芳", joined="2001-07-01"))
        zhao = await c.add_member(branch, bl.NewMember(name="赵小明", joined="2025-09-01",
                                                        category=bl.Category.APPLICANT))

        # Dues: the branch's amount, a member's own, payments, a void, spending.
        await c.set_monthly_dues(branch, 2000)
        await self.assertRefused(BranchlineError.InvalidInput, "input.invalid", c.set_monthly_dues(branch, -1))
        await c.set_member_dues(branch, li, 2026, 500)
        await self.assertRefused(BranchlineError.NotFound, "member.unknown",
                                 c.set_member_dues(branch, str(uuid.uuid4()), 2026, 500))
        q1 = await c.record_dues_payment(branch, bl.DuesPayment(
            member_id=wang, year=2026, first_month=1, last_month=3, amount_fen=None, paid_on="2026-04-02"))
        wrong = await c.record_dues_payment(branch, bl.DuesPayment(
            member_id=li, year=2026, first_month=1, last_month=1, amount_fen=None, paid_on="2026-04-02"))
        await self.assertRefused(BranchlineError.InvalidInput, "input.invalid", c.record_dues_payment(
            branch, bl.DuesPayment(member_id=wang, year=2026, first_month=13, last_month=14,
                                   amount_fen=None, paid_on="2026-04-02")))
        await c.void_dues_payment(wrong, "记错了人", "2026-04-03")
        await self.assertRefused(BranchlineError.InvalidState, "ledger.already_voided",
                                 c.void_dues_payment(wrong, "again", "2026-04-03"))
        spent = await c.record_dues_spending(branch, 1500, bl.SpendingCategory.STUDY_MATERIALS,
                                             "订阅学习资料", "支委会", "2026-04-20")
        self.assertEqual(str(uuid.UUID(spent)), spent)
        await self.assertRefused(BranchlineError.InvalidInput, "input.empty", c.record_dues_spending(
            branch, 1500, bl.SpendingCategory.STUDY_MATERIALS, " ", "支委会", "2026-04-20"))
        ledger = await c.dues_ledger(branch, 2026)
        self.assertIn(q1, [p.entry_id for p in ledger.payments])
        self.assertEqual((ledger.collected_fen, ledger.spent_fen, ledger.balance_fen), (6000, 1500, 4500))
        await self.assertRefused(BranchlineError.InvalidInput, "input.invalid", c.dues_ledger(bad_id, 2026))
        overview = await c.dues_overview(branch, 2026, "2026-05-10")
        self.assertEqual({m.name: m.overdue_months for m in overview}, {"王建国": [4], "李芳": [1, 2, 3, 4]})
        await self.assertRefused(BranchlineError.InvalidInput, "input.invalid", c.dues_overview(branch, 2026, "May"))
        overdue = await c.overdue_dues(branch, "2026-05-10")
        self.assertEqual([m.name for m in overdue], ["李芳", "王建国"], "most months behind first")
        await self.assertRefused(BranchlineError.InvalidInput, "input.invalid", c.overdue_dues(bad_id, "2026-05-10"))
        collection = await c.dues_collection(branch, 2026, "2026-05-10")
        self.assertEqual((collection.due_fen, collection.collected_fen), (4 * 2000 + 4 * 500, 3 * 2000))
        await self.assertRefused(BranchlineError.InvalidInput, "input.invalid", c.dues_collection(branch, 2026, ""))

        # Points: rules, awards from two phones that add up, thought reports, a ranking.
        await c.set_point_rule(branch, "flood_duty", "防汛值守", 4, False)
        await self.assertRefused(BranchlineError.InvalidInput, "input.invalid",
                                 c.set_point_rule(branch, "nothing", "零分", 0, False))
        first = await c.award(branch, wang, "major_task", None, None, "2026-04-12")
        await c.award(branch, wang, None, 3, "志愿服务", "2026-04-13")
        await self.assertRefused(BranchlineError.InvalidInput, "points.unknown_rule",
                                 c.award(branch, wang, "no_such_rule", None, None, "2026-04-12"))
        await c.withdraw_award(first)
        await self.assertRefused(BranchlineError.NotFound, "ledger.unknown_entry", c.withdraw_award(first))
        await c.record_thought_report(branch, li, "2026-06-30", "2026-06-20")
        await self.assertRefused(BranchlineError.InvalidInput, "input.invalid",
                                 c.record_thought_report(branch, li, "June", "2026-06-20"))
        reports = await c.thought_reports(li)
        self.assertEqual([r.on_time for r in reports], [True])
        await self.assertRefused(BranchlineError.InvalidInput, "input.invalid", c.thought_reports(bad_id))
        awards = await c.awards(branch, "2026-04-01", "2026-06-30")
        self.assertEqual([a.points for a in awards], [3])
        await self.assertRefused(BranchlineError.InvalidInput, "input.invalid", c.awards(branch, "2026-06-30", "2026-04-01"))
        ranking = await c.ranking(branch, "2026-04-01", "2026-06-30")
        self.assertEqual([(r.name, r.rank, r.total) for r in ranking][:2], [("王建国", 1, 3), ("李芳", 2, 2)])
        await self.assertRefused(BranchlineError.InvalidInput, "input.invalid", c.ranking(bad_id, "2026-04-01", "2026-06-30"))

        # The applicant pipeline.
        await c.add_applicant(branch, zhao, "2025-09-01")
        await self.assertRefused(BranchlineError.InvalidState, "applicant.exists", c.add_applicant(branch, zhao, "2025-09-01"))
        await c.record_applicant_stage(zhao, bl.Stage.ACTIVIST, "2025-09-20", "支委会研究")
        await self.assertRefused(BranchlineError.InvalidState, "applicant.too_early",
                                 c.record_applicant_stage(zhao, bl.Stage.CANDIDATE, "2026-01-01", None))
        await c.add_introducer(zhao, wang)
        await self.assertRefused(BranchlineError.InvalidInput, "input.invalid", c.add_introducer(zhao, zhao))
        await self.assertRefused(BranchlineError.InvalidState, "applicant.out_of_order",
                                 c.record_applicant_stage(zhao, bl.Stage.PROBATIONARY, "2026-01-01", None))
        await self.assertRefused(BranchlineError.NotFound, "applicant.unknown",
                                 c.record_applicant_stage(wang, bl.Stage.ACTIVIST, "2026-01-01", None))
        await self.assertRefused(BranchlineError.NotFound, "applicant.unknown", c.add_introducer(wang, li))
        rows = await c.applicants(branch)
        self.assertEqual((rows[0].stage, rows[0].introducer_ids), (bl.Stage.ACTIVIST, [wang]))
        self.assertEqual(rows[0].next.stage, bl.Stage.CANDIDATE)
        await self.assertRefused(BranchlineError.InvalidInput, "input.invalid", c.applicants(bad_id))
        reminders = await c.applicant_reminders(branch, "2026-01-01")
        self.assertEqual([(r.name, r.stage) for r in reminders], [("赵小明", None)], "a thought report is due")
        await self.assertRefused(BranchlineError.InvalidInput, "input.invalid", c.applicant_reminders(branch, "soon"))
        # Probation needs two introducers: refused with one, and nothing moves.
        await c.record_applicant_stage(zhao, bl.Stage.CANDIDATE, "2026-10-01", "确定为发展对象")
        await self.assertRefused(BranchlineError.InvalidState, "applicant.introducers_missing",
                                 c.record_applicant_stage(zhao, bl.Stage.PROBATIONARY, "2026-11-01", None))
        self.assertEqual([(r.stage, r.introducer_ids) for r in await c.applicants(branch)],
                         [(bl.Stage.CANDIDATE, [wang])])
        roster = {m.id: m for m in await c.list_members(branch, bl.MemberFilter())}
        self.assertEqual(roster[zhao].category, bl.Category.ACTIVIST)

        # The problem library.
        entry = await c.write_library_entry(branch, bl.NewLibraryEntry(
            collection=bl.Collection.PROBLEM, title="路灯坏了没人管", problem="老旧小区路灯不亮",
            solution="联系街道", tags=["路灯"], written_on="2026-05-01"))
        await self.assertRefused(BranchlineError.InvalidInput, "input.empty", c.write_library_entry(branch, bl.NewLibraryEntry(
            collection=bl.Collection.CASE, title=" ", problem="p", solution="s", tags=[], written_on="2026-05-01")))
        await c.revise_library_entry(entry, None, None, "联系街道，结对单位出资更换")
        await self.assertRefused(BranchlineError.InvalidInput, "input.empty", c.revise_library_entry(entry, "", None, None))
        await c.tag_library_entry(entry, ["老旧小区"])
        await self.assertRefused(BranchlineError.InvalidInput, "input.invalid", c.tag_library_entry(bad_id, ["x"]))
        await c.share_library_entry_down(entry, True)
        await self.assertRefused(BranchlineError.InvalidInput, "input.invalid", c.share_library_entry_down(bad_id, True))
        await self.assertRefused(BranchlineError.InvalidInput, "input.invalid", c.share_library_entry(entry, branch))
        await c.share_library_entry(entry, committee)
        listed = await c.library(bl.Collection.PROBLEM, "路灯", None)
        self.assertEqual([(r.title, r.tags, r.shared_down) for r in listed],
                         [("路灯坏了没人管", ["老旧小区", "路灯"], True)])
        self.assertEqual(await c.library(bl.Collection.CASE, None, None), [])
        whole = await c.library_entry(entry)
        self.assertEqual((whole.solution, whole.shared_with), ("联系街道，结对单位出资更换", [committee]))
        await self.assertRefused(BranchlineError.InvalidInput, "input.invalid", c.library_entry(bad_id))
        await self.assertRefused(BranchlineError.NotFound, "doc.not_found", c.library_entry(str(uuid.uuid4())))

        # The committee's roll-up and rating.
        await c.set_indicator(committee, bl.Indicator.DUES_COLLECTION, 40, 90)
        await self.assertRefused(BranchlineError.InvalidInput, "input.invalid",
                                 c.set_indicator(committee, bl.Indicator.DUES_COLLECTION, 40, 0))
        await c.set_stars(committee, [20, 40, 60, 80, 95])
        await self.assertRefused(BranchlineError.InvalidInput, "input.invalid", c.set_stars(committee, [50, 40]))
        rollup = await c.rollup(committee, "2026-01-01", "2026-12-31", "2026-05-10")
        self.assertEqual((rollup.parent_id, rollup._from, rollup.to, rollup.as_of),
                         (committee, "2026-01-01", "2026-12-31", "2026-05-10"))
        self.assertEqual(rollup.star_thresholds, [20, 40, 60, 80, 95])
        dues_weight = [w for w in rollup.indicators if w.indicator == bl.Indicator.DUES_COLLECTION]
        self.assertEqual([(w.weight, w.target_percent) for w in dues_weight], [(40, 90)])
        self.assertEqual([b.name for b in rollup.branches], ["幸福里第一党支部"])
        self.assertEqual((rollup.branches[0].level, rollup.branches[0].depth, rollup.branches[0].parent_id),
                         (bl.Level.BRANCH, 1, committee))
        self.assertEqual({v.indicator for v in rollup.branches[0].indicators}, {w.indicator for w in rollup.indicators})
        self.assertEqual(rollup.branches[0].dues.collected_fen, 6000)
        self.assertTrue(0 <= rollup.branches[0].stars <= 5)
        await self.assertRefused(BranchlineError.InvalidInput, "input.invalid",
                                 c.rollup(branch, "2026-01-01", "2026-12-31", "2026-05-10"))

        # The clock: no server has corrected it here.
        self.assertIsNone(await c.clock_offset_ms())
        self.assertEqual(len(await c.today()), 10)
        await c.shutdown()

    async def test_19_awards_and_dues_recorded_offline_on_two_phones_add_up(self):
        sec = S.sec
        invite = await sec.create_invite(bl.Role.COMMITTEE, None, 600)
        phone = await BranchlineClient.open(os.path.join(S.dir, "committee-organizer"))
        sync = await phone.enroll(invite.link, "组织委员的手机")
        await sec.set_monthly_dues(BRANCH, 1000)
        await self.assertRefused(BranchlineError.InvalidInput, "input.invalid", sec.set_monthly_dues(BRANCH, 2**62))
        await sec.wait_in_sync(int(PATIENCE * 1000))

        async def default_dues(client):
            return (await client.dues_ledger(BRANCH, 2025)).monthly_default_fen == 1000

        await eventually(lambda: default_dues(phone), "the organizer's phone has the branch's dues")
        # Dave was silent in 2025: on leave from the one meeting and no other points.
        report = await sec.attendance_report(BRANCH, "2025-01-01", "2025-12-31")
        dave = {m.member_id: m for m in report.members}[S.dave]
        self.assertEqual((dave.other_points, dave.silent), (0, True))

        # Both phones offline: each opens the year's points book and dues ledger.
        sec.set_network_available(False)
        phone.set_network_available(False)
        await eventually(lambda: phone.status().state.is_offline(), "organizer offline")
        await sec.award(BRANCH, S.dave, None, 2, "防汛值守", "2025-07-01")
        await sec.record_dues_payment(BRANCH, bl.DuesPayment(
            member_id=S.dave, year=2025, first_month=1, last_month=6, amount_fen=None, paid_on="2025-07-01"))
        await phone.award(BRANCH, S.dave, None, 3, "社区志愿服务", "2025-07-02")
        await phone.record_dues_payment(BRANCH, bl.DuesPayment(
            member_id=S.alice, year=2025, first_month=1, last_month=6, amount_fen=None, paid_on="2025-07-02"))

        # Refused calls change nothing on the phone (and the store still works after
        # amounts that would overflow client-core's sums).
        async def snapshot():
            return (await phone.awards(BRANCH, "2025-01-01", "2025-12-31"),
                    await phone.dues_ledger(BRANCH, 2025),
                    await phone.dues_overview(BRANCH, 2025, "2025-07-31"),
                    sum(d.unacked_changes for d in await phone.list_documents()))

        before = await snapshot()
        refusals = [
            (BranchlineError.InvalidInput, "points.unknown_rule",
             phone.award(BRANCH, S.dave, "no_such_rule", None, None, "2025-07-02")),
            (BranchlineError.InvalidInput, "input.invalid", phone.award(BRANCH, S.dave, None, 2**62, "x", "2025-07-02")),
            (BranchlineError.InvalidInput, "input.invalid", phone.award_points(S.activity, S.dave, -(2**62))),
            (BranchlineError.InvalidInput, "input.invalid",
             phone.set_point_rule(BRANCH, "huge", "太多", 10**7, False)),
            (BranchlineError.InvalidInput, "input.invalid", phone.set_member_dues(BRANCH, S.alice, 2025, 2**62)),
            (BranchlineError.NotFound, "ledger.unknown_entry", phone.withdraw_award(str(uuid.uuid4()))),
            (BranchlineError.NotFound, "ledger.unknown_entry", phone.void_dues_payment(str(uuid.uuid4()), "x", "2025-07-03")),
            (BranchlineError.InvalidInput, "input.invalid", phone.record_dues_payment(BRANCH, bl.DuesPayment(
                member_id=S.dave, year=2025, first_month=0, last_month=3, amount_fen=None, paid_on="2025-07-02"))),
            (BranchlineError.InvalidInput, "input.invalid", phone.record_dues_spending(
                BRANCH, 0, bl.SpendingCategory.EDUCATION, "培训", "支委会", "2025-07-02")),
        ]
        for variant, code, call in refusals:
            await self.assertRefused(variant, code, call)
        self.assertEqual(await snapshot(), before)

        # Together again: the two books and ledgers of the year read as one.
        sec.set_network_available(True)
        phone.set_network_available(True)
        await sec.wait_in_sync(int(PATIENCE * 1000))
        await phone.wait_in_sync(int(PATIENCE * 1000))

        async def added_up(client):
            awards = await client.awards(BRANCH, "2025-01-01", "2025-12-31")
            ledger = await client.dues_ledger(BRANCH, 2025)
            return (sorted(a.points for a in awards if a.member_id == S.dave) == [2, 3]
                    and ledger.collected_fen == 12000 and len(ledger.payments) == 2)

        await eventually(lambda: added_up(sec), "the secretary has the organizer's award and payment")
        await eventually(lambda: added_up(phone), "the organizer has the secretary's award and payment")
        year = sec.whole_year(2025)
        self.assertEqual((year._from, year.to), ("2025-01-01", "2025-12-31"))
        ranking = {r.member_id: r for r in await phone.ranking(BRANCH, year._from, year.to)}
        self.assertEqual(ranking[S.dave].award_points, 5)
        third = sec.quarter(2025, 3)
        self.assertEqual((third._from, third.to), ("2025-07-01", "2025-09-30"))
        in_q3 = {r.member_id: r.total for r in await sec.ranking(BRANCH, third._from, third.to)}
        self.assertEqual(in_q3[S.dave], 5)
        await self.assertRefused(BranchlineError.InvalidInput, "input.invalid", lambda: sec.quarter(2025, 5))
        await self.assertRefused(BranchlineError.InvalidInput, "input.invalid", lambda: sec.whole_year(300000))
        overview = {m.member_id: m for m in await phone.dues_overview(BRANCH, 2025, "2025-07-31")}
        self.assertEqual((overview[S.dave].paid_months, overview[S.dave].overdue_months), ([1, 2, 3, 4, 5, 6], []))
        # Points earned besides attending: Dave is no longer one to talk with.
        report = await sec.attendance_report(BRANCH, "2025-01-01", "2025-12-31")
        dave = {m.member_id: m for m in report.members}[S.dave]
        self.assertEqual((dave.other_points, dave.silent), (5, False))
        # A member's phone reads the public ledger and the ranking too.
        await eventually(lambda: added_up(S.mem), "Alice's phone has both books")
        sync.cancel()
        await phone.shutdown()


def _starts_at(client, act, value):
    async def check():
        return (await client.activity(act)).starts_at == value

    return check()


def _no_conflicts(client):
    async def check():
        return await client.conflicts() == []

    return check()



def _has_petition(client, petition_id):
    async def check():
        try:
            await client.petition(petition_id)
            return True
        except BranchlineError.NotFound:
            return False

    return check()


def _no_account(client):
    async def check():
        return await client.account() is None

    return check()


class Test2Threads(unittest.IsolatedAsyncioTestCase):
    """Dropping a client leaves none of its threads running."""

    async def test_dropping_a_syncing_client_ends_its_threads(self):
        if not RESIDENT_INVITE:
            raise unittest.SkipTest("needs the server from `cargo test`")
        gc.collect()
        await eventually(lambda: "branchline" not in library_threads(), "earlier clients' threads gone")
        before = len(library_threads())
        directory = tempfile.mkdtemp(prefix="branchline-threads-")
        try:
            client = await BranchlineClient.open(directory)
            await client.enroll(RESIDENT_INVITE, "thread test")
            await client.wait_in_sync(int(PATIENCE * 1000))
            self.assertIn("branchline", library_threads(), "the runtime's threads are named")
            del client
            gc.collect()
            await eventually(lambda: "branchline" not in library_threads(), "the client's threads ended", timeout=10)
            await eventually(lambda: len(library_threads()) <= before, "no extra thread left", timeout=10)
        finally:
            shutil.rmtree(directory, ignore_errors=True)


class Test9Coverage(unittest.TestCase):
    """Every exported method was called, and refused bad input where it can; every
    callback came on a library thread."""

    def test_every_callback_ran_on_a_library_thread(self):
        if not BRANCH:
            raise unittest.SkipTest("needs the scenario")
        kinds = {what for what, _, _ in CALLBACKS}
        self.assertEqual(kinds, {"on_status", "on_documents_changed", "on_conflicts", "on_error", "on_rejected"},
                         "every kind of callback was heard")
        on_main = [what for what, main, _ in CALLBACKS if main]
        self.assertEqual(on_main, [], "callbacks made on the caller's (main) thread")
        threads = collections.Counter(name for _, _, name in CALLBACKS)
        self.assertEqual(set(threads), {"branchline"}, f"threads callbacks came on: {threads}")

    def test_every_exported_method_was_called(self):
        if not BRANCH:
            raise unittest.SkipTest("needs the scenario")
        never = [m for m in exported_methods() if CALLED[m] == 0]
        self.assertEqual(never, [], "exported methods the suite never called")

    def test_every_method_refused_bad_input_or_cannot(self):
        if not BRANCH:
            raise unittest.SkipTest("needs the scenario")
        missing = [m for m in exported_methods() if not REFUSED[m] and m not in NO_BAD_INPUT]
        self.assertEqual(missing, [], "methods never shown refusing bad input")
        stale = [m for m in NO_BAD_INPUT if m not in exported_methods()]
        self.assertEqual(stale, [], "NO_BAD_INPUT names methods that do not exist")


if __name__ == "__main__":
    unittest.main()
