"""The plugin framework: hook specifications, the plugin manager, typed hook calls, the runtime."""
