"""Languages as Common Crawl's index writes them, and the recipe's language list in those terms.

The index's `content_languages` holds up to three ISO 639-3 codes, most used first ("eng", "zho,eng"), from
CLD2 run on the page's HTML; it is empty or null when CLD2 found no language. The recipe keeps lid.176
labels ("en", "zh", "als"). `index_codes(keep)` says which index codes a recipe's languages may appear under:

- the lid.176 label's own ISO 639-3 code (crawlproc/data/langid/lid176_iso639_3.tsv), when CLD2 can name
  that language (`CLD2_CODES`, the codes of CC's CLD2 wrapper);
- for languages CLD2 does not know, the languages CLD2 names them as (`WRITTEN_AS`: Alemannic comes out as
  German, Cantonese as Chinese, Serbo-Croatian as Croatian, Serbian or Bosnian);
- a language with neither cannot be selected by language: `index_codes` returns None and the selection
  keeps every language (safe: nothing is lost, nothing is saved).

How far CLD2 and lid.176 disagree is measured by bench/bench_index_select.py on real pages; the recipe's
`fetch.language_margin` adds codes the measurement says are worth selecting too.
"""

from __future__ import annotations

from functools import cache
from importlib import resources

# every language CC's CLD2 wrapper (commoncrawl/language-detection-cld2, Language.java) can write
CLD2_CODES = frozenset("""
eng dan nld fin fra deu heb ita jpn kor nor pol por rus spa swe zho ces ell isl lav lit ron hun est bul hrv srp
gle glg tgl tur ukr hin mkd ben ind lat msa mal cym nep tel sqi tam bel jav oci urd bih guj tha ara cat epo eus
ina kan pan gla swa slv mar mlt vie fry slk fao sun uzb amh aze kat tir fas bos sin nno xho zul grn sot tuk kir
bre twi yid som uig kur mon hye lao snd roh afr ltz mya khm bod div chr syr lif ori asm cos ile kaz lin pus que
sna tgk tat ton yor mri wol abk aar aym bak bis dzo fij kal hau hat ipk iku kas kin mlg nau orm run smo sag san
ssw tso tsn vol zha kha sco lug glv aka ibo mfe haw ceb ewe gaa blu kri loz lua luo new nya oss pam nso raj crs
tum ven war
""".split())

# lid.176 languages CLD2 does not know, and what CLD2 calls them instead (the nearest language it has)
WRITTEN_AS: dict[str, tuple[str, ...]] = {
    "als": ("deu",), "bar": ("deu",), "pfl": ("deu",), "nds": ("deu", "nld"), "lb": ("ltz", "deu"),
    "yue": ("zho",), "wuu": ("zho",),
    "sh": ("hrv", "srp", "bos"),
    "arz": ("ara",), "azb": ("aze", "fas"), "mzn": ("fas",), "lrc": ("fas",), "ckb": ("kur",),
    "hif": ("hin",), "bh": ("bih", "hin"), "mai": ("bih", "hin"), "bpy": ("ben",), "gom": ("mar", "kan"),
    "dty": ("nep",),
    "an": ("spa",), "ast": ("spa",), "ext": ("spa",), "mwl": ("por",), "vec": ("ita",), "lmo": ("ita",),
    "eml": ("ita",), "nap": ("ita",), "scn": ("ita",), "pms": ("ita",), "sc": ("ita",),
    "wa": ("fra",), "frr": ("fry", "deu"), "vls": ("nld",), "li": ("nld",), "rue": ("ukr",),
}


@cache
def lid_to_iso639_3() -> dict[str, str]:
    text = resources.files("crawlproc").joinpath("data/langid/lid176_iso639_3.tsv").read_text("utf-8")
    pairs = (line.split("\t") for line in text.splitlines() if line and not line.startswith("#"))
    return {label: code for label, code in pairs}


def index_codes(keep: list[str] | tuple[str, ...], margin: list[str] | tuple[str, ...] = ()) -> frozenset[str] | None:
    """The index language codes under which pages in `keep` (lid.176 labels) may be listed, plus `margin`
    (ISO 639-3 codes); None when some kept language cannot be told from the index (select every language)."""
    if not keep:
        return None
    table = lid_to_iso639_3()
    codes: set[str] = set(margin)
    for label in keep:
        own = table.get(label)
        if own in CLD2_CODES:
            codes.add(own)
        if label in WRITTEN_AS:
            codes.update(WRITTEN_AS[label])
        elif own not in CLD2_CODES:
            return None
    return frozenset(codes)
