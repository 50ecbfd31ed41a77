"""Transports: the ``ds01`` CLI, the local API socket and the Docker API gateway.

Each authenticates its caller and calls the service layer; none decides a rule itself.
"""
