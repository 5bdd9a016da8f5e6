"""Code shared by training, export and the gateway.

Generated protobuf stubs for the public API land in ``emotionaware/v1`` (``make proto``);
that folder is git-ignored.
"""

__version__ = "0.1.0"
