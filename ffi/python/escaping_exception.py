"""A program whose exception escapes while its clients are alive and syncing.

Run by `test_branchline.py` in a process of its own, with a data directory and
one-time invite links:

    python3 escaping_exception.py DIR LINK...

Each phone enrolls and watches everything, and the program fails while the phones
are still busy with their first sync and their observers are being told about it.
It does what the README asks of a Python program: at exit it cancels its observer
handles, and leaves everything else alive. The process must then end as any failed
program does, with status 1 and its traceback, neither hanging nor aborting.

Why the cancelling: a library thread that calls into an interpreter that is already
finalizing is ended by it, and ending a library thread that way aborts the process.
`cancel()` returns only when no callback is under way, so none can reach Python
after `atexit`.
"""

import asyncio
import atexit
import os
import sys
import threading
import time

import branchline_ffi as bl


class Watcher(bl.SyncStatusObserver, bl.DocumentsObserver, bl.ConflictsObserver, bl.ErrorObserver,
              bl.RejectionsObserver):
    """An observer that takes a moment over each callback, as a real app's might."""

    calling = threading.Event()

    def heard(self):
        Watcher.calling.set()
        time.sleep(0.05)

    def on_status(self, status):
        self.heard()

    def on_documents_changed(self, doc_ids):
        self.heard()

    def on_conflicts(self, conflicts):
        self.heard()

    def on_error(self, error):
        self.heard()

    def on_rejected(self, rejection):
        self.heard()


WATCHES = []


@atexit.register
def stop_watching():
    for watch in WATCHES:
        watch.cancel()


class Phones:
    """Where the program keeps its clients: alive until the process ends."""

    clients = []
    syncs = []


async def main(directory, links):
    watcher = Watcher()
    for n, link in enumerate(links):
        client = await bl.BranchlineClient.open(os.path.join(directory, f"phone-{n}"))
        Phones.clients.append(client)
        WATCHES.extend([client.observe_sync_status(watcher), client.observe_documents(watcher),
                        client.observe_conflicts(watcher), client.observe_errors(watcher),
                        client.observe_rejections(watcher)])
        Phones.syncs.append(await client.enroll(link, f"phone {n}"))
    # Busy: the phones go offline and back, and an observer is being called.
    for client in Phones.clients:
        client.set_network_available(False)
        client.set_network_available(True)
    Watcher.calling.clear()
    await asyncio.get_running_loop().run_in_executor(None, Watcher.calling.wait, 20)
    print("phones busy; failing now", flush=True)
    raise RuntimeError("an exception escapes with live clients")


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2:]))
