"""Fixtures for the classifier tests, built at test time from the real pages in tests/data/html (see its
SOURCES.md): the positives are the pages' gold article texts; the negatives are text of the same pages that
is not the article -- the list of their links' anchor texts, and their navigation, header, footer and sidebar
text. And a tiny transformers model with random weights, with a WordPiece tokenizer trained on those texts.
"""

from __future__ import annotations

import gzip
import json
from dataclasses import dataclass
from pathlib import Path

import pytest
import xxhash

BOILERPLATE = ("//nav|//header|//footer|//aside|//*[contains(@class,'menu') or contains(@class,'footer') or "
               "contains(@class,'nav') or contains(@class,'sidebar') or contains(@id,'footer')]")


@dataclass
class Page:
    key: str
    article: str
    links: str  # the anchor texts of the page, one per line
    boilerplate: str  # navigation, header, footer, sidebar text

    @property
    def negatives(self) -> list[str]:
        return [t for t in (self.links, self.boilerplate) if len(t.split()) >= 5]


def _lines(texts) -> str:
    out = []
    for t in texts:
        t = " ".join(t.split())
        if t:
            out.append(t)
    return "\n".join(out)


def pages(data_dir: Path) -> list[Page]:
    import lxml.html

    html_dir = data_dir / "html"
    truth = json.loads((html_dir / "ground-truth.json").read_text(encoding="utf-8"))
    out = []
    for f in sorted((html_dir / "html").glob("*.html.gz")):
        key = f.name.split(".")[0]
        root = lxml.html.fromstring(gzip.decompress(f.read_bytes()).decode("utf-8", "replace"))
        for bad in root.xpath("//script|//style|//noscript"):
            bad.drop_tree()
        links = _lines(a.text_content() for a in root.iter("a"))
        boiler = _lines(t for el in root.xpath(BOILERPLATE) for t in el.itertext())
        out.append(Page(key, truth[key]["articleBody"], links, boiler))
    return out


def held_back(page: Page, fraction: float = 0.25) -> bool:
    """A fixed split of the pages, by their id."""
    return xxhash.xxh3_64_intdigest(page.key.encode()) % 100 < fraction * 100


def split(data_dir: Path) -> tuple[list[Page], list[Page]]:
    ps = pages(data_dir)
    return [p for p in ps if not held_back(p)], [p for p in ps if held_back(p)]


@pytest.fixture(scope="module", name="pages_split")
def pages_split_fixture(data_dir) -> tuple[list[Page], list[Page]]:
    """(training pages, held-back pages)."""
    return split(data_dir)


def write_jsonl(path: Path, texts: list[str]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts), encoding="utf-8")
    return path


def tiny_transformers_model(folder: Path, texts: list[str], num_labels: int = 1, window: int = 64,
                            labels: list[str] | None = None) -> Path:
    """A 2-layer BERT sequence classifier with random weights (seeded), a regression head when
    num_labels == 1, saved with a WordPiece tokenizer trained on `texts`; nothing is downloaded."""
    import torch
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import BertConfig, BertForSequenceClassification, PreTrainedTokenizerFast

    special = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.train_from_iterator(texts, trainers.WordPieceTrainer(vocab_size=800, special_tokens=special))
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", tok.token_to_id("[CLS]")), ("[SEP]", tok.token_to_id("[SEP]"))])
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]",
                                   sep_token="[SEP]", mask_token="[MASK]", model_max_length=window)
    extra = {}
    if labels:
        extra = {"id2label": dict(enumerate(labels)), "label2id": {v: i for i, v in enumerate(labels)}}
    config = BertConfig(vocab_size=tok.get_vocab_size(), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=window, num_labels=num_labels,
                        problem_type="regression" if num_labels == 1 else None, **extra)
    torch.manual_seed(0)
    model = BertForSequenceClassification(config).eval()
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    fast.save_pretrained(folder)
    return folder
