"""The Dask compute backend: large tables read and computed on a Dask cluster (README, "Past one
machine: Dask")."""
