"""The app works offline and never phones home (issue 16): a whole session -- the bundled model loaded, real
PAD-UFES-20 photos opened and predicted, a Grad-CAM, a corruption sweep, a PDF report, an annotation project
made from a small manifest with a label set and suspects ranked -- with every way Python opens a network
connection refused and recorded, and the process's open sockets read from ``/proc`` at the end.

The session is driven through the Qt-free coordinator with the synchronous executor (as
tests/dermviewer/state/test_coordinator.py does), on the torch backend so that nothing runs in a subprocess
this test cannot see (the ONNX cache builds in one); the report is rendered by the app's Qt PDF writer.
Unix-domain sockets (AF_UNIX) stay allowed: they never leave the machine, and Qt, multiprocessing and
asyncio use them for local wake-ups.
"""

from __future__ import annotations

import _socket
import csv
import os
import socket
import urllib.request
from pathlib import Path

import pytest

import resources
from dermviewer.qt.report_pdf import write_report_pdf
from dermviewer.state.annotate import import_manifest, open_store
from dermviewer.state.annotate.ranking import rank_suspects, read_oof
from dermviewer.state.annotate.session import AnnotateSession
from dermviewer.state.app_state import AppState
from dermviewer.state.coordinator import Coordinator
from dermviewer.state.executor import ManualExecutor, ManualTimer
from dermviewer.state.model import ModelHost
from dermviewer.state.report import case_report
from dermviewer.state.settings import Settings
from engine.taxonomy import load_taxonomy
from tests.dermviewer.conftest import DATA

PHOTOS = ["PAT_100_393_898.jpg", "PAT_1022_115_132.jpg"]
INET = (socket.AF_INET, socket.AF_INET6)


class NetworkRefused(OSError):
    pass


class NetworkGuard:
    """Records and refuses every network connection, DNS look-up or internet socket made through Python."""

    def __init__(self) -> None:
        self.attempts: list[str] = []

    def refuse(self, what: str, detail: object) -> None:
        self.attempts.append(f"{what} {detail!r}")
        raise NetworkRefused(f"network access during an offline session: {what} {detail!r}")


def _is_inet(sock: socket.socket) -> bool:
    return sock.family in INET


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> NetworkGuard:
    guard = NetworkGuard()
    real_init, real_connect, real_connect_ex = socket.socket.__init__, socket.socket.connect, socket.socket.connect_ex
    real_sendto = socket.socket.sendto

    def init(self, family=-1, type=-1, proto=-1, fileno=None):
        if fileno is None and (socket.AF_INET if family == -1 else family) in INET:
            guard.refuse("socket()", (family, type))
        real_init(self, family, type, proto, fileno)

    def connect(self, address):
        if _is_inet(self):
            guard.refuse("connect", address)
        return real_connect(self, address)

    def connect_ex(self, address):
        if _is_inet(self):
            guard.refuse("connect_ex", address)
        return real_connect_ex(self, address)

    def sendto(self, *args):
        if _is_inet(self):
            guard.refuse("sendto", args[-1])
        return real_sendto(self, *args)

    def lookup(name: str):
        def refuse(*args, **_kwargs):
            guard.refuse(name, args[:2])

        return refuse

    monkeypatch.setattr(socket.socket, "__init__", init)
    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket.socket, "connect_ex", connect_ex)
    monkeypatch.setattr(socket.socket, "sendto", sendto)
    for name in ("create_connection", "getaddrinfo", "gethostbyname", "gethostbyname_ex", "gethostbyaddr"):
        monkeypatch.setattr(socket, name, lookup(name))
    return guard


def open_inet_sockets() -> list[str]:
    """Internet sockets this process holds open, from /proc (catches C libraries that bypass Python)."""
    ours = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue  # closed meanwhile
        if target.startswith("socket:["):
            ours.add(target[len("socket:[") : -1])
    found = []
    for table in ("tcp", "tcp6", "udp", "udp6", "raw", "raw6"):
        path = Path("/proc/self/net") / table
        if not path.is_file():
            continue
        for line in path.read_text().splitlines()[1:]:
            cols = line.split()
            if len(cols) > 9 and cols[9] in ours:
                found.append(f"{table} local={cols[1]} remote={cols[2]}")
    return found


def _small_manifest(folder: Path, n: int = 6) -> Path:
    with (DATA / "manifest.csv").open(newline="") as f:
        reader = csv.DictReader(f)
        rows, cols = list(reader)[:n], list(reader.fieldnames or [])
    for r in rows:
        r["image"] = str(DATA / r["image"])
    out = folder / "manifest.csv"
    with out.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=cols)
        w.writeheader()
        w.writerows(rows)
    (folder / "masks").symlink_to(DATA / "masks")
    return out


def test_the_guard_refuses_python_connections_and_proc_shows_c_level_sockets(no_network: NetworkGuard) -> None:
    """The guard can fail: a connection, a DNS look-up and an HTTP request are refused and recorded, and a
    socket made below Python's socket module (as a C library would) shows up in the /proc scan."""
    with pytest.raises(NetworkRefused):
        socket.create_connection(("127.0.0.1", 9), timeout=1)
    with pytest.raises(OSError, match="offline session"):  # urllib wraps it in a URLError (an OSError)
        urllib.request.urlopen("http://example.invalid/", timeout=1)
    with pytest.raises(NetworkRefused):
        socket.getaddrinfo("example.invalid", 443)
    with pytest.raises(NetworkRefused):
        socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    assert [a.split()[0] for a in no_network.attempts] == ["create_connection", "create_connection", "getaddrinfo",
                                                           "socket()"]
    a, b = socket.socketpair()  # AF_UNIX: allowed
    a.close()
    b.close()
    raw = _socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        raw.bind(("127.0.0.1", 0))
        assert any(s.startswith("udp") for s in open_inet_sockets())
    finally:
        raw.close()
    assert open_inet_sockets() == []


@pytest.mark.filterwarnings("ignore:May not flag all label issues:UserWarning")  # cleanlab, on 6 photos
def test_a_whole_session_opens_no_network_socket(no_network: NetworkGuard, qapp, tmp_path: Path) -> None:
    photos = [DATA / "images" / n for n in PHOTOS]
    if not all(p.is_file() for p in photos):
        pytest.fail(f"PAD-UFES-20 photos not found under {DATA / 'images'}")
    assert open_inet_sockets() == []
    # review: the bundled model, two photos, a Grad-CAM of the top class, a sweep, a PDF report
    state = AppState(Settings(device="cpu", backend="torch"))
    host = ModelHost()
    host.load(resources.default_model_path(), "cpu", "torch")
    state.model = host
    ex = ManualExecutor()
    co = Coordinator(state, ex, timer=ManualTimer(), clock=lambda: 0.0)
    errors: list[tuple] = []
    state.message.connect(lambda *a: errors.append(a) if a and a[0] == "error" else None)
    co.open_paths(photos)
    ex.run_pending()
    view = co.state.view
    assert view is not None and view.prediction is not None
    codes = [c.code for c in host.predictor.bundle.taxonomy.head("disease").classes]
    co.request_gradcam("disease", codes.index(view.prediction.top.code))
    ex.run_pending()
    assert co.state.gradcam is not None and co.state.gradcam.values.max() > co.state.gradcam.values.min()
    finished: list[tuple] = []
    co.sweep_finished.connect(lambda *a: finished.append(a))
    co.run_sweep()
    ex.run_pending()
    assert finished and co.sweep_result is not None
    pdf = write_report_pdf(tmp_path / "report.pdf", case_report(co.state))
    assert pdf.read_bytes()[:5] == b"%PDF-"
    # annotate: a project from a small manifest, a label set by key, suspects ranked on the shipped OOF file
    folder = tmp_path / "project"
    folder.mkdir()
    store = open_store(folder / "labels.dvproj", load_taxonomy("pad_ufes_20"), create=True)
    assert import_manifest(store, _small_manifest(folder)).added == 6
    session = AnnotateSession(store, "alice", oof=read_oof(resources.resource_path("models", "default.oof.h5")))
    assert session.set_value("disease", "MEL")
    assert store.value(session.current.key, "disease", "alice") == "MEL"
    assert len(rank_suspects(store, "alice", session.oof)) == 6
    store.close()
    co.shutdown()
    assert errors == []
    assert no_network.attempts == [], no_network.attempts
    assert open_inet_sockets() == []
