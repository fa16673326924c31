"""Step 1: clean the raw data (drops rows with a missing value)."""
import csv
import os

os.makedirs("data", exist_ok=True)
with open("data/raw.csv", newline="") as src, open("data/clean.csv", "w", newline="") as dst:
    rows = csv.reader(src)
    out = csv.writer(dst)
    for row in rows:
        if all(cell.strip() for cell in row):
            out.writerow(row)
