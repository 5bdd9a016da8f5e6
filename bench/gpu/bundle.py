"""Pack what the GPU machine lacks into ``build/gpu-bundle`` (carried to it, under 64 MiB).

The GPU machine has Python 3.12 with torch (CUDA), transformers, tokenizers and numpy, and no
network. It lacks Triton, perf_analyzer, the gRPC stack and the base encoder's word embeddings
(not part of the committed artifact). The bundle holds:

- ``triton.tar.xz``: the bundled ``tritonserver``, its python backend with the 3.12 stub, and
  only the shared libraries those three load (the wheel's library folder is 115 MB);
- ``perf_analyzer.tar.xz``: perf_analyzer, libb64 and libcudart 12;
- ``wheels/``: cp312 wheels of grpcio, protobuf, health, reflection, prometheus-client,
  python-json-logger and python-rapidjson (``run.sh`` unpacks them into ``site/``), and
  ``site/tritonclient``;
- ``model/``: the base encoder's config and tokenizer, and the word-embedding rows of the token
  ids the benchmark texts use (the artifact's weights travel with the working tree). For those
  texts the rebuilt model is exactly the committed one; ``reference.json`` holds fp32 logits
  of 64 texts that the GPU run checks its bf16/fp16 outputs against;
- ``repo/``: what the gateway reads from the exported model (labels, metadata, tokenizer);
- ``texts.json``: the GoEmotions test texts.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

from emotionaware.paths import MODEL_REPOSITORY, MODELS_DIR, ROOT

DEFAULT_OUT = ROOT / "build" / "gpu-bundle"
CARRY_LIMIT = 64 << 20
# Packages the GPU machine's Python lacks; exact versions of this venv, cp312 builds.
WHEELS = ("grpcio", "grpcio-health-checking", "grpcio-reflection", "protobuf", "prometheus-client",
          "python-json-logger", "python-rapidjson")  # fmt: skip


def _site_packages() -> Path:
    import tritonclient

    return Path(tritonclient.__file__).resolve().parents[1]


def _closure(binaries: list[Path], libs_dir: Path) -> set[Path]:
    """The files of ``libs_dir`` that ``binaries`` load, directly or through each other."""
    todo, seen = list(binaries), set()
    while todo:
        out = subprocess.run(["ldd", str(todo.pop())], capture_output=True, text=True).stdout
        for line in out.splitlines():
            parts = line.split("=>")
            if len(parts) == 2 and parts[1].strip().startswith("/"):
                path = Path(parts[1].split("(")[0].strip()).resolve()
                if path.parent == libs_dir.resolve() and path not in seen:
                    seen.add(path)
                    todo.append(path)
    return seen


def pack_triton(out: Path) -> None:
    site = _site_packages()
    home = site / "pytriton" / "tritonserver"
    libs = site / "nvidia_pytriton.libs"
    stub = home / "python_backend_stubs" / "3.12" / "triton_python_backend_stub"
    backend = home / "backends" / "python"
    needed = _closure([home / "bin" / "tritonserver", backend / "libtriton_python.so", stub], libs)
    with tarfile.open(out / "triton.tar.xz", "w:xz") as tar:
        tar.add(home / "bin" / "tritonserver", "pytriton/tritonserver/bin/tritonserver")
        tar.add(backend / "libtriton_python.so", "pytriton/tritonserver/backends/python/libtriton_python.so")
        tar.add(backend / "triton_python_backend_utils.py",
                "pytriton/tritonserver/backends/python/triton_python_backend_utils.py")  # fmt: skip
        tar.add(stub, "pytriton/tritonserver/backends/python/triton_python_backend_stub")
        for lib in sorted(needed):
            tar.add(lib, f"nvidia_pytriton.libs/{lib.name}")


def pack_perf_analyzer(out: Path) -> None:
    binary = Path(sys.prefix) / "bin" / "perf_analyzer"
    cudart = _site_packages() / "nvidia" / "cuda_runtime" / "lib" / "libcudart.so.12"
    b64 = next(p for d in ("/usr/lib/x86_64-linux-gnu", "/lib/x86_64-linux-gnu")
               for p in Path(d).glob("libb64.so.0d*"))  # fmt: skip
    with tarfile.open(out / "perf_analyzer.tar.xz", "w:xz") as tar:
        tar.add(binary, "bin/perf_analyzer")
        tar.add(cudart.resolve(), "lib/libcudart.so.12")
        tar.add(b64.resolve(), "lib/libb64.so.0d")


def pack_site(out: Path) -> None:
    """cp312 wheels (unpacked on the device: smaller to carry) and tritonclient's Python package."""
    from importlib.metadata import version

    wheels = out / "wheels"
    wheels.mkdir()
    pins = [f"{name}=={version(name)}" for name in WHEELS]
    subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--disable-pip-version-check", "--no-deps",
                    "--only-binary=:all:", "--python-version", "3.12", "--platform", "manylinux2014_x86_64",
                    "--platform", "manylinux_2_17_x86_64", "--platform", "manylinux_2_28_x86_64", "-d", str(wheels),
                    *pins], check=True)  # fmt: skip
    client = _site_packages() / "tritonclient"
    shutil.copytree(
        client, out / "site" / "tritonclient", ignore=shutil.ignore_patterns("__pycache__", "http")
    )


def pack_repo(out: Path, repository: Path, model: str = "goemotions") -> None:
    """The gateway's view of the exported model (labels, metadata, tokenizer), without graphs."""
    source = repository / model
    version = max((d for d in source.iterdir() if d.name.isdigit()), key=lambda d: int(d.name))
    dest = out / "repo" / model / "1"
    dest.mkdir(parents=True)
    shutil.copy(source / "labels.txt", dest.parent / "labels.txt")
    for name in ("metadata.json", "tokenizer.json"):
        shutil.copy(version / name, dest / name)


def pack_model(out: Path, data_dir: Path, model: str = "goemotions") -> int:
    """Base config/tokenizer, the embedding rows the texts use, fp32 reference logits; returns rows."""
    import numpy as np
    import torch
    from safetensors.numpy import save_file

    from emotionaware.artifact import ArtifactManifest
    from emotionaware.datasets import load_goemotions
    from train.model import base_model_path, load_artifact

    artifact = MODELS_DIR / model
    manifest = ArtifactManifest.load(artifact)
    base = base_model_path(manifest.base)
    folder = out / "model"
    folder.mkdir()
    shutil.copy(base / "config.json", folder / "config.json")
    shutil.copy(base / "tokenizer.json", folder / "tokenizer.json")
    texts = [e.text for e in load_goemotions(data_dir).test]
    (out / "texts.json").write_text(json.dumps(texts))

    from emotionaware.tokenization import TextTokenizer

    tokenizer = TextTokenizer(base / "tokenizer.json", manifest.max_length)
    encoded = [tokenizer.encode(t).input_ids for t in texts]
    ids = np.unique(np.concatenate([*encoded, np.arange(0, 1000)]))  # specials and [unused] rows too
    torch_model, _ = load_artifact(artifact)
    table = torch_model.encoder.embeddings.word_embeddings.weight.detach().numpy()
    save_file({"ids": ids.astype(np.int64), "rows": table[ids].astype(np.float16),
               "shape": np.array(table.shape, dtype=np.int64)}, str(folder / "embeddings.safetensors"))  # fmt: skip
    reference = []
    with torch.no_grad():
        for row in encoded[:64]:
            tensor = torch.from_numpy(row)[None]
            logits = torch_model(tensor, torch.ones_like(tensor))[0]
            reference.append(logits.tolist())
    (folder / "reference.json").write_text(json.dumps({"model": model, "logits": reference}))
    return len(ids)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--model-repository", type=Path, default=MODEL_REPOSITORY)
    args = parser.parse_args(argv)
    shutil.rmtree(args.out, ignore_errors=True)
    args.out.mkdir(parents=True)
    pack_triton(args.out)
    pack_perf_analyzer(args.out)
    pack_site(args.out)
    pack_repo(args.out, args.model_repository)
    rows = pack_model(args.out, args.data_dir)
    total = sum(p.stat().st_size for p in args.out.rglob("*") if p.is_file())
    print(f"{args.out}: {total / 2**20:.1f} MiB ({rows} embedding rows)")
    if total > CARRY_LIMIT:
        raise SystemExit(f"the bundle is {total / 2**20:.1f} MiB; a device call carries at most 64 MiB")


if __name__ == "__main__":
    main()
