"""Atomic writes never leave a partial file under the final name."""

from __future__ import annotations

import json
import math

import pytest

from alrp_cli.atomic import atomic_path, write_json


def test_write_json_round_trips_full_precision_and_maps_nan_to_null(tmp_path) -> None:
    out = tmp_path / "sub" / "x.json"
    value = 1 / 3
    write_json(out, {"a": value, "b": [math.nan, math.inf, 2.0], "c": "s"})
    back = json.loads(out.read_text())
    assert back == {"a": value, "b": [None, None, 2.0], "c": "s"}
    assert list(out.parent.iterdir()) == [out]


def test_failure_keeps_the_old_file_and_leaves_no_temporary(tmp_path) -> None:
    out = tmp_path / "x.txt"
    out.write_text("old")
    with pytest.raises(RuntimeError), atomic_path(out) as tmp:
        tmp.write_text("half")
        raise RuntimeError("crash mid-write")
    assert out.read_text() == "old"
    assert list(tmp_path.iterdir()) == [out]


def test_written_files_get_the_umask_permissions_not_0600(tmp_path) -> None:
    import os
    import stat

    out = tmp_path / "x.json"
    write_json(out, {"a": 1})
    mask = os.umask(0o022)
    os.umask(mask)
    assert stat.S_IMODE(out.stat().st_mode) == 0o666 & ~mask
