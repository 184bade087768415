"""config_edit's block-style writes and removals (the S3 API's bucket and notification
edits): the lines of the value change, comments and layout elsewhere stay."""

from __future__ import annotations

import pytest

from simulator.store.config_edit import SpliceError, remove_in_text, set_block

TEXT = """\
region: us-east-1   # the region
buckets:
  uploads:          # the folder buckets/uploads/
    notifications:
      - id: old     # replaced
        events: ["s3:ObjectCreated:*"]
        function: arn:aws:lambda:us-east-1:123456789012:function:f
  made: {}
# trailing comment
"""
RULE = {"id": "new", "events": ["s3:ObjectCreated:*"], "prefix": "in/", "function": "fn"}


def test_a_list_is_written_as_block_lines_in_place_of_the_old_ones() -> None:
    assert set_block(TEXT, ["buckets", "uploads", "notifications"], [RULE]) == (
        "region: us-east-1   # the region\n"
        "buckets:\n"
        "  uploads:          # the folder buckets/uploads/\n"
        "    notifications:\n"
        "    - id: new\n"
        "      events: ['s3:ObjectCreated:*']\n"
        "      prefix: in/\n"
        "      function: fn\n"
        "  made: {}\n"
        "# trailing comment\n"
    )


def test_an_empty_entry_becomes_block_lines_and_a_missing_one_is_added_beside_its_siblings() -> (
    None
):
    filled = set_block(TEXT, ["buckets", "made", "notifications"], [])
    assert "  made:\n    notifications: []\n# trailing comment\n" in filled
    added = set_block(TEXT, ["buckets", "fresh"], {})
    assert added.endswith("  made: {}\n  fresh: {}\n# trailing comment\n")
    assert set_block("{}\n", ["buckets", "fresh"], {}) == "{buckets: {fresh: {}}}\n"


def test_an_entry_is_removed_with_its_lines_only() -> None:
    removed = remove_in_text(TEXT, ["buckets", "uploads"])
    assert removed == (
        "region: us-east-1   # the region\nbuckets:\n  made: {}\n# trailing comment\n"
    )
    assert remove_in_text(removed, ["buckets", "made"]) == (
        "region: us-east-1   # the region\nbuckets:\n# trailing comment\n"
    )
    assert remove_in_text(TEXT, ["buckets", "absent"]) == TEXT


def test_a_layout_the_splicer_cannot_keep_is_refused() -> None:
    shared = "base: &b {x: 1}\nbuckets:\n  a: *b\n  c: *b\n"
    with pytest.raises(SpliceError):
        set_block(shared, ["buckets", "a", "x"], 2)
