"""The demo: a mini Common Crawl built from bundled real pages and served on 127.0.0.1 (minicc)."""
