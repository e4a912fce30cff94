{
    "name": "bridge",
    "title": "Bridge",
    "version": "1.0",
    "depends": ["alpha", "beta"],
    "auto_install": True,
}
