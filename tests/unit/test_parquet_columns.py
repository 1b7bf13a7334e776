"""Parquet read one column at a time: the same frame, each distinct text one object."""
from __future__ import annotations

import numpy as np
import pandas as pd

from sklearn_byoc.common import parquet


def test_repeated_text_is_one_object_and_the_frame_is_unchanged(tmp_path):
    frame = pd.DataFrame({
        "n": np.arange(6, dtype=np.int64),
        "x": [0.5, np.nan, 1.5, 2.0, 3.0, 4.0],
        "colour": ["red", "blue", None, "red", "blue", "red"],
        "flag": [True, False, None, True, True, False],
    })
    path = tmp_path / "data.parquet"
    parquet.write_file(frame, path)
    read, unsupported = parquet.read_file(path)
    assert unsupported == {}
    assert list(read.columns) == ["n", "x", "colour", "flag"]
    assert isinstance(read.index, pd.RangeIndex) and len(read) == 6
    colour = read["colour"].to_numpy()
    assert list(colour[[0, 1, 3, 4, 5]]) == ["red", "blue", "red", "blue", "red"]
    assert pd.isna(colour[2])
    assert colour[0] is colour[3] is colour[5] and colour[1] is colour[4]
    assert read["n"].tolist() == list(range(6)) and read["x"].isna().sum() == 1
    assert read["flag"].tolist()[:2] == [True, False]


def test_a_stored_pandas_index_is_left_out_and_row_groups_still_slice(tmp_path):
    fastparquet = parquet._fastparquet()
    frame = pd.DataFrame({"a": ["p", "q", "p", "q"], "b": [1.0, 2.0, 3.0, 4.0]},
                         index=pd.Index([10, 11, 12, 13], name="key"))
    path = tmp_path / "indexed.parquet"
    fastparquet.write(str(path), frame, row_group_offsets=[0, 2], write_index=True)
    read, _ = parquet.read_file(path)
    assert list(read.columns) == ["a", "b"] and read["b"].tolist() == [1.0, 2.0, 3.0, 4.0]
    second, _ = parquet.read_file(path, slice(1, 2))
    assert second["a"].tolist() == ["p", "q"] and list(second.index) == [0, 1]
