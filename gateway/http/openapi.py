"""The OpenAPI 3.1 document of the HTTP/JSON API, generated from the proto's descriptors.

Nothing here is written by hand per field: every message of ``emotionaware/v1/emotion.proto``
becomes a schema under its canonical JSON names (lowerCamelCase; enums as their value names;
64-bit integers as strings), with the field's comment from the proto when the descriptor set
built by ``make proto`` (with source info) is there. The paths are the HTTP routes of
gateway/http/app.py.
"""

from __future__ import annotations

import functools
from importlib import resources
from typing import Any

from google.protobuf import descriptor_pb2
from google.protobuf.descriptor import Descriptor, EnumDescriptor, FieldDescriptor

from emotionaware.v1 import emotion_pb2 as pb

_SCALARS: dict[int, dict[str, Any]] = {
    FieldDescriptor.TYPE_STRING: {"type": "string"},
    FieldDescriptor.TYPE_BYTES: {"type": "string", "contentEncoding": "base64"},
    FieldDescriptor.TYPE_BOOL: {"type": "boolean"},
    FieldDescriptor.TYPE_FLOAT: {"type": "number", "format": "float"},
    FieldDescriptor.TYPE_DOUBLE: {"type": "number", "format": "double"},
    FieldDescriptor.TYPE_INT32: {"type": "integer", "format": "int32"},
    FieldDescriptor.TYPE_SINT32: {"type": "integer", "format": "int32"},
    FieldDescriptor.TYPE_SFIXED32: {"type": "integer", "format": "int32"},
    FieldDescriptor.TYPE_UINT32: {"type": "integer", "format": "int32", "minimum": 0},
    FieldDescriptor.TYPE_FIXED32: {"type": "integer", "format": "int32", "minimum": 0},
    # The canonical JSON mapping writes 64-bit integers as strings (and reads either).
    FieldDescriptor.TYPE_INT64: {"type": ["string", "integer"], "format": "int64"},
    FieldDescriptor.TYPE_SINT64: {"type": ["string", "integer"], "format": "int64"},
    FieldDescriptor.TYPE_SFIXED64: {"type": ["string", "integer"], "format": "int64"},
    FieldDescriptor.TYPE_UINT64: {"type": ["string", "integer"], "format": "uint64"},
    FieldDescriptor.TYPE_FIXED64: {"type": ["string", "integer"], "format": "uint64"},
}


@functools.cache
def _comments() -> dict[str, str]:
    """Leading comments by full name (messages, fields, enums, values, methods), if the
    descriptor set with source info is there (``make proto`` writes it beside the stubs)."""
    source = resources.files("emotionaware.v1") / "emotion.desc"
    if not source.is_file():
        return {}
    files = descriptor_pb2.FileDescriptorSet.FromString(source.read_bytes())
    out: dict[str, str] = {}
    for file in files.file:
        names: dict[tuple[int, ...], str] = {}
        for i, message in enumerate(file.message_type):
            _name_message(names, message, (4, i), file.package)
        for i, enum in enumerate(file.enum_type):
            _name_enum(names, enum, (5, i), file.package)
        for i, service in enumerate(file.service):
            for j, method in enumerate(service.method):
                names[(6, i, 2, j)] = f"{file.package}.{service.name}.{method.name}"
        for location in file.source_code_info.location:
            name = names.get(tuple(location.path))
            text = location.leading_comments.strip()
            if name and text:
                out[name] = " ".join(line.strip() for line in text.splitlines())
    return out


def _name_message(
    names: dict[tuple[int, ...], str],
    message: descriptor_pb2.DescriptorProto,
    path: tuple[int, ...],
    prefix: str,
) -> None:
    """Full names by source path (4 = messages, 2 = fields, 3 = nested, 4 = enums in a message)."""
    full = f"{prefix}.{message.name}"
    names[path] = full
    for i, field in enumerate(message.field):
        names[(*path, 2, i)] = f"{full}.{field.name}"
    for i, nested in enumerate(message.nested_type):
        _name_message(names, nested, (*path, 3, i), full)
    for i, enum in enumerate(message.enum_type):
        _name_enum(names, enum, (*path, 4, i), full)


def _name_enum(
    names: dict[tuple[int, ...], str],
    enum: descriptor_pb2.EnumDescriptorProto,
    path: tuple[int, ...],
    prefix: str,
) -> None:
    full = f"{prefix}.{enum.name}"
    names[path] = full
    for i, value in enumerate(enum.value):
        names[(*path, 2, i)] = f"{full}.{value.name}"


def _describe(schema: dict[str, Any], full_name: str) -> dict[str, Any]:
    if text := _comments().get(full_name):
        schema["description"] = text
    return schema


def _enum_schema(enum: EnumDescriptor) -> dict[str, Any]:
    values = [v.name for v in enum.values]
    lines = []
    for v in enum.values:
        text = _comments().get(f"{enum.full_name}.{v.name}", "")
        lines.append(f"- `{v.name}`: {text}" if text else f"- `{v.name}`")
    schema: dict[str, Any] = {"type": "string", "enum": values}
    description = _comments().get(enum.full_name, "")
    schema["description"] = (description + "\n\n" if description else "") + "\n".join(lines)
    return schema


def _field_schema(field: FieldDescriptor) -> dict[str, Any]:
    if field.type == FieldDescriptor.TYPE_MESSAGE:
        item: dict[str, Any] = {"$ref": f"#/components/schemas/{field.message_type.name}"}
    elif field.type == FieldDescriptor.TYPE_ENUM:
        item = {"$ref": f"#/components/schemas/{field.enum_type.name}"}
    else:
        item = dict(_SCALARS[field.type])
    if field.label == FieldDescriptor.LABEL_REPEATED:
        return _describe({"type": "array", "items": item}, field.full_name)
    if "$ref" in item:  # 3.1 lets a $ref have siblings; wrap for tools that still ignore them
        return _describe({"allOf": [item]}, field.full_name)
    return _describe(item, field.full_name)


def _message_schema(message: Descriptor) -> dict[str, Any]:
    properties = {field.json_name: _field_schema(field) for field in message.fields}
    schema: dict[str, Any] = {"type": "object", "properties": properties, "additionalProperties": False}
    oneofs = [o for o in message.oneofs if not o.name.startswith("_")]  # "_x": proto3 optional
    if oneofs:
        schema["description"] = (
            _comments().get(message.full_name, "")
            + " "
            + " ".join(f"At most one of {', '.join(f.json_name for f in o.fields)}." for o in oneofs)
        ).strip()
        return schema
    return _describe(schema, message.full_name)


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(name: str) -> dict[str, Any]:
    return {"application/json": {"schema": _ref(name)}}


def _operation(method: str, request: str | None, response: str, summary: str) -> dict[str, Any]:
    service = pb.DESCRIPTOR.services_by_name["EmotionService"]
    operation: dict[str, Any] = {
        "operationId": method,
        "summary": summary,
        "description": _comments().get(service.methods_by_name[method].full_name, summary),
        "parameters": [{"$ref": "#/components/parameters/Timeout"}],
        "responses": {
            "200": {"description": f"a {response}", "content": _json(response)},
            **{
                str(status): {"$ref": f"#/components/responses/{name}"}
                for status, name in (
                    (400, "InvalidArgument"),
                    (401, "Unauthenticated"),
                    (403, "PermissionDenied"),
                    (404, "NotFound"),
                    (429, "ResourceExhausted"),
                    (500, "Internal"),
                    (503, "Unavailable"),
                    (504, "DeadlineExceeded"),
                )
            },
        },
    }
    if request:
        operation["requestBody"] = {"required": True, "content": _json(request)}
    return operation


def _error_response(description: str, retry: bool = False) -> dict[str, Any]:
    response: dict[str, Any] = {"description": description, "content": _json("ErrorResponse")}
    if retry:
        response["headers"] = {
            "Retry-After": {"description": "seconds to wait before retrying", "schema": {"type": "integer"}}
        }
    return response


@functools.cache
def openapi_document() -> dict[str, Any]:
    """The OpenAPI 3.1 document served at ``/openapi.json``."""
    schemas: dict[str, Any] = {}
    for message in pb.DESCRIPTOR.message_types_by_name.values():
        schemas[message.name] = _message_schema(message)
    for enum in pb.DESCRIPTOR.enum_types_by_name.values():
        schemas[enum.name] = _enum_schema(enum)
    schemas["ErrorResponse"] = {
        "type": "object",
        "required": ["error"],
        "properties": {
            "error": {
                "type": "object",
                "required": ["code", "status", "message"],
                "properties": {
                    "code": {"type": "integer", "description": "the HTTP status"},
                    "status": {"type": "string", "description": "the canonical status code (as gRPC's)"},
                    "message": {
                        "type": "string",
                        "description": "for people: names the field, the limit and the value",
                    },
                    "retryAfterMs": {
                        "type": "integer",
                        "description": "RESOURCE_EXHAUSTED: wait this long before sending again",
                    },
                },
            }
        },
    }
    paths = {
        "/v1/classify": {
            "post": _operation("Classify", "ClassifyRequest", "ClassifyResponse", "Classify one text")
        },
        "/v1/classify/batch": {
            "post": _operation(
                "ClassifyBatch", "ClassifyBatchRequest", "ClassifyBatchResponse", "Classify many texts"
            )
        },
        "/v1/analyze": {
            "post": _operation(
                "Analyze", "AnalyzeRequest", "AnalyzeResponse", "Sentences of one text, with offsets"
            )
        },
        "/v1/feedback": {
            "post": _operation(
                "SubmitFeedback", "SubmitFeedbackRequest", "SubmitFeedbackResponse", "A verdict on one answer"
            )
        },
        "/v1/models": {"get": _operation("ListModels", None, "ListModelsResponse", "The models you may use")},
        "/v1/models/{model}": {
            "get": {
                **_operation("GetModel", None, "GetModelResponse", "One model, by name or alias"),
                "parameters": [
                    {"name": "model", "in": "path", "required": True, "schema": {"type": "string"}},
                    {"$ref": "#/components/parameters/Timeout"},
                ],
            }
        },
        "/v1/stream": {
            "get": {
                "operationId": "ClassifyStream",
                "summary": "A conversation as a WebSocket",
                "description": (
                    "Upgrade to a WebSocket; send one ClassifyStreamRequest (JSON) per text frame and "
                    "receive one ClassifyStreamResponse (JSON) per message, in the order sent. Close "
                    "the socket when you have your answers. "
                    + _comments().get("emotionaware.v1.EmotionService.ClassifyStream", "")
                ).strip(),
                "responses": {
                    "101": {"description": "switching to the WebSocket protocol"},
                    "401": {"$ref": "#/components/responses/Unauthenticated"},
                    "403": {"$ref": "#/components/responses/PermissionDenied"},
                },
                "x-websocket-messages": {
                    "send": _ref("ClassifyStreamRequest"),
                    "receive": _ref("ClassifyStreamResponse"),
                },
            }
        },
        "/v1/health": {
            "get": {
                "operationId": "Health",
                "summary": "Whether the gateway serves (Triton and every routed model ready)",
                "security": [],
                "responses": {
                    "200": {
                        "description": "serving",
                        "content": {"application/json": {"schema": {"type": "object"}}},
                    },
                    "503": {"description": "not serving"},
                },
            }
        },
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "EmotionAware",
            "version": "v1",
            "description": (
                "Text emotion recognition: the gRPC API emotionaware.v1.EmotionService over HTTP/JSON. "
                "Bodies use the proto's canonical JSON mapping."
            ),
        },
        "paths": paths,
        "components": {
            "schemas": schemas,
            "parameters": {
                "Timeout": {
                    "name": "X-Timeout-Ms",
                    "in": "header",
                    "required": False,
                    "description": "the call's deadline in milliseconds (default: the gateway's default_timeout_s)",
                    "schema": {"type": "number", "minimum": 0},
                }
            },
            "responses": {
                "InvalidArgument": _error_response(
                    "INVALID_ARGUMENT: a field is missing or outside its limits"
                ),
                "Unauthenticated": _error_response("UNAUTHENTICATED: no valid credentials"),
                "PermissionDenied": _error_response("PERMISSION_DENIED: the grant does not cover this"),
                "NotFound": _error_response("NOT_FOUND: no such model"),
                "ResourceExhausted": _error_response(
                    "RESOURCE_EXHAUSTED: overloaded, retry later", retry=True
                ),
                "Internal": _error_response("INTERNAL"),
                "Unavailable": _error_response("UNAVAILABLE: the backend is not ready"),
                "DeadlineExceeded": _error_response("DEADLINE_EXCEEDED"),
            },
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"bearer": []}, {}],
    }
