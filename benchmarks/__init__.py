"""Benchmarks and the fault harness: ``benchmarks/run.py`` and ``benchmarks/chaos.py``.

Not part of the distribution.  Modules::

    workload.py     realistic RevenueCat webhook bodies with unique ids, engine configuration
    procs.py        engine and mock processes: start, wait until ready, kill, peak RSS
    servers.py      what those processes run: the engine, the bare ceiling app, the mocks
    load.py         HTTP load: wrk with a generated Lua script, or a Python fallback process
    rawhttp.py      a minimal keep-alive HTTP/1.1 client, cheap enough to measure with
    senders.py      a paced webhook sender, a job pool, the client figure
    measure.py      the sections of run.py, each beside its ceiling
    run.py          throughput, latency and memory figures beside their ceilings (the CLI)
    fuzz.py         malformed webhook bodies from seeded generators
    chaos.py        SIGKILLs under faults (nothing lost?) and a receiver fuzzer (no 500s?)
    mock_upload.py  the CleverTap mock's own validate-and-store rate
"""
