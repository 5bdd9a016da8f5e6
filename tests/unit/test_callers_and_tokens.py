"""Client policies, token buckets and the tokens file, without a server."""

import datetime as dt
import math

import pytest

from gateway.access import certificate_identity
from gateway.callers import Call, ClientPolicy, Quotas, TokenBucket, parse_policies, policy_for
from gateway.errors import Overloaded, PermissionDenied, Unauthenticated
from gateway.grpc.interceptor import grpc_certificate_identity
from gateway.tokens import TokenFile, parse_tokens, token_hash


def test_a_bucket_refills_at_its_rate_and_refuses_all_or_nothing():
    bucket = TokenBucket(rate=2.0, capacity=4, now=0.0)
    assert bucket.take(4, now=0.0) == 0.0
    assert bucket.take(1, now=0.0) == pytest.approx(0.5)  # one token at 2/s
    assert bucket.take(1, now=0.5) == 0.0
    assert bucket.take(3, now=0.5) == pytest.approx(1.5)  # refused whole: nothing taken
    assert bucket.take(3, now=2.0) == 0.0
    assert math.isinf(bucket.take(5, now=100.0))  # more than the bucket holds: never


def test_policies_parse_with_defaults_and_name_bad_keys():
    policies = parse_policies(
        {"a": {"models": ["m"], "texts_per_s": 2.5}, "*": {"rpcs": ["ListModels"]}}, {"m", "n"}
    )
    assert policies["a"] == ClientPolicy(frozenset({"m"}), None, 2.5, 3, 0)
    assert policy_for(policies, "unknown").rpcs == frozenset({"ListModels"})
    assert policy_for({}, "anyone") == ClientPolicy()
    for raw, message in [
        ({"a": {"model": ["m"]}}, "unknown keys"),
        ({"a": {"models": ["x"]}}, "not served"),
        ({"a": {"rpcs": ["Classfy"]}}, "unknown"),
        ({"a": {"texts_per_s": -1}}, "must not be negative"),
        ({"a": {"texts_per_s": 1, "burst_texts": 0}}, "at least 1"),
    ]:
        with pytest.raises(ValueError, match=message):
            parse_policies(raw, {"m"})


def test_a_call_checks_models_and_charges_its_clients_bucket():
    quotas = Quotas()
    policy = ClientPolicy(models=frozenset({"m"}), texts_per_s=1.0, burst_texts=2)
    call = Call("a", "a", "Classify", quotas.state("a", policy))
    call.check_model("m")
    with pytest.raises(PermissionDenied, match="may not use model n"):
        call.check_model("n")
    call.charge(2, retry_after_ms=100)
    with pytest.raises(Overloaded) as refused:
        call.charge(1, retry_after_ms=100)
    assert 100 <= refused.value.retry_after_ms <= 1000
    # The same client's next call shares the bucket; an unchanged policy keeps its state.
    assert quotas.state("a", policy) is call.state
    assert quotas.state("a", ClientPolicy()).bucket is None  # a reload that lifts the limit


def test_tokens_file_entries_expire_and_reject_bad_entries(tmp_path):
    entries = parse_tokens(
        {
            "tokens": [
                {"client": "a", "sha256": token_hash("t1"), "expires": dt.datetime(2030, 1, 1, tzinfo=dt.UTC)}
            ]
        }
    )
    path = tmp_path / "tokens.toml"
    path.write_text(
        f'[[tokens]]\nclient = "a"\nsha256 = "{token_hash("t1")}"\nexpires = 2030-01-01T00:00:00Z\n'
    )
    tokens = TokenFile(str(path))
    assert tokens.entries == entries
    assert tokens.client_of("t1", now=dt.datetime(2029, 1, 1, tzinfo=dt.UTC)) == "a"
    with pytest.raises(Unauthenticated, match="expired"):
        tokens.client_of("t1", now=dt.datetime(2030, 1, 1, tzinfo=dt.UTC))
    with pytest.raises(Unauthenticated, match="not valid"):
        tokens.client_of("t2")
    for raw, message in [
        ({"tokens": [{"client": "a", "sha256": "abc"}]}, "64 hex digits"),
        ({"tokens": [{"sha256": token_hash("x")}]}, "client"),
        (
            {"tokens": [{"client": "a", "sha256": token_hash("x"), "expires": dt.datetime(2030, 1, 1)}]},
            "offset",
        ),
        (
            {
                "tokens": [
                    {"client": "a", "sha256": token_hash("x")},
                    {"client": "b", "sha256": token_hash("x")},
                ]
            },
            "twice",
        ),
        ({"token": []}, "unknown sections"),
    ]:
        with pytest.raises(ValueError, match=message):
            parse_tokens(raw)


def test_certificate_identity_prefers_spiffe_then_common_name_then_san():
    assert certificate_identity("spiffe://c/ns/a", "a", ("b",)) == "spiffe://c/ns/a"
    assert certificate_identity(None, "a", ("b",)) == "a"
    assert certificate_identity(None, None, ("b", "c")) == "b"
    assert certificate_identity(None, None) is None
    # gRPC's auth context, as the interceptor reads it
    assert (
        grpc_certificate_identity({"peer_spiffe_id": [b"spiffe://c/ns/a"], "x509_common_name": [b"a"]})
        == "spiffe://c/ns/a"
    )
    assert (
        grpc_certificate_identity({"x509_common_name": [b"a"], "x509_subject_alternative_name": [b"b"]})
        == "a"
    )
    assert grpc_certificate_identity({"x509_subject_alternative_name": [b"b", b"c"]}) == "b"
    assert grpc_certificate_identity({"transport_security_type": [b"ssl"]}) is None


def test_the_quota_table_is_bounded_and_forgets_idle_clients_first():
    quotas = Quotas(max_clients=3)
    busy = quotas.state("busy", ClientPolicy(max_concurrent_calls=1))
    busy.open_calls = 1
    for i in range(10):
        quotas.state(f"cert-{i}", ClientPolicy())
    assert len(quotas) == 3
    assert quotas.state("busy", ClientPolicy(max_concurrent_calls=1)) is busy  # never dropped while open


async def test_certificate_files_reload_on_change_and_a_missing_file_keeps_the_previous(tmp_path):
    import subprocess

    from gateway.grpc.credentials import CertificateReloader
    from gateway.reloading import Reloader
    from gateway.settings import Settings

    cert, key = tmp_path / "tls.crt", tmp_path / "tls.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)  # fmt: skip
    files = Reloader()
    reloader = CertificateReloader(Settings(tls_cert_file=str(cert), tls_key_file=str(key)), files)
    reloader.credentials()
    assert await files.check(now=1.0) == []
    assert reloader._fetch() is None  # unchanged: gRPC keeps the configuration it has
    cert.write_bytes(cert.read_bytes())  # rewritten (a rotated Secret gets a new inode)
    cert.touch()
    assert await files.check(now=10.0) == ["TLS certificate (gRPC)"]
    assert reloader._fetch() is not None and reloader.reloads == 1
    assert reloader._fetch() is None  # handed to gRPC once
    key.unlink()  # half of a rotation seen: the previous configuration stays
    await files.check(now=20.0)
    assert reloader._fetch() is None and reloader.reloads == 1
