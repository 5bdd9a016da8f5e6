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
        from launcher.tritonserver import TritonServer
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


def test_a_killed_serve_leaves_no_gateway_triton_or_shared_memory(exported_repo, tmp_path):
    from bench.reliability import Serve

    serve = Serve(exported_repo, tmp_path)
    gateway, triton = serve.gateway_pid(), serve.triton_pid()
    assert gateway and triton and serve.leftovers()  # running: its processes and regions exist
    os.kill(serve.proc.pid, signal.SIGKILL)
    serve.proc.wait()
    deadline = time.monotonic() + 30
    while serve.leftovers() and time.monotonic() < deadline:
        time.sleep(0.2)
    left = serve.leftovers()
    for item in left:
        if item.startswith("pid "):
            os.kill(int(item.split()[1]), signal.SIGKILL)
    serve.stop()
    assert left == [], "left behind by a SIGKILLed serve"
