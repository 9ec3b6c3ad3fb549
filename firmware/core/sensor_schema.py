# The radio sensor's keys (the single `sensor` object, and the radio kinds of the `sources` list), declared
# once here so that config.py and sources_schema.py both take them without importing each other.
# Boot-only: dropped with the config loader (BOOT_ONLY in firmware/shell/config_store.py).
from firmware.core.checks import bool_ as _bool, int_range as _int_range, one_of as _one_of, str_ as _str


def _hex_key(v):
    if type(v) is not str:
        return "must be a string of 32 hex digits"
    if v == "":
        return None
    if len(v) != 32:
        return "must be 32 hex digits (16 bytes)"
    for c in v:
        if c not in "0123456789abcdefABCDEF":
            return "must be 32 hex digits (16 bytes)"


def _tx_id(v):
    """A Dexcom G6 transmitter id: the 6 characters printed on it (digits and capital letters; "" = unset).
    4-character ids are G7/ONE+ transmitters, which speak another protocol."""
    if type(v) is not str:
        return "must be a string of 6 characters"
    if v == "":
        return None
    if len(v) != 6:
        return "must be the 6 characters printed on the G6 transmitter (G7/ONE+ are not supported)"
    for c in v:
        if not ("0" <= c <= "9" or "A" <= c <= "Z"):
            return "must be digits and capital letters only, as printed"


SCHEMA = {
    "sensor": {
        "kind": ("broadcast", _one_of("broadcast", "cgms", "dexcom_g6")),
        "id": (200133374, _int_range(0, 0xFFFFFFFF)),
        "bind_key": ("", _hex_key),
        "allow_plain": (False, _bool),
        "address": ("", _str(17)),          # CGMS: BLE address "aa:bb:cc:dd:ee:ff"
        "passkey": (0, _int_range(0, 999999)),  # CGMS: bonding passkey
        "transmitter_id": ("", _tx_id),    # dexcom_g6: the id printed on the transmitter, e.g. "8G1234"
        # dexcom_g6: "alternate" takes the Dexcom receiver's / t:slim X2's slot, "phone" the phone app's
        "slot": ("alternate", _one_of("alternate", "phone")),
        "allow_0e": (False, _bool),         # dexcom_g6: state 0E (insufficient calibration) may alarm
    },
}
