"""Entry points that wire pipeline/ and eval/ together: run, demo, score, report, grid, nightly."""
