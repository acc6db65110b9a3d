"""A separate process for the coordination race tests (run as a script, not collected).

    python coord_race_child.py post URL START_AT SWARM AUTHOR COUNT
    python coord_race_child.py join URL START_AT SWARM PREFIX THREADS

Everything is imported and the store opened first; then the process sleeps until
START_AT (epoch seconds) so that the processes of one test hit the database
together. `join` runs THREADS joiners at once (agents PREFIX-0, PREFIX-1, ...).
Prints one JSON line with what it did.
"""

from __future__ import annotations

import json
import sys
import threading
import time

from flotilla.domain.errors import UsageError
from flotilla.store import open_store
from flotilla.store.coordination_sql import coordination_store


def main(argv: list[str]) -> None:
    mode, url, start_at, swarm, name, count = argv[0], argv[1], float(argv[2]), *argv[3:6]
    store = open_store(url)
    coord = coordination_store(store)
    time.sleep(max(0.0, start_at - time.time()))
    if mode == "post":
        ids = [
            coord.post(swarm, name, "race", f"{name}-{i}", time.time()).id
            for i in range(int(count))
        ]
        print(json.dumps({"ids": ids}))
    else:
        joined: list[str] = []
        refused: list[str] = []
        lock = threading.Lock()

        def join(agent: str) -> None:
            try:
                coord.join_swarm(swarm, agent, time.time())
                outcome = joined
            except UsageError:  # the swarm is full
                outcome = refused
            with lock:
                outcome.append(agent)

        threads = [threading.Thread(target=join, args=(f"{name}-{i}",)) for i in range(int(count))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        print(json.dumps({"joined": joined, "refused": refused}))
    store.close()


if __name__ == "__main__":
    main(sys.argv[1:])
