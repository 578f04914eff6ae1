"""How work runs on Ray: the one stage runner (runner), starting or joining Ray (ray_runtime), the cluster-wide
download slots (slots) and progress lines (progress)."""
