"""The applications built on the engine: the ``rc-clevertap`` CLI, the demo, ``LocalStack``.

This layer may import everything below it, the mocks included (the demo and ``LocalStack`` run
both mocks beside the engine); nothing in the engine imports it back.  Import from the
modules: ``from integration.app.localstack import LocalStack``, ``integration.app.cli:main``
(the console script), :mod:`integration.app.server` (``serve``, ``run_server``).
"""
