"""The local API socket: users' ``ds01`` commands reach the service layer through it.

``ds01-api`` (:mod:`.main`) serves :mod:`.server` on a Unix socket (default
``/run/ds01/api.sock``, mode 0666); the caller is whoever the kernel says is at the other end.
:mod:`.client` is the CLI's side.
"""
