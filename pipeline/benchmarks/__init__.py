"""Benchmark readers, one module per benchmark; each registers itself in BENCHMARKS."""

from pipeline.registry import Registry

BENCHMARKS: Registry = Registry("benchmark", "pipeline.benchmarks")
