"""Unpacking a deployment package into a function folder: what escapes is refused, the size
limit is Lambda's (its message), and the folder is replaced whole."""

from __future__ import annotations

import io
import stat
import zipfile
from pathlib import Path

import pytest

from simulator.errors import InvalidParameterValue
from simulator.store.function_code import unpack_into


def zipped(entries: dict[str, bytes], symlink: str | None = None) -> bytes:
    data = io.BytesIO()
    with zipfile.ZipFile(data, "w") as zf:
        for name, content in entries.items():
            zf.writestr(name, content)
        if symlink is not None:
            info = zipfile.ZipInfo(symlink)
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            zf.writestr(info, "/etc/passwd")
    return data.getvalue()


def refusal(package: bytes, target: Path) -> str:
    with pytest.raises(InvalidParameterValue) as error:
        unpack_into(package, target)
    return error.value.message


def test_replaces_the_folder_whole(tmp_path: Path) -> None:
    target = tmp_path / "functions" / "fn"
    unpack_into(zipped({"handler.py": b"v1", "old.py": b"x"}), target)
    unpack_into(zipped({"handler.py": b"v2", "pkg/": b"", "pkg/mod.py": b"m"}), target)
    found = sorted(p.relative_to(target).as_posix() for p in target.rglob("*"))
    assert found == ["handler.py", "pkg", "pkg/mod.py"]
    assert (target / "handler.py").read_bytes() == b"v2"
    assert [p.name for p in target.parent.iterdir()] == ["fn"]  # no staging or old folder


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("../evil.py", "The package holds an entry outside the function folder (../evil.py)"),
        (
            "a/../../evil.py",
            "The package holds an entry outside the function folder (a/../../evil.py)",
        ),
        ("/etc/evil.py", "The package holds an entry outside the function folder (/etc/evil.py)"),
    ],
)
def test_refuses_entries_outside_the_folder(tmp_path: Path, name: str, message: str) -> None:
    target = tmp_path / "functions" / "fn"
    assert refusal(zipped({"handler.py": b"ok", name: b"x"}), target) == message
    assert not target.exists() and list(tmp_path.rglob("evil.py")) == []
    assert list((tmp_path / "functions").iterdir()) == []


def test_refuses_symlinks_and_keeps_the_old_code(tmp_path: Path) -> None:
    target = tmp_path / "fn"
    unpack_into(zipped({"handler.py": b"v1"}), target)
    assert refusal(zipped({"handler.py": b"v2"}, symlink="link"), target) == (
        "The package holds a symbolic link (link); s3sim does not unpack links"
    )
    assert (target / "handler.py").read_bytes() == b"v1"


def test_refuses_more_than_lambdas_unzipped_size(tmp_path: Path) -> None:
    data = io.BytesIO()
    with zipfile.ZipFile(data, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        with zf.open("big.bin", "w", force_zip64=True) as big:
            chunk = bytes(1 << 20)
            for _ in range(250):
                big.write(chunk)
            big.write(b"\0")  # 262144001 bytes: one over
    assert refusal(data.getvalue(), tmp_path / "fn") == (
        "Unzipped size must be smaller than 262144000 bytes"
    )
    assert list(tmp_path.iterdir()) == []


def test_refuses_what_is_not_a_zip(tmp_path: Path) -> None:
    assert refusal(b"PK\x03\x04 truncated", tmp_path / "fn") == (
        "Could not unzip uploaded file. Please check your file, then try to upload again."
    )


def test_log_tail_is_the_last_4_kb_of_the_log() -> None:
    import base64

    from simulator.lambdas.lambda_api_invoke import log_tail

    tail = base64.b64decode(log_tail(["START", "x" * 5000, "END"])).decode()
    assert tail == "x" * 4091 + "\nEND\n"
    assert base64.b64decode(log_tail(["START", "END"])) == b"START\nEND\n"
