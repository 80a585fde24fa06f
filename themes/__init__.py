"""Theme files shipped with tuichat (installed as the `tuichat.themes` package)."""
