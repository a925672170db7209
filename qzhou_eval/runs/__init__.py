"""Running benchmark suites through mteb 2.x: task selection, offline data, results, manifests."""
