"""The harm audit: measures, replicates and comparisons, sweeps, reports, calibration."""
