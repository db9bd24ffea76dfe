"""halleval's producing side: benchmark readers, model adapters, decoding methods, the Ray Data
inference stage and Parquet output. Everything here ends in a run's generations/*.parquet."""
