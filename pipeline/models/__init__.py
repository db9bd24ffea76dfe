"""Model adapters, one module per LVLM family; each registers itself in MODELS."""

from pipeline.registry import Registry

MODELS: Registry = Registry("model", "pipeline.models")
