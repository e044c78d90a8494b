"""Benchmarks end to end: a TOML spec, its cells (dataset x split x target x model x strategy x
seed), the inputs they need, running them locally or on SLURM, then report and collapse."""
