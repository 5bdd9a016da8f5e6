"""The gRPC transport: server, servicer, request decoding, the caller interceptor, status codes.

Imported by the process (gateway/server.py) only; the core below never imports it.
"""
