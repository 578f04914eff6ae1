"""Getting WARC bytes: a snapshot's listing (listing), downloads over HTTP(S) with retries, resume and a deadline
per attempt (download, watchdog)."""
