from pathlib import Path

import pytest

from launcher.tritonserver import TritonPorts, TritonServer, server_environment


def test_ports_are_distinct_and_free():
    ports = TritonPorts.pick_free()
    assert len({ports.http, ports.grpc, ports.metrics}) == 3


def test_command_binds_loopback_and_disables_config_guessing(tmp_path: Path):
    server = TritonServer(tmp_path, TritonPorts(1, 2, 3))
    cmd = server.command()
    assert f"--model-repository={tmp_path.resolve()}" in cmd
    assert "--grpc-address=127.0.0.1" in cmd and "--grpc-port=2" in cmd
    assert "--disable-auto-complete-config" in cmd


def test_environment_looks_like_an_activated_venv():
    import sys

    env = server_environment()
    assert env["VIRTUAL_ENV"] == sys.prefix
    assert env["PATH"].startswith(sys.prefix)


def test_stop_without_start_is_harmless(tmp_path: Path):
    server = TritonServer(tmp_path)
    server.stop()
    assert not server.running()


def test_missing_python_backend_stub_says_to_run_setup(tmp_path: Path, monkeypatch):
    import pytest

    import launcher.tritonserver as ts

    home = tmp_path / "tritonserver"
    (home / "bin").mkdir(parents=True)
    (home / "bin" / "tritonserver").write_text("#!/bin/sh\n")
    (home / "bin" / "tritonserver").chmod(0o755)
    monkeypatch.setattr(ts, "triton_home", lambda: home)
    with pytest.raises(ts.TritonNotInstalled, match="make setup"):
        TritonServer(tmp_path).command()


def test_regions_of_launchers_that_are_gone_are_removed_and_live_ones_kept(tmp_path):
    import os
    import subprocess

    from launcher.tritonserver import remove_orphaned_shared_memory

    gone = subprocess.Popen(["true"])
    gone.wait()  # its pid names no process now
    (tmp_path / f"emotionaware_{gone.pid}_0_a").write_bytes(b"x")
    (tmp_path / f"emotionaware_{os.getpid()}_0_b").write_bytes(b"x")  # a launcher that runs
    (tmp_path / "other_region").write_bytes(b"x")
    assert remove_orphaned_shared_memory(tmp_path) == [f"emotionaware_{gone.pid}_0_a"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"emotionaware_{os.getpid()}_0_b", "other_region"]


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.0.2.2", "gateway.internal"])
def test_serve_moves_only_the_gateway_whatever_the_host(host, monkeypatch, tmp_path):
    """Every address ``emotionaware-serve --host`` accepts leaves Triton on 127.0.0.1."""
    from launcher import serve

    args = serve.build_parser().parse_args([f"--host={host}", f"--log-dir={tmp_path}"])
    monkeypatch.setattr(serve.TritonServer, "start", lambda self: self)
    launched = []
    monkeypatch.setattr(serve.subprocess, "Popen", lambda cmd, **kw: launched.append(cmd))
    supervisor = serve.Supervisor(args, serve.Stopping())
    triton = supervisor.start_triton()
    addresses = [a.split("=", 1)[1] for a in triton.command() if a.split("=")[0].endswith("-address")]
    assert addresses == ["127.0.0.1"] * 3
    supervisor.start_gateway()
    (gateway,) = launched
    assert f"--listen={host}:{args.grpc_port}" in gateway
    assert f"--triton-url=127.0.0.1:{args.triton_grpc_port}" in gateway
