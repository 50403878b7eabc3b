#!/usr/bin/python3
"""Plots a run's metrics.jsonl (training bits and validation bits per step) to a PNG."""
import json
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def main():
    if len(sys.argv) < 3:
        sys.exit("usage: plot_metrics.py RUN/metrics.jsonl OUT.png [TITLE]")
    train, valid = [], []
    with open(sys.argv[1]) as f:
        for line in f:
            if not line.strip():
                continue
            row = json.loads(line)
            if "bits" in row:
                train.append((row["step"], row["bits"]))
            if "valid_bits" in row:
                valid.append((row["step"], row["valid_bits"]))
    fig, ax = plt.subplots(figsize=(7, 4))
    if train:
        ax.plot(*zip(*train), lw=0.8, label="train (batch)")
    if valid:
        ax.plot(*zip(*valid), "o-", label="validation")
    ax.set_xlabel("step")
    ax.set_ylabel("bits per byte / dim")
    ax.set_title(sys.argv[3] if len(sys.argv) > 3 else sys.argv[1])
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(sys.argv[2], dpi=100)
    print(f"wrote {sys.argv[2]}")


if __name__ == "__main__":
    main()
