"""The storage layer on a local disk and on a real S3-compatible server (moto on 127.0.0.1), with faults
injected by a proxy: all-or-nothing writes, listing, Parquet, temporary files of other processes left alone."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import uuid
from types import SimpleNamespace

import pyarrow as pa
import pytest

from crawlproc.store.layout import Layout, LayoutError, Markers, check_name
from crawlproc.store.storage import Storage, StorageError, is_remote, join, normalize
from s3 import FaultProxy, Rule


def table(n: int) -> pa.Table:
    return pa.table({"id": [f"d{i}" for i in range(n)], "text": ["x" * (i % 7) for i in range(n)]})


@pytest.fixture
def bucket(s3_server):
    return s3_server.bucket(f"b-{uuid.uuid4().hex[:8]}")


@pytest.fixture(params=["local", "s3"])
def root(request, tmp_path):
    if request.param == "local":
        return str(tmp_path / "root")
    return request.getfixturevalue("bucket") + "/some/prefix"


def test_uris_and_paths():
    assert is_remote("s3://b/x") and is_remote("gs://b/x") and not is_remote("/tmp/x") and not is_remote("file:///x")
    assert normalize("file:///tmp/a/") == "/tmp/a" and normalize("s3://b/p/") == "s3://b/p"
    assert normalize("rel").startswith("/")
    assert join("s3://b/p", "x", "y.json") == "s3://b/p/x/y.json"


def test_write_read_list_delete(root):
    st = Storage()
    st.write_bytes(join(root, "a", "one.bin"), b"1")
    st.write_json(join(root, "a", "two.json"), {"k": [1, 2]})
    st.write_table(join(root, "a", "b", "t.parquet"), table(10))
    st.write_table(join(root, "a", "empty.parquet"), table(0))
    assert st.read_bytes(join(root, "a", "one.bin")) == b"1"
    assert st.read_json(join(root, "a", "two.json")) == {"k": [1, 2]}
    assert st.read_json(join(root, "a", "missing.json"), "absent") == "absent"
    assert st.read_table(join(root, "a", "b", "t.parquet")).equals(table(10))
    assert st.read_table(join(root, "a", "empty.parquet")).num_rows == 0
    assert st.parquet_file(join(root, "a", "empty.parquet")).metadata.num_row_groups == 0
    assert [e.name for e in st.list(join(root, "a"))] == ["empty.parquet", "one.bin", "two.json"]
    assert [e.name for e in st.list(join(root, "a"), recursive=True, suffix=".parquet")] == [
        "t.parquet", "empty.parquet"]  # sorted by URI: a/b/t.parquet before a/empty.parquet
    assert st.list(join(root, "nothing-here")) == []
    st.delete(join(root, "a", "one.bin"))
    st.delete(join(root, "a", "one.bin"))  # deleting what is gone is fine
    assert not st.exists(join(root, "a", "one.bin"))
    st.delete_tree(join(root, "a"))
    assert st.list(join(root, "a"), recursive=True) == []


def test_bytes_are_kept_as_they_are_whatever_the_name_says(root):
    """pyarrow gzips a ".gz" name on writing and gunzips it on reading unless told not to: a WARC must reach
    the store and come back byte for byte."""
    import gzip

    st = Storage()
    data = gzip.compress(b"WARC/1.0\r\n" * 100)
    st.write_bytes(join(root, "x.warc.gz"), data)
    assert st.read_bytes(join(root, "x.warc.gz")) == data
    with st.open_input(join(root, "x.warc.gz")) as f:
        assert f.read() == data and f.size() == len(data)


def test_a_failed_write_leaves_nothing(root):
    st = Storage()
    target = join(root, "t.parquet")
    st.write_table(target, table(3))
    unwritable = pa.table({"a": [1, 2], "b": pa.array([(1, 2, 3)] * 2, pa.month_day_nano_interval())})
    with pytest.raises(pa.ArrowNotImplementedError):
        st.write_table(target, unwritable)
    assert st.read_table(target).equals(table(3))  # the old file is intact
    assert [e.name for e in st.list(root, recursive=True)] == ["t.parquet"]
    local = st.local_path(root)
    if local is not None:
        assert [p.name for p in local.iterdir()] == ["t.parquet"]  # no temporary file left either


def test_an_upload_that_never_completes_publishes_no_object(s3_server, bucket):
    proxy = FaultProxy(s3_server.port)
    try:
        st = Storage(SimpleNamespace(endpoint_url=proxy.endpoint, retries=2, connect_timeout_s=2,
                                     request_timeout_s=5, anonymous_buckets=[]))
        proxy.add(Rule("reset", method="PUT", times=1000), Rule("reset", method="POST", times=1000))
        with pytest.raises(OSError):
            st.write_bytes(join(bucket, "never.bin"), os.urandom(1 << 20))
    finally:
        proxy.close()
    assert not Storage().exists(join(bucket, "never.bin"))


def test_markers_list_in_one_call_and_replace_old_fingerprints(root):
    m = Markers(Storage(), join(root, "_done"), join(root, "_failed"))
    m.mark_done("x.y", "a" * 16, {"stats": {"kept": 1}})
    m.mark_done("z", "b" * 16, {})
    assert m.done() == {"x.y": "a" * 16, "z": "b" * 16}
    assert m.read("x.y", "a" * 16)["stats"] == {"kept": 1}
    m.mark_failed("w", {"error": "E: boom"})
    assert m.failed() == {"w": m.failed()["w"]} and m.failed()["w"]["error"] == "E: boom"
    m.mark_failed("z", {"error": "old failure"})
    assert "z" not in m.failed()  # done since: a later success wins
    m.unmark("z", "b" * 16)
    assert "z" not in m.done()


def test_object_store_retries_faults_and_reads_back_exactly(s3_server, bucket):
    proxy = FaultProxy(s3_server.port)
    try:
        st = Storage(SimpleNamespace(endpoint_url=proxy.endpoint, retries=10, connect_timeout_s=5,
                                     request_timeout_s=10, anonymous_buckets=[]))
        data = os.urandom(3 << 20)
        proxy.add(Rule("503", method="PUT"), Rule("reset", method="PUT"))
        st.write_bytes(join(bucket, "blob.bin"), data)
        proxy.add(Rule("503"), Rule("reset"), Rule("truncate"), Rule("slow", delay_s=0.3))
        assert st.read_bytes(join(bucket, "blob.bin")) == data
        st.write_table(join(bucket, "t.parquet"), table(1000))
        proxy.add(Rule("503"), Rule("truncate"))
        assert st.read_table(join(bucket, "t.parquet")).equals(table(1000))
        kinds = {k for k, _, _ in proxy.injected}
        assert {"503", "reset", "truncate", "slow"} <= kinds
    finally:
        proxy.close()


def test_temporary_files_of_live_processes_are_kept(tmp_path):
    st = Storage()
    d = tmp_path / "docs"
    d.mkdir()
    host = socket.gethostname()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    mine = d / f".x.parquet.{host}-{os.getpid()}-0123abcd.tmp"
    gone = d / f".x.parquet.{host}-{dead.pid}-4567abcd.tmp"
    other_host = d / f".x.parquet.elsewhere.example-{os.getpid()}-89abcdef.tmp"
    for p in (mine, gone, other_host):
        p.write_bytes(b"partial")
    assert st.clean_partials(str(tmp_path)) == 1
    assert mine.exists() and other_host.exists() and not gone.exists()
    os.utime(other_host, (0, 0))  # a day-old file of another host: its writer is gone
    assert st.clean_partials(str(tmp_path)) == 1 and not other_host.exists()


def test_names_that_would_escape_are_rejected(tmp_path):
    for bad in ("../x", "a/b", ".hidden", "", "x" * 300, ".."):
        with pytest.raises(LayoutError):
            check_name(bad)
    layout = Layout(str(tmp_path))
    with pytest.raises(LayoutError):
        layout.snapshot("../../etc")
    with pytest.raises(LayoutError):
        layout.tokens("../x")
    assert layout.snapshot("CC-MAIN-2024-10").uri == str(tmp_path / "CC-MAIN-2024-10")


def test_snapshots_lists_every_folder_with_state(root):
    st = Storage()
    layout = Layout(root, st)
    st.write_json(join(root, "A", "_failed", "f.json"), {"error": "x"})
    st.write_json(join(root, "B", "_done", "g.0123456789abcdef.json"), {})
    st.write_json(join(root, "tokens", "bpe", "manifest.json"), {})
    st.write_json(join(root, "unrelated", "notes.json"), {})
    assert layout.snapshots() == ["A", "B"]


def test_a_pattern_names_a_file_a_folder_or_a_glob_the_same_way_locally_and_in_a_bucket(root):
    """Storage.expand: the WARC inputs and a given columnar index are named this way; a glob keeps glob.glob's
    rules in a bucket too (it used to let `*` cross folder levels there, and a glob never named a folder)."""
    st = Storage()
    names = ["w/a.warc.gz", "w/notes.txt", "w/sub/b.warc.gz", "w/sub/deep/c.warc", "w/.hidden/e.warc.gz",
             "w/.f.warc.gz", "x/crawl=1/p.warc.gz", "x/crawl=2/q.warc.gz", "x/crawl=2/r.txt", "x/top.warc.gz"]
    for name in names:
        st.write_bytes(join(root, name), b"x")

    def expand(pattern):
        got = st.expand(join(root, pattern), in_folder=lambda name: ".warc" in name)
        prefix = (os.path.abspath(root) if not is_remote(root) else root) + "/"
        assert all(g.startswith(prefix) for g in got) and got == sorted(got), got
        return [g[len(prefix):] for g in got]

    # a local folder lists its hidden entries (rglob) as a bucket does: only the wildcards skip dot-names
    under_w = ["w/.f.warc.gz", "w/.hidden/e.warc.gz", "w/a.warc.gz", "w/sub/b.warc.gz", "w/sub/deep/c.warc"]
    assert expand("w/a.warc.gz") == ["w/a.warc.gz"]
    assert expand("w/notes.txt") == ["w/notes.txt"]  # named: taken as it is
    assert expand("w") == expand("w/") == under_w
    assert expand("w/*.warc.gz") == ["w/a.warc.gz"]  # `*` stays in its level, and skips dot-names
    assert expand("w/.*.warc.gz") == ["w/.f.warc.gz"]
    assert expand("w/**/*.warc*") == ["w/a.warc.gz", "w/sub/b.warc.gz", "w/sub/deep/c.warc"]
    assert expand("w/s?b/*") == ["w/sub/b.warc.gz", "w/sub/deep/c.warc"]  # the folder deep/ expanded
    assert expand("x/crawl=[2-9]") == ["x/crawl=2/q.warc.gz"]  # a folder the glob names: its WARC files
    assert expand("x/*") == ["x/crawl=1/p.warc.gz", "x/crawl=2/q.warc.gz", "x/top.warc.gz"]
    assert expand("nothing") == expand("w/*.parquet") == expand("nothing/**/*") == []
    if is_remote(root):
        with pytest.raises(StorageError, match="name the bucket in full"):
            st.expand(root.split("/")[0] + "//b-*/w", in_folder=lambda name: True)
