"""No Triton process outlives whoever started it, even when that process is killed outright."""

import os
import signal
import subprocess
import sys
import textwrap
import time

from tests.triton.conftest import group_alive


def test_server_dies_with_a_killed_launcher(exported_repo):
    launcher = textwrap.dedent(f"""
        import sys, time
        from emotionaware.tritonserver import TritonServer
        server = TritonServer({str(exported_repo)!r}).start()
        server.wait_ready(120)
        print(server.pid, flush=True)
        time.sleep(600)
    """)
    proc = subprocess.Popen([sys.executable, "-c", launcher], stdout=subprocess.PIPE, text=True)
    try:
        triton_pid = int(proc.stdout.readline())
        assert group_alive(triton_pid)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    deadline = time.monotonic() + 30
    while group_alive(triton_pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    if group_alive(triton_pid):
        os.killpg(triton_pid, signal.SIGKILL)
        raise AssertionError("tritonserver outlived its SIGKILLed launcher")
