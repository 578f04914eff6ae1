"""Reading a token set (tokens/<name>/, local or on an object store) for training: its checked manifest, its
shard URIs per split, its identity. The format itself is tokenizer/shards.py's; nothing here writes shards."""

from __future__ import annotations

from dataclasses import dataclass

from crawlproc.store.storage import Storage, default_storage, join, normalize
from tokenizer.shards import EOT_TOKEN, MANIFEST, ShardError, manifest_digest, parse_manifest

__all__ = ["EOT_TOKEN", "ShardError", "TokenSet", "open_token_set"]


@dataclass
class TokenSet:
    uri: str
    manifest: dict
    digest: str  # sha256 of manifest.json's bytes: which token set a run trained on
    storage: Storage

    @property
    def vocab_size(self) -> int:
        return self.manifest["tokenizer"]["vocab_size"]

    @property
    def eot_id(self) -> int:
        return self.manifest["tokenizer"]["eot_id"]

    @property
    def mix(self) -> dict | None:
        """The mix recipe when this token set was made by `crawlproc mix`."""
        return self.manifest.get("mix")

    def has_split(self, split: str) -> bool:
        return any(s["split"] == split for s in self.manifest["shards"])

    def shard_uris(self, split: str) -> list[str]:
        """The split's shards in manifest order; a listed shard that is missing is an error, not a skip."""
        uris = [join(self.uri, s["file"]) for s in self.manifest["shards"] if s["split"] == split]
        present = {e.uri for e in self.storage.list(self.uri, suffix=".parquet")}
        missing = [u for u in uris if u not in present]
        if missing:
            raise ShardError(f"manifest lists shards that do not exist: {', '.join(missing[:5])}"
                             + (f" and {len(missing) - 5} more" if len(missing) > 5 else ""))
        return uris

    def read(self, name: str) -> bytes | None:
        """A file of the token set (tokenizer.json, ...), or None when it is not there."""
        uri = join(self.uri, name)
        return self.storage.read_bytes(uri) if self.storage.exists(uri) else None


def open_token_set(uri: str, storage: Storage | None = None) -> TokenSet:
    """The token set at `uri` (a tokens/<name> folder or URI), its manifest checked (tokenizer/shards.py)."""
    storage = storage or default_storage()
    uri = normalize(uri)
    where = join(uri, MANIFEST)
    try:
        data = storage.read_bytes(where)
    except FileNotFoundError:
        data = None
    except OSError as e:
        if storage.exists(where):
            raise ShardError(f"cannot read {where}: {e}") from e
        data = None
    if data is None:
        raise ShardError(f"{where} not found: pass a tokens/<name> folder written by `crawlproc tokenize` "
                         "or `crawlproc mix`")
    manifest = parse_manifest(data, where, local_root=storage.local_path(uri))
    return TokenSet(uri=uri, manifest=manifest, digest=manifest_digest(data), storage=storage)
