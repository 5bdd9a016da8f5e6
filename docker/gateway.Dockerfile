# syntax=docker/dockerfile:1
# The EmotionAware gateway: Python 3.11 with the runtime dependencies only (no torch, no
# ONNX Runtime), generated gRPC stubs, running as an unprivileged user.
#   make images   (or: docker build -f docker/gateway.Dockerfile -t emotionaware/gateway .)
FROM python:3.11-slim-bookworm AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml constraints.txt README.md ./
COPY proto ./proto
COPY emotionaware ./emotionaware
COPY gateway ./gateway
RUN python -m venv /opt/venv \
 && /opt/venv/bin/pip install -c constraints.txt grpcio-tools \
 && /opt/venv/bin/python -m grpc_tools.protoc -I proto --python_out=. --grpc_python_out=. --pyi_out=. \
      --include_source_info --descriptor_set_out=emotionaware/v1/emotion.desc \
      proto/emotionaware/v1/emotion.proto \
 && touch emotionaware/v1/__init__.py \
 && /opt/venv/bin/pip install -c constraints.txt . \
 && /opt/venv/bin/pip uninstall -y grpcio-tools

FROM python:3.11-slim-bookworm
RUN useradd --uid 10001 --user-group --no-create-home --shell /usr/sbin/nologin gateway
COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    EMOTIONAWARE_LISTEN=0.0.0.0:50051 \
    EMOTIONAWARE_HTTP_LISTEN=0.0.0.0:8080 \
    EMOTIONAWARE_MODEL_REPOSITORY=/models
USER 10001:10001
EXPOSE 50051 50052 8080 9090
ENTRYPOINT ["emotionaware-gateway"]
