"""A claimer process for the task race tests (run as a script, not collected).

    python task_claim_child.py URL START_AT NAME

Everything is imported and the store opened first; then the process sleeps until
START_AT (epoch seconds) so that the processes of one test claim together. It
claims until nothing is left and prints one JSON line: the ids it claimed.
"""

from __future__ import annotations

import json
import sys
import time

from flotilla.orchestrator.tasks import TaskService
from flotilla.store import open_store


def main(argv: list[str]) -> None:
    url, start_at, name = argv[0], float(argv[1]), argv[2]
    store = open_store(url)
    service = TaskService(store)
    time.sleep(max(0.0, start_at - time.time()))
    claimed: list[str] = []
    for _ in range(100_000):  # bounded: far more than any test creates
        task = service.claim(name, team="race")
        if task is None:
            break
        claimed.append(task.id)
    store.close()
    print(json.dumps({"claimed": claimed}))


if __name__ == "__main__":
    main(sys.argv[1:])
