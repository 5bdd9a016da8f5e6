"""Turn a fine-tuned artifact into ONNX and a Triton model repository, with parity checks."""
