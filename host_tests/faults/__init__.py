# Fault injection: the fault matrix, power cuts at every byte, task crashes and silences.
