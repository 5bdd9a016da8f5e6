"""Triton python-backend model that runs an ONNX text classifier with ONNX Runtime.

The bundled Triton (from the nvidia-pytriton wheel) has only the python backend, so ONNX
Runtime runs inside ``execute``. Inputs are ragged (``allow_ragged_batch``): Triton's dynamic
batcher hands over requests of different token lengths together and this model pads them
into one tensor, runs the graph once and splits the logits back per request.

Parameters (``config.pbtxt``):
  onnx_file          graph file in the version folder (default model.onnx)
  intra_op_threads   ONNX Runtime intra-op threads (0 = one per physical core)
  pad_token_id       id used for padding (default 0)
"""

import json
import os

import numpy as np
import onnxruntime as ort
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def initialize(self, args):
        config = json.loads(args["model_config"])
        params = {k: v["string_value"] for k, v in config.get("parameters", {}).items()}
        version_dir = os.path.join(args["model_repository"], args["model_version"])
        options = ort.SessionOptions()
        options.intra_op_num_threads = int(params.get("intra_op_threads", "0"))
        # One graph runs at a time per instance; parallelism comes from intra-op threads.
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.session = ort.InferenceSession(
            os.path.join(version_dir, params.get("onnx_file", "model.onnx")),
            options,
            providers=["CPUExecutionProvider"],
        )
        self.pad_id = int(params.get("pad_token_id", "0"))
        self.max_positions = int(params.get("max_positions", "512"))

    def _check(self, ids, mask):
        if ids.ndim != 2 or ids.shape != mask.shape:
            return (
                f"input_ids {list(ids.shape)} and attention_mask {list(mask.shape)} must be equal 2-D shapes"
            )
        if ids.shape[1] == 0 or ids.shape[1] > self.max_positions:
            return f"sequence length must be 1..{self.max_positions}, got {ids.shape[1]}"
        return None

    def execute(self, requests):
        responses = [None] * len(requests)
        accepted = []  # (request index, ids, mask)
        for i, request in enumerate(requests):
            ids = pb_utils.get_input_tensor_by_name(request, "input_ids").as_numpy()
            mask = pb_utils.get_input_tensor_by_name(request, "attention_mask").as_numpy()
            problem = self._check(ids, mask)
            if problem:
                responses[i] = pb_utils.InferenceResponse(error=pb_utils.TritonError(problem))
            else:
                accepted.append((i, ids, mask))
        if accepted:
            rows = sum(ids.shape[0] for _, ids, _ in accepted)
            width = max(ids.shape[1] for _, ids, _ in accepted)
            batch_ids = np.full((rows, width), self.pad_id, dtype=np.int64)
            batch_mask = np.zeros((rows, width), dtype=np.int64)
            row = 0
            for _, ids, mask in accepted:
                n, length = ids.shape
                batch_ids[row : row + n, :length] = ids
                batch_mask[row : row + n, :length] = mask
                row += n
            logits = self.session.run(["logits"], {"input_ids": batch_ids, "attention_mask": batch_mask})[0]
            row = 0
            for i, ids, _ in accepted:
                n = ids.shape[0]
                out = pb_utils.Tensor("logits", logits[row : row + n].astype(np.float32))
                responses[i] = pb_utils.InferenceResponse(output_tensors=[out])
                row += n
        return responses
