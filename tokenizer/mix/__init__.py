"""Mixing token sets: what a mix is asked to be (config), the decisions as functions of (seed, document id)
(decide), and the passes that carry them out over shards (passes)."""
