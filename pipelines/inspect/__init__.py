"""Looking at what a run did: why a document was kept or removed (explain, classify_explain) and the HTML report
(report/)."""
