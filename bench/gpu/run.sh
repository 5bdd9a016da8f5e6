#!/usr/bin/env bash
# On the lent GPU machine, from the repository root: unpack the carried bundle (make gpu-bundle)
# and run the GPU benchmark. Results go to OUT (first argument, default bench/results); further
# arguments go to `python -m bench.gpu.run`. PYTHON names an interpreter with torch (CUDA).
set -euo pipefail
OUT=${1:-bench/results}
shift || true
PY=${PYTHON:-python3}
B=build/gpu-bundle
[ -f "$B/triton.tar.xz" ] || { echo "no $B: run make gpu-bundle here and carry build/gpu-bundle" >&2; exit 2; }
"$PY" -c "import sys; assert sys.version_info[:2] == (3, 12), sys.version" \
  || { echo "the bundle's Triton stub and wheels are for Python 3.12" >&2; exit 2; }
if [ ! -x "$B/site/pytriton/tritonserver/bin/tritonserver" ]; then
  mkdir -p "$B/pa" "$B/site"
  tar -xJf "$B/triton.tar.xz" -C "$B/site"
  tar -xJf "$B/perf_analyzer.tar.xz" -C "$B/pa"
  for wheel in "$B"/wheels/*.whl; do "$PY" -m zipfile -e "$wheel" "$B/site"; done
fi
# The bundle's packages first: its protobuf/grpcio pair is the one the generated stubs need.
export PYTHONPATH="$PWD:$PWD/$B/site${PYTHONPATH:+:$PYTHONPATH}"
"$PY" -c "import torch, transformers, tokenizers, numpy, grpc, tritonclient.grpc" \
  || { echo "$PY lacks a package the benchmark needs (see above)" >&2; exit 2; }
[ -f emotionaware/v1/emotion_pb2.py ] || { echo "no generated stubs: carry emotionaware/v1 (make proto)" >&2; exit 2; }
# Logs (Triton, gateways) go under OUT too, so a failed device call still says why.
exec "$PY" -m bench.gpu.run --out "$OUT" --work "$OUT/work" "$@"
