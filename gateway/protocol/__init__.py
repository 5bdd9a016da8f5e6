"""The public API's messages (protobuf, ``emotionaware.v1``) over the core: conversion both
ways, the API's methods and stream sessions. Both transports (gateway/grpc/, gateway/http/)
serve these; nothing here imports a transport.
"""
