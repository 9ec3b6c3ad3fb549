# The host tools a family or a maker runs: deploy, provision, nightstand_cmd, typecheck.
