#!/usr/bin/env bash
# The first thing to run: make the synthetic example, discover its categories, look at them.
# Needs `pip install -e .` first. 12-17 minutes on 2 CPU cores (the `cpu` preset, also on a GPU;
# without --preset a GPU picks `paper`, the paper's hours-long configuration).
set -euo pipefail
out=${1:-runs/quickstart}
fgdiscover synth "$out/data" --parents 4 --children-per-parent 3 --n 3000 --size 32
fgdiscover cluster "$out/data" --k 12 --k-parent 4 --preset cpu --labels "$out/data/labels.csv" --out "$out/cluster"
fgdiscover generate "$out/cluster/model" --out "$out/grid.png"
echo "open $out/grid.png (rows: shapes, columns: their appearances) and $out/cluster/assignments.csv"
