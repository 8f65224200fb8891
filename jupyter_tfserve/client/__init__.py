"""Talking to a model server from anywhere: a kernel, a script, the benchmark's workers.

``client`` holds :class:`~.client.Client` (REST and gRPC); ``endpoints`` where a
server answers and the one place that finds it (an explicit URL, :mod:`.discovery`'s
trails, a server this process runs); ``data`` maps user data onto a signature;
``progress`` shows long steps. This layer sits below the notebook tools and the
benchmark, and above the server: it imports neither.

Discovery is standard library only and the Jupyter server imports it on start,
so this package imports nothing itself.
"""
