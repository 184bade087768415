"""`s3sim alias set` edits config.yaml like a careful person would: one changed line for a
repoint, flow maps and comments kept, concurrent commands and hand edits never lost."""

from __future__ import annotations

import difflib
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

from simulator.cli import main
from simulator.errors import SimulatorError
from simulator.store import config_edit
from simulator.store.versions import VersionStore
from tests.helpers import handler_source

pytestmark = pytest.mark.integration
ARN = "arn:aws:lambda:us-east-1:123456789012:function"


def cli(ws: Path, *args: str) -> int:
    return main(["-w", str(ws), *args])


def changed_lines(before: str, after: str) -> list[str]:
    """The -/+ lines of a unified diff, as `git diff` shows them."""
    return [
        line
        for line in difflib.unified_diff(before.splitlines(), after.splitlines(), lineterm="", n=0)
        if line[:1] in "+-" and not line.startswith(("+++", "---"))
    ]


@pytest.mark.parametrize(
    "args, expected",
    [
        (
            ("prod", "2"),
            [
                "-      prod: 1                  # repoint me: prod: 2",
                "+      prod: 2                  # repoint me: prod: 2",
            ],
        ),
        (
            ("canary", "1", "--weight", "2=0.3"),
            [
                "-      canary: {version: 1, weights: {2: 0.2}}   # 20% of invocations run version 2",
                "+      canary: {version: 1, weights: {2: 0.3}}   # 20% of invocations run version 2",
            ],
        ),
        (
            ("canary", "2"),
            [
                "-      canary: {version: 1, weights: {2: 0.2}}   # 20% of invocations run version 2",
                "+      canary: 2                                 # 20% of invocations run version 2",
            ],
        ),
        (
            ("prod", "1", "--weight", "2=0.1"),
            [
                "-      prod: 1                  # repoint me: prod: 2",
                "+      prod: {version: 1, weights: {2: 0.1}}  # repoint me: prod: 2",
            ],
        ),
        (
            ("canary", "2", "--weight", "1=0.05"),
            [
                "-      canary: {version: 1, weights: {2: 0.2}}   # 20% of invocations run version 2",
                "+      canary: {version: 2, weights: {1: 0.05}}  # 20% of invocations run version 2",
            ],
        ),
        (("next", "2"), ["+      next: 2"]),
    ],
)
def test_alias_set_on_the_demo_changes_only_the_value_it_sets(
    demo: Path, args: tuple[str, ...], expected: list[str]
) -> None:
    before = (demo / "config.yaml").read_text()
    assert cli(demo, "alias", "set", "thumbnailer", *args) == 0
    after = (demo / "config.yaml").read_text()
    assert changed_lines(before, after) == expected
    assert cli(demo, "validate") == 0


S3_SHAPE = textwrap.dedent("""\
    # A workspace whose buckets are written the way S3 prints them.
    region: us-east-1    # the region of every ARN
    account: "123456789012"

    functions:
      # the one function
      thumbnailer:
        handler: handler.handler   # module.function
        aliases:   # promoted by hand
          prod: '1'      # quoted, as AWS prints versions
          canary:        # block style, on purpose
            version: 1   # primary
            weights:
              2: 0.25    # share of version 2
          dev: $LATEST   # edits go live
      auditor:           # no aliases yet

    buckets:
      uploads:
        LambdaFunctionConfigurations:   # pasted from get-bucket-notification-configuration
          - Id: thumbnails   # the id S3 shows
            LambdaFunctionArn: arn:aws:lambda:us-east-1:123456789012:function:thumbnailer:prod
            Events: ["s3:ObjectCreated:*"]
            Filter:
              Key:
                FilterRules:
                  - {Name: Prefix, Value: images/}   # only images
    """)


@pytest.fixture
def s3_shape(tmp_path: Path) -> Path:
    ws = tmp_path / "s3shape"
    for name in ("thumbnailer", "auditor"):
        (ws / "functions" / name).mkdir(parents=True)
        (ws / "functions" / name / "handler.py").write_text(handler_source("v1"))
    (ws / "config.yaml").write_text(S3_SHAPE)
    for tag in ("v1", "v2", "v3"):
        (ws / "functions/thumbnailer/handler.py").write_text(handler_source(tag))
        assert cli(ws, "publish", "thumbnailer") == 0
    return ws


@pytest.mark.parametrize(
    "function, args, expected",
    [
        (
            "thumbnailer",
            ("prod", "3"),
            [
                "-      prod: '1'      # quoted, as AWS prints versions",
                "+      prod: '3'      # quoted, as AWS prints versions",
            ],
        ),
        (
            "thumbnailer",
            ("canary", "1", "--weight", "2=0.5"),
            [
                "-          2: 0.25    # share of version 2",
                "+          2: 0.5     # share of version 2",
            ],
        ),
        (
            "thumbnailer",
            ("canary", "3"),
            [
                "-      canary:        # block style, on purpose",
                "-        version: 1   # primary",
                "-        weights:",
                "-          2: 0.25    # share of version 2",
                "+      canary: 3      # block style, on purpose",
            ],
        ),
        (
            "thumbnailer",
            ("prod", "2", "--weight", "3=0.1"),
            [
                "-      prod: '1'      # quoted, as AWS prints versions",
                "+      prod: {version: '2', weights: {3: 0.1}}  # quoted, as AWS prints versions",
            ],
        ),
        ("thumbnailer", ("beta", "2"), ["+      beta: '2'"]),
        ("auditor", ("live", "$LATEST"), ["+    aliases:", "+      live: $LATEST"]),
    ],
)
def test_alias_set_on_an_s3_shaped_config_with_comments_everywhere(
    s3_shape: Path, function: str, args: tuple[str, ...], expected: list[str]
) -> None:
    before = (s3_shape / "config.yaml").read_text()
    assert cli(s3_shape, "alias", "set", function, *args) == 0
    after = (s3_shape / "config.yaml").read_text()
    assert changed_lines(before, after) == expected
    assert cli(s3_shape, "validate") == 0


def test_concurrent_alias_sets_all_land(demo: Path) -> None:
    names = [f"a{i}" for i in range(6)]
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "simulator",
                "-w",
                str(demo),
                "alias",
                "set",
                "thumbnailer",
                name,
                "2",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name in names
    ]
    outcomes = [
        (
            p.wait(timeout=120),
            p.stdout.read() if p.stdout else "",
            p.stderr.read() if p.stderr else "",
        )
        for p in procs
    ]
    assert [code for code, _, _ in outcomes] == [0] * 6, outcomes
    text = (demo / "config.yaml").read_text()
    added = [
        line
        for line in text.splitlines()
        if line.strip().startswith("a") and line.strip()[1:2].isdigit()
    ]
    assert sorted(added) == [f"      {name}: 2" for name in names]


def test_a_hand_edit_between_read_and_replace_survives(demo: Path) -> None:
    config = demo / "config.yaml"
    store = VersionStore(demo / "versions")
    edits: list[str] = []

    def hand_edit() -> None:  # once: a person saves the file while the command works
        if not edits:
            text = config.read_text()
            edits.append(text)
            config.write_text(text.replace("timeout: 5", "timeout: 7"))

    config_edit.set_alias(
        config,
        demo / ".s3sim/config-edit.lock",
        "thumbnailer",
        "prod",
        "2",
        {},
        store,
        before_replace=hand_edit,
    )
    assert changed_lines(edits[0], config.read_text()) == [
        "-      prod: 1                  # repoint me: prod: 2",
        "+      prod: 2                  # repoint me: prod: 2",
        "-    timeout: 5",
        "+    timeout: 7",
    ]


def test_a_file_that_keeps_changing_fails_loudly(demo: Path, tmp_path: Path) -> None:
    config = demo / "config.yaml"
    before = config.read_text()
    count = [0]

    def keeps_editing() -> None:
        count[0] += 1
        config.write_text(before + f"# save {count[0]}\n")

    with pytest.raises(SimulatorError) as raised:
        config_edit.set_alias(
            config,
            demo / ".s3sim/config-edit.lock",
            "thumbnailer",
            "prod",
            "2",
            {},
            VersionStore(demo / "versions"),
            before_replace=keeps_editing,
        )
    assert str(raised.value) == (
        f"{config} kept changing while this command edited it (5 "
        f"attempts); nothing was written, try again"
    )
    assert config.read_text() == before + "# save 5\n"


@pytest.mark.parametrize(
    "text, alias, version, weights, expected",
    [
        (
            "functions:\n  f:\n    aliases: {prod: 1, dev: $LATEST}  # flow\n",
            "canary",
            "2",
            {},
            [
                "-    aliases: {prod: 1, dev: $LATEST}  # flow",
                "+    aliases: {prod: 1, dev: $LATEST, canary: 2}  # flow",
            ],
        ),
        (
            "functions:\n  f:\n    aliases:   # none yet\n  g: {}\n",
            "prod",
            "2",
            {},
            ["+      prod: '2'"],
        ),
        (
            "functions:\n  f:\n    aliases:\n      canary: {version: 1, weights: {2: 0.2}, retries: 0}"
            "  # c\n",
            "canary",
            "2",
            {},
            [
                "-      canary: {version: 1, weights: {2: 0.2}, retries: 0}  # c",
                "+      canary: {version: 2, retries: 0}                     # c",
            ],
        ),
        (
            "functions:\n  f:\n    aliases:\n      canary:\n        version: 1\n        weights: "
            "{2: 0.2}\n        retries: 0\n",
            "canary",
            "1",
            {3: 0.5},
            ["-        weights: {2: 0.2}", "+        weights: {3: 0.5}"],
        ),
        (
            "functions:\n  f:\n    aliases:\n      prod: 1",
            "prod",
            "2",
            {},
            ["-      prod: 1", "+      prod: 2"],
        ),
    ],
)
def test_splice_layouts(
    text: str, alias: str, version: str, weights: dict[int, float], expected: list[str]
) -> None:
    """Flow aliases, an empty `aliases:`, an alias's own settings kept, no final newline."""
    old = config_edit.aliases_in(yaml.safe_load(text), "f").get(alias)
    value = config_edit.alias_value(old, version, weights)
    new = config_edit.set_in_text(text, ["functions", "f", "aliases", alias], value)
    assert changed_lines(text, new) == expected
