"""Segment new transactions with a model trained by ``train.py``.

    python segment.py outputs/<date>/<time>/model.pt new_transactions.csv --output-dir scored/

The file goes through the trained run's own cleaning, encoding and scaling; each kept row gets the cluster of its
best-matching neuron. Writes ``scored_rows.csv`` (row_id, customer id, bmu_i, bmu_j, cluster) and ``dropped_rows.csv``
(every removed row with its reason) into the output folder, and prints a JSON summary (counts, cluster sizes).
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
from typing import Sequence

from pipeline.app.segment_file import segment_file

logger = logging.getLogger(__name__)


def build_parser() -> argparse.ArgumentParser:
    """The command line: MODEL, DATA and ``--output-dir``."""
    parser = argparse.ArgumentParser(
        prog="segment.py", description="Segment a transactions file with a trained model.pt."
    )
    parser.add_argument("model", help="model.pt written by train.py (in its run folder)")
    parser.add_argument("data", help="transactions file (.csv, .csv.gz or .parquet) with the training data's columns")
    parser.add_argument(
        "--output-dir", default="segments", help="folder for scored_rows.csv and dropped_rows.csv (default: segments)"
    )
    parser.add_argument("--format", default="csv", choices=("csv", "parquet"),
                        help="file format of scored_rows and dropped_rows (default: csv; parquet for large files)")
    return parser


def main(arguments: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit status (0 ok, 1 bad input, unreadable file or unwritable output folder, with a
    one-line message on stderr and no output written)."""
    parser = build_parser()
    options = parser.parse_args(arguments)
    logging.basicConfig(level=logging.INFO, format="[%(asctime)s][%(name)s][%(levelname)s] - %(message)s")
    try:
        summary = segment_file(options.model, options.data, options.output_dir, fmt=options.format)
    except (OSError, ValueError, TypeError, RuntimeError) as error:  # OSError: FileNotFoundError, unwritable output
        message = " ".join(str(error).split())
        print(f"segment.py: error: {type(error).__name__}: {message}", file=sys.stderr)
        return 1
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
