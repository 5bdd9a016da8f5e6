"""The HTTP/JSON transport: the API as JSON, its OpenAPI document and the playground page.

Imported by the process (gateway/server.py) only; the core below never imports it.
"""
