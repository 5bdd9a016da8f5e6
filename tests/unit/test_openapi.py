"""The OpenAPI document of the HTTP transport: valid OpenAPI 3.1, generated from the proto."""

from __future__ import annotations

from openapi_spec_validator import validate

from emotionaware.v1 import emotion_pb2 as pb
from gateway.http.openapi import openapi_document


def test_the_document_is_valid_openapi_3_1():
    document = openapi_document()
    assert document["openapi"] == "3.1.0"
    validate(document)


def test_every_proto_message_field_and_enum_value_appears():
    schemas = openapi_document()["components"]["schemas"]
    for message in pb.DESCRIPTOR.message_types_by_name.values():
        properties = schemas[message.name]["properties"]
        assert {f.json_name for f in message.fields} == set(properties), message.name
    for enum in pb.DESCRIPTOR.enum_types_by_name.values():
        assert schemas[enum.name]["enum"] == [v.name for v in enum.values]


def test_fields_carry_their_proto_comments():
    text = openapi_document()["components"]["schemas"]["ClassifyRequest"]["properties"]["text"]
    assert text["type"] == "string" and "The server never logs this text" in text["description"]


def test_every_rpc_has_a_path():
    operations = {op["operationId"] for path in openapi_document()["paths"].values() for op in path.values()}
    assert {m.name for m in pb.DESCRIPTOR.services_by_name["EmotionService"].methods} <= operations
