"""Triton python-backend model that runs the PyTorch classifier on the GPU (bf16 or fp16).

The GPU machine's ONNX Runtime is a CPU build and it has no TensorRT, so the GPU benchmark
serves the committed model with PyTorch inside Triton. Inputs are ragged (``allow_ragged_batch``):
the dynamic batcher hands over requests of different lengths, and this model pads them to the
longest, runs once and splits the logits back per request.

Parameters (``config.pbtxt``): project_root (so ``bench.gpu.torch_model`` imports),
artifact_dir, bundle_model_dir, dtype (bf16, fp16, fp32), device (cuda or cpu).
"""

import json
import sys
from pathlib import Path

import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def initialize(self, args):
        config = json.loads(args["model_config"])
        params = {k: v["string_value"] for k, v in config.get("parameters", {}).items()}
        sys.path.insert(0, params["project_root"])
        import torch

        from bench.gpu.torch_model import build

        self.torch = torch
        self.device = params.get("device", "cuda")
        self.model = build(
            Path(params["artifact_dir"]),
            Path(params["bundle_model_dir"]),
            params.get("dtype", "bf16"),
            self.device,
        )
        self.inputs = [i["name"] for i in config["input"]]

    def execute(self, requests):
        # Tensors cross the stub boundary as DLPack capsules, not numpy arrays: the python
        # backend's numpy path returns empty outputs when the stub runs with numpy 2 (as on the
        # GPU machine), and DLPack needs no copy for torch anyway.
        torch = self.torch
        from torch.utils.dlpack import from_dlpack, to_dlpack

        tensors = [
            {n: from_dlpack(pb_utils.get_input_tensor_by_name(r, n).to_dlpack()) for n in self.inputs}
            for r in requests
        ]
        rows = sum(t["input_ids"].shape[0] for t in tensors)
        width = max(t["input_ids"].shape[1] for t in tensors)
        ids = torch.zeros((rows, width), dtype=torch.int64)
        mask = torch.zeros((rows, width), dtype=torch.int64)
        row = 0
        for t in tensors:
            n, length = t["input_ids"].shape
            ids[row : row + n, :length] = t["input_ids"]
            mask[row : row + n, :length] = t["attention_mask"]
            row += n
        with torch.inference_mode():
            logits = self.model(
                ids.to(self.device, non_blocking=True), mask.to(self.device, non_blocking=True)
            )
            logits = logits.float().cpu()
        responses, row = [], 0
        for t in tensors:
            n = t["input_ids"].shape[0]
            out = pb_utils.Tensor.from_dlpack("logits", to_dlpack(logits[row : row + n].contiguous()))
            responses.append(pb_utils.InferenceResponse(output_tensors=[out]))
            row += n
        return responses
