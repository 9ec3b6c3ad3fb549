# Home Assistant MQTT discovery (pure): the retained config messages that make a gateway show up in
# Home Assistant by itself, with its availability. The uplink publishes them on every connect and again
# whenever Home Assistant announces `online` on <ha_prefix>/status (it forgets entities on restart).
#
# Entities, all reading the retained <prefix>/state topic, so Home Assistant has values at once:
#   sensor glucose  device_class blood_glucose_concentration, mg/dL, from state.last_sgv
#   sensor alarm    the alarm level, or "none"
#   sensor pattern  what the box shows (ok, low, cloud_silent, ...)
# Payload keys are the long names (not HA's abbreviations) so a person reading the broker understands
# them. No secret is ever part of a discovery message: only ids, topics and names.
import json


def _entity(cfg, key, name, template, extra):
    gid = cfg["gateway_id"]
    prefix = cfg["mqtt"]["prefix"] + "/" + gid
    uid = "nightstand_" + gid + "_" + key
    body = {
        "name": name,
        "unique_id": uid,
        "object_id": uid,
        "state_topic": prefix + "/state",
        "value_template": template,
        "availability_topic": prefix + "/availability",
        "payload_available": "online",
        "payload_not_available": "offline",
        "device": {
            "identifiers": ["nightstand_" + gid],
            "name": "Nightstand " + gid,
            "manufacturer": "Nightstand",
            "model": "CGM bedside gateway",
        },
    }
    for k in extra:
        body[k] = extra[k]
    topic = "%s/sensor/nightstand_%s/%s/config" % (cfg["mqtt"]["ha_prefix"], gid, key)
    # no spaces after , and : : ~120 B less of a board's heap while the uplink sends them
    return topic, json.dumps(body, separators=(",", ":"))


def messages(cfg):
    """(topic, payload str) pairs to publish retained (QoS 1), none when discovery is off. A generator:
    the uplink sends each before the next is built, so one ~0.5 KiB payload is in the heap at a time
    (this runs as the uplink connects, the heap's busiest moment)."""
    if not cfg["mqtt"]["ha_discovery"]:
        return
    yield _entity(cfg, "glucose", "Glucose", "{{ value_json.last_sgv }}", {
        "device_class": "blood_glucose_concentration",
        "unit_of_measurement": "mg/dL",
        "state_class": "measurement",
    })
    yield _entity(cfg, "alarm", "Alarm", "{{ value_json.alarm or 'none' }}", {"icon": "mdi:alarm-light"})
    yield _entity(cfg, "pattern", "Pattern", "{{ value_json.pattern }}", {"icon": "mdi:led-on"})
