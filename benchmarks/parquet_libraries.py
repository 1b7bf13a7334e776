"""Which library reads and writes Parquet for the image: measured, side by side.

    .venv/bin/python benchmarks/parquet_libraries.py --install   # pip-installs each into a
                                                                # folder of its own first
    .venv/bin/python benchmarks/parquet_libraries.py --rows 100000

For pyarrow, fastparquet, DuckDB and Polars, each installed with ``pip install
--target`` into a folder of its own (constrained to the image's pins) and put
on ``PYTHONPATH`` alone, it measures in fresh processes:

- what the library adds to the image: the size of the packages it brings
  that the image does not have yet;
- ``import pandas`` with the library installed: time, resident memory, and
  whether pandas imported the library by itself (pandas imports pyarrow at
  start-up whenever it can, so every ``serve`` worker would carry it);
- reading a seeded file (10 numeric columns, 10 text columns of 20 levels, a
  target; written once by pyarrow with its defaults, as Spark and pandas
  write them) into a pandas frame: time and peak resident memory;
- writing that frame back (what ``prepare --output-format parquet`` does).

It prints a Markdown table.  A benchmark, not a test.
"""
from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LIBRARIES = ("pyarrow", "fastparquet", "duckdb", "polars")

READ = {
    "pyarrow": "import pyarrow.parquet as pq; df = pq.read_table(PATH).to_pandas()",
    "fastparquet": "import fastparquet; df = fastparquet.ParquetFile(PATH).to_pandas()",
    "duckdb": "import duckdb; df = duckdb.read_parquet(PATH).df()",
    "polars": "import polars as pl; t = pl.read_parquet(PATH); "
              "df = pd.DataFrame({c: t[c].to_numpy() for c in t.columns})",
}
WRITE = {
    "pyarrow": "import pyarrow as pa, pyarrow.parquet as pq; "
               "pq.write_table(pa.Table.from_pandas(df, preserve_index=False), OUT)",
    "fastparquet": "import fastparquet; "
                   "fastparquet.write(OUT, df, compression='SNAPPY', write_index=False)",
    "duckdb": "import duckdb; duckdb.from_df(df).write_parquet(OUT)",
    "polars": "import polars as pl; "
              "pl.from_dict({c: df[c].to_numpy() for c in df.columns}).write_parquet(OUT)",
}
# One measured step in a fresh interpreter: import pandas, run SETUP, time CODE.
PROGRAM = """
import re, sys, time
def peak_mb():
    status = open('/proc/self/status').read()
    return int(re.search(r'VmHWM:\\s+(\\d+)', status).group(1)) // 1024
started = time.perf_counter()
import pandas as pd
import_s = time.perf_counter() - started
import_mb = peak_mb()
by_pandas = 'pyarrow' in sys.modules
PATH, OUT, PICKLE = sys.argv[1], sys.argv[2], sys.argv[3]
SETUP
started = time.perf_counter()
CODE
print(import_s, import_mb, by_pandas, time.perf_counter() - started, peak_mb())
"""


def run_step(folder: Path | None, setup: str, code: str, paths: list[str]) -> tuple:
    program = PROGRAM.replace("SETUP", setup).replace("CODE", code)
    env = {**os.environ, "PYTHONPATH": str(folder) if folder else ""}
    done = subprocess.run([sys.executable, "-c", program, *paths], env=env,
                          capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(done.stderr[-2000:])
    import_s, import_mb, by_pandas, seconds, peak = done.stdout.strip().splitlines()[-1].split()
    return float(import_s), int(import_mb), by_pandas == "True", float(seconds), int(peak)


# In the image only because fastparquet needs them: counted as fastparquet's, so the
# comparison holds after the choice is made.
FOR_PARQUET = {"fastparquet", "cramjam", "fsspec", "packaging"}


def added_mb(folder: Path) -> float:
    """Size of what the folder holds beyond the packages the image has without Parquet."""
    import importlib.metadata as md

    present = {d.metadata["Name"].lower().replace("-", "_") for d in md.distributions()}
    present -= FOR_PARQUET
    total = 0
    for info in folder.glob("*.dist-info"):
        name = re.sub(r"-[^-]+$", "", info.name[: -len(".dist-info")]).lower().replace("-", "_")
        if name in present:
            continue
        for line in (info / "RECORD").read_text().splitlines():
            path = folder / line.split(",")[0]
            if path.is_file():
                total += path.stat().st_size
    return total / 2**20


def make_data(path: Path, pickle: Path, rows: int, pyarrow_dir: Path) -> None:
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(0)
    columns = {f"num_{i}": rng.normal(size=rows) for i in range(10)}
    levels = np.array([f"level_{j}" for j in range(20)], dtype=object)
    for i in range(10):
        columns[f"cat_{i}"] = levels[rng.integers(0, 20, rows)]
    columns["target"] = rng.integers(0, 2, rows)
    frame = pd.DataFrame(columns)
    frame.to_pickle(pickle)
    writer = ("import pandas as pd, pyarrow as pa, pyarrow.parquet as pq, sys; "
              "pq.write_table(pa.Table.from_pandas(pd.read_pickle(sys.argv[1]), "
              "preserve_index=False), sys.argv[2])")
    subprocess.run([sys.executable, "-c", writer, str(pickle), str(path)], check=True,
                   env={**os.environ, "PYTHONPATH": str(pyarrow_dir)})


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--libs", type=Path, default=Path(tempfile.gettempdir()) / "parquet-libs",
                        help="one folder per library, made by --install (default: %(default)s)")
    parser.add_argument("--install", action="store_true",
                        help="pip-install each library into its folder under --libs first")
    args = parser.parse_args(argv)
    if args.install:
        pins = args.libs / "pins.txt"
        args.libs.mkdir(parents=True, exist_ok=True)
        text = (ROOT / "requirements.txt").read_text()
        pins.write_text("\n".join(re.findall(r"^([A-Za-z0-9_.-]+==[^ \\\n]+)", text, re.M)) + "\n")
        for name in LIBRARIES:
            subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--target",
                            str(args.libs / name), name, "-c", str(pins)], check=True)
    work = Path(tempfile.mkdtemp(prefix="parquet-bench-"))
    data, pickle, out = work / "data.parquet", work / "data.pkl", work / "out.parquet"
    make_data(data, pickle, args.rows, args.libs / "pyarrow")
    paths = [str(data), str(out), str(pickle)]
    base = run_step(None, "", "pass", paths)
    rows = [f"| (none) | - | {base[0]:.2f} s, {base[1]} MB | - | - | - |"]
    for name in LIBRARIES:
        folder = args.libs / name
        read = run_step(folder, "", READ[name] + "\ndel df", paths)
        write = run_step(folder, "df = pd.read_pickle(PICKLE)", WRITE[name], paths)
        rows.append(
            f"| {name} | {added_mb(folder):.0f} MB | {read[0]:.2f} s, {read[1]} MB"
            f"{' (pandas imports it)' if read[2] else ''} | {read[3]:.2f} s | "
            f"{read[4]} MB | {write[3]:.2f} s |")
    print(f"Reading a {data.stat().st_size / 2**20:.0f} MB Parquet file of {args.rows:,} rows "
          "(pyarrow's defaults) into pandas; peak = the process's VmHWM.\n")
    print("| Library | Adds to the image | `import pandas` | Read | Read peak RSS | Write |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    print("\n".join(rows))
    for path in (data, pickle, out):
        path.unlink(missing_ok=True)
    work.rmdir()
    return 0


if __name__ == "__main__":
    sys.exit(main())
