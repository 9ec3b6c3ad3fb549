# Nightstand entry point. On a board, boot.py runs first and may set SAFE_MODE (button held at power-on,
# or a `safe_mode` file) so that a maker can always reach the REPL with mpremote.
if not globals().get("SAFE_MODE"):
    from firmware.shell import app

    app.run()
