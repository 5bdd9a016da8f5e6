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


def test_cpu_graph_choice_falls_back_to_fp32_only_for_int8_failures():
    import pytest

    from export.cli import ParityFailed, choose_cpu_graph
    from export.parity import Check

    ok_fp32 = Check("fp32 ONNX vs PyTorch: max |logit diff|", 1e-6, 1e-4, at_most=True)
    bad_int8 = Check("int8 vs fp32: predicted-label agreement", 0.96, 0.99, False)
    good_int8 = Check("int8 vs fp32: predicted-label agreement", 0.999, 0.99, False)
    assert choose_cpu_graph("m", "auto", [ok_fp32, good_int8]) == "int8"
    assert choose_cpu_graph("m", "auto", [ok_fp32, bad_int8]) == "fp32"
    assert choose_cpu_graph("m", "fp32", [ok_fp32, bad_int8]) == "fp32"
    with pytest.raises(ParityFailed, match="int8 vs fp32: predicted-label agreement"):
        choose_cpu_graph("m", "int8", [ok_fp32, bad_int8])
    bad_fp32 = Check("fp32 ONNX vs PyTorch: max |logit diff|", 1e-2, 1e-4, at_most=True)
    with pytest.raises(ParityFailed, match="fp32 ONNX vs PyTorch"):
        choose_cpu_graph("m", "auto", [bad_fp32, good_int8])


def test_eval_prints_the_metrics_of_either_kind_of_model():
    from train.cli import headline

    assert headline(
        {"macro_f1": 0.5, "micro_f1": 0.6, "weighted_f1": 0.55, "views": {"ekman": {"macro_f1": 0.62}}}
    ) == ("test macro-F1 0.5000  micro-F1 0.6000  weighted-F1 0.5500  ekman macro-F1 0.6200")
    assert headline({"weighted_f1": 0.61, "macro_f1": 0.4, "accuracy": 0.63}) == (
        "test macro-F1 0.4000  weighted-F1 0.6100  accuracy 0.6300"
    )
