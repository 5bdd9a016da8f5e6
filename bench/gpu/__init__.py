"""The GPU benchmark: one lent-GPU call measures the raw model, Triton and the gateway.

``make gpu-bundle`` (here, with the project's venv) packs what the GPU machine lacks into
``build/gpu-bundle`` (under 64 MiB); ``bench/gpu/run.sh`` (there) unpacks it and runs
``python -m bench.gpu.run``. See bench/gpu/README.md.
"""
