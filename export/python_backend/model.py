"""Triton python-backend model that runs an ONNX text classifier with ONNX Runtime.

The bundled Triton (from the nvidia-pytriton wheel) has only the python backend, so ONNX
Runtime runs inside ``execute``. Inputs are ragged (``allow_ragged_batch``): Triton's dynamic
batcher hands over requests of different token lengths together and this model pads them
into one tensor, runs the graph once and splits the logits back per request.

Inputs are those of ``config.pbtxt`` (``input_ids``, ``attention_mask`` and, for models that
use them, ``token_type_ids``), all INT64 [batch, tokens]; the output is ``logits`` FP32.

Parameters (``config.pbtxt``):
  onnx_file          graph file in the version folder (default model.onnx)
  intra_op_threads   ONNX Runtime intra-op threads (0 = one per physical core)
  spin_max_rows      batches of at most this many rows run on the small-batch session, whose
                     threads spin while a run lasts (lower latency at light load); larger ones
                     on a session whose threads sleep (default 4; 0 = one session, no spinning)
  pad_token_id       id used to pad input_ids (default 0)
  max_positions      longest accepted sequence (default 512)
  length_buckets     comma-separated token lengths; requests in different buckets run separately
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
        path = os.path.join(version_dir, params.get("onnx_file", "model.onnx"))
        threads = int(params.get("intra_op_threads", "0"))
        # Two sessions over one graph. Small batches (light load) run with threads that spin
        # while a run lasts: lowest latency (a lone text's inference call: 3.0 instead of 4.4 ms).
        # Larger batches (load) run with threads that sleep when idle, leaving the cores to the
        # gateway and Triton's own threads: 2.5 instead of 3.0 ms of Triton CPU per text under
        # gateway load on 2 cores (bench/results).
        self.spin_max_rows = int(params.get("spin_max_rows", "4"))
        self.session = self._session(path, threads, spin=False)
        self.small_session = self.session
        if self.spin_max_rows > 0:
            self.small_session = self._session(path, threads, spin=True)
        self.input_names = [i["name"] for i in config["input"]]
        self.pad_values = {name: 0 for name in self.input_names}
        self.pad_values["input_ids"] = int(params.get("pad_token_id", "0"))
        self.max_positions = int(params.get("max_positions", "512"))
        buckets = params.get("length_buckets", "16,32,64,128,256,512")
        self.buckets = sorted(int(b) for b in buckets.split(",") if b.strip())
        if self.small_session is not self.session:
            # Triton's warm-up requests are single texts, which reach only the small-batch
            # session; the first large batch should not pay for the other's first run.
            rows = {
                n: np.full((self.spin_max_rows + 1, 16), self.pad_values[n], np.int64)
                for n in self.input_names
            }
            self.session.run(["logits"], rows)

    @staticmethod
    def _session(path, threads, spin):
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        # One graph runs at a time per instance; parallelism comes from intra-op threads.
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.add_session_config_entry("session.intra_op.allow_spinning", "1" if spin else "0")
        # Spin only while a run lasts: between runs the gateway and Triton need the cores.
        options.add_session_config_entry("session.force_spinning_stop", "1")
        return ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])

    def _check(self, tensors):
        shapes = {name: list(t.shape) for name, t in tensors.items()}
        first = tensors["input_ids"]
        if first.ndim != 2 or any(t.shape != first.shape for t in tensors.values()):
            return f"inputs must be equal 2-D shapes, got {shapes}"
        if first.shape[1] == 0 or first.shape[1] > self.max_positions:
            return f"sequence length must be 1..{self.max_positions}, got {first.shape[1]}"
        return None

    def execute(self, requests):
        responses = [None] * len(requests)
        accepted = []  # (request index, {input name: array})
        for i, request in enumerate(requests):
            tensors = {n: pb_utils.get_input_tensor_by_name(request, n).as_numpy() for n in self.input_names}
            problem = self._check(tensors)
            if problem:
                responses[i] = pb_utils.InferenceResponse(error=pb_utils.TritonError(problem))
            else:
                accepted.append((i, tensors))
        # Requests of very different lengths are run separately: padding a 10-token text to
        # 120 tokens costs more than one more (smaller) run.
        groups = {}
        for i, tensors in accepted:
            width = tensors["input_ids"].shape[1]
            bucket = next((b for b in self.buckets if width <= b), width)
            groups.setdefault(bucket, []).append((i, tensors))
        for group in groups.values():
            self._run(group, responses)
        return responses

    def _run(self, group, responses):
        rows = sum(t["input_ids"].shape[0] for _, t in group)
        width = max(t["input_ids"].shape[1] for _, t in group)
        batch = {n: np.full((rows, width), self.pad_values[n], dtype=np.int64) for n in self.input_names}
        row = 0
        for _, tensors in group:
            n, length = tensors["input_ids"].shape
            for name, array in tensors.items():
                batch[name][row : row + n, :length] = array
            row += n
        session = self.small_session if rows <= self.spin_max_rows else self.session
        logits = session.run(["logits"], batch)[0]
        row = 0
        for i, tensors in group:
            n = tensors["input_ids"].shape[0]
            out = pb_utils.Tensor("logits", logits[row : row + n].astype(np.float32))
            responses[i] = pb_utils.InferenceResponse(output_tensors=[out])
            row += n
