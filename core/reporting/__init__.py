"""Reading runs and sweeps back: tables, diffs, ablation views, report pages."""
