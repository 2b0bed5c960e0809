"""Design-space exploration: sweep specs, sweeps on Dask, Pareto fronts, report pages."""
