"""The public API contract: every element of the proto is documented, enums start at _UNSPECIFIED."""

from __future__ import annotations

from google.protobuf import descriptor_pb2
from grpc_tools import protoc

from emotionaware.paths import ROOT

PROTO = "emotionaware/v1/emotion.proto"


def compiled(tmp_path) -> descriptor_pb2.FileDescriptorProto:
    out = tmp_path / "api.pb"
    args = ["protoc", f"-I{ROOT / 'proto'}", f"--descriptor_set_out={out}", "--include_source_info", PROTO]
    assert protoc.main(args) == 0
    return descriptor_pb2.FileDescriptorSet.FromString(out.read_bytes()).file[0]


def test_every_rpc_message_field_and_enum_value_has_a_comment(tmp_path):
    api = compiled(tmp_path)
    comments = {tuple(loc.path): loc.leading_comments.strip() for loc in api.source_code_info.location}
    elements = []
    for s, service in enumerate(api.service):
        elements.append(((6, s), service.name))
        elements += [
            ((6, s, 2, m), f"{service.name}.{method.name}") for m, method in enumerate(service.method)
        ]
    for i, message in enumerate(api.message_type):
        if message.field:  # an empty request message needs no per-field comments
            elements.append(((4, i), message.name))
        elements += [((4, i, 2, f), f"{message.name}.{field.name}") for f, field in enumerate(message.field)]
    for e, enum in enumerate(api.enum_type):
        elements.append(((5, e), enum.name))
        elements += [((5, e, 2, v), f"{enum.name}.{value.name}") for v, value in enumerate(enum.value)]
    undocumented = [name for path, name in elements if not comments.get(path)]
    assert not undocumented, f"undocumented: {undocumented}"
    assert {m.name for m in api.service[0].method} == {
        "Classify", "ClassifyBatch", "ClassifyStream", "Analyze", "SubmitFeedback", "ListModels", "GetModel"
    }  # fmt: skip


def test_enums_have_an_unspecified_zero_and_the_package_is_versioned(tmp_path):
    api = compiled(tmp_path)
    assert api.package == "emotionaware.v1"
    for enum in api.enum_type:
        zero = next(v for v in enum.value if v.number == 0)
        assert zero.name.endswith("_UNSPECIFIED"), enum.name
