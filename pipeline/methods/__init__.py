"""Decoding methods, registered by name: greedy, sample, sgrs, locore, sgrs+locore."""

from pipeline.registry import Registry

METHODS: Registry = Registry("method", "pipeline.methods")
