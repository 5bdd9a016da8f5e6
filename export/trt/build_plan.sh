#!/usr/bin/env bash
# Turn one model of the GPU repository (model_repository_gpu/<model>) into a TensorRT plan,
# for those who want a `tensorrt_plan` model instead of ONNX Runtime with the TensorRT
# accelerator. Run it on a GPU node of the kind that will serve it (plans are specific to the
# GPU and TensorRT version), inside NVIDIA's Triton or TensorRT container, which has trtexec.
#
#   export/trt/build_plan.sh model_repository_gpu/goemotions [VERSION]
#
# It builds <version>/model.plan (FP16) from <version>/model.onnx with the optimisation
# profile the export recorded in metadata.json, then installs config.plan.pbtxt as the
# model's config.pbtxt (the ONNX config is kept as config.onnx.pbtxt).
set -euo pipefail

model_dir=${1:?usage: build_plan.sh MODEL_DIR [VERSION]}
version=${2:-$(find "$model_dir" -mindepth 1 -maxdepth 1 -type d -regex '.*/[0-9]+' -printf '%f\n' | sort -n | tail -1)}
version_dir="$model_dir/$version"
for needed in "$version_dir/model.onnx" "$version_dir/metadata.json" "$model_dir/config.plan.pbtxt"; do
  [ -f "$needed" ] || { echo "missing $needed: run emotionaware-export first" >&2; exit 1; }
done
command -v trtexec >/dev/null || { echo "trtexec not found: run this in NVIDIA's Triton or TensorRT container" >&2; exit 1; }

profile() {  # min | opt | max
  python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["tensorrt_profile"][sys.argv[2]])' \
    "$version_dir/metadata.json" "$1"
}

trtexec --onnx="$version_dir/model.onnx" --fp16 \
  --minShapes="$(profile min)" --optShapes="$(profile opt)" --maxShapes="$(profile max)" \
  --memPoolSize=workspace:2048 --saveEngine="$version_dir/model.plan"

cp "$model_dir/config.pbtxt" "$model_dir/config.onnx.pbtxt"
cp "$model_dir/config.plan.pbtxt" "$model_dir/config.pbtxt"
echo "built $version_dir/model.plan; $model_dir/config.pbtxt now serves it (platform tensorrt_plan)"
