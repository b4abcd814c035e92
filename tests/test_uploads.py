"""Zip and multi-file uploads: traversal, bombs, links, nesting and junk are refused with a reason."""

import io
import stat
import zipfile

import pytest

from app.uploads import UploadLimits, unpack


def _zip(entries: dict[str, bytes], **info_kw) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, data in entries.items():
            zf.writestr(name, data)
    return buf.getvalue()


def _reasons(out) -> dict[str, str]:
    return dict(out.rejected)


def test_zipped_folder_gives_breeds_from_sub_folders():
    data = _zip({"raccoon/a.jpg": b"A", "raccoon/northern/b.jpg": b"B", "raccoon/northern/c.jpg": b"C"})
    out = unpack([("photos.zip", data)])
    assert not out.rejected
    got = {c.name: c.breed for c in out.candidates}
    assert got == {"photos.zip:raccoon/a.jpg": None, "photos.zip:raccoon/northern/b.jpg": "northern",
                   "photos.zip:raccoon/northern/c.jpg": "northern"}
    assert out.candidates[1].data == b"B"


def test_path_traversal_and_absolute_paths_are_refused():
    data = _zip({"../../etc/evil.jpg": b"x", "/abs/evil.jpg": b"y", "ok/fine.jpg": b"z", "a\\..\\b.jpg": b"w"})
    out = unpack([("bad.zip", data)])
    reasons = _reasons(out)
    assert "traversal" in reasons["bad.zip:../../etc/evil.jpg"]
    assert "absolute" in reasons["bad.zip:/abs/evil.jpg"]
    assert "backslash" in reasons["bad.zip:a\\..\\b.jpg"]
    assert [c.name for c in out.candidates] == ["bad.zip:ok/fine.jpg"]


def test_zip_bomb_is_refused_by_ratio_and_by_capped_read():
    bomb = _zip({"big.jpg": b"\0" * 20_000_000, "small.jpg": b"ok"})
    out = unpack([("bomb.zip", bomb)])
    assert "zip bomb" in _reasons(out)["bomb.zip:big.jpg"]
    assert [c.name for c in out.candidates] == ["bomb.zip:small.jpg"]
    # A declared size within limits but more data than allowed is cut off at the limit.
    out = unpack([("bomb.zip", _zip({"x.jpg": b"\1" * 5000}))], UploadLimits(max_file_bytes=1000))
    assert "too large" in _reasons(out)["bomb.zip:x.jpg"]


def test_links_nested_archives_metadata_and_garbage():
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        link = zipfile.ZipInfo("link.jpg")
        link.external_attr = (stat.S_IFLNK | 0o777) << 16
        zf.writestr(link, "/etc/passwd")
        zf.writestr("inner.zip", _zip({"a.jpg": b"a"}))
        zf.writestr("__MACOSX/._a.jpg", b"meta")
        zf.writestr("real.jpg", b"r")
    out = unpack([("mixed.zip", buf.getvalue()), ("notzip.zip", b"this is not a zip"), ("x.tar.gz", b"..")])
    reasons = _reasons(out)
    assert "symbolic link" in reasons["mixed.zip:link.jpg"]
    assert "archive inside an archive" in reasons["mixed.zip:inner.zip"]
    assert "metadata" in reasons["mixed.zip:__MACOSX/._a.jpg"]
    assert "not a valid zip" in reasons["notzip.zip"]
    assert "only .zip" in reasons["x.tar.gz"]
    assert [c.name for c in out.candidates] == ["mixed.zip:real.jpg"]


def test_limits_on_count_and_total_size():
    files = [(f"{i}.jpg", b"x" * 100) for i in range(10)]
    out = unpack(files, UploadLimits(max_files=4))
    assert len(out.candidates) == 4 and len(out.rejected) == 6
    out = unpack(files, UploadLimits(max_total_bytes=350))
    assert len(out.candidates) == 3 and "in total" in out.rejected[0][1]
    out = unpack([("plain.jpg", b"p")], breed="siamese")
    assert out.candidates[0].breed == "siamese"


def test_many_small_entries_that_add_up_to_a_bomb_are_refused():
    """Each entry under the per-entry floor, the archive as a whole 1000:1: the inflating entries
    are refused, an ordinary photo beside them goes on."""
    members = {f"z{i}.jpg": b"\0" * 900_000 for i in range(5)}
    members["photo.jpg"] = bytes(range(256)) * 40
    out = unpack([("many.zip", _zip(members))])
    assert all("in total" in _reasons(out)[f"many.zip:z{i}.jpg"] for i in range(5))
    assert [c.name for c in out.candidates] == ["many.zip:photo.jpg"]


@pytest.mark.integration
def test_an_upload_of_more_than_1000_files_is_taken_whole(server_env, start_server):
    """Starlette stops multipart bodies at 1000 parts by default; uploads take `upload_max_files` (5000)."""
    import httpx

    srv = start_server(server_env)
    parts = [("files", (f"f{i}.jpg", b"not an image")) for i in range(1200)]
    r = httpx.post(f"{srv.url}/v1/species/fox/photos", files=parts,
                   headers={"Authorization": "Bearer test-admin-token"}, timeout=120)
    assert r.status_code == 422, r.text  # every file rejected, each with its reason: nothing usable
    assert len(r.json()["detail"]["rejected"]) == 1200
