"""Benchmarks and the fault harness: ``benchmarks/run.py`` and ``benchmarks/chaos.py``.

Not part of the distribution.  Modules::

    workload.py     realistic RevenueCat webhook bodies with unique ids, engine configuration
    procs.py        engine and mock processes: start, wait until ready, kill, peak RSS
    servers.py      what those processes run: the engine, the bare ceiling app, the mocks
    load.py         HTTP load: wrk with a generated Lua script, or an httpx fallback process
    run.py          throughput, latency and memory figures beside their ceilings
    chaos.py        SIGKILLs under faults (nothing lost?) and a receiver fuzzer (no 500s?)
    mock_upload.py  the CleverTap mock's own validate-and-store rate
"""
