"""Promo code files as shops have them: Excel's CSV in ru/uk/pl, UTF-16, cp1251, any case."""

from __future__ import annotations

import codecs
import json

import pytest
from click.testing import CliRunner

from bot.cli import cli
from bot.store.codes import CodeError, read_code_file


@pytest.fixture
def env(cli_database, monkeypatch, tmp_path):
    """Point the CLI at the test's database, with one shop."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("NUDGE_DATABASE_URL", cli_database.url)
    monkeypatch.setenv("NUDGE_SECRET_KEY", "test-secret-key-0123456789")
    code, out = invoke("shop", "add", "--platform", "generic", "--name", "Kvitka", "--json")
    assert code == 0, out
    return json.loads(out)["id"]


def invoke(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    return result.exit_code, result.output


EXCEL_RU = "Промокод;Скидка\r\nVESNA-AAA1;10%\r\nVESNA-AAA2;10%\r\n"


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (EXCEL_RU.encode("cp1251"), ["VESNA-AAA1", "VESNA-AAA2"]),
        (codecs.BOM_UTF8 + EXCEL_RU.encode("utf-8"), ["VESNA-AAA1", "VESNA-AAA2"]),
        (EXCEL_RU.encode("utf-16"), ["VESNA-AAA1", "VESNA-AAA2"]),  # Excel's "Unicode text"
        (EXCEL_RU.encode("utf-16-le"), ["VESNA-AAA1", "VESNA-AAA2"]),
        (b"code\tnote\nWIOSNA-1\tx\nWIOSNA-2\ty\n", ["WIOSNA-1", "WIOSNA-2"]),
        (b"code,note\nA-111,x\n\nB-222,y\n", ["A-111", "B-222"]),
        (b"SOLO-CODE\n", ["SOLO-CODE"]),
    ],
    ids=["cp1251-semicolon", "utf8-bom", "utf16-bom", "utf16le-no-bom", "tab", "comma", "bare"],
)
def test_code_files_are_read_in_every_encoding_and_delimiter_shops_use(data, expected):
    assert [code for _line, code in read_code_file(data)] == expected


@pytest.mark.parametrize("data", [b"", b"\n\n", codecs.BOM_UTF8, b"code\n"])
def test_an_empty_code_file_is_an_error(data):
    with pytest.raises(CodeError, match="no codes"):
        read_code_file(data)


def test_a_bad_row_is_named_by_its_line_and_cyrillic_says_latin_is_required():
    data = "код\nZNYZHKA-1\nЗНИЖКА-XXXXXX\n".encode()
    with pytest.raises(CodeError) as caught:
        read_code_file(data)
    assert "line 3" in str(caught.value)
    assert "Latin letters" in str(caught.value)


def test_import_accepts_excels_semicolon_csv_and_folds_case(env, tmp_path):
    path = tmp_path / "codes.csv"
    path.write_bytes(
        "Промокод;Скидка\r\nAAA111;10%\r\naaa111;10%\r\nBBB222;5%\r\n".encode("cp1251")
    )
    code, out = invoke(
        "codes", "import", "--shop", str(env), "--pool", "cart", str(path), "--json"
    )
    assert code == 0, out
    assert json.loads(out) == {"shop_id": env, "pool": "cart", "added": 2, "duplicates": 1}
    again = tmp_path / "again.csv"
    again.write_bytes("bbb222\nCCC333\n".encode("utf-16"))
    code, out = invoke(
        "codes", "import", "--shop", str(env), "--pool", "cart", str(again), "--json"
    )
    assert code == 0, out
    assert json.loads(out)["added"] == 1 and json.loads(out)["duplicates"] == 1
    code, out = invoke("codes", "status", "--shop", str(env), "--json")
    assert json.loads(out)[0]["available"] == 3


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "no codes"),
        ("код\nZNYZHKA-1\nЗНИЖКА-XXXXXX\n".encode(), "line 3"),
    ],
)
def test_import_refuses_a_bad_file_in_one_line_and_imports_nothing(
    env, tmp_path, content, message
):
    path = tmp_path / "codes.csv"
    path.write_bytes(content)
    code, out = invoke("codes", "import", "--shop", str(env), "--pool", "cart", str(path))
    assert code == 2
    assert out.startswith("nudge: error: ") and message in out and len(out.splitlines()) == 1
    assert "Traceback" not in out
    code, out = invoke("codes", "status", "--shop", str(env), "--json")
    assert json.loads(out) == []
