"""What the benchmarks read from /proc: CPU of process trees, and who listens on a port."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys

import pytest

from bench import cpu
from bench.harness import free_port, listening_sockets, open_sockets

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")

LISTENER = """
import socket, time
listener = socket.create_server(("127.0.0.1", 0))
print(listener.getsockname()[1], flush=True)
time.sleep(60)
"""

# Burns 0.3 s of CPU, then has a child burn 0.3 s and waits for it; then idles until killed.
BURNER = """
import os, time
def burn():
    end = time.process_time() + 0.3
    while time.process_time() < end:
        pass
burn()
if os.fork() == 0:
    burn()
    os._exit(0)
os.wait()
print("done", flush=True)
time.sleep(60)
"""


def test_a_tree_counts_its_own_cpu_and_its_reaped_childrens():
    burner = subprocess.Popen([sys.executable, "-c", BURNER], stdout=subprocess.PIPE, text=True)
    try:
        assert burner.stdout.readline() == "done\n"
        table = cpu.processes()
        own = table[burner.pid].own

        assert 0.25 < own < 0.55
        assert 0.55 < cpu.tree_seconds(table, burner.pid) < 1.0  # the reaped child's 0.3 s
        assert cpu.tree_seconds(table, os.getpid()) > cpu.tree_seconds(table, burner.pid)
        assert cpu.tree_seconds(table, 0) == 0.0  # no such process
    finally:
        burner.kill()
        burner.wait()


# A parent and its child, both this interpreter (so named alike, whatever started pytest:
# `python -m pytest` or the `pytest` script).
FAMILY = """
import subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
print(child.pid, flush=True)
time.sleep(30)
"""


def test_roots_named_finds_the_top_of_a_family_of_processes():
    parent = subprocess.Popen([sys.executable, "-c", FAMILY], stdout=subprocess.PIPE, text=True)
    child = int(parent.stdout.readline())
    try:
        table = cpu.processes()
        name = table[parent.pid].name
        roots = cpu.roots_named(table, name)

        assert table[child].name == name and child not in roots  # its parent is named alike
        assert (parent.pid in roots) == (table[os.getpid()].name != name)
        assert cpu.roots_named(table, "no-such-process") == []
    finally:
        os.kill(child, signal.SIGKILL)
        parent.kill()
        parent.wait()


def test_the_socket_listening_on_a_port_is_found_among_its_owners_sockets():
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]

        found = listening_sockets(port)

        assert len(found) == 1 and found <= open_sockets(os.getpid())
    assert listening_sockets(port) == set()  # closed: nothing listens
    assert listening_sockets(free_port()) == set()


def test_a_server_of_another_process_is_not_ours():
    other = subprocess.Popen([sys.executable, "-c", LISTENER], stdout=subprocess.PIPE, text=True)
    try:
        port = int(other.stdout.readline())

        found = listening_sockets(port)

        assert found and found <= open_sockets(other.pid)
        assert not found & open_sockets(os.getpid())
    finally:
        other.kill()
        other.wait()
