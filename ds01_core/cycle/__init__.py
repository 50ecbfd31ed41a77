"""The daemon's cycle: detect → reconcile → enforce → idle → notify, and the daemon that runs it."""
