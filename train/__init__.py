"""Fine-tuning and evaluation of the emotion models (needs torch; not used by the gateway)."""
