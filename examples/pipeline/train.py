"""Step 2: fit y = a*x + b by least squares and save the model atomically."""
import csv
import json
import os

with open("data/clean.csv", newline="") as f:
    rows = list(csv.reader(f))[1:]
xs = [float(r[0]) for r in rows]
ys = [float(r[1]) for r in rows]
n = len(xs)
mx, my = sum(xs) / n, sum(ys) / n
a = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sum((x - mx) ** 2 for x in xs)
b = my - a * mx
with open("model.tmp", "w") as f:
    json.dump({"a": a, "b": b, "n": n}, f)
os.replace("model.tmp", "model.bin")
print(f"trained on {n} rows: y = {a:.3f} x + {b:.3f}")
