"""Self-contained HTML reports (runs, grids, nightlies): inline CSS, plots as base64 PNGs."""
