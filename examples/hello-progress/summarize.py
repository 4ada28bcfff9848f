"""Reads the training summary and writes a one-line report."""

import pathlib

summary = pathlib.Path("results/summary.txt").read_text().strip()
pathlib.Path("report.txt").write_text(f"report: {summary}\n")
print("report written:", summary)
