"""Tables, macros, plots and provenance footers built from the per-job result files."""
