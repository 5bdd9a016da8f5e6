"""The EmotionAware gRPC gateway: tokenization, routing, Triton calls and post-processing.

Request path: ``servicer`` (protobuf <-> domain types) -> ``service`` (one request's
pipeline) -> ``tokenization`` -> ``backend`` (Triton) -> ``postprocess``.
"""
