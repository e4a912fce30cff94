{
    "name": "fake_usage",
    "title": "Fake usage (tests)",
    "version": "0.1.0",
    "summary": "A BillableSource giving the lines a test sets, like metering's overage would.",
    "depends": ["core"],
    "auto_install": False,
    "licence_feature": "fake_usage",
    "entry": "module",
    "sequence": 90,
}
