"""Races, on SQLite and PostgreSQL, with separate processes hitting one database:
many posters while a reader follows the board by cursor (no post lost, none twice,
ids strictly increasing), and many joiners of a swarm (never past its maximum size)."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from itertools import pairwise
from pathlib import Path
from typing import Any

from flotilla.domain.coordination import Post, new_swarm
from flotilla.store.base import Store
from flotilla.store.coordination_sql import coordination_store

CHILD = Path(__file__).with_name("coord_race_child.py")
START_DELAY_S = 2.5  # time for the children to import and connect before they start at once


def start_children(args: list[list[str]]) -> list[subprocess.Popen[str]]:
    return [
        subprocess.Popen(
            [sys.executable, str(CHILD), *a],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for a in args
    ]


def outputs(children: list[subprocess.Popen[str]], timeout: float = 120) -> list[dict[str, Any]]:
    results = []
    for child in children:
        out, err = child.communicate(timeout=timeout)
        assert child.returncode == 0, err
        results.append(json.loads(out.strip().splitlines()[-1]))
    return results


def test_concurrent_posters_lose_nothing_and_a_cursor_reader_sees_each_post_once(
    store: Store, store_url: str
) -> None:
    coord = coordination_store(store)
    coord.create_swarm(new_swarm("s1", "hive", "race", 10, time.time()))
    coord.create_swarm(new_swarm("s2", "nest", "noise", 10, time.time()))
    posters, per_poster = 4, 40
    start_at = str(time.time() + START_DELAY_S)
    children = start_children(
        [["post", store_url, start_at, "hive", f"p{n}", str(per_poster)] for n in range(posters)]
        + [["post", store_url, start_at, "nest", "noise", str(per_poster)]]
    )
    seen: list[Post] = []
    done = threading.Event()

    def follow() -> None:
        """Read in small pages by cursor while the posters post, as an agent would."""
        cursor = 0
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            page = coord.read("hive", since=cursor, limit=7)
            seen.extend(page)
            if page:
                cursor = page[-1].id
            elif done.is_set():
                return
            else:
                time.sleep(0.002)

    reader = threading.Thread(target=follow)
    reader.start()
    results = outputs(children)
    done.set()
    reader.join(timeout=130)
    assert not reader.is_alive()

    ids = [p.id for p in seen]
    assert all(a < b for a, b in pairwise(ids)), "cursor order broken"
    bodies = [p.body for p in seen]
    expected = {f"p{n}-{i}" for n in range(posters) for i in range(per_poster)}
    assert len(bodies) == len(expected) and set(bodies) == expected  # none lost, none twice
    for n in range(posters):  # each poster's own posts keep its order
        mine = [int(b.split("-")[1]) for b in bodies if b.startswith(f"p{n}-")]
        assert mine == list(range(per_poster))
        assert results[n]["ids"] == sorted(results[n]["ids"])
    assert [p.id for p in coord.read("hive", limit=1000)] == ids  # what is stored, in order
    assert coord.get_swarm("hive").posts == posters * per_poster
    assert len(coord.read("nest", limit=1000)) == per_poster


def test_concurrent_joiners_never_grow_a_swarm_past_its_maximum(
    store: Store, store_url: str
) -> None:
    coord = coordination_store(store)
    coord.create_swarm(new_swarm("s1", "hive", "race", 5, time.time()))
    start_at = str(time.time() + START_DELAY_S)
    children = start_children(
        [["join", store_url, start_at, "hive", f"j{n}", "5"] for n in range(4)]
    )
    results = outputs(children)
    joined = [a for r in results for a in r["joined"]]
    refused = [a for r in results for a in r["refused"]]
    assert len(joined) == 5 and len(refused) == 15
    assert sorted(coord.get_swarm("hive").members) == sorted(joined)
