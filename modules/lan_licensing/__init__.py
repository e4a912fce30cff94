"""LAN licensing: signed licence files enable modules, limit concurrent staff seats and count readings in tiers."""
