# Every decoder and parser against hostile input (seeded, so a failure reproduces).
