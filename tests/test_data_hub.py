"""Hub dataset ids in data.path (`org/name[:config][@split]`), read through `datasets` and its
cache: offline, a dataset cached before loads from the cache folder; one never fetched gets a
message that says how to point at a local copy."""
from __future__ import annotations

import pytest

from trainer_backend.data import DataError, load_dataset

ROWS = '{"instruction": "Say hi", "output": "hi"}\n{"instruction": "Say bye", "output": "bye"}\n'


@pytest.fixture
def hub_cache(tmp_path, monkeypatch):
    """A datasets cache holding `org/demo` as `load_dataset("org/demo")` leaves it after a download:
    <cache>/org___demo/default/0.0.0/<hash>/ with the prepared arrow files and dataset_info.json."""
    import datasets
    from datasets.packaged_modules.json.json import Json

    source = tmp_path / "train.jsonl"
    source.write_text(ROWS)
    cache = tmp_path / "datasets"
    builder = Json(cache_dir=str(cache), dataset_name="demo", repo_id="org/demo", data_files={"train": str(source)},
                   hash="0123456789abcdef")
    builder.download_and_prepare()
    (cache / "org___demo" / builder.config_id).rename(cache / "org___demo" / "default")
    source.unlink()  # only the cache is left
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", cache)
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    return cache


def test_a_cached_hub_dataset_loads_offline(hub_cache):
    for hub_id in ("org/demo", "org/demo@train", "org/demo:default@train"):
        data = load_dataset(hub_id)
        assert (data.format, data.rows, data.valid_rows) == ("alpaca", 2, 2), hub_id
        assert [[m.content for m in c.messages] for c in data.conversations] == [["Say hi", "hi"], ["Say bye", "bye"]]
    assert load_dataset("org/demo@train[:1]").rows == 1


def test_an_uncached_hub_dataset_offline_says_how_to_use_a_local_copy(hub_cache):
    with pytest.raises(DataError) as err:
        load_dataset("org/missing")
    message = str(err.value)
    assert message.startswith("org/missing: the hub dataset could not be fetched (")
    assert message.endswith("with no network, load it once on a machine that has one and copy its datasets cache "
                            "(HF_DATASETS_CACHE) here, or save it to a JSONL file or a save_to_disk folder and set "
                            "data.path to that")


def test_a_missing_file_is_not_taken_for_a_hub_id(tmp_path):
    with pytest.raises(DataError, match="no such file or folder"):
        load_dataset("samples/nothing.jsonl")
