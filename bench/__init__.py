"""Benchmarks for kco-sync (BENCHMARKS.md): `bench/run.sh` drives the service under gunicorn
with wrk; `longpoll.py` and `pricing.py` are smaller, single-purpose measurements."""
