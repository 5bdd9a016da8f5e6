"""Generate the protobuf and gRPC modules of ``emotionaware_client._proto`` from the .proto files.

Used by ``setup.py`` at build time (the generated modules are never committed) and, for
development, run directly to write them into the source tree (git-ignored)::

    python clients/python/protogen.py            # -> src/emotionaware_client/_proto/

The modules are flattened into ``emotionaware_client/_proto/`` and the ``_pb2_grpc`` module's
import of ``emotionaware.v1`` is rewritten, so nothing imports a top-level ``emotionaware``
package (which would clash with the server's own stubs).
"""

from __future__ import annotations

import re
import shutil
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
PACKAGE = "emotionaware_client._proto"
PROTO_FILES = ("emotionaware/v1/emotion.proto",)


def proto_root() -> Path:
    """The folder holding ``emotionaware/v1/*.proto``: the repository's ``proto/`` in a checkout,
    the copy in ``proto/`` beside this file in an sdist."""
    for candidate in (HERE.parent.parent / "proto", HERE / "proto"):
        if all((candidate / name).is_file() for name in PROTO_FILES):
            return candidate
    raise FileNotFoundError(f"none of the proto folders holds {PROTO_FILES}")


def generate(out_dir: Path, root: Path | None = None) -> dict[str, str]:
    """Write the generated modules into ``out_dir`` (the ``_proto`` package folder).

    Returns the versions the code was generated for: ``{"grpcio": ..., "protobuf": ...}``,
    the lowest runtime versions the generated code accepts.
    """
    from grpc_tools import protoc  # build requirement only

    root = root or proto_root()
    include = Path(protoc.__file__).resolve().parent / "_proto"  # google/protobuf/*.proto
    with tempfile.TemporaryDirectory() as tmp:
        args = [
            "grpc_tools.protoc",
            f"-I{root}",
            f"-I{include}",
            f"--python_out={tmp}",
            f"--pyi_out={tmp}",
            f"--grpc_python_out={tmp}",
            *(str(root / name) for name in PROTO_FILES),
        ]
        if protoc.main(args) != 0:
            raise RuntimeError(f"protoc failed on {PROTO_FILES}")
        if out_dir.exists():
            shutil.rmtree(out_dir)
        out_dir.mkdir(parents=True)
        (out_dir / "__init__.py").write_text(
            '"""Generated protobuf and gRPC modules (not a public API; generated at build time)."""\n'
        )
        versions: dict[str, str] = {}
        for name in PROTO_FILES:
            stem = Path(name).with_suffix("")
            module = ".".join(stem.parts)  # emotionaware.v1.emotion
            for suffix in ("_pb2.py", "_pb2.pyi", "_pb2_grpc.py"):
                text = (Path(tmp) / f"{stem}{suffix}").read_text()
                text = re.sub(
                    rf"^from {re.escape('.'.join(stem.parts[:-1]))} import ({stem.name}_pb2)",
                    rf"from {PACKAGE} import \1",
                    text,
                    flags=re.M,
                )
                if suffix == "_pb2.py":
                    found = re.search(r"^# Protobuf Python Version: (\S+)", text, re.M)
                    if found:
                        versions["protobuf"] = found.group(1)
                if suffix == "_pb2_grpc.py":
                    found = re.search(r"^GRPC_GENERATED_VERSION = '([^']+)'", text, re.M)
                    if found:
                        versions["grpcio"] = found.group(1)
                if re.search(r"^(from|import) emotionaware\b", text, re.M):
                    raise RuntimeError(f"{module}{suffix} still imports the top-level emotionaware package")
                (out_dir / f"{stem.name}{suffix}").write_text(text)
    return versions


if __name__ == "__main__":
    target = HERE / "src" / "emotionaware_client" / "_proto"
    print(f"generated {target.relative_to(HERE)}: {generate(target)}", file=sys.stderr)
