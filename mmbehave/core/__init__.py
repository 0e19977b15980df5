"""Infrastructure every other layer may use, and which imports nothing of mmbehave outside ``core``.

    paths          where the project lives (all config paths are built from its root)
    atomic         write-to-temp-then-rename file writes
    errors         UserError and its kinds: mistakes a user can fix, reported in one line
    cli            the one decorator every command's ``main`` goes through
    instantiate    config -> objects through ``_target_``, with the execution whitelists
    settings       the typed view of the training config (types checked once, where the config is read)
    config_checks  config mistakes caught before any data or model work
    progress       whether to draw progress bars
    precision      precision names and autocast
"""
