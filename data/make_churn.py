"""Generate the bundled data set, ``data/churn.csv``, deterministically.

A synthetic telecom customer table: mixed numeric and categorical columns,
some missing values, a few exact duplicate rows (as exports often have), a
header row and a yes/no ``churn`` target whose odds follow the columns the
way a real churn table's do (short tenure, month-to-month contracts and many
support calls raise them).

    python data/make_churn.py            # rewrites data/churn.csv
    python data/make_churn.py --check    # exits 1 if the file differs
"""
from __future__ import annotations

import argparse
import csv
import io
import sys
from pathlib import Path

import numpy as np

ROWS = 3000
SEED = 20240611
OUTPUT = Path(__file__).with_name("churn.csv")
COLUMNS = ["customer_age", "tenure_months", "monthly_charges", "total_charges", "contract",
           "payment_method", "internet_service", "support_calls", "region", "paperless_billing",
           "churn"]


def generate(rows: int = ROWS, seed: int = SEED) -> str:
    rng = np.random.default_rng(seed)
    age = rng.integers(18, 85, rows)
    tenure = np.clip(rng.gamma(2.0, 14.0, rows).round(), 0, 72).astype(int)
    contract = rng.choice(["month-to-month", "one-year", "two-year"], rows, p=[0.55, 0.25, 0.2])
    payment = rng.choice(["electronic-check", "mailed-check", "bank-transfer", "credit-card"],
                         rows, p=[0.35, 0.2, 0.22, 0.23])
    internet = rng.choice(["fiber", "dsl", "none"], rows, p=[0.45, 0.4, 0.15])
    region = rng.choice(["north", "south", "east", "west"], rows)
    paperless = rng.choice(["yes", "no"], rows, p=[0.6, 0.4])
    base = np.select([internet == "fiber", internet == "dsl"], [70.0, 50.0], 20.0)
    monthly = np.round(base + rng.normal(0, 12, rows).clip(-15, 40), 2)
    total = np.round(monthly * np.maximum(tenure, 1) * rng.uniform(0.95, 1.05, rows), 2)
    calls = rng.poisson(1.2 + (internet == "fiber") * 0.8, rows)

    logit = (
        -1.2
        + 1.6 * (contract == "month-to-month") - 1.3 * (contract == "two-year")
        - 0.045 * tenure
        + 0.022 * (monthly - 60)
        + 0.45 * calls
        + 0.7 * (payment == "electronic-check")
        + 0.35 * (internet == "fiber")
        + 0.25 * (paperless == "yes")
        - 0.01 * (age - 45)
    )
    churn = np.where(rng.random(rows) < 1 / (1 + np.exp(-logit)), "yes", "no")

    table = [
        [int(a), int(t), float(m), float(c), str(k), str(p), str(i), int(s), str(r), str(b), str(y)]
        for a, t, m, c, k, p, i, s, r, b, y in zip(age, tenure, monthly, total, contract, payment,
                                                  internet, calls, region, paperless, churn)
    ]
    # Missing values, as exports have them: blank cells in a few columns.
    for column, share in ((0, 0.04), (3, 0.02), (5, 0.03), (8, 0.05)):
        for row in np.flatnonzero(rng.random(rows) < share):
            table[row][column] = ""
    # A few rows exported twice.
    for row in rng.choice(rows, 25, replace=False):
        table.append(list(table[row]))

    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(COLUMNS)
    writer.writerows(table)
    return out.getvalue()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true",
                        help="compare with the bundled file instead of writing it")
    args = parser.parse_args()
    text = generate()
    if args.check:
        same = OUTPUT.read_text(encoding="utf-8") == text
        print(f"{OUTPUT}: {'up to date' if same else 'differs from the generator'}")
        return 0 if same else 1
    OUTPUT.write_text(text, encoding="utf-8")
    print(f"wrote {OUTPUT} ({ROWS} rows + duplicates)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
