"""A second process for the store's race tests (run as a script, not collected).

    python store_race_child.py open URL START_AT
    python store_race_child.py cas URL START_AT TARGET_STATE WORKER_ID...

Everything is imported first, then the process sleeps until START_AT (epoch
seconds) so that the processes of one test hit the database together.
Prints one JSON line with what it did.
"""

from __future__ import annotations

import json
import sys
import time

from flotilla.domain.errors import IllegalTransition
from flotilla.domain.states import WorkerState
from flotilla.store import open_store


def wait_until(start_at: float) -> None:
    time.sleep(max(0.0, start_at - time.time()))


def main(argv: list[str]) -> None:
    mode, url, start_at = argv[0], argv[1], float(argv[2])
    if mode == "open":
        wait_until(start_at)
        store = open_store(url)
        print(json.dumps({"workers": len(store.list_workers())}))
        store.close()
        return
    target, ids = WorkerState(argv[3]), argv[4:]
    store = open_store(url)
    won, lost = [], []
    wait_until(start_at)
    for worker_id in ids:
        try:
            store.update_worker(worker_id, expect_state=WorkerState.RUNNING, state=target)
            won.append(worker_id)
        except IllegalTransition:  # StaleState included: the other process won
            lost.append(worker_id)
    store.close()
    print(json.dumps({"won": won, "lost": lost}))


if __name__ == "__main__":
    main(sys.argv[1:])
