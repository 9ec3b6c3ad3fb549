# Nightscout direction strings from a trend in mg/dL/min (the thresholds Nightscout and Dexcom use).


def direction(trend):
    if trend is None:
        return "NONE"
    if trend != trend:  # NaN from a sensor's special value
        return "NOT COMPUTABLE"
    if trend > 3:
        return "DoubleUp"
    if trend > 2:
        return "SingleUp"
    if trend > 1:
        return "FortyFiveUp"
    if trend >= -1:
        return "Flat"
    if trend >= -2:
        return "FortyFiveDown"
    if trend >= -3:
        return "SingleDown"
    return "DoubleDown"


_ARROWS = {"DoubleUp": "⇈", "SingleUp": "↑", "FortyFiveUp": "↗", "Flat": "→",
           "FortyFiveDown": "↘", "SingleDown": "↓", "DoubleDown": "⇊"}


def arrow(trend):
    return _ARROWS.get(direction(trend), "?")
