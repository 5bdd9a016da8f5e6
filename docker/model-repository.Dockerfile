# syntax=docker/dockerfile:1
# The GPU-flavour model repository (made by `make export`) in a small image, for the Helm
# chart's triton.modelRepository.source=image: an init container copies /models into the pods.
#   make images   (or: make export && docker build -f docker/model-repository.Dockerfile .)
FROM busybox:1.37
COPY model_repository_gpu /models
USER 65534:65534
