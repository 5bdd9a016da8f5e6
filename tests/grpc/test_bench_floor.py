"""`make overload`'s floor measure: a gRPC server that only refuses, under a real open loop on
loopback, in its own process."""

from __future__ import annotations

from bench.admission import grpc_floor
from emotionaware.v1 import emotion_pb2 as pb


def test_the_floor_server_refuses_every_call_and_its_cpu_is_measured():
    floor = grpc_floor(
        lambda i: pb.ClassifyRequest(text=f"text {i}", model="goemotions"), rate=300, seconds=2
    )
    assert floor.rate == 300
    assert floor.refused >= 590 and floor.other == 0  # 2 s at 300/s, each refused
    # 600 calls cost a gRPC server and its client measurable CPU, and less than the host has.
    assert 0 < floor.server_cores < 2 and 0 < floor.client_cores < 2
