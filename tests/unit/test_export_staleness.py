import json

from export.triton_repo import artifact_digest, is_current


def make_artifact(path, weights=b"w1"):
    path.mkdir(parents=True, exist_ok=True)
    (path / "weights.safetensors").write_bytes(weights)
    (path / "artifact.json").write_text("{}")
    return path


def test_repository_is_current_only_for_the_artifact_it_was_built_from(tmp_path):
    artifact = make_artifact(tmp_path / "models" / "m")
    repo = tmp_path / "repo"
    assert not is_current(repo, "m", artifact)  # nothing exported yet
    (repo / "m" / "1").mkdir(parents=True)
    (repo / "m" / "config.pbtxt").write_text("")
    (repo / "m" / "1" / "metadata.json").write_text(
        json.dumps({"artifact_sha256": artifact_digest(artifact)})
    )
    assert is_current(repo, "m", artifact)
    make_artifact(artifact, weights=b"w2")  # retrained
    assert not is_current(repo, "m", artifact)
