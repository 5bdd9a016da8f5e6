import json

from export.source import artifact_digest
from export.triton_repo import buckets_for, is_current, next_version


def make_artifact(path, weights=b"w1"):
    path.mkdir(parents=True, exist_ok=True)
    (path / "weights.safetensors").write_bytes(weights)
    (path / "artifact.json").write_text("{}")
    return path


def exported(repo, name, version, digest):
    (repo / name / str(version)).mkdir(parents=True)
    (repo / name / "config.pbtxt").write_text("")
    (repo / name / str(version) / "metadata.json").write_text(json.dumps({"source_digest": digest}))


def test_a_changed_source_becomes_a_new_version_and_the_old_one_stays(tmp_path):
    artifact = make_artifact(tmp_path / "models" / "m")
    repo = tmp_path / "repo"
    first = artifact_digest(artifact)
    assert not is_current(repo, "m", first)  # nothing exported yet
    assert next_version(repo / "m", first) == 1
    exported(repo, "m", 1, first)
    assert is_current(repo, "m", first)
    assert next_version(repo / "m", first) == 1  # re-export of the same source: same version

    make_artifact(artifact, weights=b"w2")  # retrained
    second = artifact_digest(artifact)
    assert second != first
    assert not is_current(repo, "m", second)
    assert next_version(repo / "m", second) == 2
    exported(repo, "m", 2, second)
    assert (repo / "m" / "1" / "metadata.json").exists()


def test_length_buckets_end_at_the_model_limit():
    assert buckets_for(128) == [16, 32, 64, 128]
    assert buckets_for(100) == [16, 32, 64, 100]
    assert buckets_for(512) == [16, 32, 64, 128, 256, 512]
