"""Build hook: generate the protobuf/gRPC modules into the wheel (never committed).

``build_py`` runs grpc_tools.protoc on the repository's ``proto/`` (or the copy an sdist
carries) and writes the modules into ``emotionaware_client/_proto`` of the build tree;
``sdist`` copies the .proto files into the archive so a wheel can be built from it.
"""

from __future__ import annotations

import re
import shutil
import sys
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py
from setuptools.command.sdist import sdist

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import protogen  # noqa: E402


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", text)[:3])


def _check_floor(generated: dict[str, str]) -> None:
    """The declared dependency floors must admit nothing older than the generated code needs."""
    pyproject = (HERE / "pyproject.toml").read_text()
    for dist, needed in generated.items():
        found = re.search(rf'"{dist}>=([0-9.]+)', pyproject)
        if not found or _version(found.group(1)) < _version(needed):
            raise RuntimeError(
                f"the generated code needs {dist}>={needed}, but pyproject.toml declares "
                f"{found.group(0) if found else 'no floor'}: raise the floor or pin grpcio-tools lower"
            )


class BuildPyWithProtos(build_py):
    """build_py, plus the generated ``emotionaware_client._proto`` package."""

    def run(self) -> None:
        super().run()
        target = Path(self.build_lib) / "emotionaware_client" / "_proto"
        _check_floor(protogen.generate(target))

    def get_outputs(self, include_bytecode: bool = True) -> list[str]:  # for editable/record
        outputs = list(super().get_outputs(include_bytecode))
        target = Path(self.build_lib) / "emotionaware_client" / "_proto"
        if target.is_dir():
            outputs.extend(str(path) for path in target.iterdir() if path.is_file())
        return outputs


class SdistWithProtos(sdist):
    """sdist, plus a copy of the .proto files (the wheel is generated from them)."""

    def make_release_tree(self, base_dir: str, files: list[str]) -> None:
        super().make_release_tree(base_dir, files)
        source = protogen.proto_root()
        for name in protogen.PROTO_FILES:
            dest = Path(base_dir) / "proto" / name
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source / name, dest)


setup(cmdclass={"build_py": BuildPyWithProtos, "sdist": SdistWithProtos})
