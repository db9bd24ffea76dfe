"""halleval's scoring side: reads Parquet from a run or reference-format files and scores them.
Nothing here imports a model."""
