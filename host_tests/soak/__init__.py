# The short CI variant of the small-heap soak (the full run is `make soak`).
