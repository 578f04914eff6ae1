"""PII anonymization: e-mails and public IPs replaced, private and reserved addresses kept."""

from __future__ import annotations

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crawlproc.dedup.pii import PiiAnonymizer, anonymize, is_public_ip
from crawlproc.recipe import PiiConfig


def test_emails_are_replaced():
    text = "Write to john.doe+news@mail.example.co.uk or JANE@Corp.COM, not to @handle or a@b."
    out = anonymize(text)
    assert out == "Write to email@example.com or email@example.com, not to @handle or a@b."


@pytest.mark.parametrize("ip", ["8.8.8.8", "151.101.1.69", "2606:4700:4700::1111", "2001:4860:4860::8888"])
def test_public_addresses_are_replaced(ip):
    assert anonymize(f"server at {ip}, port 80") == "server at 0.0.0.0, port 80"


@pytest.mark.parametrize(
    "ip",
    ["10.1.2.3", "192.168.0.1", "172.16.5.4", "127.0.0.1", "169.254.1.1", "192.0.2.7", "0.0.0.0",
     "::1", "fe80::1", "fd00::42", "2001:db8::1"],
)
def test_private_and_reserved_addresses_are_kept(ip):
    text = f"connect to {ip} now"
    assert anonymize(text) == text
    assert not is_public_ip(ip)


@pytest.mark.parametrize(
    "text",
    ["version 1.2.3.4.5 released", "at 12:30:45 today", "999.1.1.1 is no address", "ratio 3:2:1 of ab:cd",
     "c++::std::vector", "sha 1.22.333.4444"],
)
def test_things_that_only_look_like_addresses_are_kept(text):
    assert anonymize(text) == text


def test_custom_placeholders_counts_and_disable():
    cfg = PiiConfig(email_replacement="<EMAIL>", ip_replacement="<IP>")
    anon = PiiAnonymizer(cfg)
    assert anon("mail me@x.org from 1.1.1.1 or 10.0.0.1") == "mail <EMAIL> from <IP> or 10.0.0.1"
    assert (anon.counts.emails, anon.counts.ips) == (1, 1)
    text = "me@x.org 1.1.1.1"
    assert anonymize(text, PiiConfig(enabled=False)) == text


def test_replacement_is_idempotent():
    once = anonymize("a@b.com 8.8.4.4 2a00:1450:4001:80b::200e")
    assert anonymize(once) == once
    assert "8.8.4.4" not in once and "2a00" not in once


E = PiiConfig(email_replacement="<EMAIL>", ip_replacement="<IP>")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Write to us...info@company.com today", "Write to us...<EMAIL> today"),  # after an ellipsis
        (".email@example.com", ".<EMAIL>"),  # a leading dot is punctuation, the rest is the address
        ("Abc..123@example.com", "<EMAIL>"),  # two dots in a row: still one local part
        ("mail email@123.123.123.123 now", "mail <EMAIL> now"),  # an IP as the domain: no local part kept
        ("mail email@[123.123.123.123] now", "mail <EMAIL> now"),
        ("mail user@[IPv6:2001:db8::1].", "mail <EMAIL>."),
        ('quoted "john doe"@example.org here', "quoted <EMAIL> here"),
        ("José.García@correo.es y 用户@例子.广告", "<EMAIL> y <EMAIL>"),  # other scripts
        ("(mailto:o'brien_x@mail.example.com)", "(mailto:<EMAIL>)"),
        ("a@b@c.example.com", "a@<EMAIL>"),
    ],
)
def test_no_part_of_an_email_survives(text, expected):
    anon = PiiAnonymizer(E)
    assert anon(text) == expected
    assert anon.counts.ips == 0


@settings(max_examples=300, deadline=None)
@given(
    local=st.from_regex(r"zq[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]{1,12}(\.{1,2}[A-Za-z0-9_+-]{1,8}){0,3}", fullmatch=True),
    domain=st.sampled_from(["example.com", "mail.example.co.uk", "123.45.67.89", "[10.0.0.1]", "bücher.de"]),
    before=st.sampled_from(["", " ", ".", "...", "(", "<", ",", "\n", ":", "'", '"', "mailto:"]),
    after=st.sampled_from(["", " ", ".", ",", ")", ">", "\n", "...", "!"]),
)
def test_generated_addresses_leave_no_trace(local, domain, before, after):
    text = f"Please write {before}{local}@{domain}{after} soon."
    out = anonymize(text, E)
    assert "<EMAIL>" in out
    assert "zq" not in out and "@" not in out, out
    assert out.endswith(f"{after} soon.")


@settings(max_examples=200, deadline=None)
@given(st.lists(st.lists(st.sampled_from(
    ["word", "3.5", "1.2.3", "8.8.8.8", "10.0.0.1", "151.101.1.69.", "a@b.com", "x@[1.2.3.4]", "@handle", "12:30",
     "2001:4860:4860::8888", "fe80::1", "::", "a:b", "Ünïcode", "e-mail:", "１.２.３.４", "v1.2.3.4", "\n"]),
    max_size=12).map(" ".join), min_size=1, max_size=30))
def test_candidate_rows_hold_every_text_the_anonymizer_changes(texts):
    from crawlproc.dedup.pii import candidate_rows

    rows = set(candidate_rows(pa.array(texts)).tolist())
    changed = {i for i, t in enumerate(texts) if anonymize(t) != t}
    assert changed <= rows


def test_candidates_of_texts_that_touch_in_the_column():
    """Found by the property test above: one text's match must not eat the next text's address."""
    from crawlproc.dedup.pii import candidate_rows

    texts = ["151.101.1.69.", "8.8.8.8", "a 12:3", "4::1"]
    assert {0, 1, 3} <= set(candidate_rows(pa.array(texts)).tolist())


def test_an_at_sign_is_a_candidate_only_between_a_local_part_and_a_domain():
    """A handle ("follow @name") or a lone '@' cannot be an address: its text skips the anonymizer. An '@'
    after a quote, a dot or a letter of any script, before a letter, a digit or '[' stays a candidate."""
    from crawlproc.dedup.pii import candidate_rows

    texts = ["follow @name today", "a @ b", "mail me@", '"john doe"@example.com', "письмо@пример.рф",
             "Abc..123@example.com", "x@[1.2.3.4]", "user@١٢٣.١.١.١", "plain text"]
    rows = set(candidate_rows(pa.array(texts)).tolist())
    assert rows == {3, 4, 5, 6, 7}
    assert all(anonymize(texts[i]) == texts[i] for i in set(range(len(texts))) - rows)
    assert all(anonymize(texts[i]) != texts[i] for i in (3, 4, 5, 6))
