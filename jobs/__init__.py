"""Entry points that wire pipeline/ and eval/ together: run, demo, score, report, data, verify,
grid, nightly (each command in its own module)."""
