"""Never lose an acknowledged edit: a process doing a burst of scripted edits (labels, outlines, undo/redo) is
SIGKILLed at a random moment, over and over; after every kill the project opens (``PRAGMA integrity_check``
ok), holds every edit acknowledged before the kill, and its audit log matches its labels."""

from __future__ import annotations

import multiprocessing as mp
import os
import random
import signal
import sqlite3
import time
from multiprocessing.connection import Connection
from pathlib import Path

from dermviewer.state.annotate import OUTLINE, Edit, Outline, import_manifest, open_store
from engine.taxonomy import load_taxonomy
from tests.dermviewer.state.test_annotate_store import assert_audit_matches, small_manifest

KILLS = 110
CODES = ["ACK", "BCC", "MEL", "NEV", "SCC", "SEK"]


def marker(i: int) -> Outline:
    """A box-only outline that only edit ``i`` writes: its audit summary proves the edit landed."""
    return Outline.from_box((i % 250, i // 250, i % 250 + 1, i // 250 + 1), (300, 300))


def burst(path: str, start: int, conn: Connection) -> None:
    store = open_store(path)
    keys = [p.key for p in store.photos()]
    i = start
    while True:
        k = keys[i % len(keys)]
        store.apply([Edit(k, "disease", CODES[i % 6]), Edit(k, OUTLINE, marker(i).to_json())], "robot")
        conn.send(("edit", i))  # acknowledged: the transaction has committed
        if i % 5 == 4:
            store.undo("robot")
            conn.send(("undo", i))
            store.redo("robot")
            conn.send(("redo", i))
        i += 1


def test_sigkill_during_edit_bursts_loses_nothing_acknowledged(tmp_path: Path) -> None:
    path = tmp_path / "crash.dvproj"
    store = open_store(path, load_taxonomy("pad_ufes_20"), create=True)
    import_manifest(store, small_manifest(tmp_path / "src", n=6), masks=False)
    store.close()
    ctx = mp.get_context("forkserver")
    ctx.set_forkserver_preload(["dermviewer.state.annotate", "tests.dermviewer.state.test_annotate_crash"])
    rng = random.Random(13)
    acked: list[int] = []
    nxt, killed_with_acks, committed_unacked, undo_pairs = 0, 0, 0, 0
    for _ in range(KILLS):
        recv, send = ctx.Pipe(duplex=False)
        proc = ctx.Process(target=burst, args=(str(path), nxt, send))
        proc.start()
        send.close()
        if rng.random() < 0.85:  # most kills in the middle of the burst, the others while it opens the project
            recv.poll(5.0)
            time.sleep(rng.uniform(0.0, 0.1))
        else:
            time.sleep(rng.uniform(0.0, 0.1))
        os.kill(proc.pid, signal.SIGKILL)
        proc.join()
        assert proc.exitcode == -signal.SIGKILL
        round_acks = []
        while recv.poll():
            try:
                kind, i = recv.recv()
            except EOFError:
                break
            if kind == "edit":
                round_acks.append(i)
            elif kind == "redo":
                undo_pairs += 1
        recv.close()
        acked += round_acks
        killed_with_acks += bool(round_acks)

        with sqlite3.connect(path) as c:
            assert c.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        s = open_store(path)
        try:
            landed = {int(e.new.split("box=")[1].split(",")[0]) + 250 * int(e.new.split(",")[1])
                      for e in s.audit() if e.field == OUTLINE and e.owner == "robot" and e.reason in ("", "confirmed")}
            missing = [i for i in acked if i not in landed]
            assert not missing, f"acknowledged edits lost after a kill: {missing[:10]}"
            committed_unacked += len([i for i in landed if i >= nxt and i not in round_acks])
            assert_audit_matches(s)
            nxt = max(landed | set(acked), default=-1) + 1
        finally:
            s.close()
    print(f"\n{KILLS} SIGKILLs: {len(acked)} acknowledged edits all present, {killed_with_acks} kills after at least "
          f"one acknowledgement, {committed_unacked} edits committed but killed before their acknowledgement, "
          f"{undo_pairs} undo/redo pairs; integrity_check ok and audit = labels after every restart")
    assert len(acked) > KILLS  # the bursts did edit, not just start up
