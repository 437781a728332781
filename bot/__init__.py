"""The Discord bot: a thin transport over the engine in ``index``."""
