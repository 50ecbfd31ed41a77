"""The service layer: one function per user-level operation, each taking the caller.

Transports (the ``ds01`` CLI in-process for root, the local API socket for everyone else, the
Docker API gateway, and later the web/REST API) authenticate the caller and call these
operations; none of them decides a rule itself. See :mod:`ds01_core.services.operations`.
"""
