"""Launch tooling: ``make serve`` (Triton and a gateway, supervised) and the Triton process manager."""
