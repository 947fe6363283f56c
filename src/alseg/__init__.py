"""alseg: active learning for semantic segmentation as a Snakemake workflow."""

__version__ = "0.1.0"
