"""What a run writes: output tables, plots, report.html, and the atomic writes they all go through."""
