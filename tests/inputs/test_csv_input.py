"""CSV parsing: aliases, identity, encodings, and file-level failures that name the file and line."""

from __future__ import annotations

import pytest

from service.domain import document_key
from service.ingest import BadFile, read_headlines


def parse(path):
    info, chunks = read_headlines(path)
    heads, rejects = [], []
    for c in chunks:
        heads += c.headlines
        rejects += c.rejects
    return info, heads, rejects


def test_aliases_and_metadata(tmp_path):
    p = tmp_path / "a.csv"
    p.write_text("headline,short_description,link,date,venue\nRivers rise,Heavy rain,http://x/1,2026-01-02T03:04:00Z,Daily\n")
    info, heads, rejects = parse(p)
    h = heads[0]
    assert (h.title, h.description, h.url) == ("Rivers rise", "Heavy rain", "http://x/1")
    assert h.published_at.isoformat() == "2026-01-02T03:04:00"
    assert h.extra == {"venue": "Daily"}
    assert h.key == "url:http://x/1" and not rejects


def test_identity_prefers_guid_then_url_then_text():
    assert document_key("g1", "u", "t", "d") == "guid:g1"
    assert document_key("", "u", "t", "d") == "url:u"
    assert document_key(None, None, "t", "d") == document_key(None, None, " t", "d ")
    assert document_key(None, None, "t", "d").startswith("text:")


def test_blank_titles_are_rejected_with_line_numbers(tmp_path):
    p = tmp_path / "b.csv"
    p.write_text("title,description\nGood one,x\n  ,no title here\nAnother,y\n")
    _, heads, rejects = parse(p)
    assert [h.title for h in heads] == ["Good one", "Another"]
    assert [(r.line, r.reason) for r in rejects] == [(3, "blank title")]


@pytest.mark.parametrize(
    "content, message",
    [
        (b"", "empty file"),
        (b"title,description\n", "header only"),
        (b"name_of_thing;other\nx;y\n", "no 'title' column"),
        (b"headline_text;body\nx;y\n", "semicolon-delimited"),
        (b"\x00\x01\x02binary\xff\xfe" * 50, "binary"),
        (b'title,description\n"unclosed quote,here\nmore\n', "quoting"),
    ],
)
def test_bad_files_raise_a_reason_naming_the_file(tmp_path, content, message):
    p = tmp_path / "bad.csv"
    p.write_bytes(content)
    with pytest.raises(BadFile) as err:
        parse(p)
    assert "bad.csv" in str(err.value) and message in str(err.value)


def test_non_utf8_falls_back_to_latin1_and_says_so(tmp_path):
    p = tmp_path / "l1.csv"
    p.write_bytes("title\nCaf\u00e9 opens\n".encode("latin-1"))
    info, heads, _ = parse(p)
    assert info.encoding.startswith("latin-1") and heads[0].title == "Caf\u00e9 opens"


def test_utf8_bom(tmp_path):
    p = tmp_path / "bom.csv"
    p.write_bytes("\ufefftitle\nHello\n".encode("utf-8"))
    info, heads, _ = parse(p)
    assert info.encoding == "utf-8-sig" and heads[0].title == "Hello"


@pytest.mark.parametrize("body, stored, reason", [
    ("guid,title,description\n1,Whole row,d\n2,HBO GO problems hit 'True Detec", ["Whole row"], "2 of 3 fields"),
    ('guid,title,description\n1,Whole row,d\n2,"HBO GO, problems', ["Whole row"], "inside a quoted cell"),
    ("guid,title\n1,Whole row\n2,Last row without a line end", ["Whole row", "Last row without a line end"], None),
])
def test_a_cut_last_row_is_rejected_never_stored_half(tmp_path, body, stored, reason):
    path = tmp_path / "cut.csv"
    path.write_text(body)
    _, heads, rejects = parse(path)
    assert [h.title for h in heads] == stored
    assert [r.line for r in rejects] == ([3] if reason else []) and (reason is None or reason in rejects[0].reason), rejects


def test_a_file_still_being_written_reads_as_incomplete(tmp_path):
    for body in ("", "guid,title\n", "guid,ti"):
        (tmp_path / "w.csv").write_text(body)
        with pytest.raises(BadFile) as err:
            parse(tmp_path / "w.csv")
        assert err.value.incomplete, body


def test_a_prefix_is_read_as_it_was(tmp_path):
    path = tmp_path / "grow.csv"
    path.write_text("guid,title\n1,First\n2,Appended later\n")
    info, chunks = read_headlines(path, size=len("guid,title\n1,First\n"))
    assert [h.title for c in chunks for h in c.headlines] == ["First"]


@pytest.mark.parametrize("codec, bom", [("utf-16-le", "\ufeff"), ("utf-16-be", "\ufeff"), ("utf-32-le", "\ufeff"), ("utf-32-be", "\ufeff")])
def test_utf16_and_utf32_with_a_bom_are_text(tmp_path, codec, bom):
    path = tmp_path / "wide.csv"
    path.write_bytes((bom + "guid,title\r\n1,Café crème déjà vu\r\n2,Второй\r\n").encode(codec))
    info, heads, rejects = parse(path)
    assert [h.title for h in heads] == ["Café crème déjà vu", "Второй"] and not rejects
    assert info.encoding.startswith(codec[:6])


def test_titles_are_normalised_before_identity(tmp_path):
    import unicodedata

    path = tmp_path / "n.csv"
    title = "Café  crème\u200b déjà\u00a0vu"
    path.write_text("title,description\n" + "\n".join(f"{t},d\u200b  x" for t in (title, unicodedata.normalize("NFD", title))) + "\n")
    _, heads, _ = parse(path)
    assert [h.title for h in heads] == ["Café crème déjà vu"] * 2 and heads[0].description == "d x"
    assert heads[0].key == heads[1].key


def test_dates_as_people_write_them_with_the_day_month_order_decided_per_file(tmp_path):
    day_first = tmp_path / "day_first.csv"
    day_first.write_text("title,date\nA,10/03/2014 16:52\nB,25/03/2014 08:00\nC,\"March 10, 2014\"\nD,10.03.2014\n")
    info, heads, _ = parse(day_first)
    assert [str(h.published_at) for h in heads] == ["2014-03-10 16:52:00", "2014-03-25 08:00:00", "2014-03-10 00:00:00", "2014-03-10 00:00:00"]
    assert info.dates.dayfirst and "day first" in info.dates.summary()[0] and "line 3" in info.dates.summary()[0]
    month_first = tmp_path / "month_first.csv"
    month_first.write_text("title,date\nA,10/03/2014 16:52\nB,03/25/2014\n")
    info, heads, _ = parse(month_first)
    assert [str(h.published_at.date()) for h in heads] == ["2014-10-03", "2014-03-25"] and "month first" in info.dates.summary()[0]
    unknown = tmp_path / "unknown.csv"
    unknown.write_text("title,date\nA,10/03/2014\n")
    info, heads, _ = parse(unknown)
    assert "no date in the file says which" in info.dates.summary()[0]


def test_a_date_that_is_no_date_or_far_ahead_is_counted_never_silent(tmp_path):
    from service.domain import FUTURE_KEY

    path = tmp_path / "odd.csv"
    path.write_text("title,date\nA,someday\nB,2014\nC,2999-01-01\nD,2014-03-10T08:00:00Z\n")
    info, heads, rejects = parse(path)
    assert not rejects and [h.published_at is None for h in heads] == [True, True, True, False]
    assert heads[2].extra[FUTURE_KEY] == "2999-01-01T00:00:00" and heads[0].extra["unparsed_published_at"] == "someday"
    summary = " | ".join(info.dates.summary())
    assert "2 dates not understood (e.g. 'someday' on line 2)" in summary and "1 date more than 2 days ahead" in summary, summary
