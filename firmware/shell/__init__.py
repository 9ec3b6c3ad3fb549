# Thin asyncio shell: tasks that feed the core and carry its outputs to the board adapter.
