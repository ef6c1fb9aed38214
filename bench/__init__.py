"""The benchmark: import and dispatch at breach scale, every service in its own process.

`python -m bench --help` lists the options; results go to `bench/results/latest.json` and
`bench/results/latest.png`.
"""
