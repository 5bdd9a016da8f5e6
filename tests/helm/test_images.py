"""The Dockerfiles cannot be built here (no Docker engine): check what they copy exists."""

import re

import pytest

from emotionaware.paths import ROOT

# Paths a Dockerfile may copy that `make images` produces first (its prerequisites).
GENERATED = {"model_repository_gpu": "export"}
DOCKERFILES = sorted((ROOT / "docker").glob("*.Dockerfile"))


def copy_sources(dockerfile):
    for line in dockerfile.read_text().splitlines():
        match = re.match(r"^COPY\s+(?!--from)(.+)\s+\S+$", line.strip())
        if match:
            yield from match.group(1).split()


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=[d.name for d in DOCKERFILES])
def test_every_copied_path_exists_or_is_built_first(dockerfile):
    makefile = (ROOT / "Makefile").read_text()
    images_prerequisites = re.search(r"^images:(.*?)##", makefile, flags=re.M).group(1).split()
    ignored = (ROOT / ".dockerignore").read_text().split()
    for source in copy_sources(dockerfile):
        assert source not in ignored, f"{dockerfile.name} copies {source}, which .dockerignore excludes"
        if source in GENERATED:
            assert GENERATED[source] in images_prerequisites, (
                f"`make images` must run `make {GENERATED[source]}`"
            )
        else:
            assert (ROOT / source).exists(), f"{dockerfile.name} copies {source}, which does not exist"


def test_images_run_as_non_root():
    for dockerfile in DOCKERFILES:
        users = re.findall(r"^USER\s+(\S+)", dockerfile.read_text(), flags=re.M)
        assert users and not users[-1].startswith(("0", "root")), dockerfile.name


def test_both_images_are_built_by_make_images():
    recipe = (ROOT / "Makefile").read_text().split("\nimages:", 1)[1].split("\n\n", 1)[0]
    for dockerfile in DOCKERFILES:
        assert f"docker/{dockerfile.name}" in recipe
