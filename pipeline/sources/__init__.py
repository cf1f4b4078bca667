"""Where transactions come from: file readers, the cleaning rules of each schema, and the synthetic generator."""
