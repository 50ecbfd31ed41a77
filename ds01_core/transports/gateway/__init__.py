"""The Docker API gateway's pieces (issue #7); for now, the create-request policy."""
