"""Built-in plugins: ordinary plugins that ship with the core and can be disabled by name."""
